"""The Extremal Contour explainer, in rooms of one job each.

- :mod:`.config`: the settings, one frozen record checked once;
- :mod:`.objective`: the game on perturbed images and the best answer so far;
- :mod:`.starts`: where the contours start and which survive each halving;
- :mod:`.multicontour`: regions of several contours, the nesting penalty, ``contours="auto"``;
- :mod:`.search`: the optimisation of one call;
- :mod:`.assemble`: from the best parameters to the result;
- :mod:`.core`: :class:`ExtremalContour`, which wires them together.
"""

from ..inputs import VARIANTS
from .config import ContourSettings
from .core import ExtremalContour

__all__ = ["VARIANTS", "ContourSettings", "ExtremalContour"]
