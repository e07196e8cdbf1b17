"""Dense Extremal Perturbations: this project's port against the reference implementation (TorchRay).

Runs, on the same pictures and classes, TorchRay's ``extremal_perturbation`` (its defaults: 800
steps, blur perturbation, preserve) and this project's port with ``protocol="reference"`` (and,
with ``--fair``, the default protocol too), then scores every binary mask (``> 0.5`` for the
reference protocol) with one function and one perturbation (the reference's blur), and writes per
picture: preserve ratios side by side, the IoU between the two binary masks, visible areas and
seconds (``OUT/results.csv``; the soft masks, in half precision, under ``OUT/masks/``). Prints the
medians.

TorchRay is licensed CC-BY-NC: it is used here only to measure against, never by the package.
Install it beside the project with ``pip install --no-deps torchray``.

    python benchmarks/ep_reference.py --data DIR --stride 15 --limit 20 --out ep_ref

``DIR`` is a folder of labelled pictures (``annotations.json``, see ``extremal_contours.data``);
each is centre-cropped to the model's input (224 x 224 for EfficientNet-Lite0). Re-running the
same command continues where it stopped (rows are appended per picture).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

from extremal_contours.baselines import ExtremalPerturbation
from extremal_contours.baselines.extremal_perturbation import REFERENCE_BLUR
from extremal_contours.benchmark.rows import append_rows, drop_partial_line, fmt, read_rows
from extremal_contours.data import open_dataset
from extremal_contours.images import load_image
from extremal_contours.metrics import iou
from extremal_contours.modelcall import ModelRunner
from extremal_contours.models import load_model
from extremal_contours.perturbation import Perturbation
from extremal_contours.scoring import score_masks
from extremal_contours.targets import logit

FIELDS = [
    "image", "label", "area", "reference_visible", "port_visible", "reference_preserve", "port_preserve", "iou",
    "reference_seconds", "port_seconds", "fair_visible", "fair_preserve", "fair_seconds",
    "rerun_iou", "rerun_preserve", "rerun_visible",
]  # fmt: skip


def reference_mask(model: torch.nn.Module, x: torch.Tensor, label: int, area: float, iterations: int) -> torch.Tensor:
    """TorchRay's soft mask ``(1, 1, H, W)`` (on a copy of the model: TorchRay turns off its parameters' gradients)."""
    from torchray.attribution.extremal_perturbation import extremal_perturbation

    mask, _ = extremal_perturbation(copy.deepcopy(model), x, label, areas=[area], max_iter=iterations)
    return mask.detach()


def preserve_ratio(run: ModelRunner, perturb: Perturbation, clean: torch.Tensor, label: int, mask: torch.Tensor) -> float:
    """The class probability with only ``mask (1, 1, H, W)`` kept over the clean probability."""
    classes = torch.tensor([label])
    scores = score_masks(run, perturb, mask, torch.zeros(1, dtype=torch.long), clean, classes, logit)
    assert scores.preserve_probability is not None and scores.clean_probability is not None
    return float(scores.preserve_probability[0] / scores.clean_probability[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of labelled pictures")
    parser.add_argument("--stride", type=int, default=15)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--area", type=float, default=0.1)
    parser.add_argument("--iterations", type=int, default=800)
    parser.add_argument("--fair", action="store_true", help="also run the default (fair) protocol at the same area")
    parser.add_argument(
        "--rerun-threads", type=int, default=0,
        help="also run TorchRay again with this many threads: how far floating-point drift alone moves its mask",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="folder for results.csv")
    args = parser.parse_args()
    try:
        import torchray  # noqa: F401
    except ImportError:
        print("error: TorchRay is not installed: pip install --no-deps torchray", file=sys.stderr)
        return 2
    loaded = load_model()
    model = loaded.model
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.csv"
    if path.is_file() and path.stat().st_size:
        drop_partial_line(path)  # a killed run's half-written last row
    done = {r["image"] for r in read_rows(path)}
    samples = list(open_dataset(args.data))[:: args.stride][: args.limit]
    run = ModelRunner(model, channels_last=False, device=torch.device("cpu"))
    for sample in samples:
        if sample.name in done:
            continue
        x = loaded.preprocess(load_image(sample.path)[0], "center")
        label = int(sample.label)
        with torch.no_grad():
            clean = run(x)
        perturb = Perturbation(x, "blur", **REFERENCE_BLUR)
        started = time.perf_counter()
        ref_soft = reference_mask(model, x, label, args.area, args.iterations)
        ref = ref_soft > 0.5
        ref_s = time.perf_counter() - started
        port = ExtremalPerturbation(model, protocol="reference", iterations=args.iterations, progress=False)
        result = port.attribute(x, label, areas=(args.area,))
        mine = result.masks[:, 0]
        row = {
            "image": sample.name,
            "label": label,
            "area": args.area,
            "reference_visible": float(ref.float().mean()),
            "port_visible": float(mine.float().mean()),
            "reference_preserve": preserve_ratio(run, perturb, clean, label, ref),
            "port_preserve": preserve_ratio(run, perturb, clean, label, mine),
            "iou": float(iou(ref, mine)[0]),
            "reference_seconds": ref_s,
            "port_seconds": result.cost["seconds"],
        }
        soft = {"reference": ref_soft[0, 0], "port": result.soft_masks[0, 0, 0]}
        if args.fair:
            fair = ExtremalPerturbation(model, iterations=args.iterations, progress=False, perturbation_options=REFERENCE_BLUR)
            got = fair.attribute(x, label, areas=(args.area,))
            soft["fair"] = got.soft_masks[0, 0, 0]
            row |= {
                "fair_visible": float(got.visible_area[0, 0]),
                "fair_preserve": preserve_ratio(run, perturb, clean, label, got.masks[:, 0]),
                "fair_seconds": got.cost["seconds"],
            }
        if args.rerun_threads:
            threads = torch.get_num_threads()
            torch.set_num_threads(args.rerun_threads)
            again = reference_mask(model, x, label, args.area, args.iterations)
            torch.set_num_threads(threads)
            soft["rerun"] = again[0, 0]
            row |= {
                "rerun_iou": float(iou(ref, again > 0.5)[0]),
                "rerun_preserve": preserve_ratio(run, perturb, clean, label, again > 0.5),
                "rerun_visible": float((again > 0.5).float().mean()),
            }
        (out / "masks").mkdir(exist_ok=True)
        torch.save({k: v.half() for k, v in soft.items()}, out / "masks" / f"{Path(sample.name).stem}.pt")
        append_rows(path, FIELDS, [{k: fmt(v) if isinstance(v, float) else v for k, v in row.items()}])
        print(
            f"{sample.name}: reference {row['reference_preserve']:.3f} (area {row['reference_visible']:.3f}, {ref_s:.0f} s), "
            f"port {row['port_preserve']:.3f} (area {row['port_visible']:.3f}), IoU {row['iou']:.3f}",
            flush=True,
        )
    rows = read_rows(path)
    for name in FIELDS[3:]:
        values = [float(r[name]) for r in rows if r.get(name)]
        if values:
            print(f"{name}: median {statistics.median(values):.4g} over {len(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
