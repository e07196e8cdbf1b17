"""Dense Extremal Perturbations: each piece against values worked out by hand, the planted spot, the
input checks, and (where TorchRay is installed) the port against the reference itself."""

import copy
import math

import pytest
import torch

from conftest import TinyNet, disc_image
from extremal_contours.baselines import ExtremalPerturbation
from extremal_contours.baselines import extremal_perturbation as EP
from extremal_contours.metrics import iou
from extremal_contours.perturbation import blur_pyramid


class BrightLinear(torch.nn.Module):
    """Class 0 counts how far sharp pixels rise above 0.6 (linear, so it never saturates); class 1 is
    its opposite. Under the blur, only the bright disc itself keeps class 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = torch.relu(x[:, 0] - 0.6).mean((1, 2)) * 100
        return torch.stack([bright, -bright], 1)


def test_kernel_is_flat_to_half_a_width_then_gaussian():
    z = torch.tensor([0.0, 0.25, 0.5, 1.0, 1.5, 2.5])
    expected = torch.tensor([1.0, 1.0, 1.0, math.exp(-0.5), math.exp(-2.0), math.exp(-8.0)])
    assert torch.allclose(EP.kernel(z), expected)


def test_grid_geometry_is_the_references_at_224_px():
    grid = EP.MaskGrid(224, 224, 7, 21.0)
    # 32 x 32 parameters, 4 neighbours each side, the canvas 260 x 260 with the image at offset 21.
    assert (grid.rows, grid.cols, grid.radius, grid.pad) == (32, 32, 4, 7)
    assert grid.cells == (38, 38) and grid.canvas == (260, 260) and grid.margin == 21
    odd = EP.MaskGrid(70, 93, 7, 21.0)
    assert (odd.rows, odd.cols) == (10, 14) and odd.canvas == (106, 134)


def test_one_grid_point_draws_one_blob_at_its_pixel():
    """Point (5, 6) sits at pixel (35, 42); the mask there is the smooth max of 1 and 80 zeros, and
    21 px (one kernel width) away it is that of exp(-1/2) and zeros."""
    grid = EP.MaskGrid(112, 112, 7, 21.0)
    params = torch.zeros(1, 1, grid.rows, grid.cols)
    params[0, 0, 5, 6] = 1.0
    mask = grid.visible(grid.draw(params, 0.05))[0, 0]

    def smax(v: float) -> float:  # one value v among 80 zeros, temperature 0.05
        return v * math.exp(v / 0.05) / (math.exp(v / 0.05) + 80)

    assert mask[35, 42].item() == pytest.approx(smax(1.0), abs=1e-6)
    assert mask[35, 42 + 21].item() == pytest.approx(smax(math.exp(-0.5)), abs=1e-5)
    assert mask[35 + 21, 42].item() == pytest.approx(smax(math.exp(-0.5)), abs=1e-5)
    assert mask[35, 42 - 10].item() == pytest.approx(smax(1.0), abs=1e-6)  # flat within half a width
    assert mask.argmax().item() // 112 in range(35 - 10, 35 + 11)


def test_smooth_max_of_two_values():
    cols = torch.tensor([[[1.0], [0.5]]])  # one cell, two neighbours
    weight = torch.ones(2, 1)
    expected = (1.0 * math.exp(20) + 0.5 * math.exp(10)) / (math.exp(20) + math.exp(10))
    assert EP.smooth_max(cols, weight, 0.05).item() == pytest.approx(expected, rel=1e-6)


def test_smooth_max_gradient_matches_autograd_of_its_formula():
    gen = torch.Generator().manual_seed(0)
    cols = torch.rand(2, 9, 11, generator=gen, dtype=torch.float64)
    weight = torch.rand(9, 4, generator=gen, dtype=torch.float64)
    grad_out = torch.randn(2, 4, 11, generator=gen, dtype=torch.float64)
    for chunk in (EP._CHUNK, 50):
        EP._CHUNK, saved = chunk, EP._CHUNK
        try:
            a = cols.clone().requires_grad_()
            got = EP.smooth_max(a, weight, 0.05)
            (g_got,) = torch.autograd.grad((got * grad_out).sum(), [a])
        finally:
            EP._CHUNK = saved
        b = cols.clone().requires_grad_()
        v = b[:, :, None, :] * weight[None, :, :, None]
        plain = (v * torch.softmax(v / 0.05, dim=1)).sum(1)
        (g_plain,) = torch.autograd.grad((plain * grad_out).sum(), [b])
        assert torch.allclose(got, plain, atol=1e-12) and torch.allclose(g_got, g_plain, atol=1e-9)
        assert g_plain.abs().max() > 0.1


def test_area_loss_by_hand():
    masks = torch.tensor([[0.2, 0.9, 0.5, 0.0]])
    # Sorted: 0, 0.2, 0.5, 0.9 against 0, 0, 0, 1 (one value asked to be 1).
    assert EP.area_loss(masks, torch.tensor([1])).item() == pytest.approx((0.04 + 0.25 + 0.01) / 4)
    # Two asked: against 0, 0, 1, 1.
    assert EP.area_loss(masks, torch.tensor([2])).item() == pytest.approx((0.04 + 0.25 + 0.01) / 4)
    assert EP.area_loss(torch.tensor([[0.0, 1.0, 1.0, 0.0]]), torch.tensor([2])).item() == 0


def test_top_pixels_keeps_exactly_the_count_ties_by_position():
    masks = torch.tensor([0.3, 0.9, 0.3, 0.1, 0.3, 0.0]).view(1, 1, 2, 3)
    got = EP.top_pixels(masks, torch.tensor([3]))
    assert got.flatten().tolist() == [True, True, True, False, False, False]


def test_zero_padded_blur_fades_the_border_by_the_kernel_left_inside():
    """A constant image blurred with zero padding: the corner keeps the kernel's inner quarter."""
    sigma, half = 2.0, 8  # truncate 4
    x = torch.ones(1, 1, 32, 32)
    blurred = blur_pyramid(x, levels=2, max_sigma=sigma, truncate=4.0, padding="zeros")[0, 0, 0]
    g = [math.exp(-0.5 * (t / sigma) ** 2) for t in range(-half, half + 1)]
    inner = sum(g[half:]) / sum(g)
    assert blurred[0, 0].item() == pytest.approx(inner**2, rel=1e-5)
    assert blurred[16, 16].item() == pytest.approx(1.0, rel=1e-5)
    reflected = blur_pyramid(x, levels=2, max_sigma=sigma)[0, 0, 0]
    assert torch.allclose(reflected, x[0, 0])  # reflection keeps a constant image constant


@pytest.mark.device
def test_fair_protocol_scores_exactly_the_area_asked_and_reference_counts_its_canvas(device):
    model = TinyNet(seed=2).eval().to(device)
    x = torch.rand(1, 3, 48, 56, generator=torch.Generator().manual_seed(0))
    fair = ExtremalPerturbation(model, iterations=30, progress=False).attribute(x, target=0, areas=(0.1, 0.25))
    assert fair.visible_area[0].tolist() == pytest.approx([round(0.1 * 48 * 56) / (48 * 56), round(0.25 * 48 * 56) / (48 * 56)])
    assert fair.masks.dtype == torch.bool and fair.soft_masks.dtype == torch.float32
    reference = ExtremalPerturbation(model, protocol="reference", iterations=30, progress=False).attribute(x, target=0)
    assert torch.equal(reference.masks, reference.soft_masks > 0.5)
    assert reference.settings["perturbation_options"] == EP.REFERENCE_BLUR and reference.settings["protocol"] == "reference"


def test_dense_ep_finds_the_planted_spot():
    """One bright disc carries class 0: dense EP keeps the disc (the reference schedule compressed to
    100 steps: the area weight grows 1.0035^8 per step)."""
    x, disc = disc_image()
    area = float(disc.float().mean())
    explainer = ExtremalPerturbation(BrightLinear(), iterations=100, area_growth=1.0035**8, progress=False)
    result = explainer.attribute(x, target=0, areas=(area,))
    mask = result.masks[0, 0, 0]
    assert iou(mask[None], disc[None]).item() > 0.7
    assert result.preserve_ratio.item() > 0.9


def test_inputs_are_checked_at_the_door():
    ep = ExtremalPerturbation(TinyNet(), iterations=2, progress=False)
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="batch"):
        ep.attribute(x[0])
    with pytest.raises(ValueError, match="NaN"):
        ep.attribute(torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(ValueError, match="outside the model's 5 classes"):
        ep.attribute(x, target=7)
    with pytest.raises(TypeError, match="integers"):
        ep.attribute(x, target=1.5)
    with pytest.raises(ValueError, match="areas"):
        ep.attribute(x, target=1, areas=(1.2,))
    with pytest.raises(ValueError, match="variant"):
        ep.attribute(x, target=1, variant="keep")
    with pytest.raises(ValueError, match="protocol"):
        ExtremalPerturbation(TinyNet(), protocol="paper")
    with torch.inference_mode():  # gradients are the method: it runs under inference mode too
        out = ep.attribute(x, target=1)
    assert out.masks.shape == (1, 1, 1, 32, 32)


@pytest.mark.device
def test_the_model_is_left_as_given_on_its_device_and_results_come_back_on_the_cpu(device):
    model = TinyNet(seed=3).to(device)
    model.train()
    model.head.weight.requires_grad_(False)
    flags = [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in model.modules()]
    result = ExtremalPerturbation(model, iterations=3, progress=False).attribute(torch.rand(2, 3, 32, 32), target=[0, 1])
    assert [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in model.modules()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert {(p.device.type, p.dtype) for p in model.parameters()} == {(device.type, torch.float32)}
    for name in ("masks", "soft_masks", "visible_area", "classes", "history", "clean_score", "preserve_score", "delete_score"):
        assert getattr(result, name).device.type == "cpu", name
    assert result.classes.tolist() == [0, 1] and torch.isfinite(result.preserve_score).all()


def test_port_reproduces_the_reference_bit_for_bit():
    """Against TorchRay's own code (skipped where it is not installed: it is CC-BY-NC and never a
    dependency): the reference protocol gives the reference's masks, to float32 rounding, after 60
    steps on two areas at once."""
    pytest.importorskip("torchray", reason="TorchRay is not installed (pip install --no-deps torchray to compare)")
    from torchray.attribution.extremal_perturbation import extremal_perturbation

    model = TinyNet(seed=1).eval()
    x = torch.randn(1, 3, 70, 93, generator=torch.Generator().manual_seed(0))
    theirs, _ = extremal_perturbation(copy.deepcopy(model), x, 1, areas=[0.1, 0.3], max_iter=60)
    ours = ExtremalPerturbation(model, protocol="reference", iterations=60, progress=False).attribute(x, 1, areas=(0.1, 0.3))
    assert (ours.soft_masks[0] - theirs).abs().max() < 1e-5
    assert torch.equal(ours.masks[0], theirs > 0.5)


def test_reference_blur_is_torchrays_pyramid():
    pytest.importorskip("torchray", reason="TorchRay is not installed (pip install --no-deps torchray to compare)")
    from torchray.attribution.extremal_perturbation import Perturbation as TheirPyramid

    from extremal_contours.perturbation import Perturbation

    x = torch.randn(1, 3, 60, 70, generator=torch.Generator().manual_seed(0))
    mask = torch.rand(3, 1, 60, 70, generator=torch.Generator().manual_seed(1))
    theirs = TheirPyramid(x, num_levels=8, max_blur=20)
    ours = Perturbation(x, "blur", **EP.REFERENCE_BLUR)
    assert torch.equal(ours(mask, torch.zeros(3, dtype=torch.long)), theirs.apply(mask))
