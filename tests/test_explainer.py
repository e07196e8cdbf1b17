import math

import pytest
import torch
from torch import nn

from conftest import BrightSpot, TinyNet, disc_image
from extremal_contours import ExtremalContour
from extremal_contours import contour as C
from extremal_contours.perturbation import Perturbation

FAST = {"iterations": 8, "starts": 2, "scan": 2, "batch_size": 16, "progress": False}


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a & b).sum() / (a | b).sum()).item()


def test_shapes_and_exact_area(tiny, images):
    result = ExtremalContour(tiny, harmonics=4, **FAST).attribute(images, target=[1, 3], areas=(0.05, 0.2))
    n, a = 2, 2
    assert result.masks.shape == (n, a, 1, 40, 48) and result.masks.dtype == torch.bool
    assert result.soft_masks.shape == (n, a, 1, 40, 48)
    assert result.centre.shape == (n, a, 2)
    assert result.coeffs.shape == (n, a, 4, 2)
    assert result.scale.shape == (n, a)
    assert result.polygons.shape[:2] == (n, a) and result.polygons.shape[-1] == 2
    assert result.history.shape == (n, a, 8)
    assert result.classes.tolist() == [1, 3]
    visible = result.masks.float().mean((2, 3, 4))
    target = torch.tensor([[0.05, 0.2], [0.05, 0.2]])
    assert (visible - target).abs().max() < 0.01
    torch.testing.assert_close(result.visible_area, visible)


def test_finds_the_planted_region():
    x, disc = disc_image()
    area = disc.float().mean().item()
    explainer = ExtremalContour(BrightSpot(), iterations=40, starts=2, scan=3, perturbation_options={"max_sigma": 6.0}, progress=False)
    result = explainer.attribute(x, target=0, areas=(area,))
    assert _iou(result.masks[0, 0, 0], disc) > 0.8
    # Keeping only the disc keeps the evidence.
    assert result.preserve_ratio[0, 0] > 0.8


def test_delete_variant_removes_the_planted_region():
    x, disc = disc_image(centre=(20, 40))
    area = disc.float().mean().item()
    # Filling with the background colour removes the disc entirely (a blur would leave its core).
    explainer = ExtremalContour(
        BrightSpot(), iterations=40, starts=2, scan=3, perturbation="constant", perturbation_options={"fill": 0.3}, progress=False
    )
    result = explainer.attribute(x, target=0, areas=(area,), variant="delete")
    assert _iou(result.masks[0, 0, 0], disc) > 0.7
    assert result.delete_drop[0, 0] > 0.6


@pytest.mark.parametrize("variant", ["delete", "dual"])
@pytest.mark.parametrize("centre", [(50, 22), (24, 40)])
def test_delete_and_dual_regions_cover_the_planted_disc(variant, centre):
    x, disc = disc_image(centre=centre)
    area = disc.float().mean().item()
    # The default perturbation, a blur wide enough to erase the disc where it is deleted.
    explainer = ExtremalContour(BrightSpot(), iterations=24, starts=2, scan=3, perturbation_options={"max_sigma": 16.0}, progress=False)
    result = explainer.attribute(x, target=0, areas=(area,), variant=variant)
    region = result.masks[0, 0, 0]
    assert result.variant == variant and abs(region.float().mean().item() - area) < 0.01
    assert ((region & disc).sum() / disc.sum()).item() > 0.85  # most of the disc inside the region
    cx, cy = C.to_pixels(result.centre[0, 0], *disc.shape).tolist()
    assert disc[int(cy), int(cx)]  # the contour's centre inside the disc
    ys, xs = torch.nonzero(region, as_tuple=True)
    assert math.dist((xs.float().mean().item() + 0.5, ys.float().mean().item() + 0.5), centre) < 2.5  # and the region's centroid on it
    assert result.delete_drop[0, 0] > 0.3  # blurring the region away takes the evidence with it


def test_result_is_at_least_the_best_scanned_disc():
    # The scan's discs are candidates: the answer never scores below the best of them.
    torch.manual_seed(0)
    model = TinyNet(seed=3).eval()
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    explainer = ExtremalContour(model, iterations=6, starts=2, scan=3, progress=False)
    result = explainer.attribute(x, target=2, areas=(0.15,))
    w, h = C.image_extent(40, 40)
    ticks = (torch.arange(3) + 0.5) / 3 - 0.5
    gy, gx = torch.meshgrid(ticks * h, ticks * w, indexing="ij")
    centres = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    coeffs = torch.zeros(9, 8, 2)
    scale = C.scale_for_area(coeffs, 0.15, centres, (w, h))
    masks = C.rasterize(centres, coeffs, scale, 40, 40, edge=None).float()
    with torch.no_grad():
        discs = model(Perturbation(x)(masks, torch.zeros(9, dtype=torch.long)))[:, 2]
    assert result.preserve_score[0, 0] >= discs.max() - 1e-5


def test_same_seed_same_result_and_seeds_differ_only_with_start_jitter(tiny, images):
    explainer = ExtremalContour(tiny, **FAST, start_jitter=0.1)
    a = explainer.attribute(images, target=0, seed=3)
    b = explainer.attribute(images, target=0, seed=3)
    c = explainer.attribute(images, target=0, seed=4)
    assert torch.equal(a.masks, b.masks)
    assert torch.equal(a.centre, b.centre) and torch.equal(a.coeffs, b.coeffs)
    assert torch.equal(a.history, b.history, )
    assert not torch.equal(a.history, c.history)
    # The default (no start jitter) is deterministic: the seed changes nothing.
    default = ExtremalContour(tiny, **FAST)
    d, e = default.attribute(images, target=0, seed=3), default.attribute(images, target=0, seed=4)
    assert default.config.start_jitter == 0.0
    assert torch.equal(d.masks, e.masks) and torch.equal(d.history, e.history)


def test_an_image_explanation_does_not_depend_on_its_batch(tiny, images):
    explainer = ExtremalContour(tiny, **FAST)
    both = explainer.attribute(images, target=0, seed=3)
    alone = explainer.attribute(images[1:], target=0, seed=3)
    torch.testing.assert_close(both.centre[1], alone.centre[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(both.coeffs[1], alone.coeffs[0], atol=1e-4, rtol=0)
    assert (both.masks[1] ^ alone.masks[0]).float().mean() < 1e-3


def test_one_batch_per_step_and_memory_bound(tiny, images):
    calls = []
    model = tiny

    def counting(x):
        calls.append(x.shape[0])
        return model(x)

    ExtremalContour(counting, iterations=8, starts=4, scan=2, batch_size=64, progress=False).attribute(images, areas=(0.1, 0.2))
    # 2 images x 2 areas x 4 starts = 16 rows fit in one batch per step.
    assert max(calls) == 16
    calls.clear()
    ExtremalContour(counting, iterations=8, starts=4, scan=2, batch_size=5, progress=False).attribute(images, areas=(0.1, 0.2))
    assert max(calls) <= 5


def test_dual_and_delete_run(tiny, images):
    for variant in ("delete", "dual"):
        result = ExtremalContour(tiny, **FAST).attribute(images, target=1, variant=variant)
        assert result.variant == variant
        assert torch.isfinite(result.preserve_score).all() and torch.isfinite(result.delete_score).all()


def test_model_is_left_exactly_as_given():
    model = TinyNet()
    model.train()
    model.features[0].weight.requires_grad_(False)
    model.features[1].eval()  # a mixed mode: must come back mixed
    hooks_before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ExtremalContour(model, **FAST).attribute(x, target=1)
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == grads
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k  # batch-norm statistics untouched too
    hooks_after = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
    assert hooks_after == hooks_before
    assert next(model.parameters()).dtype == torch.float32 and next(model.parameters()).device.type == "cpu"


def _tol(device: torch.device, strict: float) -> float:
    """``strict`` on the CPU; looser on an accelerator, whose convolutions may run in TF32 and pick
    other algorithms for other layouts and batch shapes."""
    return strict if device.type == "cpu" else max(strict, 1e-3)


_RESULT_TENSORS = ("masks", "soft_masks", "centre", "coeffs", "scale", "visible_area", "classes", "history",
                   "clean_score", "preserve_score", "delete_score", "preserve_probability")  # fmt: skip


@pytest.mark.device
@pytest.mark.parametrize("on_device", [False, True], ids=["cpu-input", "device-input"])
def test_model_on_the_device_stays_there_and_results_come_back_on_the_cpu(device, images, on_device):
    model = TinyNet(seed=1).eval().to(device)
    x = images.to(device) if on_device else images
    result = ExtremalContour(model, **FAST).attribute(x, target=[1, 3], areas=(0.1, 0.2))
    assert {p.device for p in model.parameters()} == {next(model.parameters()).device}
    assert next(model.parameters()).device.type == device.type and next(model.parameters()).dtype == torch.float32
    assert all(p.grad is None for p in model.parameters())
    for name in _RESULT_TENSORS:
        assert getattr(result, name).device.type == "cpu", name
    assert (result.visible_area - torch.tensor([[0.1, 0.2]])).abs().max() < 0.01
    assert torch.isfinite(result.preserve_score).all() and result.classes.tolist() == [1, 3]
    assert x.device.type == (device.type if on_device else "cpu")  # the caller's tensor is not moved


@pytest.mark.device
def test_model_in_float64_gets_float64_inputs(device, images):
    model = TinyNet().double().eval().to(device)
    result = ExtremalContour(model, **FAST).attribute(images, target=0)
    assert next(model.parameters()).dtype == torch.float64 and next(model.parameters()).device.type == device.type
    assert torch.isfinite(result.preserve_score).all() and result.preserve_score.device.type == "cpu"


def test_callable_target_and_embedding_similarity(images):
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    from extremal_contours.targets import similarity

    result = ExtremalContour(backbone, **FAST).attribute(images, target=similarity)
    assert result.classes is None and result.clean_probability is None
    torch.testing.assert_close(result.clean_score, torch.ones(2))
    assert (result.preserve_ratio <= 1.0001).all()
    # A one-argument callable works too.
    result = ExtremalContour(backbone, **FAST).attribute(images, target=lambda out: out[:, 0])
    assert result.score == "<lambda>"


@pytest.mark.parametrize("score", ["probability", "log_probability", "contrastive"])
def test_built_in_scores(tiny, images, score):
    result = ExtremalContour(tiny, score=score, **FAST).attribute(images, target=2)
    assert result.score == score
    assert torch.isfinite(result.preserve_score).all()


def test_default_target_is_the_predicted_class(tiny, images):
    with torch.no_grad():
        predicted = tiny(images).argmax(1)
    result = ExtremalContour(tiny, **FAST).attribute(images)
    assert torch.equal(result.classes, predicted)


# -- bad input: one clear line each ----------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_target_outside_the_classes(tiny, images):
    with pytest.raises(ValueError) as exc:
        ExtremalContour(tiny, **FAST).attribute(images, target=7)
    assert "outside the model's 5 classes" in _one_line(exc)
    with pytest.raises(ValueError, match="2 images"):
        ExtremalContour(tiny, **FAST).attribute(images, target=[0, 1, 2])
    with pytest.raises(TypeError, match="integers"):
        ExtremalContour(tiny, **FAST).attribute(images, target=1.5)


def test_nan_input(tiny, images):
    images[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError) as exc:
        ExtremalContour(tiny, **FAST).attribute(images)
    assert "NaN" in _one_line(exc) and "[1]" in str(exc.value)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(3, 40, 40), "one image"),
        (torch.rand(1, 3, 8, 40), "too small"),
        (torch.randint(0, 255, (1, 3, 40, 40)), "floating-point"),
        ([[1.0]], "tensor"),
    ],
)
def test_bad_tensors(tiny, x, message):
    with pytest.raises((ValueError, TypeError)) as exc:
        ExtremalContour(tiny, **FAST).attribute(x)
    assert message in _one_line(exc)


def test_wrong_channels_is_one_line(tiny):
    with pytest.raises(ValueError) as exc:
        ExtremalContour(tiny, **FAST).attribute(torch.rand(1, 1, 40, 40))
    assert "model failed on input of shape (1, 1, 40, 40)" in _one_line(exc)


@pytest.mark.parametrize(
    ("wrapper", "message"),
    [
        (lambda m: (lambda x: (m(x), m(x))), "tuple"),
        (lambda m: (lambda x: {"logits": m(x)}), "dict"),
        (lambda m: (lambda x: m(x)[0]), "shape"),
        (lambda m: (lambda x: m(x) * float("nan")), "NaN"),
    ],
)
def test_models_with_awkward_outputs(tiny, images, wrapper, message):
    with pytest.raises((TypeError, ValueError)) as exc:
        ExtremalContour(wrapper(tiny), **FAST).attribute(images)
    assert message in _one_line(exc)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"areas": (0.0,)}, "fractions"),
        ({"areas": (1.2,)}, "fractions"),
        ({"variant": "keep"}, "unknown variant"),
        ({"names": ["a"]}, "1 names for 2 images"),
        ({"areas": (0.1, 0.1)}, "distinct"),
        ({"areas": (0.1, 0.100001)}, "distinct"),  # the same file names when saved
        ({"areas": (1e-6,)}, "covers under 16 pixels of a 40x48 image"),
    ],
)
def test_bad_call_arguments(tiny, images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExtremalContour(tiny, **FAST).attribute(images, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"starts": 0}, "starts"),
        ({"iterations": 2, "starts": 8, "scan": 3}, "too few"),
        ({"scan": 2, "starts": 5}, "cannot place"),
        ({"perturbation": "noise"}, "unknown perturbation"),
        ({"score": "margin"}, "unknown score"),
        ({"edge": (0.0, 1.0)}, "edge"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"centre_lr": 0.0}, "centre_lr must be a positive number"),
        ({"checks": -1}, "checks must be >= 0"),
    ],
)
def test_bad_settings(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExtremalContour(tiny, **{**FAST, **kwargs})


class _ViewNet(nn.Module):
    """Flattens its input with ``.view``, which a channels-last tensor refuses; records each input's layout."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(3 * 32 * 32, 4)
        self.layouts: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.layouts.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return self.head(x.view(x.shape[0], -1))


@pytest.mark.device
def test_channels_last_inputs_give_the_same_answer_and_are_automatic_on_the_cpu_only(device):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model = TinyNet().eval().to(device)
    seen = []
    hook = model.features[0].register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last)))
    ExtremalContour(model, **FAST).attribute(x, target=1)  # auto: channels-last on the CPU only
    assert seen and set(seen) == {device.type == "cpu"}
    seen.clear()
    fast = ExtremalContour(model, **FAST, channels_last=True).attribute(x, target=1)
    assert seen and all(seen)
    seen.clear()
    plain = ExtremalContour(model, **FAST, channels_last=False).attribute(x, target=1)
    hook.remove()
    assert seen and not any(seen)
    assert all(p.is_contiguous() for p in model.parameters())  # only the inputs change layout
    torch.testing.assert_close(fast.centre, plain.centre, atol=1e-4 if device.type == "cpu" else 1e-2, rtol=_tol(device, 1e-4))
    assert (fast.masks != plain.masks).float().mean() < (0.01 if device.type == "cpu" else 0.03)
    assert fast.settings["channels_last"] is True and plain.settings["channels_last"] is False


def test_a_model_that_refuses_channels_last_falls_back_to_contiguous():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model = _ViewNet()
    result = ExtremalContour(model, **FAST, channels_last=True).attribute(x, target=1)
    assert model.layouts[0] is True and not any(model.layouts[1:])  # tried once, then contiguous for good
    reference = ExtremalContour(_ViewNet(), **FAST, channels_last=False).attribute(x, target=1)
    torch.testing.assert_close(result.centre, reference.centre)
    torch.testing.assert_close(result.preserve_score, reference.preserve_score)


def test_one_area_may_be_given_as_a_number(tiny, images):
    explainer = ExtremalContour(tiny, **FAST)
    one = explainer.attribute(images, target=1, areas=0.2)
    assert one.areas == (0.2,)
    torch.testing.assert_close(one.masks, explainer.attribute(images, target=1, areas=(0.2,)).masks)
    with pytest.raises(TypeError, match="areas must be a sequence"):
        explainer.attribute(images, target=1, areas="big")


class _NanWhenPerturbed(nn.Module):
    """Fine on the clean images, NaN on anything else (a numerically fragile model)."""

    def __init__(self, clean: torch.Tensor) -> None:
        super().__init__()
        self.clean = clean
        self.net = TinyNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        same = x.shape == self.clean.shape and torch.equal(x, self.clean)
        return out if same else out * float("nan")


def test_nan_from_the_model_on_perturbed_images_is_one_clear_line(images):
    with pytest.raises(ValueError, match="NaN or infinite on a perturbed image") as info:
        ExtremalContour(_NanWhenPerturbed(images).eval(), **FAST).attribute(images, target=1)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("score", [lambda out: out[:, 0] * float("nan"), lambda out, clean: (out - clean).sum(1) / 0.0])
def test_a_score_callable_that_is_not_finite_on_the_clean_images_is_blamed_not_the_model(tiny, images, score):
    # The model's clean outputs are fine; the score of them is not: the message must not say otherwise.
    with pytest.raises(ValueError, match=r"^the score is NaN or infinite on the clean image\(s\) \[0, 1\]") as info:
        ExtremalContour(tiny, **FAST).attribute(images, target=score)
    assert "\n" not in str(info.value)


def test_works_when_called_under_inference_mode(tiny, images):
    explainer = ExtremalContour(tiny, **FAST)
    expected = explainer.attribute(images, target=1)
    with torch.inference_mode():
        x = images.clone()  # an inference tensor
        got = explainer.attribute(x, target=1)
    torch.testing.assert_close(got.masks, expected.masks)
    torch.testing.assert_close(got.centre, expected.centre)


class _DtypeSpy(nn.Module):
    """TinyNet that records the dtype its first convolution computes in, per call."""

    def __init__(self) -> None:
        super().__init__()
        self.net = TinyNet(seed=2).eval()
        self.seen: list[tuple[torch.dtype, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.net.features[0](x).dtype, torch.is_grad_enabled()))
        return self.net(x)


@pytest.mark.device
def test_bfloat16_precision_optimises_in_bfloat16_and_reports_float32_scores(device, images):
    spy = _DtypeSpy().to(device)
    result = ExtremalContour(spy, precision="bfloat16", **FAST).attribute(images, target=[1, 3], areas=(0.1,))
    with_grad = {dtype for dtype, grad in spy.seen if grad}
    assert with_grad == {torch.bfloat16}  # every optimisation step ran under autocast
    assert (torch.float32, False) in spy.seen  # the clean and final scores did not
    assert next(spy.parameters()).dtype == torch.float32 and next(spy.parameters()).device.type == device.type
    assert result.settings["precision"] == "bfloat16"
    assert (result.masks.float().mean((2, 3, 4)) - 0.1).abs().max() < 0.01
    # The reported preserve probability is the float32 model's on the binary mask.
    x, masks = images.to(device), result.masks[:, 0].float().to(device)
    keep = Perturbation(x, "blur")(masks, torch.arange(2, device=device))
    with torch.no_grad():
        p = spy.net(keep).softmax(1)[torch.arange(2, device=device), result.classes.to(device)]
    assert result.preserve_probability.device.type == "cpu"
    torch.testing.assert_close(result.preserve_probability[:, 0], p.cpu(), rtol=_tol(device, 1e-4), atol=1e-6)


@pytest.mark.device
def test_default_precision_is_float32_without_autocast(device, images):
    spy = _DtypeSpy().to(device)
    result = ExtremalContour(spy, **FAST).attribute(images, target=0)
    assert {dtype for dtype, _ in spy.seen} == {torch.float32} and result.settings["precision"] == "float32"


def test_unknown_precision_is_refused(images):
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16, got 'float16'"):
        ExtremalContour(TinyNet(), precision="float16")
    with pytest.raises(ValueError, match="does nothing for a float64 model"):  # not recorded as bfloat16 while running float64
        ExtremalContour(TinyNet().double(), precision="bfloat16", **FAST).attribute(images, target=0)


def test_a_callers_autocast_leaves_the_reported_scores_in_float32(images):
    spy = _DtypeSpy()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = ExtremalContour(spy, **FAST).attribute(images, target=[1, 3], areas=(0.1,))
    assert {dtype for dtype, grad in spy.seen if grad} == {torch.bfloat16}  # the caller's choice for the steps
    keep = Perturbation(images, "blur")(result.masks[:, 0].float(), torch.arange(2))
    with torch.no_grad():
        p = spy.net(keep).softmax(1)[torch.arange(2), result.classes]
    torch.testing.assert_close(result.preserve_probability[:, 0], p, rtol=1e-4, atol=1e-6)


def test_a_plain_function_model_is_explained_and_left_as_it_is(images):
    net = TinyNet(seed=2).train()  # a module in training mode, hidden behind a function

    def model(x: torch.Tensor) -> torch.Tensor:
        return net(x)

    torch.manual_seed(0)
    result = ExtremalContour(model, **FAST).attribute(images, target=[1, 3])
    assert (result.visible_area - 0.1).abs().max() < 0.01 and torch.isfinite(result.preserve_score).all()
    assert net.training  # nothing reached through the function was switched to eval


@pytest.mark.real
def test_the_bundled_sample_gets_the_same_explanation_as_before_the_explainer_was_split(lite0):
    """The default explanation of the bundled picture at areas 0.1 and 0.2, with two threads (the
    thread count changes floating-point sums, and the rugged objective follows them): the numbers the
    single-class explainer of commit fbd3aaa gave on this machine."""
    from extremal_contours import load_image, sample_image_path

    x = lite0.preprocess(load_image(sample_image_path())[0])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = ExtremalContour(lite0.model, progress=False).attribute(x, areas=(0.1, 0.2))
    finally:
        torch.set_num_threads(threads)
    assert tuple(x.shape) == (1, 3, 224, 337) and int(result.classes[0]) == 285
    expected_centre = torch.tensor([[-0.46874332, 0.31909749], [0.13047057, -0.09629625]])
    assert torch.allclose(result.centre[0], expected_centre, atol=1e-5)
    assert torch.allclose(result.preserve_score[0], torch.tensor([5.3345170, 8.1433725]), atol=1e-4)
    assert result.masks[0].sum((1, 2, 3)).tolist() == [7552, 15094]


@pytest.mark.real
@pytest.mark.device
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_lite0_on_the_device_explains_the_sample_in_both_precisions(lite0, device, precision):
    """The real model on the device: the region has the area asked, its scores are finite, float32
    and back on the CPU, the model stays where and as it was."""
    import copy

    from extremal_contours import load_image, sample_image_path

    model = copy.deepcopy(lite0.model).to(device)
    x = lite0.preprocess(load_image(sample_image_path())[0])  # 224 x 337
    result = ExtremalContour(model, iterations=8, starts=2, scan=2, precision=precision, progress=False).attribute(x, areas=(0.1,))
    assert next(model.parameters()).device.type == device.type and next(model.parameters()).dtype == torch.float32
    assert int(result.classes[0]) == 285 and result.masks.device.type == "cpu"
    assert abs(result.visible_area.item() - 0.1) < 0.01
    assert torch.isfinite(result.preserve_score).all() and torch.isfinite(result.delete_score).all()
    with torch.no_grad():  # the reported clean score is the float32 model's, whatever the precision
        clean = model(x.to(device))[0, 285].item()
    assert result.clean_score.item() == pytest.approx(clean, rel=_tol(device, 1e-4), abs=1e-4)
