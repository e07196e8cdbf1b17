import pytest
import torch
from torch import nn

from conftest import BrightSpot, TinyNet, disc_image, shared_images
from extremal_contours.baselines import ExtremalPerturbation, get_explainer, gradcam_layer, list_explainers
from extremal_contours.baselines.extremal_perturbation import smooth_max_upsample
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


def test_smooth_max_mask_is_flat_inside_and_smooth_at_the_border():
    params = torch.zeros(1, 1, 32, 32)
    params[..., 10:15, 10:15] = 1
    mask = smooth_max_upsample(params, 7, 21.0, 224, 224, 0.05)[0, 0]
    assert mask.max() <= 1 and mask.min() >= 0
    assert mask[87, 87] > 0.95  # inside the block
    assert mask[87, 160] < 0.05  # far away
    row = mask[87, 112:160]  # beyond the block's last grid point (a 1% ripple on the plateau)
    assert (row[1:] <= row[:-1] + 1e-3).all()  # falls off monotonically


def test_smooth_max_matches_its_plain_autograd_formula():
    """The chunked smooth max with its written-out gradient gives the values and gradients of the
    textbook formula (softmax-weighted sum, differentiated by autograd), in small and odd chunks too."""
    import math

    import torch.nn.functional as F

    from extremal_contours.baselines import extremal_perturbation as EPM

    def plain(params, step, sigma, height, width, temperature):
        radius = 1 + math.ceil(sigma / step)
        weight = EPM._kernel_weights(step, sigma, radius, params.device).to(params.dtype)
        cols = F.unfold(F.pad(params, [radius] * 4), kernel_size=2 * radius + 1)
        values = cols[:, :, None, :] * weight[None, :, :, None]
        mask = (values * torch.softmax(values / temperature, dim=1)).sum(1)
        mask = F.fold(mask, (params.shape[2] * step, params.shape[3] * step), kernel_size=step, stride=step)
        return mask[:, :, :height, :width]

    gen = torch.Generator().manual_seed(0)
    params = torch.rand(3, 1, 6, 7, generator=gen, dtype=torch.float64)
    grad_out = torch.randn(3, 1, 40, 45, generator=gen, dtype=torch.float64)
    for chunk in (EPM._CHUNK, 5000):
        EPM._CHUNK, saved = chunk, EPM._CHUNK
        try:
            results = []
            for fn in (plain, smooth_max_upsample):
                p = params.clone().requires_grad_()
                mask = fn(p, 7, 21.0, 40, 45, 0.05)
                (g,) = torch.autograd.grad((mask * grad_out).sum(), [p])
                results.append((mask, g))
        finally:
            EPM._CHUNK = saved
        assert torch.allclose(results[0][0], results[1][0], atol=1e-12)
        assert torch.allclose(results[0][1], results[1][1], atol=1e-9)
    assert results[0][1].abs().max() > 0.1  # a real gradient was compared


def test_dense_ep_counts_area_inside_the_image_only():
    model = TinyNet(seed=2).eval()
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    result = ExtremalPerturbation(model, iterations=120, progress=False).attribute(x, target=0, areas=(0.2,))
    assert abs(result.visible_area.item() - 0.2) < 0.05
    assert result.masks.shape == (1, 1, 1, 48, 48)


@pytest.mark.real
def test_dense_ep_on_a_real_image_reaches_its_area_inside_the_image(lite0):
    """The reference schedule compressed to 100 steps (the area weight grows 1.0035^8 per step): the
    binary mask's visible area, counted inside the image only, reaches the target within 0.03.

    (Whether dense EP's region beats random discs of the same area is measured in the benchmark, not
    asserted here: on this image at area 0.1 it does not, see docs/BENCHMARKS.md.)"""
    from PIL import Image

    ((path, entry),) = shared_images("imagenet-sample", 1)
    x = lite0.preprocess(Image.open(path).convert("RGB"), "center")
    explainer = ExtremalPerturbation(lite0.model, iterations=100, area_growth=1.0035**8, progress=False)
    result = explainer.attribute(x, target=entry["label"], areas=(0.1,))
    assert abs(result.visible_area.item() - 0.1) < 0.03
    assert result.cost["forward_backward"] == 100


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
