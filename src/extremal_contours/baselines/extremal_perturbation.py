"""Dense Extremal Perturbations (Fong, Patrick and Vedaldi, ICCV 2019), written from the paper.

A mask with one parameter per grid point (every ``step`` pixels) is upsampled by a *smooth max* of
Gaussian-weighted neighbours, so the mask is a union of smooth blobs. The objective is the extremal
preserve / delete game on the same blur pyramid as the contour, with the area enforced by the paper's
ranking loss: the sorted mask values must match a vector of ``a * H * W`` ones followed by zeros,
weighted by a factor that grows during the optimisation. SGD, lr 0.01, momentum 0.9, 800 steps, the
mask parameters projected to ``[0, 1]`` after each step, flip jitter on alternate steps.

Differences from the reference code, on purpose:

- the area loss counts only the mask inside the image (the reference counts its padding, so its
  masks come out larger than asked);
- the model is left exactly as given (the reference switches its parameters' ``requires_grad``
  off and does not restore it);
- it is batched over images and areas (the reference explains one image at a time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from tqdm.auto import tqdm

from .._layout import ModelCall, wants_channels_last
from ..explainer import VARIANTS, _check_output, _disabled, _eval_mode, _model_place
from ..perturbation import Perturbation
from ..targets import as_score, describe, needs_class, probabilities

__all__ = ["ExtremalPerturbation", "PerturbationResult", "smooth_max_upsample"]


def _kernel_weights(step: int, sigma: float, radius: int, device: torch.device) -> Tensor:
    """Weight of each neighbouring grid point for each pixel of a grid cell, ``(K*K, step*step)``.

    The kernel is flat up to ``sigma / 2`` and falls off as a Gaussian after it,
    ``k(z) = exp(-2 max(z - 1/2, 0)^2)`` with ``z = distance / sigma``: masks have flat interiors and
    smooth borders of width about ``sigma``. Grid point ``(i, j)`` sits at the centre of its cell.
    """
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32) * step
    inner = torch.arange(step, device=device, dtype=torch.float32) + 0.5 - step / 2
    dy = inner[None, None, :, None] - offsets[:, None, None, None]  # (K, 1, s, 1)
    dx = inner[None, None, None, :] - offsets[None, :, None, None]  # (1, K, 1, s)
    z = torch.sqrt(dy**2 + dx**2) / sigma  # (K, K, s, s)
    k = 2 * radius + 1
    return torch.exp(-2 * (z - 0.5).clamp(min=0) ** 2).reshape(k * k, step * step)


def smooth_max_upsample(params: Tensor, step: int, sigma: float, height: int, width: int, temperature: float) -> Tensor:
    """Dense mask from grid parameters: ``m(p) = smax_i k(|p - u_i| / sigma) * params_i``.

    ``smax`` is the smooth maximum ``sum_i x_i e^(x_i / T) / sum_i e^(x_i / T)`` over the grid points
    within ``1 + ceil(sigma / step)`` cells of the pixel's own (points further away weigh little).

    Args:
        params: ``(B, 1, gh, gw)`` values in ``[0, 1]``; grid point ``(i, j)`` at pixel
            ``((j + 0.5) * step, (i + 0.5) * step)``, covering at least ``height x width``.
        step: grid step in pixels.
        sigma: kernel width in pixels.
        height, width: the mask's size.
        temperature: smooth-max temperature ``T``; small is close to the max.

    Returns:
        ``(B, 1, height, width)`` mask in ``[0, 1]``.
    """
    _, _, gh, gw = params.shape
    radius = 1 + math.ceil(sigma / step)
    weight = _kernel_weights(step, sigma, radius, params.device).to(params.dtype)  # (K*K, s*s)
    cols = F.unfold(F.pad(params, [radius] * 4), kernel_size=2 * radius + 1)  # (B, K*K, gh*gw)
    mask = _SmoothMax.apply(cols, weight, temperature)  # (B, s*s, gh*gw)
    mask = F.fold(mask, (gh * step, gw * step), kernel_size=step, stride=step)
    return mask[:, :, :height, :width]


#: Elements of the (rows, neighbours, pixels of a cell, cells) product handled at once on the CPU:
#: small enough to stay in its cache, large enough to keep the per-operation cost negligible. On a
#: GPU, where every operation is a kernel launch, chunks are as large as ``_CHUNK_GPU`` (64 MiB of
#: float32 per temporary) instead.
_CHUNK = 1 << 18
_CHUNK_GPU = 1 << 24


def _cells_per_chunk(cols: Tensor, weight: Tensor) -> int:
    limit = _CHUNK if cols.device.type == "cpu" else _CHUNK_GPU
    return max(1, limit // (cols.shape[0] * cols.shape[1] * weight.shape[1]))


def _weighted(cols: Tensor, weight: Tensor, temperature: float, cells: slice) -> tuple[Tensor, Tensor]:
    """``v = params x kernel`` for every (neighbour, pixel) of ``cells`` and ``exp((v - max) / T)``."""
    v = cols[:, :, None, cells] * weight[None, :, :, None]  # (B, K*K, s*s, c)
    return v, (v - v.amax(1, keepdim=True)).mul_(1.0 / temperature).exp_()


class _SmoothMax(torch.autograd.Function):
    """``m = sum_i v_i softmax(v / T)_i`` over the neighbours ``i`` of each pixel, ``v_i = col_i w_i``.

    The same values as writing it with ``torch.softmax`` and letting autograd differentiate it, but
    done a few cells at a time with the gradient written out (``dm/dv_i = softmax_i (1 + (v_i - m) / T)``),
    recomputing ``v`` in the backward pass instead of keeping it: the (neighbours x pixels) product
    is 81 times the mask, and streaming it through memory made dense EP's own code cost more than the
    model (about 5x slower at a batch of 4 on a CPU)."""

    @staticmethod
    def forward(ctx: Any, cols: Tensor, weight: Tensor, temperature: float) -> Tensor:
        b, _, g = cols.shape
        step = _cells_per_chunk(cols, weight)
        out = cols.new_empty(b, weight.shape[1], g)
        for start in range(0, g, step):
            cells = slice(start, min(g, start + step))
            v, e = _weighted(cols, weight, temperature, cells)
            total = e.sum(1)
            out[..., cells] = e.mul_(v).sum(1).div_(total)
        ctx.save_for_backward(cols, weight, out)
        ctx.temperature = temperature
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None]:
        cols, weight, out = ctx.saved_tensors
        temperature = ctx.temperature
        g = cols.shape[2]
        step = _cells_per_chunk(cols, weight)
        grad = torch.empty_like(cols)
        for start in range(0, g, step):
            cells = slice(start, min(g, start + step))
            v, e = _weighted(cols, weight, temperature, cells)
            scale = grad_out[:, None, :, cells] / e.sum(1, keepdim=True)
            v.sub_(out[:, None, :, cells]).mul_(1.0 / temperature).add_(1.0)
            grad[..., cells] = v.mul_(e).mul_(scale).mul_(weight[None, :, :, None]).sum(2)
        return grad, None, None


@dataclass(frozen=True)
class PerturbationResult:
    """Masks of dense Extremal Perturbations, per (image, area).

    Attributes:
        areas: target areas ``(A,)``.
        masks: ``(N, A, 1, H, W)`` soft masks in ``[0, 1]``.
        binary: ``(N, A, 1, H, W)`` bool, ``masks > 0.5``.
        visible_area: ``(N, A)`` share of pixels in ``binary``.
        preserve_score, delete_score, clean_score, probabilities as in
            :class:`~extremal_contours.result.ContourResult` (binary masks).
        history: ``(N, A, T)`` objective per step.
        settings, cost: what ran and what it cost.
    """

    areas: tuple[float, ...]
    masks: Tensor
    binary: Tensor
    visible_area: Tensor
    preserve_score: Tensor
    delete_score: Tensor
    clean_score: Tensor
    classes: Tensor | None
    clean_probability: Tensor | None
    preserve_probability: Tensor | None
    delete_probability: Tensor | None
    history: Tensor
    settings: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)

    @property
    def preserve_ratio(self) -> Tensor:
        if self.preserve_probability is not None and self.clean_probability is not None:
            return self.preserve_probability / self.clean_probability[:, None]
        return self.preserve_score / self.clean_score[:, None]

    @property
    def delete_drop(self) -> Tensor:
        if self.delete_probability is not None and self.clean_probability is not None:
            return 1 - self.delete_probability / self.clean_probability[:, None]
        return 1 - self.delete_score / self.clean_score[:, None]


class ExtremalPerturbation:
    """Dense Extremal Perturbations with Fong et al.'s defaults, batched over images and areas.

    Args:
        model: classifier ``(N, C, H, W) -> (N, classes)`` (left exactly as given).
        iterations: SGD steps (800).
        lr, momentum: SGD (0.01, 0.9).
        step: mask grid step in pixels (7 at 224 px).
        sigma: width of the upsampling kernel in pixels (21).
        temperature: smooth-max temperature.
        dampening: SGD dampening (0.9: each step moves ``lr`` times the averaged gradient).
        area_weight, area_growth: the area loss weight starts at ``area_weight`` and is multiplied by
            ``area_growth`` every step (300 and 1.0035: about 4900 after 800 steps).
        init: initial value of every mask parameter (1: start from the whole image and shrink).
        perturbation, perturbation_options: as for the contour (blur pyramid by default).
        score: as for the contour (``"logit"`` default, like the reference's reward).
        jitter: flip the input on alternate steps.
        batch_size: most images per forward pass.
        channels_last: channels-last model inputs (``None``: on the CPU only), as the contour.
        progress: progress bar (``None``: on a terminal only).
    """

    def __init__(
        self,
        model: nn.Module | Callable[[Tensor], Tensor],
        *,
        iterations: int = 800,
        lr: float = 0.01,
        momentum: float = 0.9,
        step: int = 7,
        sigma: float = 21.0,
        temperature: float = 0.05,
        dampening: float = 0.9,
        area_weight: float = 300.0,
        area_growth: float = 1.0035,
        init: float = 1.0,
        perturbation: str = "blur",
        perturbation_options: dict[str, Any] | None = None,
        score: str | Callable[..., Tensor] = "logit",
        jitter: bool = True,
        batch_size: int = 32,
        channels_last: bool | None = None,
        progress: bool | None = None,
    ) -> None:
        self.model = model
        self.channels_last = channels_last
        self._call = ModelCall(model, False)
        self.iterations = iterations
        self.lr = lr
        self.momentum = momentum
        self.step = step
        self.sigma = sigma
        self.temperature = temperature
        self.dampening = dampening
        self.area_weight = area_weight
        self.area_growth = area_growth
        self.init = init
        self.perturbation = perturbation
        self.perturbation_options = dict(perturbation_options or {})
        self.score = score
        self._score_fn = as_score(score)
        self.jitter = jitter
        self.batch_size = batch_size
        self.progress = progress

    def settings(self) -> dict[str, Any]:
        return {
            "method": "extremal_perturbation",
            "iterations": self.iterations,
            "lr": self.lr,
            "momentum": self.momentum,
            "step": self.step,
            "sigma": self.sigma,
            "temperature": self.temperature,
            "dampening": self.dampening,
            "area_weight": self.area_weight,
            "area_growth": self.area_growth,
            "init": self.init,
            "perturbation": self.perturbation,
            "perturbation_options": self.perturbation_options,
            "score": describe(self.score),
            "jitter": self.jitter,
            "channels_last": self.channels_last,
        }

    def attribute(
        self,
        x: Tensor,
        target: int | Sequence[int] | Tensor | None = None,
        *,
        areas: Sequence[float] = (0.1,),
        variant: str = "preserve",
    ) -> PerturbationResult:
        """Optimise one dense mask per (image, area); see :class:`ExtremalPerturbation`."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        areas = tuple(float(a) for a in areas)
        if not areas or any(not (0.0 < a < 1.0) for a in areas):
            raise ValueError(f"areas must be fractions in (0, 1), got {areas}")
        with _eval_mode(self.model):
            return self._attribute(x, target, areas, variant)

    def _attribute(self, x: Tensor, target: Any, areas: tuple[float, ...], variant: str) -> PerturbationResult:
        started = time.perf_counter()
        device, dtype = _model_place(self.model, x)
        x = x.detach().to(device=device, dtype=dtype)
        self._call = ModelCall(self.model, wants_channels_last(self.channels_last, device))
        n, _, height, width = x.shape
        a = len(areas)
        with torch.no_grad():
            clean = _check_output(self._call(x), n)
        if target is None and needs_class(self.score):
            classes = clean.argmax(1)
        elif target is None:
            classes = None
        else:
            classes = torch.as_tensor(target, device=device).long().reshape(-1).expand(n).clone()
            if ((classes < 0) | (classes >= clean.shape[1])).any():
                raise ValueError(f"target outside the model's {clean.shape[1]} classes")
        score_fn = self._score_fn
        clean_score = score_fn(clean, clean, classes).float()
        perturb = Perturbation(x, self.perturbation, **self.perturbation_options)

        rows = n * a
        image = torch.arange(n, device=device).repeat_interleave(a)
        area = torch.tensor(areas, device=device).repeat(n)
        gh, gw = math.ceil(height / self.step), math.ceil(width / self.step)
        params = torch.full((rows, 1, gh, gw), self.init, device=device, requires_grad=True)
        optimiser = torch.optim.SGD([params], lr=self.lr, momentum=self.momentum, dampening=self.dampening)
        pixels = height * width
        # The ranking reference: a * H * W ones, then zeros (sorted descending).
        ranks = torch.arange(pixels, device=device, dtype=torch.float32)
        reference = (ranks[None, :] < (area[:, None] * pixels).round()).float()
        history = torch.zeros(rows, self.iterations)
        copies = 2 if variant == "dual" else 1
        chunk = max(1, self.batch_size // copies)
        passes = 0
        bar = tqdm(total=self.iterations, desc="extremal perturbation", unit="step", disable=_disabled(self.progress), leave=False)
        try:
            for t in range(self.iterations):
                weight = self.area_weight * self.area_growth**t
                grads = torch.zeros_like(params)
                for start in range(0, rows, chunk):
                    sl = slice(start, min(rows, start + chunk))
                    with torch.enable_grad():
                        mask = smooth_max_upsample(params[sl], self.step, self.sigma, height, width, self.temperature)
                        reward, _ = self._reward(perturb, mask, image[sl], clean, classes, variant, flip=self.jitter and t % 2 == 1)
                        ranked = mask.flatten(1).sort(dim=1, descending=True).values
                        area_loss = (ranked - reference[sl]).pow(2).mean(1)
                        loss = (-reward + weight * area_loss).sum()
                        (g,) = torch.autograd.grad(loss, [params])
                    grads += g
                    passes += mask.shape[0] * copies
                    history[sl, t] = reward.detach().cpu()
                params.grad = grads
                optimiser.step()
                with torch.no_grad():
                    params.clamp_(0, 1)
                bar.update(1)
        finally:
            bar.close()

        with torch.no_grad():
            mask = torch.cat(
                [
                    smooth_max_upsample(params[s : s + chunk], self.step, self.sigma, height, width, self.temperature)
                    for s in range(0, rows, chunk)
                ]
            )
            binary = mask > 0.5
            keep_out, del_out = [], []
            for start in range(0, rows, self.batch_size):
                sl = slice(start, min(rows, start + self.batch_size))
                m = binary[sl].to(dtype)
                keep_out.append(_check_output(self._call(perturb(m, image[sl])), m.shape[0]))
                del_out.append(_check_output(self._call(perturb(1 - m, image[sl])), m.shape[0]))
            out_keep, out_del = torch.cat(keep_out), torch.cat(del_out)
            cls = classes[image] if classes is not None else None
            keep_score = score_fn(out_keep, clean[image], cls).float()
            del_score = score_fn(out_del, clean[image], cls).float()
        prob = None
        if classes is not None and clean.dim() == 2:
            prob = (probabilities(clean, classes), probabilities(out_keep, cls).view(n, a), probabilities(out_del, cls).view(n, a))
        cost = {
            "steps": self.iterations,
            "forward_backward": passes,
            "forward": n + 2 * rows,
            "seconds": time.perf_counter() - started,
        }
        return PerturbationResult(
            areas=areas,
            masks=mask.view(n, a, 1, height, width).float().cpu(),
            binary=binary.view(n, a, 1, height, width).cpu(),
            visible_area=binary.float().mean((1, 2, 3)).view(n, a).cpu(),
            preserve_score=keep_score.view(n, a).cpu(),
            delete_score=del_score.view(n, a).cpu(),
            clean_score=clean_score.cpu(),
            classes=classes.cpu() if classes is not None else None,
            clean_probability=prob[0].cpu() if prob else None,
            preserve_probability=prob[1].cpu() if prob else None,
            delete_probability=prob[2].cpu() if prob else None,
            history=history.view(n, a, -1),
            settings=self.settings(),
            cost=cost,
        )

    def _reward(
        self,
        perturb: Perturbation,
        mask: Tensor,
        image: Tensor,
        clean: Tensor,
        classes: Tensor | None,
        variant: str,
        flip: bool,
    ) -> tuple[Tensor, Tensor]:
        mask = mask.to(clean.dtype)
        parts = []
        if variant in ("preserve", "dual"):
            parts.append(perturb(mask, image))
        if variant in ("delete", "dual"):
            parts.append(perturb(1 - mask, image))
        batch = torch.cat(parts)
        if flip:
            batch = batch.flip(-1)
        image2 = image.repeat(len(parts))
        out = _check_output(self._call(batch), batch.shape[0])
        score = self._score_fn(out, clean[image2], classes[image2] if classes is not None else None).float()
        r = image.shape[0]
        if variant == "preserve":
            return score, score
        if variant == "delete":
            return -score, score
        return score[:r] - score[r:], score[:r]
