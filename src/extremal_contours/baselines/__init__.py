"""Baselines and the common interface every method is used through."""

from .extremal_perturbation import ExtremalPerturbation, PerturbationResult
from .registry import Attribution, get_explainer, gradcam_layer, list_explainers

__all__ = ["Attribution", "ExtremalPerturbation", "PerturbationResult", "get_explainer", "gradcam_layer", "list_explainers"]
