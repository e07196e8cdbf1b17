"""Every explanation method behind one interface.

``get_explainer(name, model, **options).attribute(x, target=...)`` returns an :class:`Attribution`:
maps ``(N, 1, H, W)`` at the input size (higher = more important) and, for the mask methods, the
binary masks per area. ``list_explainers()`` names them. The benchmark and the CLI use only this.

Gradient baselines come from Captum (saliency, Integrated Gradients, Grad-CAM, occlusion); RISE and
dense Extremal Perturbations are written in this package. All explain the class logit, and every
method that perturbs the image uses the same operator (blur by default).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..explainer import ExtremalContour
from ..modelcall import check_output, eval_mode, model_place
from ..perturbation import Perturbation
from ..sweep import DEFAULT_AREAS, importance_map
from .extremal_perturbation import ExtremalPerturbation
from .rise import rise

__all__ = ["Attribution", "get_explainer", "gradcam_layer", "list_explainers"]


@dataclass(frozen=True)
class Attribution:
    """What every method returns.

    Attributes:
        method: the method's name.
        maps: ``(N, 1, H, W)`` float attribution at the input size, higher is more important.
        classes: ``(N,)`` the explained classes.
        masks: ``(N, A, 1, H, W)`` bool masks per area (mask methods), else ``None``.
        soft_masks: ``(N, A, 1, H, W)`` float masks the method optimised before they were made
            binary (mask methods), else ``None``. Dense EP's have wide soft borders; the contour's
            are drawn at its final edge width (about 1 px), so they barely differ from ``masks``.
        areas: the areas of ``masks``.
        seconds: wall time of the call.
        forward_backward, forward: images through the model with / without a backward pass.
        detail: the method's own result object (e.g. a ``ContourResult``), if any.
    """

    method: str
    maps: Tensor
    classes: Tensor
    masks: Tensor | None = None
    soft_masks: Tensor | None = None
    areas: tuple[float, ...] | None = None
    seconds: float = 0.0
    forward_backward: int = 0
    forward: int = 0
    detail: Any = None
    settings: dict[str, Any] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        """Jupyter shows this instead of the dataclass: each map as a small heat picture with the
        masks' outlines, and the classes (see :func:`extremal_contours.notebook.attribution_html`)."""
        from ..notebook import attribution_html

        return attribution_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text output: one line, not every tensor."""
        from ..notebook import attribution_text

        printer.text("Attribution(...)" if cycle else attribution_text(self))


class _Method:
    name = ""
    uses_masks = False

    def __init__(self, model: nn.Module | Callable[[Tensor], Tensor], **options: Any) -> None:
        self.model = model
        self.options = options

    def _classes(self, x: Tensor, target: Any) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            out = check_output(self.model(x), x.shape[0])
        if target is None:
            return out.argmax(1), out
        classes = torch.as_tensor(target, device=x.device).long().reshape(-1)
        classes = classes.expand(x.shape[0]).clone() if classes.numel() == 1 else classes
        if classes.numel() != x.shape[0]:
            raise ValueError(f"target has {classes.numel()} classes for {x.shape[0]} images")
        if ((classes < 0) | (classes >= out.shape[1])).any():
            raise ValueError(f"target outside the model's {out.shape[1]} classes")
        return classes, out

    def attribute(self, x: Tensor, target: int | Sequence[int] | Tensor | None = None, **kwargs: Any) -> Attribution:
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ValueError(f"x must be a batch (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
        device, dtype = model_place(self.model, x)
        x = x.detach().to(device=device, dtype=dtype)
        started = time.perf_counter()
        with eval_mode(self.model):
            result = self._attribute(x, target, **kwargs)
        maps = result.pop("maps").detach().float().cpu()
        return Attribution(method=self.name, maps=maps, seconds=time.perf_counter() - started, settings=dict(self.options), **result)

    def _attribute(self, x: Tensor, target: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError


def _mask_output(result: Any, maps: Tensor, masks: Tensor, soft: Tensor) -> dict[str, Any]:
    """The common interface's fields for a mask method's result (contour or dense EP)."""
    return {
        "maps": maps,
        "classes": result.classes,
        "masks": masks,
        "soft_masks": soft,
        "areas": result.areas,
        "forward_backward": result.cost["forward_backward"],
        "forward": result.cost["forward"],
        "detail": result,
    }


class _Contour(_Method):
    name = "contour"
    uses_masks = True

    def _attribute(self, x: Tensor, target: Any, areas: Sequence[float] = (0.1,), seed: int = 0, **kw: Any) -> dict[str, Any]:
        result = ExtremalContour(self.model, **{"progress": False, **self.options}).attribute(x, target, areas=areas, seed=seed, **kw)
        # One area: the region; several: nested levels.
        return _mask_output(result, maps=result.masks.float().mean(1), masks=result.masks, soft=result.soft_masks)


class _ContourMap(_Method):
    """The contour as an importance map: one nested sweep (``ExtremalContour.sweep``) over the default
    areas plus the requested ones; the map is :func:`~extremal_contours.sweep.importance_map` of its
    regions, the masks are its regions at the requested areas."""

    name = "contour_map"
    uses_masks = True

    def _attribute(self, x: Tensor, target: Any, areas: Sequence[float] = (0.1,), seed: int = 0, **kw: Any) -> dict[str, Any]:
        wanted = [float(a) for a in areas]
        swept = tuple(sorted(set(DEFAULT_AREAS) | set(wanted)))
        result = ExtremalContour(self.model, **{"progress": False, **self.options}).sweep(x, target, areas=swept, seed=seed, **kw)
        pick = [result.areas.index(a) for a in wanted]
        out = _mask_output(
            result, maps=importance_map(result.masks, result.areas), masks=result.masks[:, pick], soft=result.soft_masks[:, pick]
        )
        out["areas"] = tuple(wanted)
        return out


class _Extremal(_Method):
    name = "extremal_perturbation"
    uses_masks = True

    def _attribute(self, x: Tensor, target: Any, areas: Sequence[float] = (0.1,), **kw: Any) -> dict[str, Any]:
        result = ExtremalPerturbation(self.model, **{"progress": False, **self.options}).attribute(x, target, areas=areas, **kw)
        return _mask_output(result, maps=result.soft_masks.mean(1), masks=result.masks, soft=result.soft_masks)


class _Saliency(_Method):
    name = "saliency"

    def _attribute(self, x: Tensor, target: Any, **kw: Any) -> dict[str, Any]:
        from captum.attr import Saliency

        classes, _ = self._classes(x, target)
        attr = Saliency(self.model).attribute(x.clone().requires_grad_(), target=classes, abs=True)
        return {"maps": attr.amax(1, keepdim=True), "classes": classes, "forward_backward": x.shape[0], "forward": x.shape[0]}


class _IntegratedGradients(_Method):
    name = "integrated_gradients"

    def _attribute(self, x: Tensor, target: Any, **kw: Any) -> dict[str, Any]:
        from captum.attr import IntegratedGradients

        classes, _ = self._classes(x, target)
        steps = int(self.options.get("steps", 32))
        baseline = self.options.get("baseline", "blur")
        base = Perturbation(x, "blur")(torch.zeros_like(x[:, :1]), torch.arange(x.shape[0], device=x.device)) if baseline == "blur" else torch.zeros_like(x)
        attr = IntegratedGradients(self.model).attribute(
            x, baselines=base, target=classes, n_steps=steps, internal_batch_size=int(self.options.get("batch_size", 32))
        )
        return {"maps": attr.abs().sum(1, keepdim=True), "classes": classes, "forward_backward": x.shape[0] * steps, "forward": x.shape[0]}


def gradcam_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """The layer Grad-CAM uses: a known last block for common torchvision/timm models, else the last
    ``Conv2d``. Raises ``ValueError`` for models without one (e.g. ViTs): pass ``layer=`` then."""
    modules = dict(model.named_modules())
    for name in ("layer4", "conv_head", "features", "stages", "layers"):
        if name in modules and any(isinstance(m, nn.Conv2d) for m in modules[name].modules()):
            return name, modules[name]
    convs = [(n, m) for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM needs a convolutional layer and this model has none; pass layer='module.name'")
    return convs[-1]


class _GradCam(_Method):
    name = "gradcam"

    def _attribute(self, x: Tensor, target: Any, **kw: Any) -> dict[str, Any]:
        from captum.attr import LayerAttribution, LayerGradCam

        if not isinstance(self.model, nn.Module):
            raise TypeError("Grad-CAM needs an nn.Module to find its layer")
        layer = self.options.get("layer")
        if layer is None:
            _, module = gradcam_layer(self.model)
        else:
            modules = dict(self.model.named_modules())
            if layer not in modules:
                raise ValueError(f"no layer named {layer!r} in the model")
            module = modules[layer]
        classes, _ = self._classes(x, target)
        attr = LayerGradCam(self.model, module).attribute(x, target=classes, relu_attributions=True)
        attr = LayerAttribution.interpolate(attr.sum(1, keepdim=True), tuple(x.shape[-2:]), interpolate_mode="bilinear")
        return {"maps": attr.clamp(min=0), "classes": classes, "forward_backward": x.shape[0], "forward": x.shape[0]}


class _Occlusion(_Method):
    name = "occlusion"

    def _attribute(self, x: Tensor, target: Any, **kw: Any) -> dict[str, Any]:
        from captum.attr import Occlusion

        classes, _ = self._classes(x, target)
        window = int(self.options.get("window", 32))
        stride = int(self.options.get("stride", 16))
        c = x.shape[1]
        base = Perturbation(x, "blur")(torch.zeros_like(x[:, :1]), torch.arange(x.shape[0], device=x.device))
        attr = Occlusion(self.model).attribute(
            x,
            sliding_window_shapes=(c, window, window),
            strides=(c, stride, stride),
            baselines=base,
            target=classes,
            perturbations_per_eval=int(self.options.get("batch_size", 32)),
        )
        h, w = x.shape[-2:]
        windows = ((h - window) // stride + 1) * ((w - window) // stride + 1)
        return {"maps": attr.sum(1, keepdim=True).clamp(min=0), "classes": classes, "forward": x.shape[0] * (windows + 1)}


class _Rise(_Method):
    name = "rise"

    def _attribute(self, x: Tensor, target: Any, seed: int = 0, **kw: Any) -> dict[str, Any]:
        classes, _ = self._classes(x, target)
        perturb = Perturbation(x, "blur")
        maps, passes = rise(
            lambda inp: check_output(self.model(inp), inp.shape[0]),
            x,
            lambda out, index: out.gather(1, classes[index][:, None])[:, 0],
            perturb,
            count=int(self.options.get("count", 1000)),
            grid=int(self.options.get("grid", 7)),
            p=float(self.options.get("p", 0.5)),
            batch_size=int(self.options.get("batch_size", 32)),
            seed=seed,
        )
        return {"maps": maps, "classes": classes, "forward": passes + x.shape[0]}


_METHODS: dict[str, type[_Method]] = {
    m.name: m for m in (_Contour, _ContourMap, _Extremal, _GradCam, _IntegratedGradients, _Saliency, _Occlusion, _Rise)
}


def list_explainers() -> list[str]:
    """Names accepted by :func:`get_explainer`."""
    return list(_METHODS)


def get_explainer(name: str, model: nn.Module | Callable[[Tensor], Tensor], **options: Any) -> _Method:
    """An explainer by name; ``options`` go to the method (e.g. ``iterations=`` for the contour,
    ``layer=`` for Grad-CAM, ``steps=`` for Integrated Gradients, ``count=`` for RISE)."""
    key = name.strip().lower().replace("-", "_")
    if key not in _METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(_METHODS)}")
    return _METHODS[key](model, **options)
