"""Warnings an explanation carries: when its region should not be taken at face value.

Each flag is a rule on numbers the explainer measured for an (image, area); ``docs/BENCHMARKS.md``
has the measurements its threshold comes from. This module imports nothing else of this package.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["AMBIGUOUS", "FLAGS", "KEEPS_LITTLE", "SUSPICIOUS", "UNSTABLE", "describe_flags", "raise_flags"]

#: Below this preserve ratio the region alone keeps little of the class.
KEEPS_LITTLE = 0.25
#: An alternative keeping at least this share of what the answer keeps makes the answer ambiguous.
AMBIGUOUS = 0.8
#: Above this preserve ratio the region alone makes the class far more likely than the picture does.
SUSPICIOUS = 3.0
#: Shifted with the picture, a region keeping under this share of what it keeps in place is unstable.
UNSTABLE = 0.5

#: Every flag and what it means, in one line each.
FLAGS: dict[str, str] = {
    "keeps_little": f"the region alone keeps under {KEEPS_LITTLE:.0%} of the class (preserve ratio < {KEEPS_LITTLE:g})",
    "deletion_raises": "removing the region makes the class more likely (delete drop < 0)",
    "ambiguous": f"another region, apart from this one (IoU < 0.3), keeps at least {AMBIGUOUS:.0%} of what this one keeps",
    "suspicious": f"the region alone makes the class over {SUSPICIOUS:g}x as likely as the whole picture does: "
    "the mark of an adversarial region, not of evidence",
    "unstable": f"with the picture and the region shifted by 4 px, the region keeps under {UNSTABLE:.0%} of what it keeps in place",
}


def raise_flags(preserve: Tensor, drop: Tensor, runner_up: Tensor | None, shifted: Tensor | None) -> dict[str, Tensor]:
    """Each flag's ``(N, A)`` bool from the measured numbers.

    Args:
        preserve: ``(N, A)`` preserve ratios of the regions.
        drop: ``(N, A)`` delete drops.
        runner_up: ``(N, A)`` preserve ratio of the best alternative region (NaN where there is none),
            or ``None`` when alternatives were not looked for.
        shifted: ``(N, A)`` preserve ratio of the region shifted with the picture, or ``None``.
    """
    out = {"keeps_little": preserve < KEEPS_LITTLE, "deletion_raises": drop < 0, "suspicious": preserve > SUSPICIOUS}
    if runner_up is not None:
        out["ambiguous"] = runner_up >= AMBIGUOUS * preserve  # NaN (no alternative) compares False
    if shifted is not None:
        out["unstable"] = shifted < UNSTABLE * preserve
    return out


def describe_flags(flags: dict[str, Tensor], image: int, area: int) -> list[str]:
    """The names of the flags raised for one (image, area), in :data:`FLAGS`' order."""
    return [name for name in FLAGS if name in flags and bool(flags[name][image, area])]
