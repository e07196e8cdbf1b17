"""The benchmark's report: ``summary.md`` (Markdown tables: mean, median and a 95% interval per
metric) and ``profile.png`` (fidelity against area per method), from the folder's CSV files."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..nuisances import NUISANCES
from .errors import BenchmarkEmpty
from .rows import CONSISTENCY, ERRORS, MAP_FIELDS, MAPS, PER_IMAGE, SANITY, STABILITY, read_rows
from .runrecord import read_record

__all__ = [
    "METRIC_RANGE", "consistency_table", "fidelity_table", "interval", "maps_table", "random_target_table",
    "sanity_tables", "shape_table", "speed_table", "stability_table", "summarise", "write_summary",
]  # fmt: skip

#: Ranges of the map metrics: their intervals are clipped to them.
METRIC_RANGE = {
    "relevance_mass": (0.0, 1.0), "relevance_rank": (0.0, 1.0), "pointing_game": (0.0, 1.0), "sparseness": (0.0, 1.0),
    "faithfulness_correlation": (-1.0, 1.0), "insertion_auc": (0.0, 1.0), "deletion_auc": (0.0, 1.0),
}  # fmt: skip

Groups = dict[tuple[str, str], list[dict[str, str]]]


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and a normal-approximation 95% interval of the mean."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _by_method_and_area(rows: list[dict[str, str]]) -> Groups:
    groups: Groups = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["area"])].append(r)
    return groups


def write_summary(out: Path) -> None:
    """``summary.md`` and ``profile.png`` (fidelity against area per method) from the CSVs."""
    if not (out / PER_IMAGE.name).is_file():
        errors = out / ERRORS.name
        why = f"; see {errors}" if errors.is_file() else " (nothing to run, or no method ran)"
        raise BenchmarkEmpty(f"no results in {out} yet: every picture failed or none was run{why}")
    rows = read_rows(out / PER_IMAGE.name)
    (out / "summary.md").write_text(summarise(out, rows))
    if rows:
        from ..figures import method_profiles

        method_profiles(rows, out / "profile.png")


def summarise(out: Path, rows: list[dict[str, str]] | None = None, random_target: bool | None = None) -> str:
    """Markdown tables from ``per_image.csv`` (its ``rows`` when already read) and, where they
    exist, ``consistency.csv``, ``maps.csv``, ``stability.csv`` and ``sanity.csv``; the adversarial-artifact table
    for a ``random_target`` run (read from ``run.json`` when ``None``)."""
    if rows is None:
        rows = read_rows(out / PER_IMAGE.name)
    groups = _by_method_and_area(rows)
    text = fidelity_table(groups) + shape_table(groups)
    if (out / CONSISTENCY.name).is_file():
        text += consistency_table(read_rows(out / CONSISTENCY.name))
    record = read_record(out)
    if (out / MAPS.name).is_file():
        text += maps_table(read_rows(out / MAPS.name), record)
    if (out / STABILITY.name).is_file():
        text += stability_table(read_rows(out / STABILITY.name))
    if (out / SANITY.name).is_file():
        text += sanity_tables(read_rows(out / SANITY.name))
    if random_target is None:
        random_target = bool(record.get("random_target"))
    if random_target and rows:
        text += random_target_table(groups)
    speed_path = out / "speed.json"
    if speed_path.is_file() and rows:
        text += speed_table(rows, json.loads(speed_path.read_text()), _precisions(record))
    return text


def fidelity_table(groups: Groups) -> str:
    """Markdown: per method and area, the binary masks' visible area, preserve ratio (and the soft
    masks'), delete drop and cost."""
    lines = [
        "| method | area | images | visible area | preserve ratio: median | mean [95% CI] | soft mask: median "
        "| delete drop: mean | s / image | fwd+bwd / image | fwd / image |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, area), group in sorted(groups.items()):
        pres = [float(r["preserve_ratio"]) for r in group]
        mean, lo, hi = interval(pres)
        soft = [float(r["soft_preserve_ratio"]) for r in group if r["soft_preserve_ratio"]]
        soft_cell = f"{statistics.median(soft):.3f}" if soft else "-"
        lines.append(
            f"| {method} | {area} | {len({r['image'] for r in group})} | {statistics.fmean(float(r['visible_area']) for r in group):.3f} "
            f"| {statistics.median(pres):.3f} | {mean:.3f} [{lo:.3f}, {hi:.3f}] | {soft_cell} "
            f"| {statistics.fmean(float(r['delete_drop']) for r in group):.3f} "
            f"| {statistics.fmean(float(r['seconds_per_image']) for r in group):.2f} "
            f"| {statistics.fmean(float(r['forward_backward_per_image']) for r in group):.0f} "
            f"| {statistics.fmean(float(r['forward_per_image']) for r in group):.0f} |"
        )
    return (
        "## Fidelity and cost\n\n"
        "Preserve ratio: the binary mask's (what the user is shown). Soft mask: the preserve ratio of the mask "
        "the method optimised, before it was made binary (mask methods only).\n\n" + "\n".join(lines) + "\n"
    )


def shape_table(groups: Groups) -> str:
    """Markdown: per method and area, how many pieces and holes its binary masks have."""
    lines = [
        "| method | area | masks | pieces: mean | max | one piece | holes: mean | no hole |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (method, area), group in sorted(groups.items()):
        pieces = [int(r["pieces"]) for r in group]
        holes = [int(r["holes"]) for r in group]
        lines.append(
            f"| {method} | {area} | {len(group)} | {statistics.fmean(pieces):.1f} | {max(pieces)} "
            f"| {sum(p == 1 for p in pieces)} of {len(group)} | {statistics.fmean(holes):.1f} "
            f"| {sum(h == 0 for h in holes)} of {len(group)} |"
        )
    if len(lines) == 2:
        return ""
    return (
        "\n## Shape of the binary masks\n\n"
        "Pieces: separate 8-connected parts of the mask at the benchmark's area; holes: parts of the rest of "
        "the image enclosed by it. One piece and no hole is a simply connected region.\n\n" + "\n".join(lines) + "\n"
    )


def consistency_table(rows: list[dict[str, str]]) -> str:
    """Markdown: per method and area, the mean pairwise IoU of the runs with different seeds."""
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        by[(r["method"], r["area"])].append(float(r["iou"]))
    table = ["| method | area | images | runs | mean pairwise IoU [95% CI] |", "|---|---|---|---|---|"]
    for (method, area), values in sorted(by.items()):
        mean, lo, hi = interval(values)
        runs = next(r["runs"] for r in rows if r["method"] == method and r["area"] == area)
        table.append(f"| {method} | {area} | {len(values)} | {runs} | {mean:.3f} [{lo:.3f}, {hi:.3f}] |")
    return "\n## Run-to-run consistency\n\n" + "\n".join(table) + "\n"


def _map_cell(name: str, group: list[dict[str, str]]) -> str:
    """A map metric's mean [95% CI] over the rows that have it (how many, when not all)."""
    values = [float(r[name]) for r in group]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    mean, lo, hi = interval(values)
    low, high = METRIC_RANGE.get(name, (-math.inf, math.inf))  # a 0/1 score's interval stays in [0, 1]
    cell = f"{mean:.3f} [{max(lo, low):.3f}, {min(hi, high):.3f}]" if len(values) > 1 else f"{mean:.3f}"
    if len(values) != len(group):  # computed on part of the rows only (e.g. boxes, or --faithfulness added later)
        cell += f" (n={len(values)})"
    return cell


def maps_table(rows: list[dict[str, str]], record: dict[str, Any]) -> str:
    """Markdown: per method, the mean [95% CI] of each metric of the attribution maps."""
    names = MAP_FIELDS[3:]
    table = ["| method | images | " + " | ".join(n.replace("_", " ") for n in names) + " |", "|---|---|" + "---|" * len(names)]
    for method in sorted({r["method"] for r in rows}):
        group = [r for r in rows if r["method"] == method]
        cells = [_map_cell(name, group) for name in names]
        table.append(f"| {method} | {len({r['image'] for r in group})} | " + " | ".join(cells) + " |")
    return (
        "\n## Attribution maps (mean [95% CI]; localisation only where boxes exist)\n\n"
        "Contour and dense EP maps are their binary regions at the benchmark's areas (averaged when several); "
        "contour_map is the importance map of a nested area sweep."
        + _faithfulness_note(rows, record)
        + "\n\n"
        + "\n".join(table)
        + "\n"
    )


def _faithfulness_note(rows: list[dict[str, str]], record: dict[str, Any]) -> str:
    """How the faithfulness correlation of these rows replaced its subsets (from ``run.json``)."""
    if not any(r["faithfulness_correlation"] != "nan" for r in rows):
        return ""
    size, protocol = record.get("faithfulness_subset"), record.get("faithfulness_protocol")
    if protocol == "quantus":
        return f" Faithfulness correlation: 100 subsets of {size} input values each set to the image's minimum (Quantus' protocol)."
    if protocol == "blur":
        return f" Faithfulness correlation: 100 subsets of {size} pixels each replaced by the most blurred image."
    return ""


def stability_table(rows: list[dict[str, str]]) -> str:
    """Markdown: per method and area, the mean [95% CI] IoU of the explanations of each nuisance
    variant with the picture's own, and over all four; the maps' rank correlation beside it."""
    head = " | ".join(f"{k}: IoU" for k in NUISANCES)
    lines = [
        f"| method | area | images | all four: IoU | {head} | map rank correlation (all) | map top-area IoU (all) |",
        "|---|---|---|---|" + "---|" * len(NUISANCES) + "---|---|",
    ]

    def cell(values: list[float], low: float = 0.0) -> str:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return "-"
        mean, lo, hi = interval(values)
        return f"{mean:.3f} [{max(lo, low):.3f}, {min(hi, 1.0):.3f}]" if len(values) > 1 else f"{mean:.3f}"

    for (method, area), group in sorted(_by_method_and_area(rows).items()):
        per = [cell([float(r["iou"]) for r in group if r["nuisance"] == k]) for k in NUISANCES]
        # The picture's mean over the four nuisances, then the interval over pictures.
        by_image: dict[str, list[float]] = defaultdict(list)
        for r in group:
            by_image[r["image"]].append(float(r["iou"]))
        overall = cell([statistics.fmean(v) for v in by_image.values()])
        lines.append(
            f"| {method} | {area} | {len(by_image)} | {overall} | " + " | ".join(per)
            + f" | {cell([float(r['spearman']) for r in group], -1.0)} | {cell([float(r['top_iou']) for r in group])} |"
        )
    return (
        "\n## Stability under nuisance changes\n\n"
        "Each picture is also explained shifted by 4 px right and down, flipped left-right, saved as JPEG at "
        "quality 90, and with Gaussian noise of 2/255; each explanation is carried back to the picture's frame "
        "and compared with the picture's own: IoU of the binary masks (maps: of their top-area binarisation), "
        "mean [95% CI] over pictures. 1 is a method that ignores such changes.\n\n" + "\n".join(lines) + "\n"
    )


def _bounded_cell(values: list[float], low: float, high: float = 1.0) -> str:
    """Mean [95% CI, clipped to ``low``..``high``] of the values that are numbers (how many, when not all)."""
    numbers = [v for v in values if not math.isnan(v)]
    if not numbers:
        return "-"
    mean, lo, hi = interval(numbers)
    cell = f"{mean:.3f} [{max(lo, low):.3f}, {min(hi, high):.3f}]" if len(numbers) > 1 else f"{mean:.3f}"
    return cell + (f" (n={len(numbers)})" if len(numbers) != len(values) else "")


def _sanity_cells(group: list[dict[str, str]], areas: list[str]) -> list[str]:
    """The Spearman cell (once per picture: it does not depend on the area) and an IoU cell per area."""
    spearman = {r["image"]: float(r["spearman"]) for r in group}
    ious = [[float(r["iou"]) for r in group if r["area"] == a] for a in areas]
    return [_bounded_cell(list(spearman.values()), -1.0)] + [_bounded_cell(v, 0.0) if v else "-" for v in ious]


def sanity_tables(rows: list[dict[str, str]]) -> str:
    """Markdown for the model-parameter randomisation test (``sanity.csv`` rows): per method, the
    similarity once every layer is randomised, then a table per method by step, top layer first."""
    areas = sorted({r["area"] for r in rows}, key=float)
    head = "Spearman | " + " | ".join(f"IoU at {a}" for a in areas)
    rule = "---|" * (1 + len(areas))
    by: dict[str, dict[int, list[dict[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by[r["method"]][int(r["step"])].append(r)
    overview = [f"| method | layers | images | {head} |", "|---|---|---|" + rule]
    tables = []
    for method, steps in sorted(by.items()):
        last = max(steps)
        overview.append(f"| {method} | {last} | {len({r['image'] for r in steps[last]})} | "
                        + " | ".join(_sanity_cells(steps[last], areas)) + " |")  # fmt: skip
        lines = [f"| step | down to layer | images | {head} |", "|---|---|---|" + rule]
        for step, group in sorted(steps.items()):
            lines.append(f"| {step} | {group[0]['layer']} | {len({r['image'] for r in group})} | "
                         + " | ".join(_sanity_cells(group, areas)) + " |")  # fmt: skip
        tables.append(f"\n## Model-parameter randomisation: {method}\n\n" + "\n".join(lines) + "\n")
    return (
        "\n## Model-parameter randomisation: everything randomised\n\n"
        "Sanity check of Adebayo et al. (2018): the model's layers (modules with parameters of their own) are "
        "re-initialised from the top (the output) down, cumulatively, and each picture explained again for the same "
        "class with the same settings (first seed). Step k: the top k layers are randomised, down to the layer "
        "named. Similarity to the explanation on the model itself, mean [95% CI] over pictures: Spearman rank "
        "correlation of the maps (left out where a map is constant: n= says how many remain) and IoU of the binary "
        "explanations at each area (two unrelated masks of area a have an IoU of about a / (2 - a)). An "
        "explanation that stays similar once the model is randomised explains the picture, not the model: lower "
        "is better. Below: once every layer is randomised; then each method step by step, from the top layer "
        "down.\n\n" + "\n".join(overview) + "\n" + "".join(tables)
    )


def random_target_table(groups: Groups, likely: float = 0.1) -> str:
    """Markdown for the adversarial-artifact check: per method and area (``groups`` of rows), the
    probability of the random (unpredicted) class on the clean image and on the preserved image (the
    preserve ratio's numerator), and how many regions made it likely (above ``likely``)."""
    lines = [
        f"| method | area | explanations | clean: median | preserved: median | preserved: max | preserved above {likely:g} |",
        "|---|---|---|---|---|---|---|",
    ]
    for (method, area), group in sorted(groups.items()):
        clean = [float(r["clean_probability"]) for r in group]
        kept = [float(r["preserved_probability"]) for r in group]
        above = sum(k > likely for k in kept)
        lines.append(
            f"| {method} | {area} | {len(group)} | {statistics.median(clean):.2g} | {statistics.median(kept):.2g} "
            f"| {max(kept):.3f} | {above} of {len(group)} |"
        )
    return (
        "\n## Adversarial-artifact check (random target)\n\n"
        "Probability of a random class the model does not predict, on the clean image and on the image with "
        "only the explanation's region kept (outside blurred). A region that makes such a class likely is an "
        "adversarial mask, not evidence.\n\n" + "\n".join(lines) + "\n"
    )


def _precisions(record: dict[str, Any]) -> dict[str, str]:
    """The methods that ran the model in another precision than the float32 floor (from ``run.json``)."""
    precisions = {}
    for run in record.get("runs", []):
        for method, opts in (run.get("effective_options") or run.get("options") or {}).items():
            if isinstance(opts, dict) and opts.get("precision", "float32") != "float32":
                precisions[method] = str(opts["precision"])
    return precisions


def speed_table(rows: list[dict[str, str]], floor: dict[str, Any], precisions: dict[str, str] | None = None) -> str:
    """Markdown: per method, seconds and passes per image and the overhead ratio, seconds / (its
    passes x the model's own time per pass from ``floor``, timed in float32); ``precisions``: the
    methods that ran the model in another precision (named in their row)."""
    precisions = precisions or {}
    by: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by[r["method"]].append(r)
    fb_s, f_s = float(floor["forward_backward_s"]), float(floor["forward_s"])
    lines = [
        "| method | images | s / image | fwd+bwd / image | fwd / image | model floor s / image | overhead ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, group in sorted(by.items()):
        areas = len({r["area"] for r in group})
        # Passes are recorded per (image, area); seconds per image (all its areas, one call).
        seconds = statistics.fmean(float(r["seconds_per_image"]) for r in group)
        fb = statistics.fmean(float(r["forward_backward_per_image"]) for r in group) * areas
        f = statistics.fmean(float(r["forward_per_image"]) for r in group) * areas
        floor_s = fb * fb_s + f * f_s
        ratio = f"{seconds / floor_s:.2f}" if floor_s > 0 else "-"
        name = f"{method} ({precisions[method]}; ratio against the float32 floor)" if method in precisions else method
        lines.append(
            f"| {name} | {len({r['image'] for r in group})} | {seconds:.2f} | {fb:.0f} | {f:.0f} | {floor_s:.2f} | {ratio} |"
        )
    layout = "channels-last" if floor.get("channels_last") else "contiguous"
    return (
        "\n## Speed\n\n"
        f"Model floor: {fb_s:.4f} s per image forward+backward, {f_s:.4f} s forward ({floor['device']}, "
        f"{floor.get('threads', '?')} threads, batches of {floor['batch']}, {layout} inputs, measured once at the "
        "start of the run). Overhead ratio = seconds per image / (its passes x those times); 1 is the model alone.\n\n"
        + "\n".join(lines)
        + "\n"
    )
