"""Scoring masks: what keeping only a region, or removing it, does to the model's evidence.

One function, :func:`score_masks`, perturbs each image outside a mask (preserve) and inside it
(delete), runs the model and reads the score; the contour, dense Extremal Perturbations and the
benchmark's fidelity metric all score their masks through it. :class:`Fidelity` gives every result
that holds such scores the same two numbers a user reads:

- **preserve ratio**: the class probability (or score) with only the region kept, over the clean
  image's; 1 means the region alone carries all of the evidence;
- **delete drop**: 1 minus the probability (or score) with the region removed, over the clean one;
  1 means removing the region removes all of the evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .perturbation import Perturbation
from .targets import ScoreFn, probabilities

__all__ = ["Fidelity", "MaskScores", "score_masks"]


class Fidelity:
    """Preserve ratio and delete drop of a result with per-(image, area) scores.

    Expects the attributes ``clean_score (N,)``, ``preserve_score`` and ``delete_score (N, A)`` and,
    for class targets, ``clean_probability (N,)``, ``preserve_probability`` and
    ``delete_probability (N, A)`` (``None`` otherwise)."""

    clean_score: Tensor
    preserve_score: Tensor
    delete_score: Tensor
    clean_probability: Tensor | None
    preserve_probability: Tensor | None
    delete_probability: Tensor | None

    @property
    def preserve_ratio(self) -> Tensor:
        """``(N, A)``: the class probability with only the region kept over the clean probability
        (class targets), else the same ratio of scores."""
        if self.preserve_probability is not None and self.clean_probability is not None:
            return self.preserve_probability / self.clean_probability[:, None]
        return self.preserve_score / self.clean_score[:, None]

    @property
    def delete_drop(self) -> Tensor:
        """``(N, A)``: ``1 -`` the probability (else the score) with the region removed over the clean one."""
        if self.delete_probability is not None and self.clean_probability is not None:
            return 1 - self.delete_probability / self.clean_probability[:, None]
        return 1 - self.delete_score / self.clean_score[:, None]


@dataclass(frozen=True)
class MaskScores:
    """Scores of ``R`` masks on ``N`` images (see :func:`score_masks`).

    Attributes:
        clean_score: ``(N,)``; preserve_score, delete_score: ``(R,)``, in the score's units.
        clean_probability: ``(N,)``; preserve_probability, delete_probability: ``(R,)``; the target
            class's softmax probability (class targets on a 2-D output), else ``None``.
        forward: images run through the model (forward only).
    """

    clean_score: Tensor
    preserve_score: Tensor
    delete_score: Tensor
    clean_probability: Tensor | None
    preserve_probability: Tensor | None
    delete_probability: Tensor | None
    forward: int

    def fields(self, images: int, areas: int) -> dict[str, Any]:
        """The scores as a result's fields: per image ``(N,)`` and per (image, area) ``(N, A)``,
        float32 on the CPU."""

        def grid(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.float().view(images, areas).cpu()

        return {
            "clean_score": self.clean_score.float().cpu(),
            "preserve_score": grid(self.preserve_score),
            "delete_score": grid(self.delete_score),
            "clean_probability": None if self.clean_probability is None else self.clean_probability.float().cpu(),
            "preserve_probability": grid(self.preserve_probability),
            "delete_probability": grid(self.delete_probability),
        }


@torch.no_grad()
def score_masks(
    run: Callable[[Tensor], Tensor],
    perturb: Perturbation,
    masks: Tensor,
    image: Tensor,
    clean: Tensor,
    classes: Tensor | None,
    score: ScoreFn,
    batch_size: int = 32,
) -> MaskScores:
    """Score masks by keeping (preserve) and removing (delete) their regions.

    Args:
        run: the model, ``(B, C, H, W) -> (B, D)`` (e.g. a :class:`~extremal_contours.modelcall.ModelRunner`).
        perturb: the perturbation of the ``N`` images.
        masks: ``(R, 1, H, W)`` bool (binary) or float in ``[0, 1]`` (soft) masks.
        image: ``(R,)`` which image each mask belongs to.
        clean: ``(N, D)`` the model's output on the clean images.
        classes: ``(N,)`` target classes, or ``None`` (a score without a class).
        score: the score function (see :mod:`extremal_contours.targets`).
        batch_size: most images per model call.

    Returns:
        :class:`MaskScores`; each chunk of ``batch_size`` masks is run preserved, then deleted.
    """
    dtype = perturb.x.dtype
    kept, removed = [], []
    for start in range(0, masks.shape[0], batch_size):
        part = slice(start, min(masks.shape[0], start + batch_size))
        region = masks[part].to(dtype)
        kept.append(run(perturb(region, image[part])))
        removed.append(run(perturb(1 - region, image[part])))
    out_keep, out_del = torch.cat(kept), torch.cat(removed)
    cls = classes[image] if classes is not None else None
    prob = classes is not None and clean.dim() == 2
    return MaskScores(
        clean_score=score(clean, clean, classes).float(),
        preserve_score=score(out_keep, clean[image], cls).float(),
        delete_score=score(out_del, clean[image], cls).float(),
        clean_probability=probabilities(clean, classes) if prob and classes is not None else None,
        preserve_probability=probabilities(out_keep, cls) if prob and cls is not None else None,
        delete_probability=probabilities(out_del, cls) if prob and cls is not None else None,
        forward=2 * masks.shape[0],
    )
