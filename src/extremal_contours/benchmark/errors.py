"""Why a benchmark does not run (each a one-line message the command line prints)."""

from __future__ import annotations

__all__ = ["BenchmarkEmpty", "BenchmarkMismatch"]


class BenchmarkEmpty(ValueError):
    """A run that has written no rows at all (every picture failed, or nothing was asked)."""


class BenchmarkMismatch(ValueError):
    """``out`` already holds rows made with other fixed settings (model, weights, target, resize) or
    in other columns."""
