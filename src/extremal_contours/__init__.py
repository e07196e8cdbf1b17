"""Extremal Contours: explain image classifiers with the smallest smooth star-convex region that
keeps (or removes) the model's evidence for a class."""

from ._version import __version__
from .explainer import VARIANTS, ExtremalContour
from .images import ImageError, load_image
from .models import DEFAULT_MODEL, LoadedModel, ModelError, imagenet_classes, load_model
from .result import ContourParts, ContourResult

__all__ = [
    "DEFAULT_MODEL",
    "VARIANTS",
    "ContourParts",
    "ContourResult",
    "ExtremalContour",
    "ImageError",
    "LoadedModel",
    "ModelError",
    "__version__",
    "imagenet_classes",
    "load_image",
    "load_model",
    "sample_image_path",
]


def sample_image_path() -> str:
    """Path of the bundled sample picture (Chelsea the cat, CC0, from scikit-image's data)."""
    from importlib.resources import files

    return str(files(__package__) / "assets" / "chelsea.jpg")
