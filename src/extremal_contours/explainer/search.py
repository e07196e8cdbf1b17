"""The optimisation of one call: every (image, area, start) in one batch, successive halving between phases.

Each step is one forward+backward of the model on a batch holding every live row (and, for the
dual game, its preserve and delete copies), cut into chunks of at most ``batch_size`` model inputs.
Between phases the rows whose binary regions score worst are dropped; Adam's moments carry over
for the survivors.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import TqdmWarning

from .. import contour as C
from ..modelcall import progress_disabled
from . import starts as S
from .config import ContourSettings
from .multicontour import draw_regions, nesting_gradient, overlap_penalty
from .objective import Best, Candidates, Problem, Rows, finite

with warnings.catch_warnings():
    # In Jupyter without ipywidgets, tqdm.auto warns on import that it falls back to the text bar;
    # the text bar is fine, and the warning would open every notebook that imports this package.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

__all__ = ["Answer", "search"]


@dataclass
class Answer:
    """The best parameters per (image, area) group, the soft objective's history ``(groups, T)`` and
    every region scored on the way (``None`` for a nested sweep, whose answer is a family)."""

    centre: Tensor
    coeffs: Tensor
    mix: Tensor
    history: Tensor
    candidates: Candidates | None


@dataclass
class _State:
    """The live rows and their parameters: centres, raw harmonics (``a_k = raw_k * precond_k``) and
    the contours' shares of the area (several contours only)."""

    rows: Rows
    params: list[Tensor]
    precond: Tensor
    optimiser: torch.optim.Adam

    @property
    def centre(self) -> Tensor:
        return self.params[0]

    @property
    def raw(self) -> Tensor:
        return self.params[1]

    def values(self, mix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Detached ``(centre, coeffs, mix)`` of the live rows."""
        return self.centre.detach(), self.raw.detach() * self.precond, mix.detach()


def _initial(
    problem: Problem, settings: ContourSettings, centre0: Tensor, areas: tuple[float, ...], seed: int, contours: int, family: bool
) -> tuple[_State, Tensor]:
    """The starts' rows and parameters (and the mix tensor, a leaf only with several contours)."""
    device = problem.x.device
    n, height, width = problem.x.shape[0], *problem.size
    extent, m, k_count = problem.extent, contours, settings.harmonics
    per_image = len(areas) * settings.starts
    groups = n * len(areas)
    generator = torch.Generator().manual_seed(seed)
    group_image = torch.arange(n, device=device).repeat_interleave(len(areas))
    group_area = torch.tensor(areas, device=device).repeat(n)
    rows = Rows(
        image=group_image.repeat_interleave(settings.starts),
        group=torch.arange(groups, device=device).repeat_interleave(settings.starts),
        area=group_area.repeat_interleave(settings.starts),
        # Every image draws the same numbers from the seed: an image's explanation does not
        # depend on the other images of the batch.
        flip=torch.randint(0, 2, (per_image,), generator=generator).bool().repeat(n).to(device),
    )
    total = len(rows)
    jitter = ((torch.rand(per_image, m, 2, generator=generator) * 2 - 1) * settings.start_jitter * torch.tensor(extent)).repeat(n, 1, 1)
    k = torch.arange(1, k_count + 1, dtype=torch.float32)
    # The optimiser moves raw harmonics; a_k = raw_k / k^decay, so high orders move less per step.
    precond = (k**-settings.decay)[:, None].to(device)
    noise = torch.randn(per_image, m, k_count, 2, generator=generator) * (settings.start_jitter / 2 / k)[:, None]
    noise = noise.repeat(n, 1, 1, 1)
    if family:
        jitter = jitter.view(n, len(areas), settings.starts, m, 2)[:, :1].expand(-1, len(areas), -1, -1, -1).reshape(total, m, 2)
    bound = _bound(problem, height, width, device)
    centre = centre0.reshape(total, m, 2) + jitter.to(device)
    centre = torch.maximum(torch.minimum(centre, bound), -bound).requires_grad_()
    raw = (noise.to(device) / precond).requires_grad_()
    mix = torch.zeros(total, m, device=device, requires_grad=m > 1)
    params = [centre, raw] + ([mix] if m > 1 else [])
    rates = [settings.centre_rate, settings.lr] + ([settings.lr] if m > 1 else [])
    optimiser = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(params, rates, strict=True)])
    return _State(rows, params, precond, optimiser), mix


def _bound(problem: Problem, height: int, width: int, device: torch.device) -> Tensor:
    """How far from the image's centre a contour's centre may go: two pixels inside the border."""
    margin = 2 * C.pixel_unit(height, width)
    return torch.tensor([problem.extent[0] / 2 - margin, problem.extent[1] / 2 - margin], device=device)


def _carry_adam(old: torch.optim.Adam, params: list[Tensor], keep: Tensor) -> torch.optim.Adam:
    """A new Adam over the pruned parameters (one per group, in order) that keeps the survivors'
    moments and each group's learning rate."""
    groups = [{"params": [p], "lr": g["lr"]} for p, g in zip(params, old.param_groups, strict=True)]
    new = torch.optim.Adam(groups)
    for group, p_new in zip(old.param_groups, params, strict=True):
        state = old.state.get(group["params"][0])
        if state:
            new.state[p_new] = {
                key: (value[keep].clone() if torch.is_tensor(value) and value.dim() > 0 else value)
                for key, value in state.items()
            }
    return new


def _prune(problem: Problem, state: _State, mix: Tensor, best: Best, keep: int, family: bool, areas: int) -> tuple[_State, Tensor]:
    """Successive halving on the binary regions' objective (they are candidate answers too)."""
    values = state.values(mix)
    value = problem.evaluate(state.rows, *values)
    best.remember(value, state.rows, *values)
    relative = value / problem.norm[state.rows.image]
    n = problem.x.shape[0]
    chosen = S.top_families(relative, n, areas, keep) if family else S.top_per_group(relative, n * areas, keep)
    params = [p.detach()[chosen].requires_grad_() for p in state.params]
    mix = params[2] if len(params) > 2 else mix[chosen]
    return _State(state.rows.take(chosen), params, state.precond, _carry_adam(state.optimiser, params, chosen)), mix


def _step(
    problem: Problem, settings: ContourSettings, state: _State, mix: Tensor, step: int, areas: tuple[float, ...], family: bool
) -> Tensor:
    """One optimisation step of every live row; returns the rows' soft objectives ``(R,)``."""
    fraction = step / max(1, settings.iterations - 1)
    edge0, edge1 = settings.edge
    edge = edge0 * (edge1 / edge0) ** fraction
    factor = settings.lr_end + (1 - settings.lr_end) * 0.5 * (1 + math.cos(math.pi * fraction))
    rates = [settings.centre_rate, settings.lr, settings.lr]
    for group, base in zip(state.optimiser.param_groups, rates, strict=False):
        group["lr"] = base * factor
    grads = [torch.zeros_like(p) for p in state.params]
    weights = torch.arange(1, settings.harmonics + 1, device=problem.x.device, dtype=torch.float32) ** 2
    soft = []
    for sl in problem.chunks(len(state.rows)):
        part = state.rows.take(sl)
        with torch.enable_grad():
            k_leaf = state.raw[sl] * state.precond
            masks, pieces, _ = draw_regions(part.area, state.centre[sl], k_leaf, mix[sl], problem.extent, *problem.size, edge)
            flip = (part.flip ^ bool(step % 2)) if settings.jitter else None
            value, _ = problem.play(part, masks, flip)
            loss = -(value / problem.norm[part.image]).sum()
            if settings.spectral:
                loss = loss + settings.spectral * ((k_leaf * k_leaf).sum(-1) * weights).sum()
            if len(state.params) > 2 and settings.overlap:
                loss = loss + settings.overlap * overlap_penalty(pieces, part.area)
            got = torch.autograd.grad(loss, state.params, allow_unused=True)
        for total_grad, g in zip(grads, got, strict=True):
            if g is not None:
                total_grad += g
        problem.cost["step_batches"].append(len(part) * problem.copies)
        soft.append(value.detach())
    if family:
        gc, gk = nesting_gradient(settings.nesting, state.centre, state.raw, state.precond, state.rows.area, areas, problem.extent, problem.size, edge)
        grads[0] += gc
        grads[1] += gk
    if settings.progressive > 0:
        # Coarse to fine: harmonic k joins once the step passes k / (K + 1) of the ramp.
        active = math.floor((settings.harmonics + 1) * fraction / settings.progressive)
        grads[1][..., active:, :] = 0
    for p, g in zip(state.params, grads, strict=True):
        p.grad = g
    state.optimiser.step()
    with torch.no_grad():
        bound = _bound(problem, *problem.size, problem.x.device)
        state.centre.copy_(torch.maximum(torch.minimum(state.centre, bound), -bound))
    return torch.cat(soft)


def search(
    problem: Problem, settings: ContourSettings, areas: tuple[float, ...], seed: int, contours: int, progress: bool | None
) -> Answer:
    """Optimise the contours of every (image, area) of ``problem`` and return the best regions.

    Nested sweeps (``settings.nesting > 0`` and several areas): each start is a family of contours,
    one per area, from one centre (the scan's picks for the area nearest 0.1, scanned once per image),
    coupled by the nesting penalty and pruned together; the answer is the best family, so the scanned
    discs are not candidates."""
    device = problem.x.device
    n = problem.x.shape[0]
    groups = n * len(areas)
    best = Best(problem, groups, contours, settings.harmonics)
    family = settings.nesting > 0 and len(areas) > 1
    if family:
        pick = min(areas, key=lambda a: abs(a - 0.1))
        centre0 = S.place(problem, settings, torch.arange(n, device=device), torch.full((n,), pick, device=device), None, contours)
        centre0 = centre0[:, None].expand(-1, len(areas), -1, -1, -1)
    else:
        group_image = torch.arange(n, device=device).repeat_interleave(len(areas))
        centre0 = S.place(problem, settings, group_image, torch.tensor(areas, device=device).repeat(n), best, contours)
    state, mix = _initial(problem, settings, centre0, areas, seed, contours, family)
    history = torch.full((groups, settings.iterations), math.nan)
    last = settings.phases[-1][0]
    # Binary checks in the last phase (besides its end), evenly spread over its second half.
    checks = {settings.iterations - 1 - (i * last) // (2 * settings.checks + 1) for i in range(1, settings.checks + 1)}
    step = 0
    with tqdm(total=settings.iterations, desc="contours", unit="step", disable=progress_disabled(progress), leave=False) as bar:
        for phase, (length, keep) in enumerate(settings.phases):
            if phase:
                state, mix = _prune(problem, state, mix, best, keep, family, len(areas))
            for _ in range(length):
                soft = _step(problem, settings, state, mix, step, areas, family)
                # One copy to the host per step (the history), checked there: no extra sync.
                history[:, step] = torch.full((groups,), -math.inf).scatter_reduce(
                    0, state.rows.group.cpu(), finite(soft.float().cpu()), "amax"
                )
                if step in checks:
                    values = state.values(mix)
                    best.remember(problem.evaluate(state.rows, *values), state.rows, *values)
                step += 1
                bar.update(1)
    values = state.values(mix)
    value = problem.evaluate(state.rows, *values)
    if family:  # the answer is the best family as a whole (nested), not the best contour per area
        chosen = S.top_families(value / problem.norm[state.rows.image], n, len(areas), 1)
        best.take(*(v[chosen] for v in values))
        return Answer(best.centre, best.coeffs, best.mix, history, None)
    best.remember(value, state.rows, *values)
    return Answer(best.centre, best.coeffs, best.mix, history, best.candidates())
