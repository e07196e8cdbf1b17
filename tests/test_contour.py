import math

import pytest
import torch

from extremal_contours import contour as C


def _random(batch: int, harmonics: int, seed: int, amplitude: float = 0.15) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, harmonics, 2, generator=g, dtype=torch.float64) * amplitude


def test_extent_is_isotropic_and_has_unit_area():
    w, h = C.image_extent(100, 300)
    assert w * h == pytest.approx(1.0)
    assert w / h == pytest.approx(3.0)


def test_circle_radius_and_area_closed_form():
    coeffs = torch.zeros(1, 8, 2, dtype=torch.float64)
    scale = C.scale_for_area(coeffs, 0.2)
    assert scale.item() == pytest.approx(math.sqrt(0.2 / math.pi))
    assert C.area(coeffs, scale).item() == pytest.approx(0.2)


@pytest.mark.parametrize("area", [0.02, 0.1, 0.3, 0.7])
def test_scale_for_area_matches_unclipped_area(area):
    coeffs = _random(5, 8, 0)
    scale = C.scale_for_area(coeffs, area)
    torch.testing.assert_close(C.area(coeffs, scale), torch.full((5,), area, dtype=torch.float64))


@pytest.mark.parametrize("size", [(224, 224), (120, 300), (301, 97)])
@pytest.mark.parametrize("area", [0.05, 0.1, 0.2, 0.6])
def test_visible_area_is_exact_even_against_the_border(size, area):
    h, w = size
    extent = C.image_extent(h, w)
    coeffs = _random(6, 8, 1)
    g = torch.Generator().manual_seed(2)
    centre = (torch.rand(6, 2, generator=g, dtype=torch.float64) - 0.5) * torch.tensor(extent, dtype=torch.float64)
    centre[0] = torch.tensor([extent[0] / 2 - 0.005, -extent[1] / 2 + 0.005])  # in a corner
    scale = C.scale_for_area(coeffs, area, centre, extent)
    visible = C.visible_area(centre, coeffs, scale, extent)
    torch.testing.assert_close(visible, torch.full((6,), area, dtype=torch.float64), atol=1e-6, rtol=0)
    # ... and the quadrature is right: a much finer one agrees.
    # (the worst case, a centre 1 px from a corner, is off by 4e-4 at 2048 angles)
    fine = C.visible_area(centre, coeffs, scale, extent, n=65536)
    torch.testing.assert_close(fine, visible, atol=1e-3, rtol=0)
    # The pixels agree with the continuous area (discretisation only).
    pixels = C.rasterize(centre, coeffs, scale, h, w, edge=None).double().mean((1, 2, 3))
    assert (pixels - area).abs().max() < 0.004
    # The clipped polygon has that area too (shoelace).
    poly = C.polygon(centre, coeffs, scale, n=8192, extent=extent)
    x, y = poly[..., 0], poly[..., 1]
    shoelace = 0.5 * (x * y.roll(-1, 1) - x.roll(-1, 1) * y).sum(1).abs()
    torch.testing.assert_close(shoelace, fine, atol=2e-4, rtol=0)
    # The corner contour really is clipped: the whole contour is bigger than what is visible.
    assert C.area(coeffs[:1], scale[:1]).item() > area * 1.5


def test_scale_for_area_is_differentiable():
    coeffs = _random(2, 3, 3).requires_grad_()
    centre = (torch.rand(2, 2, dtype=torch.float64) * 0.4 - 0.2).requires_grad_()
    extent = C.image_extent(40, 60)
    assert torch.autograd.gradcheck(lambda k, c: C.scale_for_area(k, 0.3, c, extent), (coeffs, centre))


def test_soft_mask_gradients_match_finite_differences():
    # The radius is interpolated from a table of angles, so the check uses a step larger than the
    # table's spacing and a loose tolerance rather than gradcheck's 1e-6 steps.
    coeffs = _random(1, 3, 4)
    centre = torch.tensor([[0.05, -0.03]], dtype=torch.float64)
    extent = C.image_extent(24, 36)
    weight = torch.rand(1, 1, 24, 36, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def loss(k, c):
        return (C.rasterize(c, k, C.scale_for_area(k, 0.3, c, extent), 24, 36, edge=2.0) * weight).sum()

    k_leaf, c_leaf = coeffs.clone().requires_grad_(), centre.clone().requires_grad_()
    gk, gc = torch.autograd.grad(loss(k_leaf, c_leaf), [k_leaf, c_leaf])
    eps = 1e-3
    for param, grad, other in ((coeffs, gk, "k"), (centre, gc, "c")):
        numeric = torch.zeros_like(param)
        for i in range(param.numel()):
            delta = torch.zeros_like(param).view(-1)
            delta[i] = eps
            delta = delta.view_as(param)
            if other == "k":
                plus, minus = loss(param + delta, centre), loss(param - delta, centre)
            else:
                plus, minus = loss(coeffs, param + delta), loss(coeffs, param - delta)
            numeric.view(-1)[i] = (plus - minus) / (2 * eps)
        torch.testing.assert_close(grad, numeric, rtol=0.02, atol=0.02 * numeric.abs().max().item())


def test_circle_stays_round_on_a_non_square_image():
    h, w = 120, 360
    coeffs = torch.zeros(1, 8, 2)
    scale = C.scale_for_area(coeffs, 0.1)
    mask = C.rasterize(torch.zeros(1, 2), coeffs, scale, h, w, edge=None)[0, 0]
    rows = mask.any(1).nonzero()
    cols = mask.any(0).nonzero()
    height_px = (rows.max() - rows.min() + 1).item()
    width_px = (cols.max() - cols.min() + 1).item()
    assert abs(height_px - width_px) <= 1
    expected = 2 * math.sqrt(0.1 * h * w / math.pi)
    assert abs(width_px - expected) <= 2


def test_binary_mask_is_the_soft_mask_above_half():
    coeffs = _random(3, 8, 5).float()
    centre = torch.tensor([[0.1, -0.05], [0.0, 0.0], [-0.3, 0.2]])
    extent = C.image_extent(64, 96)
    scale = C.scale_for_area(coeffs, 0.15, centre, extent)
    binary = C.rasterize(centre, coeffs, scale, 64, 96, edge=None)
    soft = C.rasterize(centre, coeffs, scale, 64, 96, edge=1.0)
    assert torch.equal(binary, soft > 0.5)
    assert binary.dtype == torch.bool


def test_harmonic_shapes_the_contour_in_the_expected_direction():
    # a_1 > 0 stretches the radius towards +x (theta = 0) and shrinks it towards -x.
    coeffs = torch.zeros(1, 2, 2)
    coeffs[0, 0, 0] = 0.5
    theta = torch.tensor([0.0, math.pi])
    r = C.radius(coeffs, torch.ones(1), theta)
    assert r[0, 0] == pytest.approx(math.exp(0.5))
    assert r[0, 1] == pytest.approx(math.exp(-0.5))
    mask = C.rasterize(torch.zeros(1, 2), coeffs, C.scale_for_area(coeffs, 0.2), 64, 64, edge=None)[0, 0]
    assert mask[:, 32:].sum() > 2 * mask[:, :32].sum()


def test_pixel_round_trip():
    pts = torch.rand(10, 2)
    back = C.from_pixels(C.to_pixels(pts, 50, 80), 50, 80)
    torch.testing.assert_close(back, pts)
    # The image centre is the origin.
    torch.testing.assert_close(C.to_pixels(torch.zeros(2), 50, 80), torch.tensor([40.0, 25.0]))


def test_spectral_energy_weights_high_orders():
    low = torch.zeros(1, 4, 2)
    low[0, 0, 0] = 0.1
    high = torch.zeros(1, 4, 2)
    high[0, 3, 0] = 0.1
    assert C.spectral_energy(high).item() == pytest.approx(16 * C.spectral_energy(low).item())
