"""What the command line says about an explanation, in plain words: how much of the class the region
keeps, what removing it does, and the warnings it carries."""

from __future__ import annotations

from pathlib import Path

from ..result import ContourResult

__all__ = ["area_words", "summary_line"]


def _label(result: ContourResult) -> str:
    label = result.label(0)
    if not result.class_names and result.classes is None:  # a score of no class
        return label
    if result.classes is not None:
        label += f" ({int(result.classes[0])})"
    if result.clean_probability is not None:
        label += f" p={float(result.clean_probability[0]):.2f}"
    return label


def area_words(result: ContourResult, j: int) -> str:
    """One area's explanation in words: ``area 0.1 keeps 62% of the class, removing it leaves 20% [unique]``."""
    keep, drop = float(result.preserve_ratio[0, j]), float(result.delete_drop[0, j])
    text = f"area {result.areas[j]:g} keeps {keep:.0%} of the class, removing it leaves {1 - drop:.0%}"
    if result.parts is not None:
        text += f" ({int(result.parts.count[0, j])} contours)"
    notes = [name.replace("_", " ") for name in result.flags_of(0, j)]
    verdict = result.verdict[0][j]
    if verdict == "unique":
        notes.append("unique")
    if result.alternatives is not None and int(result.alternatives.count[0, j]):
        others = result.alternatives.preserve_ratio[0, j, : int(result.alternatives.count[0, j])]
        notes.append("alternatives keep " + ", ".join(f"{float(v):.0%}" for v in others))
    return text + (f" [{'; '.join(notes)}]" if notes else "")


def summary_line(name: str, result: ContourResult, out: Path, keep: float | None = None) -> str:
    """The line printed for an explained picture. With ``keep`` (``--area auto``), it starts with the
    smallest area whose region keeps that share of the class."""
    parts = [area_words(result, j) for j in range(len(result.areas))]
    head = f"{name}: {_label(result)}"
    if keep is None:
        return f"{head} | " + " | ".join(parts) + f" -> {out}"
    ratios = result.preserve_ratio[0].tolist()
    order = sorted(range(len(result.areas)), key=lambda j: result.areas[j])
    tried = "/".join(f"{result.areas[j]:g}" for j in order)
    chosen = next((j for j in order if ratios[j] >= keep), None)
    if chosen is None:
        best = max(order, key=lambda j: ratios[j])
        pick = f"no area of {tried} keeps {keep:.0%} of the class; the best, {parts[best]}"
    else:
        pick = f"the smallest area of {tried} keeping at least {keep:.0%} of the class: {parts[chosen]}"
    return f"{head} | {pick} -> {out} (summary.png)"
