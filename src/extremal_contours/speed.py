"""How far the explainer is from its floor, the model's own passes.

``measure_overhead`` runs ``attribute`` and then, side by side, times the model alone on exactly the
batches the run used: a forward+backward (gradient to the input) for every optimisation batch and a
forward for every evaluation batch (start scan, binary checks, final scores). The ratio of the two
wall times is the overhead of everything that is not the model: rasterising contours, perturbing,
the area solve, Adam, bookkeeping.

The three modes of ``extremal-contours speed`` are :func:`report_overhead`, :func:`report_batching`
and :func:`report_sweep` (each returns the text the command prints); :func:`model_floor` is the
model's own time per image that the benchmark's speed table divides by.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .baselines import get_explainer
from .data import open_dataset
from .explainer import ExtremalContour
from .images import load_image
from .modelcall import PRECISIONS, eval_mode, wants_channels_last
from .models import LoadedModel
from .sweep import DEFAULT_AREAS

__all__ = [
    "FLOOR_BATCH", "OverheadReport", "compare_batching", "compare_sweep", "measure_overhead", "model_floor",
    "report_batching", "report_overhead", "report_sweep", "time_passes",
]  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_passes(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    batch: int,
    backward: bool,
    repeats: int = 3,
    channels_last: bool = False,
    autocast: torch.dtype | None = None,
) -> float:
    """Median seconds of one forward (+ backward to the input) of a batch of ``batch`` inputs like the
    explainer's: ``x[:1]`` blurred outside random discs of area 0.1 (each row different; on CPU the
    model is measurably faster on identical copies of one clean image than on such a batch), in the
    channels-last layout if ``channels_last`` (as the explainer feeds it), under autocast to
    ``autocast`` if given (the explainer's ``precision``)."""
    device = x.device
    inp = _typical_inputs(x[:1], batch)
    if channels_last:
        inp = inp.contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            if backward:
                leaf = inp.clone().requires_grad_()
                out = model(leaf)
                torch.autograd.grad(out[:, 0].float().sum(), [leaf])
            else:
                with torch.no_grad():
                    model(inp)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def _typical_inputs(x: Tensor, batch: int) -> Tensor:
    from . import contour as C
    from .perturbation import Perturbation

    height, width = x.shape[-2:]
    extent = C.image_extent(height, width)
    g = torch.Generator().manual_seed(0)
    centre = ((torch.rand(batch, 2, generator=g) - 0.5) * 0.6 * torch.tensor(extent)).to(x.device)
    coeffs = (torch.randn(batch, 8, 2, generator=g) * 0.1).to(x.device)
    scale = C.scale_for_area(coeffs, 0.1, centre, extent)
    masks = C.rasterize(centre, coeffs, scale, height, width, edge=2.0).to(x.dtype)
    with torch.no_grad():
        return Perturbation(x)(masks, torch.zeros(batch, dtype=torch.long, device=x.device))


@dataclass(frozen=True)
class OverheadReport:
    """Wall time of ``attribute`` against the model's own time for the same batches, per repeat."""

    wall: list[float]
    model_time: list[float]
    step_time: list[float]
    plain_step_time: list[float]
    channels_last: bool
    steps: int
    forward_backward: int
    forward: int
    device: str
    settings: dict

    @property
    def ratio(self) -> float:
        """Median of wall / (time of every model pass of the run: forward+backward and forward-only)."""
        return statistics.median(w / m for w, m in zip(self.wall, self.model_time, strict=True))

    @property
    def step_ratio(self) -> float:
        """Median of wall / (time of the forward+backward steps alone): forward-only passes count as overhead."""
        return statistics.median(w / s for w, s in zip(self.wall, self.step_time, strict=True))

    @property
    def plain_ratio(self) -> float:
        """Median of wall / (the steps' forward+backward passes in the plain contiguous layout and
        float32, as a user would run the model); below 1 where the explainer's layout or precision
        beats that floor."""
        return statistics.median(w / s for w, s in zip(self.wall, self.plain_step_time, strict=True))

    def text(self) -> str:
        layout = "channels-last" if self.channels_last else "contiguous"
        return "\n".join(
            [
                f"device: {self.device}; model inputs: {layout}; precision: {self.settings.get('precision', 'float32')}",
                f"steps: {self.steps}; images through forward+backward: {self.forward_backward}; forward only: {self.forward}",
                f"attribute wall time (s): {', '.join(f'{w:.2f}' for w in self.wall)}",
                f"model time, all passes (s): {', '.join(f'{m:.2f}' for m in self.model_time)}",
                f"model time, forward+backward steps only (s): {', '.join(f'{s:.2f}' for s in self.step_time)}",
                f"overhead ratio (wall / all model passes): {self.ratio:.3f}",
                f"overhead ratio (wall / forward+backward steps only): {self.step_ratio:.3f}",
                f"model time, forward+backward steps, contiguous float32 inputs (s): {', '.join(f'{s:.2f}' for s in self.plain_step_time)}",
                f"wall / forward+backward steps with contiguous float32 inputs: {self.plain_ratio:.3f}",
            ]
        )


def measure_overhead(
    explainer: ExtremalContour, x: Tensor, *, repeats: int = 3, areas: tuple[float, ...] = (0.1,), target: int | None = None
) -> OverheadReport:
    """Run ``attribute`` ``repeats`` times, each followed by the model alone on the same batches."""
    model = explainer.model
    device = next(iter(model.parameters())).device if isinstance(model, torch.nn.Module) else x.device
    x = x.to(device)
    layout = wants_channels_last(explainer.config.channels_last, device)
    low = PRECISIONS[explainer.config.precision]
    explainer.attribute(x, target, areas=areas)  # warm-up
    wall: list[float] = []
    model_time: list[float] = []
    step_time: list[float] = []
    plain_step_time: list[float] = []
    result = None
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        result = explainer.attribute(x, target, areas=areas)
        _sync(device)
        wall.append(time.perf_counter() - start)
        steps: Counter[int] = Counter(result.cost["step_batches"])
        evals: Counter[int] = Counter(result.cost["eval_batches"])
        with eval_mode(model):
            fb = sum(n * time_passes(model, x, b, True, channels_last=layout, autocast=low) for b, n in steps.items())
            # Forward-only passes all in the explainer's precision (its few float32 ones, the clean and final scores, too).
            f = sum(n * time_passes(model, x, b, False, channels_last=layout, autocast=low) for b, n in evals.items())
            plain = fb if not (layout or low) else sum(n * time_passes(model, x, b, True) for b, n in steps.items())
        step_time.append(fb)
        plain_step_time.append(plain)
        model_time.append(fb + f)
    assert result is not None
    return OverheadReport(
        wall=wall,
        model_time=model_time,
        step_time=step_time,
        plain_step_time=plain_step_time,
        channels_last=layout,
        steps=result.cost["steps"],
        forward_backward=result.cost["forward_backward"],
        forward=result.cost["forward"],
        device=str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f" ({torch.get_num_threads()} threads)"),
        settings=explainer.settings(),
    )


def compare_batching(
    attribute: Callable[[Tensor, Tensor | None], object], x: Tensor, targets: Tensor | None, device: torch.device | None = None
) -> dict[str, float]:
    """Seconds per image of ``attribute(x, targets)`` on the whole batch and on one image at a time,
    measured in one run (the batched call first, then the singles); ``targets`` ``None``: the
    predicted classes."""
    device = device or x.device
    _sync(device)
    start = time.perf_counter()
    attribute(x, targets)
    _sync(device)
    batched = (time.perf_counter() - start) / x.shape[0]
    start = time.perf_counter()
    for i in range(x.shape[0]):
        attribute(x[i : i + 1], None if targets is None else targets[i : i + 1])
    _sync(device)
    single = (time.perf_counter() - start) / x.shape[0]
    return {"images": x.shape[0], "batched_s_per_image": batched, "single_s_per_image": single, "ratio": single / batched}


def compare_sweep(
    explainer: ExtremalContour, x: Tensor, target: int | None, areas: tuple[float, ...], families: int | None = 2
) -> dict[str, float]:
    """Seconds (and forward+backward passes) of one sweep over ``areas`` against one ``attribute``
    per area, in one run."""
    device = x.device
    _sync(device)
    start = time.perf_counter()
    swept = explainer.sweep(x, target, areas=areas, families=families)
    _sync(device)
    sweep = time.perf_counter() - start
    separate_passes = 0
    start = time.perf_counter()
    for area in areas:
        separate_passes += explainer.attribute(x, target, areas=(area,)).cost["forward_backward"]
    _sync(device)
    separate = time.perf_counter() - start
    return {
        "areas": len(areas),
        "sweep_s": sweep,
        "separate_s": separate,
        "ratio": separate / sweep,
        "sweep_passes": swept.cost["forward_backward"],
        "separate_passes": separate_passes,
    }


#: Batch of perturbed copies on which :func:`model_floor` times the model.
FLOOR_BATCH = 4


def model_floor(model: Any, x: Tensor, batch: int = FLOOR_BATCH) -> dict[str, Any]:
    """Seconds per image of the model's own forward+backward (gradient to the input) and forward,
    timed on a batch of ``batch`` perturbed copies of ``x`` in the layout the explainers feed it:
    the floor that a method's seconds are divided by in the speed table."""
    layout = wants_channels_last(None, x.device)
    with eval_mode(model):
        fb = time_passes(model, x, batch, True, channels_last=layout) / batch
        f = time_passes(model, x, batch, False, channels_last=layout) / batch
    return {
        "forward_backward_s": fb,
        "forward_s": f,
        "batch": batch,
        "input": list(x.shape[1:]),
        "channels_last": layout,
        "device": str(x.device),
        "threads": torch.get_num_threads(),
    }


def report_overhead(
    loaded: LoadedModel, explainer: ExtremalContour, image: str | os.PathLike[str], *, areas: Sequence[float], repeats: int
) -> str:
    """``speed --compare overhead``: the explainer's wall time on ``image`` against the model's own
    passes (:func:`measure_overhead`)."""
    picture, _ = load_image(image)
    x = loaded.preprocess(picture)
    return measure_overhead(explainer, x, repeats=repeats, areas=tuple(areas)).text()


def report_sweep(
    loaded: LoadedModel, explainer: ExtremalContour, image: str | os.PathLike[str], *, areas: Sequence[float], families: int
) -> str:
    """``speed --compare sweep``: one sweep over ``areas`` (the sweep's default areas when one is
    given) against one ``attribute`` per area, on ``image`` (:func:`compare_sweep`)."""
    picture, _ = load_image(image)
    x = loaded.preprocess(picture)
    swept = tuple(areas) if len(areas) > 1 else DEFAULT_AREAS
    out = compare_sweep(explainer, x, None, swept, families=families)
    return "\n".join(
        [
            f"device: {x.device}; {out['areas']} areas, one image",
            f"one sweep: {out['sweep_s']:.1f} s, {out['sweep_passes']} forward+backward; one attribute per area: "
            f"{out['separate_s']:.1f} s, {out['separate_passes']}; ratio (separate / sweep) {out['ratio']:.2f} in seconds, "
            f"{out['separate_passes'] / out['sweep_passes']:.2f} in passes",
        ]
    )


def report_batching(
    loaded: LoadedModel, data: str | os.PathLike[str], *, method: str, images: int, stride: int, options: dict[str, Any]
) -> str:
    """``speed --compare batching``: ``method`` (with ``options``) on ``images`` pictures of the
    dataset ``data`` (every ``stride``-th) at once against one at a time (:func:`compare_batching`)."""
    samples = list(open_dataset(data))[:: max(1, stride)][:images]
    x = torch.cat([loaded.preprocess(load_image(s.path)[0], "center") for s in samples])
    targets = torch.tensor([s.label for s in samples]) if all(s.label is not None for s in samples) else None
    options = {"progress": False, **options}
    explainer = get_explainer(method, loaded.model, **options)
    out = compare_batching(lambda xs, ts: explainer.attribute(xs, target=ts), x, targets)
    return "\n".join(
        [
            f"device: {x.device}; method {method}; {out['images']} images; options {options}",
            f"batched: {out['batched_s_per_image']:.1f} s/image; one at a time: {out['single_s_per_image']:.1f} s/image; "
            f"ratio {out['ratio']:.2f}",
        ]
    )
