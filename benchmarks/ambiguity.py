"""Is the `ambiguous` verdict where seeds disagree? A measurement of the contour's verdict.

For each picture (224 centre crop, labelled class, one area): the default explanation with
``alternatives=K`` (its verdict: ``unique`` or ``ambiguous``), and the explanation of another seed
(starts moved by up to 10% of the picture, ``start_jitter=0.1``, seed 1). Written per picture to
``OUT/ambiguity.csv`` (resumable): the verdict and flags, the answer's and the runner-up's preserve
ratios, the IoU of the other seed's region with the answer, and its best IoU with any alternative
(is what another seed finds among the alternatives the user was shown?). The summary printed at the
end compares the seed IoU of ambiguous and unique pictures.

    python benchmarks/ambiguity.py --data DIR --stride 3 --limit 100 --out OUT
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from extremal_contours import ExtremalContour, load_image, load_model
from extremal_contours.benchmark.rows import append_rows, drop_partial_line, fmt, read_rows
from extremal_contours.data import open_dataset
from extremal_contours.metrics import iou

FIELDS = ["image", "label", "area", "verdict", "flags", "preserve", "runner_up", "alternatives", "seed_preserve", "seed_iou", "seed_best_alternative_iou"]


def polygon_mask(polygon: np.ndarray, height: int, width: int) -> torch.Tensor:
    """The pixels inside a polygon ``(P, 2)`` of ``(x, y)`` pixel coordinates, ``(H, W)`` bool."""
    canvas = Image.new("1", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([tuple(map(float, p)) for p in polygon], fill=1)
    return torch.from_numpy(np.array(canvas, dtype=bool))


def measure(loaded, sample, area: float, alternatives: int, quiet: bool) -> dict[str, object]:
    x = loaded.preprocess(load_image(sample.path)[0], "center")
    label = int(sample.label)
    first = ExtremalContour(loaded.model, progress=False).attribute(x, label, areas=(area,), alternatives=alternatives)
    other = ExtremalContour(loaded.model, start_jitter=0.1, progress=False).attribute(x, label, areas=(area,), seed=1)
    mine, theirs = first.masks[:, 0, 0], other.masks[:, 0, 0]
    height, width = mine.shape[-2:]
    found = first.alternatives
    count = 0 if found is None else int(found.count[0, 0])
    alt_iou = [float(iou(polygon_mask(p, height, width)[None], theirs)[0]) for p in (found.outlines(0, 0) if found is not None else [])]
    return {
        "image": sample.name,
        "label": label,
        "area": area,
        "verdict": first.verdict[0][0],
        "flags": " ".join(first.flags_of(0, 0)),
        "preserve": float(first.preserve_ratio[0, 0]),
        "runner_up": float(found.preserve_ratio[0, 0, 0]) if count else float("nan"),
        "alternatives": count,
        "seed_preserve": float(other.preserve_ratio[0, 0]),
        "seed_iou": float(iou(mine, theirs)[0]),
        "seed_best_alternative_iou": max(alt_iou) if alt_iou else float("nan"),
    }


def summary(rows: list[dict[str, str]]) -> str:
    lines = [f"{len(rows)} pictures"]
    for verdict in ("ambiguous", "unique"):
        group = [r for r in rows if r["verdict"] == verdict]
        if not group:
            continue
        seed = [float(r["seed_iou"]) for r in group]
        found = [float(r["seed_best_alternative_iou"]) for r in group if r["seed_best_alternative_iou"] not in ("", "nan")]
        closer = sum(float(r["seed_best_alternative_iou"]) > float(r["seed_iou"]) for r in group if r["seed_best_alternative_iou"] not in ("", "nan"))
        lines.append(
            f"{verdict}: {len(group)} ({len(group) / len(rows):.0%}); IoU with another seed's region: mean {statistics.fmean(seed):.3f}, "
            f"median {statistics.median(seed):.3f}, below 0.3 on {sum(v < 0.3 for v in seed)}; "
            f"another seed's region closer to an alternative than to the answer on {closer} of {len(found)} with alternatives"
        )
    for flagged in (True, False):
        group = [r for r in rows if ("unstable" in r["flags"].split()) == flagged]
        if group:
            seed = [float(r["seed_iou"]) for r in group]
            lines.append(f"{'unstable' if flagged else 'not unstable'}: {len(group)}; IoU with another seed's region: mean {statistics.fmean(seed):.3f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of labelled pictures")
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--area", type=float, default=0.1)
    parser.add_argument("--alternatives", type=int, default=3, help="regions looked for per picture (the answer and K-1 others)")
    parser.add_argument("--out", required=True, help="folder for ambiguity.csv")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    loaded = load_model()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "ambiguity.csv"
    if path.is_file() and path.stat().st_size:
        drop_partial_line(path)  # a killed run's half-written last row
    done = {r["image"] for r in read_rows(path)}
    samples = [s for s in list(open_dataset(args.data))[:: args.stride][: args.limit] if s.name not in done]
    for sample in tqdm(samples, disable=args.quiet, desc="pictures"):
        try:
            row = measure(loaded, sample, args.area, args.alternatives, args.quiet)
        except Exception as exc:  # one bad picture is reported and skipped, the rest go on
            tqdm.write(f"{sample.name}: skipped, {exc}")
            continue
        append_rows(path, FIELDS, [{k: fmt(v) if isinstance(v, float) else v for k, v in row.items()}])
    print(summary(read_rows(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
