"""Scores: what a mask must keep (preserve) or remove (delete), read off the model's output.

A score function takes the model's output on perturbed images ``(B, ...)``, the clean output of
the same images ``(B, ...)`` and the target class of each row ``(B,)`` (``None`` when there is no
class, e.g. for an embedding model), and returns one number per row ``(B,)``; higher means more
evidence.

Built in: ``logit`` (default), ``probability``, ``log_probability``, ``contrastive`` (the target's
logit minus the best other class's) and ``similarity`` (cosine similarity of the output to the
clean output, for backbones without a classifier head such as DINO). Any callable taking
``(output)``, ``(output, clean)`` or ``(output, clean, classes)`` works too.

This module imports nothing else of this package.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SCORES",
    "ScoreFn",
    "as_score",
    "contrastive",
    "log_probability",
    "logit",
    "probability",
    "resolve_classes",
    "similarity",
]

ScoreFn = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


def _classes(classes: Tensor | None, name: str) -> Tensor:
    if classes is None:
        raise ValueError(f"the {name!r} score needs a target class; give target=CLASS or a callable score")
    return classes[:, None]


def logit(output: Tensor, clean: Tensor, classes: Tensor | None) -> Tensor:
    """The target class's logit."""
    return output.gather(1, _classes(classes, "logit"))[:, 0]


def probability(output: Tensor, clean: Tensor, classes: Tensor | None) -> Tensor:
    """The target class's softmax probability."""
    return output.softmax(1).gather(1, _classes(classes, "probability"))[:, 0]


def log_probability(output: Tensor, clean: Tensor, classes: Tensor | None) -> Tensor:
    """The target class's log-softmax."""
    return output.log_softmax(1).gather(1, _classes(classes, "log_probability"))[:, 0]


def contrastive(output: Tensor, clean: Tensor, classes: Tensor | None) -> Tensor:
    """The target's logit minus the largest logit of any other class."""
    index = _classes(classes, "contrastive")
    target = output.gather(1, index)[:, 0]
    others = output.scatter(1, index, float("-inf"))
    return target - others.max(1).values


def similarity(output: Tensor, clean: Tensor, classes: Tensor | None = None) -> Tensor:
    """Cosine similarity of each output to the clean output of the same image (any shape)."""
    return F.cosine_similarity(output.flatten(1), clean.flatten(1), dim=1)


SCORES: dict[str, ScoreFn] = {
    "logit": logit,
    "probability": probability,
    "log_probability": log_probability,
    "contrastive": contrastive,
    "similarity": similarity,
}

#: Scores that need a target class.
CLASS_SCORES = ("logit", "probability", "log_probability", "contrastive")


def as_score(score: str | Callable[..., Tensor]) -> ScoreFn:
    """The 3-argument score function for a name in :data:`SCORES` or a user callable.

    A callable may take ``(output)``, ``(output, clean)`` or ``(output, clean, classes)``; its
    result is checked to be one finite number per row.
    """
    if isinstance(score, str):
        if score not in SCORES:
            raise ValueError(f"unknown score {score!r}; choose one of {', '.join(SCORES)} or pass a callable")
        return SCORES[score]
    if not callable(score):
        raise TypeError(f"a score must be a name or a callable, got {type(score).__name__}")
    try:
        params = inspect.signature(score).parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        arity = 3 if any(p.kind == p.VAR_POSITIONAL for p in params) else len(positional)
    except (TypeError, ValueError):  # builtins without a signature
        arity = 1
    if arity < 1:
        raise TypeError("a score callable must take the model output as its first argument")
    arity = min(arity, 3)

    def checked(output: Tensor, clean: Tensor, classes: Tensor | None) -> Tensor:
        value = score(*(output, clean, classes)[:arity])
        if not isinstance(value, Tensor) or value.shape != (output.shape[0],):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"the score callable returned {shape}; it must return one number per row, ({output.shape[0]},)")
        return value

    checked.__name__ = getattr(score, "__name__", type(score).__name__)
    return checked


def describe(score: str | Callable[..., Tensor]) -> str:
    """A name for the settings record."""
    return score if isinstance(score, str) else getattr(score, "__name__", type(score).__name__)


def needs_class(score: str | Callable[..., Tensor]) -> bool:
    return isinstance(score, str) and score in CLASS_SCORES


def probabilities(output: Tensor, classes: Tensor) -> Tensor:
    """Softmax probability of each row's class, ``(B,)`` (for the fidelity report)."""
    return torch.softmax(output.float(), 1).gather(1, classes[:, None])[:, 0]


def resolve_classes(target: object, clean: Tensor, score: str | Callable[..., Tensor]) -> Tensor | None:
    """The target class of each image ``(N,)``, or ``None`` when the score needs none.

    Args:
        target: one class index, one per image (a sequence or a tensor), or ``None``: the predicted
            class where ``score`` needs a class, else no class.
        clean: ``(N, D)`` the model's output on the clean images.
        score: the score the classes are for.

    Raises:
        TypeError: a target that is not whole class indices (floats and bools are refused).
        ValueError: the wrong number of targets, or a class outside the model's output.
    """
    n = clean.shape[0]
    if target is None:
        if not needs_class(score):
            return None
        if clean.dim() != 2:
            raise ValueError(f"the model output has shape {tuple(clean.shape)}; give a target class or a score callable")
        return clean.argmax(1)
    if isinstance(target, bool):
        raise TypeError("target must be a class index, a sequence of them, or a callable")
    try:
        classes = torch.as_tensor(target, device=clean.device).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"target must be a class index, a sequence of them, or a callable; got {target!r}") from exc
    if classes.is_floating_point() or classes.dtype == torch.bool or classes.is_complex():
        raise TypeError(f"target class indices must be integers, got {classes.dtype}")
    classes = classes.long()
    if classes.numel() == 1:
        classes = classes.expand(n)
    if classes.numel() != n:
        raise ValueError(f"target has {classes.numel()} classes for {n} images")
    width = clean.shape[1]
    bad = classes[(classes < 0) | (classes >= width)]
    if bad.numel():
        raise ValueError(f"target {bad[0].item()} is outside the model's {width} classes (0..{width - 1})")
    return classes.clone()
