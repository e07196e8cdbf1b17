import math

import pytest
import torch

from extremal_contours.perturbation import Perturbation, blur_pyramid


def _images(n=2, c=3, h=40, w=48, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_pyramid_levels_go_from_most_blurred_to_the_image():
    x = _images()
    pyr = blur_pyramid(x, levels=5, max_sigma=8.0)
    assert pyr.shape == (2, 5, 3, 40, 48)
    torch.testing.assert_close(pyr[:, -1], x)
    # Blurring removes variance, more with a larger sigma.
    variances = [pyr[:, level].var().item() for level in range(5)]
    assert variances == sorted(variances)
    assert variances[0] < 0.2 * variances[-1]


def test_blur_mask_one_keeps_and_zero_blurs_fully():
    x = _images()
    p = Perturbation(x, "blur", levels=4, max_sigma=6.0)
    index = torch.tensor([1, 0])
    ones = torch.ones(2, 1, 40, 48)
    torch.testing.assert_close(p(ones, index), x[index])
    zeros = torch.zeros(2, 1, 40, 48)
    torch.testing.assert_close(p(zeros, index), blur_pyramid(x, 4, 6.0)[index, 0])


def test_blur_interpolates_between_levels_and_is_differentiable():
    x = _images(1)
    p = Perturbation(x, "blur", levels=3, max_sigma=5.0)
    pyr = blur_pyramid(x, 3, 5.0)
    mask = torch.full((1, 1, 40, 48), 0.25, requires_grad=True)
    out = p(mask, torch.tensor([0]))
    # mask 0.25 -> level position 0.5: halfway between levels 0 and 1.
    torch.testing.assert_close(out, 0.5 * (pyr[:, 0] + pyr[:, 1]))
    out.sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0


def test_mask_is_local():
    x = _images(1)
    p = Perturbation(x, "blur")
    mask = torch.zeros(1, 1, 40, 48)
    mask[..., 10:20, 10:20] = 1
    out = p(mask, torch.tensor([0]))
    torch.testing.assert_close(out[..., 10:20, 10:20], x[..., 10:20, 10:20])
    assert not torch.allclose(out[..., 25:, 25:], x[..., 25:, 25:])


def test_constant_and_fade():
    x = _images(2)
    mask = torch.zeros(2, 1, 40, 48)
    idx = torch.tensor([0, 1])
    mean = Perturbation(x, "constant")(mask, idx)
    torch.testing.assert_close(mean, x.mean((2, 3), keepdim=True).expand_as(x))
    fill = Perturbation(x, "constant", fill=[1.0, 2.0, 3.0])(mask, idx)
    assert fill[:, 2].eq(3.0).all()
    fade = Perturbation(x, "fade")(torch.full((2, 1, 40, 48), 0.5), idx)
    torch.testing.assert_close(fade, 0.5 * x)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown perturbation"):
        Perturbation(_images(), "noise")
    with pytest.raises(ValueError, match="channels"):
        Perturbation(_images(), "constant", fill=[0.0, 1.0])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        Perturbation(torch.rand(3, 8, 8), "blur")


def test_pyramid_works_on_images_smaller_than_the_kernel():
    x = _images(1, 3, 16, 20)
    pyr = blur_pyramid(x, levels=8, max_sigma=20.0)
    assert torch.isfinite(pyr).all()


@pytest.mark.parametrize("sigma", [0.8, 5.0, 20.0])
def test_separable_blur_equals_torchvision(sigma):
    from torchvision.transforms.v2.functional import gaussian_blur

    from extremal_contours.perturbation import separable_gaussian_blur

    x = torch.rand(2, 3, 45, 70, generator=torch.Generator().manual_seed(0))
    half = min(math.ceil(3 * sigma), 44)
    expected = gaussian_blur(x, [2 * half + 1, 2 * half + 1], [sigma, sigma])
    torch.testing.assert_close(separable_gaussian_blur(x, half, sigma), expected, atol=1e-5, rtol=0)
