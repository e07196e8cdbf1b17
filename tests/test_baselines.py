import pytest
import torch
from torch import nn

from conftest import BrightSpot, TinyNet, disc_image
from extremal_contours.baselines import get_explainer, gradcam_layer, list_explainers
from extremal_contours.baselines.rise import rise_masks

FAST = {
    "contour": {"iterations": 4, "starts": 1, "scan": 2},
    "contour_map": {"iterations": 4, "starts": 1, "scan": 2},
    "extremal_perturbation": {"iterations": 6},
    "rise": {"count": 64},
    "occlusion": {"window": 16, "stride": 8},
    "integrated_gradients": {"steps": 8},
}


def test_list_names_every_method():
    assert set(list_explainers()) == {
        "contour", "contour_map", "extremal_perturbation", "gradcam", "integrated_gradients", "saliency", "occlusion", "rise"
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown method"):
        get_explainer("lime", TinyNet())


@pytest.mark.parametrize("name", list_explainers())
def test_every_method_shapes_determinism_and_untouched_model(name):
    model = TinyNet(seed=1)
    model.train()
    flags = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    explainer = get_explainer(name, model, **FAST.get(name, {}))
    a = explainer.attribute(x, target=[1, 3])
    b = explainer.attribute(x, target=[1, 3])
    assert a.maps.shape == (2, 1, 40, 48) and a.maps.dtype == torch.float32
    assert torch.isfinite(a.maps).all()
    assert torch.equal(a.maps, b.maps)
    assert a.classes.tolist() == [1, 3]
    if explainer.uses_masks:
        assert a.masks.shape == (2, 1, 1, 40, 48) and a.masks.dtype == torch.bool
    assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


def test_rise_seed_changes_masks_and_masks_are_smooth():
    g0, g1 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    a, b = rise_masks(8, 40, 48, generator=g0), rise_masks(8, 40, 48, generator=g1)
    assert a.shape == (8, 1, 40, 48) and not torch.equal(a, b)
    assert ((a > 0.01) & (a < 0.99)).any()  # bilinear, not blocky


def test_rise_and_occlusion_find_the_planted_spot():
    x, disc = disc_image()
    for name, options in (("rise", {"count": 400}), ("occlusion", {"window": 12, "stride": 6})):
        maps = get_explainer(name, BrightSpot(), **options).attribute(x, target=0).maps[0, 0]
        assert disc.flatten()[maps.flatten().argmax()], name  # the peak is on the spot
        assert maps[disc].mean() > maps[~disc].mean() + 0.3 * (maps.max() - maps.min()), name


def test_gradcam_layer_choice():
    from torchvision.models import resnet18

    assert gradcam_layer(resnet18())[0] == "layer4"
    assert gradcam_layer(TinyNet())[0] == "features"
    with pytest.raises(ValueError, match="layer="):
        gradcam_layer(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)))
    with pytest.raises(ValueError, match="no layer named"):
        get_explainer("gradcam", TinyNet(), layer="nope").attribute(torch.rand(1, 3, 32, 32))


def test_contour_map_is_the_importance_map_of_a_nested_sweep():
    from extremal_contours import ExtremalContour
    from extremal_contours.sweep import DEFAULT_AREAS, importance_map

    x, _ = disc_image()
    options = {"iterations": 8, "starts": 2, "scan": 2}
    got = get_explainer("contour_map", BrightSpot(), **options).attribute(x, target=0, areas=(0.15,), seed=1)
    swept = ExtremalContour(BrightSpot(), progress=False, **options).sweep(
        x, 0, areas=sorted({*DEFAULT_AREAS, 0.15}), seed=1
    )
    assert got.areas == (0.15,) and got.masks.shape == (1, 1, 1, *x.shape[-2:])
    assert torch.equal(got.masks[:, 0], swept.masks[:, swept.areas.index(0.15)])
    assert torch.equal(got.maps, importance_map(swept.masks, swept.areas))
    levels = got.maps.unique()
    assert len(levels) > 3  # a graded map, not one region
    # The map's top 15% is the region of area 0.15 (nested sweep: smaller regions sit inside it).
    top = got.maps[0, 0] >= 1 - 0.15
    assert (top == got.masks[0, 0, 0]).float().mean() > 0.97


def test_baselines_take_a_plain_function_model():
    net = TinyNet(seed=1).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for name in ("saliency", "extremal_perturbation"):
        options = {"iterations": 4} if name == "extremal_perturbation" else {}
        out = get_explainer(name, lambda inp: net(inp), **options).attribute(x, target=1)
        assert out.maps.shape[-2:] == (32, 32) and torch.isfinite(out.maps).all()
