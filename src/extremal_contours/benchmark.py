"""The benchmark: every method on the same images, through the common interface, resumable.

``run_benchmark`` reads a dataset (see :mod:`extremal_contours.data`), runs each method on batches
of images, scores each explanation at each area with the same model and perturbation, and appends
one CSV row per (method, image, area, seed) as soon as a batch is done, so a re-run continues where
the last one stopped. ``summarise`` turns the rows into Markdown tables (mean, median and a 95%
interval per metric).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import metrics as M
from ._errors import first_line
from .baselines import get_explainer
from .data import input_mask, open_dataset
from .images import ImageError, load_image
from .models import LoadedModel
from .perturbation import Perturbation

__all__ = ["FIELDS", "SEEDED", "BenchmarkConfig", "BenchmarkMismatch", "run_benchmark", "summarise"]

#: Per (method, image, seed): metrics of the attribution map itself.
MAP_FIELDS = [
    "method", "image", "seed", "relevance_mass", "relevance_rank", "pointing_game", "complexity", "sparseness",
    "faithfulness_correlation", "insertion_auc", "deletion_auc",
]  # fmt: skip

#: Methods whose result depends on the seed (the others run once).
SEEDED = ("contour", "contour_map", "rise")
#: Settings that ``run.json`` did not always record, and what every run made before then used.
_BEFORE_RECORDED: dict[str, Any] = {"faithfulness_subset": 224, "faithfulness_protocol": "blur"}

#: Options that make a seed really change the run, for methods that are deterministic by default.
#: EVALUATION.md: run-to-run consistency compares runs whose starts the seed moves (by up to 10% of
#: the image); a method whose seed changes nothing has no consistency to report.
SEEDED_STARTS: dict[str, dict[str, Any]] = {"contour": {"start_jitter": 0.1}, "contour_map": {"start_jitter": 0.1}}

FIELDS = [
    "method", "image", "label", "area", "seed", "visible_area", "clean_probability", "preserve_ratio", "delete_drop",
    "seconds_per_image", "forward_backward_per_image", "forward_per_image", "batch", "pieces", "holes",
    "preserved_probability", "soft_preserve_ratio",
]  # fmt: skip


@dataclass
class BenchmarkConfig:
    data: Path
    methods: Sequence[str]
    out: Path
    areas: Sequence[float] = (0.1,)
    seeds: Sequence[int] = (0,)
    limit: int | None = None
    stride: int = 1
    batch: int = 8
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    resize: str = "center"
    #: Also compute faithfulness correlation and insertion/deletion AUC (about 170 forward passes
    #: per image and method).
    faithfulness: bool = False
    #: Pixels (values, with the "quantus" protocol) per random subset of the faithfulness correlation (Quantus' default 224;
    #: ``docs/BENCHMARKS.md`` section 9g measures larger ones).
    faithfulness_subset: int = 224
    #: How the faithfulness correlation replaces a subset: ``"blur"`` (pixels, all channels, by the
    #: most blurred level of the methods' own perturbation) or ``"quantus"`` (Quantus' defaults:
    #: single values of the C x H x W input, by the image's minimum).
    faithfulness_protocol: str = "blur"
    #: Adversarial-artifact check: explain a seeded random class the model does not predict.
    random_target: bool = False
    #: Stability: explain every picture's nuisance variants too (shifted, flipped, JPEG, noise; see
    #: :mod:`extremal_contours.nuisances`) and compare with its own explanation.
    stability: bool = False
    #: Where the model's weights came from (a path, ``"random"``, or ``None`` for the model's own):
    #: recorded in ``run.json`` and checked when a folder is continued.
    weights: str | None = None


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _append(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    """Append rows to a CSV (made with ``fields`` as header when new). A run cuts a killed run's
    half-written last line at its start (``_drop_partial_line``), before anything appends."""
    new = not path.is_file() or path.stat().st_size == 0
    if not new:
        with path.open(newline="") as handle:
            have = next(csv.reader(handle), None) or []
        missing = [f for f in fields if f not in have]
        if have and missing:
            _widen(path, have + missing)  # a file of an older version: its rows get empty new columns
        fields = (have + missing) if have else fields
    with path.open("w" if new else "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore", restval="")
        if new:
            writer.writeheader()
        writer.writerows(rows)
        handle.flush()


def _widen(path: Path, fields: list[str]) -> None:
    """Rewrite a CSV with more columns (empty in its existing rows), atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(_read_rows(path))
    _write_atomically(path, text.getvalue())


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, so that a killed run leaves
    either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _drop_partial_line(path: Path) -> None:
    """Cut a last line that a killed run left half written (no final newline). Reads the whole file
    only then: a complete file costs one byte."""
    with path.open("rb+") as handle:
        handle.seek(-1, 2)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        handle.truncate(handle.read().rfind(b"\n") + 1)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def run_benchmark(
    config: BenchmarkConfig, loaded: LoadedModel, progress: bool | None = None, log: Callable[[str], None] = print
) -> Path:
    """Run (or continue) a benchmark; returns the output folder."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    rank, world = distributed_rank()
    # Under torchrun each rank appends to its own files under shards/; rank 0 merges them at the end.
    part = out if world == 1 else out / "shards" / f"rank{rank}"
    part.mkdir(parents=True, exist_ok=True)
    rows_path, iou_path, errors_path = part / "per_image.csv", part / "consistency.csv", part / "errors.csv"
    maps_path, stability_path = part / "maps.csv", part / "stability.csv"
    fixed = _check_run(out, config, loaded, log)  # every rank, before any row is written
    dataset = open_dataset(config.data)  # DatasetError: a damaged annotation file, one line
    if rank == 0:
        _record_run(out, config, fixed, str(next(iter(loaded.model.parameters()), torch.empty(0)).device))
    samples = list(dataset)[:: max(1, config.stride)]
    if config.limit is not None:
        samples = samples[: config.limit]
    parts = [out, *sorted(p for p in (out / "shards").glob("rank*") if p.is_dir())] if (out / "shards").is_dir() else [out]
    if rank == 0:  # a killed run's half-written last rows go before anything reads them
        for p in parts:
            for name in ("per_image.csv", "maps.csv", "consistency.csv", "errors.csv", "stability.csv"):
                if (p / name).is_file() and (p / name).stat().st_size:
                    _drop_partial_line(p / name)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    done = {(r["method"], r["image"], r["area"], r["seed"]) for p in parts for r in _read_rows(p / "per_image.csv") if r.get("preserve_ratio")}
    old_maps = [r for p in parts for r in _read_rows(p / "maps.csv") if r.get("seed")]
    mapped = {(r["method"], r["image"], r["seed"]) for r in old_maps}
    steady = {(r["method"], r["image"], r["area"]) for p in parts for r in _read_rows(p / "stability.csv") if r.get("iou")}

    def method_done(method: str, name: str) -> bool:
        seeds = config.seeds if method in SEEDED else config.seeds[:1]
        if config.stability and not all((method, name, _fmt(a)) in steady for a in config.areas):
            return False
        return all((method, name, _fmt(a), str(s)) in done for a in config.areas for s in seeds)

    def complete(name: str) -> bool:
        return all(method_done(m, name) for m in config.methods)

    options = {m: dict(config.options.get(m, {})) for m in config.methods}
    if len(config.seeds) > 1:
        for method in config.methods:
            seeded = {k: v for k, v in SEEDED_STARTS.get(method, {}).items() if k not in options[method]}
            if seeded:
                options[method].update(seeded)
                text = ", ".join(f"{k}={v}" for k, v in seeded.items())
                log(f"{method}: {len(config.seeds)} seeds, so each seed moves the starts ({text}) and run-to-run IoU means something; one seed runs the deterministic default")
    if rank == 0 and any(options[m] != dict(config.options.get(m, {})) for m in config.methods):
        record = json.loads((out / "run.json").read_text())
        record["runs"][-1]["effective_options"] = options  # what the methods really ran with
        _write_json(out / "run.json", record)
    if config.faithfulness and rank == 0:
        without = [r for r in old_maps if r.get("faithfulness_correlation") in ("", "nan")]
        if without:
            log(f"note: {len(without)} rows of maps.csv were made without --faithfulness and keep no faithfulness values "
                "(the summary says n=...); use another --out to compute them for every picture")  # fmt: skip

    def skip(name: str, message: str) -> None:  # a bad picture, box or label: recorded, and the run goes on
        _append(errors_path, ["image", "error"], [{"image": name, "error": message}])
        log(f"error: {name}: {message}")

    todo = [s for s in samples if not complete(s.name)]  # pictures that failed before are tried again
    log(f"{len(samples)} images, {len(samples) - len(todo)} already done, {len(todo)} to run -> {out}" + (f" ({world} processes)" if world > 1 and rank == 0 else ""))
    todo = todo[rank::world]
    model = loaded.model
    bar = tqdm(total=len(todo), desc="benchmark", unit="image", disable=None if progress is None else not progress)
    for start in range(0, len(todo), config.batch):
        group = todo[start : start + config.batch]
        pictures, kept, regions = [], [], []
        for sample in group:
            try:
                image, _ = load_image(sample.path)
                pictures.append(loaded.preprocess(image, config.resize))
                kept.append(sample)
                region = None
                if sample.boxes:
                    region = torch.from_numpy(input_mask(sample, image.size, lambda im: loaded.resize(im, config.resize)))
                regions.append(region)
            except (ImageError, ValueError, TypeError, IndexError) as exc:  # a bad picture or box: skip it
                skip(sample.name, first_line(exc))
        if not kept:
            bar.update(len(group))
            continue
        device = next(iter(model.parameters())).device
        x = torch.cat(pictures).to(device)
        if rank == 0 and not (out / "speed.json").is_file():
            _write_json(out / "speed.json", model_floor(model, x[:1]))
        with torch.no_grad():
            logits = model(x)
            predicted, logits_width = logits.argmax(1), logits.shape[1]
        bad = [i for i, s in enumerate(kept) if s.label is not None and not 0 <= s.label < logits_width]
        for i in bad:
            skip(kept[i].name, f"label {kept[i].label} is outside the model's {logits_width} classes")
        if bad:
            keep = [i for i in range(len(kept)) if i not in bad]
            kept, regions = [kept[i] for i in keep], [regions[i] for i in keep]
            x, predicted = x[keep], predicted[keep]
            if not kept:
                bar.update(len(group))
                continue
        classes = torch.tensor([s.label if s.label is not None else int(p) for s, p in zip(kept, predicted, strict=True)], device=device)
        if config.random_target:
            classes = torch.tensor([_random_class(s.name, int(p), logits_width) for s, p in zip(kept, predicted, strict=True)], device=device)
        rows: list[dict[str, Any]] = []
        ious: list[dict[str, Any]] = []
        map_rows: list[dict[str, Any]] = []
        stable_rows: list[dict[str, Any]] = []
        for method in config.methods:
            need = [i for i, sample in enumerate(kept) if not method_done(method, sample.name)]
            if not need:
                continue
            run = [kept[i] for i in need]
            x_run, classes_run = x[need], classes[need]
            perturb = Perturbation(x_run, "blur")
            seeds = config.seeds if method in SEEDED else config.seeds[:1]
            explainer = get_explainer(method, model, **options[method])
            per_seed_masks = []
            for seed in seeds:
                kwargs: dict[str, Any] = {}
                if explainer.uses_masks:
                    kwargs["areas"] = tuple(config.areas)
                if method in SEEDED:
                    kwargs["seed"] = seed
                started = time.perf_counter()
                attribution = explainer.attribute(x_run, classes_run, **kwargs)
                seconds = time.perf_counter() - started
                masks = []
                for j, area in enumerate(config.areas):
                    mask = attribution.masks[:, j] if attribution.masks is not None else M.top_fraction_mask(attribution.maps, area)
                    masks.append(mask)
                    fid = M.fidelity(model, x_run, mask.to(device), classes_run, perturb)
                    # What a mask method optimised, before it was made binary (dense EP's soft
                    # borders keep part of the context the binary mask blurs away).
                    soft = None
                    if attribution.soft_masks is not None:
                        soft_masks = attribution.soft_masks[:, j].to(device)
                        soft = M.fidelity(model, x_run, soft_masks, classes_run, perturb, clean=fid["clean"])
                    pieces, holes = M.pieces(mask), M.holes(mask)
                    for i, sample in enumerate(run):
                        rows.append(
                            {
                                "method": method,
                                "image": sample.name,
                                "label": int(classes_run[i]),
                                "area": _fmt(area),
                                "seed": seed,
                                "visible_area": _fmt(float(mask[i].float().mean())),
                                "clean_probability": _fmt(float(fid["clean"][i])),
                                "preserve_ratio": _fmt(float(fid["preserve_ratio"][i])),
                                "delete_drop": _fmt(float(fid["delete_drop"][i])),
                                "seconds_per_image": _fmt(seconds / len(run)),
                                "forward_backward_per_image": _fmt(attribution.forward_backward / len(run) / len(config.areas)),
                                "forward_per_image": _fmt(attribution.forward / len(run) / len(config.areas)),
                                "batch": len(run),
                                "pieces": int(pieces[i]),
                                "holes": int(holes[i]),
                                "preserved_probability": _fmt(float(fid["preserve"][i])),
                                "soft_preserve_ratio": _fmt(float(soft["preserve_ratio"][i])) if soft is not None else "",
                            }
                        )
                per_seed_masks.append(torch.stack(masks, 1))  # (N, A, 1, H, W)
                if config.stability and seed == seeds[0]:
                    stable_rows += _stability_rows(explainer, attribution, x_run, classes_run, kwargs, run, seed, config, loaded)
                map_rows += _map_metrics(method, seed, run, [regions[i] for i in need], attribution.maps, model, x_run, classes_run, config)
            if len(per_seed_masks) > 1:
                stacked = torch.stack(per_seed_masks)  # (R, N, A, 1, H, W)
                for j, area in enumerate(config.areas):
                    value = M.mean_pairwise_iou(stacked[:, :, j])
                    ious += [
                        {"method": method, "image": s.name, "area": _fmt(area), "runs": len(seeds), "iou": _fmt(float(value[i]))}
                        for i, s in enumerate(run)
                    ]
        # Rows already written (an area or seed added to a continued folder re-runs the picture): kept once.
        rows = [r for r in rows if (r["method"], r["image"], r["area"], str(r["seed"])) not in done]
        map_rows = [r for r in map_rows if (r["method"], r["image"], str(r["seed"])) not in mapped]
        stable_rows = [r for r in stable_rows if (r["method"], r["image"], r["area"]) not in steady]
        if stable_rows:
            _append(stability_path, STABILITY_FIELDS, stable_rows)
        _append(rows_path, FIELDS, rows)
        if map_rows:
            _append(maps_path, MAP_FIELDS, map_rows)
        if ious:
            _append(iou_path, ["method", "image", "area", "runs", "iou"], ious)
        bar.update(len(group))
    bar.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        if rank == 0:
            merge_shards(out)
            _write_summary(out)
        dist.barrier()
        return out
    merge_shards(out)  # what a killed sharded run left behind
    _write_summary(out)
    return out


FLOOR_BATCH = 4


def model_floor(model: Any, x: torch.Tensor, batch: int = FLOOR_BATCH) -> dict[str, Any]:
    """Seconds per image of the model's own forward+backward (gradient to the input) and forward,
    timed on a batch of ``batch`` perturbed copies of ``x`` in the layout the explainers feed it:
    the floor that a method's seconds are divided by in the speed table."""
    from .modelcall import eval_mode, wants_channels_last
    from .speed import time_passes

    layout = wants_channels_last(None, x.device)
    with eval_mode(model):
        fb = time_passes(model, x, batch, True, channels_last=layout) / batch
        f = time_passes(model, x, batch, False, channels_last=layout) / batch
    return {
        "forward_backward_s": fb,
        "forward_s": f,
        "batch": batch,
        "input": list(x.shape[1:]),
        "channels_last": layout,
        "device": str(x.device),
        "threads": torch.get_num_threads(),
    }


class BenchmarkEmpty(ValueError):
    """A run that has written no rows at all (every picture failed, or nothing was asked)."""


class BenchmarkMismatch(ValueError):
    """``out`` already holds rows made with other fixed settings (model, weights, target, resize)."""


def _check_run(out: Path, config: BenchmarkConfig, loaded: LoadedModel, log: Callable[[str], None]) -> dict[str, Any]:
    """This run's fixed settings (those that change what a row means: a folder holds rows of one
    kind only), checked against ``out/run.json`` (read only)."""
    fixed = {
        "model": loaded.name,
        "weights": config.weights,
        "random_target": bool(config.random_target),
        "resize": config.resize,
        "faithfulness_subset": config.faithfulness_subset,
        "faithfulness_protocol": config.faithfulness_protocol,
    }
    path = out / "run.json"
    has_rows = any(p.is_file() and p.stat().st_size for p in [out / "per_image.csv", *out.glob("shards/rank*/per_image.csv")])
    if not has_rows and (out / "speed.json").is_file():
        (out / "speed.json").unlink(missing_ok=True)  # measured for a run that left no rows: maybe another model; measured again
    if path.is_file() and has_rows:  # a run that wrote no row (all failed, a bad option) binds nothing
        try:
            record = json.loads(path.read_text())
        except ValueError:
            raise BenchmarkMismatch(f"{path} is damaged; its settings cannot be checked (remove it to continue, or use another --out)") from None
        for key, value in fixed.items():
            # Folders made before a setting existed were made with its only value then.
            made = record.get(key, _BEFORE_RECORDED.get(key, value))
            if made != value:
                raise BenchmarkMismatch(f"{out} holds rows made with {key}={made!r}, not {value!r}; use another --out")
    elif (out / "per_image.csv").is_file():
        log(f"warning: {out} has rows but no run.json (an older version wrote it); its settings cannot be checked")
    return fixed


def _record_run(out: Path, config: BenchmarkConfig, fixed: dict[str, Any], device: str = "cpu") -> None:
    """Append this run's settings and library versions to ``out/run.json`` (a folder continued
    several times records each invocation)."""
    import datetime

    from .versions import library_versions

    path = out / "run.json"
    try:
        record = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:  # damaged, and no rows depend on it (_check_run refuses it otherwise)
        record = {}
    record.update(fixed)
    record.setdefault("runs", []).append(
        {
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "data": str(Path(config.data).resolve()),
            "device": device,
            "methods": list(config.methods),
            "areas": list(config.areas),
            "seeds": list(config.seeds),
            "limit": config.limit,
            "stride": config.stride,
            "batch": config.batch,
            "options": {m: dict(v) for m, v in config.options.items()},
            "faithfulness": bool(config.faithfulness),
            "threads": torch.get_num_threads(),
            "versions": library_versions(),
        }
    )
    _write_json(path, record)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    _write_atomically(path, json.dumps(data, indent=1, default=str))


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


def _write_summary(out: Path) -> None:
    """``summary.md`` and ``profile.png`` (fidelity against area per method) from the CSVs."""
    if not (out / "per_image.csv").is_file():
        errors = out / "errors.csv"
        why = f"; see {errors}" if errors.is_file() else " (nothing to run, or no method ran)"
        raise BenchmarkEmpty(f"no results in {out} yet: every picture failed or none was run{why}")
    rows = _read_rows(out / "per_image.csv")
    (out / "summary.md").write_text(summarise(out, rows))
    if rows:
        from .figures import method_profiles

        method_profiles(rows, out / "profile.png")


def distributed_rank() -> tuple[int, int]:
    """``(rank, world)`` under ``torchrun`` (a gloo or NCCL process group is started), else ``(0, 1)``."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


_KEYS = {
    "per_image.csv": ("method", "image", "area", "seed"),
    "stability.csv": ("method", "image", "area", "nuisance"),
    "consistency.csv": ("method", "image", "area"),
    "maps.csv": ("method", "image", "seed"),
    "errors.csv": ("image",),
}


def merge_shards(out: Path) -> None:
    """Append every shard's rows missing from the main CSVs (by key), then remove the shards."""
    import shutil

    shards = sorted(p for p in (out / "shards").glob("rank*") if p.is_dir()) if (out / "shards").is_dir() else []
    if not shards:
        return
    for name, key in _KEYS.items():
        seen = {tuple(r[c] for c in key) for r in _read_rows(out / name)}
        new = []
        for shard in shards:
            for r in _read_rows(shard / name):
                k = tuple(r[c] for c in key)
                if k not in seen:
                    seen.add(k)
                    new.append(r)
        if new:  # _append keeps the main file's columns and adds any the shards have beyond them
            _append(out / name, list(dict.fromkeys(f for r in new for f in r if f is not None)), new)
    for shard in shards:
        shutil.rmtree(shard)


#: Per (method, image, area, nuisance): agreement of the explanation of a nuisance variant with the
#: picture's own (see :func:`extremal_contours.metrics.stability`).
STABILITY_FIELDS = ["method", "image", "area", "seed", "nuisance", "iou", "spearman", "top_iou"]


def _stability_rows(
    explainer: Any,
    attribution: Any,
    x: torch.Tensor,
    classes: torch.Tensor,
    kwargs: dict[str, Any],
    run: list[Any],
    seed: int,
    config: BenchmarkConfig,
    loaded: LoadedModel,
) -> list[dict[str, Any]]:
    """Explain each nuisance variant of the pictures ``x`` (same classes, same options) and compare
    its masks and maps, carried back to the picture's frame, with ``attribution``'s."""
    import zlib

    from . import nuisances as Nu

    seeds = [zlib.crc32(s.name.encode()) for s in run]
    out = []
    for kind in Nu.NUISANCES:
        changed = Nu.apply(x, kind, mean=loaded.mean, std=loaded.std, seeds=seeds)
        other = explainer.attribute(changed, classes, **kwargs)
        window = Nu.common_window(kind, x.shape[-2], x.shape[-1])
        other_maps = Nu.carry_back(other.maps, kind)
        for j, area in enumerate(config.areas):
            mine = attribution.masks[:, j] if attribution.masks is not None else M.top_fraction_mask(attribution.maps, area)
            theirs = other.masks[:, j] if other.masks is not None else M.top_fraction_mask(other.maps, area)
            values = M.stability(mine.cpu(), Nu.carry_back(theirs.cpu(), kind), attribution.maps, other_maps, area, window)
            out += [
                {"method": attribution.method, "image": s.name, "area": _fmt(area), "seed": seed, "nuisance": kind}
                | {k: _fmt(float(v[i])) for k, v in values.items()}
                for i, s in enumerate(run)
            ]
    return out


def stability_table(rows: list[dict[str, str]]) -> str:
    """Markdown: per method and area, the mean [95% CI] IoU of the explanations of each nuisance
    variant with the picture's own, and over all four; the maps' rank correlation beside it."""
    from .nuisances import NUISANCES

    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["area"])].append(r)
    head = " | ".join(f"{k}: IoU" for k in NUISANCES)
    lines = [
        f"| method | area | images | all four: IoU | {head} | map rank correlation (all) | map top-area IoU (all) |",
        "|---|---|---|---|" + "---|" * len(NUISANCES) + "---|---|",
    ]

    def cell(values: list[float], low: float = 0.0) -> str:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return "-"
        mean, lo, hi = _interval(values)
        return f"{mean:.3f} [{max(lo, low):.3f}, {min(hi, 1.0):.3f}]" if len(values) > 1 else f"{mean:.3f}"

    for (method, area), group in sorted(groups.items()):
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


def _random_class(name: str, predicted: int, classes: int) -> int:
    """A class other than ``predicted``, fixed by the image name (the same in every run)."""
    import zlib

    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return (predicted + 1 + int(torch.randint(classes - 1, (1,), generator=g))) % classes


def _map_metrics(
    method: str,
    seed: int,
    run: list[Any],
    regions: list[torch.Tensor | None],
    maps: torch.Tensor,
    model: Any,
    x: torch.Tensor,
    classes: torch.Tensor,
    config: BenchmarkConfig,
) -> list[dict[str, Any]]:
    """Localisation (where boxes exist), structure and optionally faithfulness of the maps."""
    maps = maps.float().cpu()
    values: dict[str, list[float]] = {
        "complexity": M.complexity(maps).tolist(),
        "sparseness": M.sparseness(maps).tolist(),
    }
    nan = [math.nan] * len(run)
    for name in ("relevance_mass", "relevance_rank", "pointing_game"):
        values[name] = list(nan)
    have = [i for i, r in enumerate(regions) if r is not None and bool(r.any())]
    if have:
        gt = torch.stack([regions[i] for i in have])[:, None]
        sub = maps[have]
        for name, fn in (("relevance_mass", M.relevance_mass), ("relevance_rank", M.relevance_rank), ("pointing_game", M.pointing_game)):
            for k, v in zip(have, fn(sub, gt).tolist(), strict=True):
                values[name][k] = v
    for name in ("faithfulness_correlation", "insertion_auc", "deletion_auc"):
        values[name] = list(nan)
    if config.faithfulness:
        device = x.device
        values["faithfulness_correlation"] = M.faithfulness_correlation(
            model, x, maps.to(device), classes, subset=config.faithfulness_subset, seed=seed,
            **M.FAITHFULNESS_PROTOCOLS[config.faithfulness_protocol],
        ).tolist()
        auc = M.insertion_deletion(model, x, maps.to(device), classes)
        values["insertion_auc"] = auc["insertion"].tolist()
        values["deletion_auc"] = auc["deletion"].tolist()
    return [
        {"method": method, "image": sample.name, "seed": seed} | {k: _fmt(v[i]) for k, v in values.items()}
        for i, sample in enumerate(run)
    ]


#: Ranges of the map metrics: their intervals are clipped to them.
METRIC_RANGE = {
    "relevance_mass": (0.0, 1.0), "relevance_rank": (0.0, 1.0), "pointing_game": (0.0, 1.0), "sparseness": (0.0, 1.0),
    "faithfulness_correlation": (-1.0, 1.0), "insertion_auc": (0.0, 1.0), "deletion_auc": (0.0, 1.0),
}  # fmt: skip


def _interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and a normal-approximation 95% interval of the mean."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _shape_table(groups: dict[tuple[str, str], list[dict[str, str]]]) -> str:
    """Markdown: per method and area, how many pieces and holes its binary masks have (rows written
    before these columns existed are left out)."""
    lines = [
        "| method | area | masks | pieces: mean | max | one piece | holes: mean | no hole |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (method, area), group in sorted(groups.items()):
        known = [r for r in group if r.get("pieces") not in (None, "")]
        if not known:
            continue
        pieces = [int(r["pieces"]) for r in known]
        holes = [int(r["holes"]) for r in known]
        lines.append(
            f"| {method} | {area} | {len(known)} | {statistics.fmean(pieces):.1f} | {max(pieces)} "
            f"| {sum(p == 1 for p in pieces)} of {len(known)} | {statistics.fmean(holes):.1f} "
            f"| {sum(h == 0 for h in holes)} of {len(known)} |"
        )
    if len(lines) == 2:
        return ""
    return (
        "\n## Shape of the binary masks\n\n"
        "Pieces: separate 8-connected parts of the mask at the benchmark's area; holes: parts of the rest of "
        "the image enclosed by it. One piece and no hole is a simply connected region.\n\n" + "\n".join(lines) + "\n"
    )


def random_target_table(groups: dict[tuple[str, str], list[dict[str, str]]], likely: float = 0.1) -> str:
    """Markdown for the adversarial-artifact check: per method and area (``groups`` of rows), the
    probability of the random (unpredicted) class on the clean image and on the preserved image (the
    preserve ratio's numerator), and how many regions made it likely (above ``likely``)."""
    lines = [
        f"| method | area | explanations | clean: median | preserved: median | preserved: max | preserved above {likely:g} |",
        "|---|---|---|---|---|---|---|",
    ]
    for (method, area), group in sorted(groups.items()):
        clean = [float(r["clean_probability"]) for r in group]
        # The probability itself where recorded; rows of older versions: ratio x clean.
        kept = [
            float(r["preserved_probability"]) if r.get("preserved_probability") else float(r["preserve_ratio"]) * c
            for r, c in zip(group, clean, strict=True)
        ]
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


def _faithfulness_note(rows: list[dict[str, str]], record: dict[str, Any]) -> str:
    """How the faithfulness correlation of these rows replaced its subsets (from ``run.json``)."""
    if not any(r.get("faithfulness_correlation") not in (None, "", "nan") for r in rows):
        return ""
    size = record.get("faithfulness_subset", _BEFORE_RECORDED["faithfulness_subset"])
    if record.get("faithfulness_protocol", _BEFORE_RECORDED["faithfulness_protocol"]) == "quantus":
        return f" Faithfulness correlation: 100 subsets of {size} input values each set to the image's minimum (Quantus' protocol)."
    return f" Faithfulness correlation: 100 subsets of {size} pixels each replaced by the most blurred image."


def summarise(out: Path, rows: list[dict[str, str]] | None = None, random_target: bool | None = None) -> str:
    """Markdown tables from ``per_image.csv`` (its ``rows`` when already read) and, where they
    exist, ``consistency.csv`` and ``maps.csv``; the adversarial-artifact table for a
    ``random_target`` run (read from ``run.json`` when ``None``)."""
    if rows is None:
        rows = _read_rows(out / "per_image.csv")
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["area"])].append(r)
    lines = [
        "| method | area | images | visible area | preserve ratio: median | mean [95% CI] | soft mask: median "
        "| delete drop: mean | s / image | fwd+bwd / image | fwd / image |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, area), group in sorted(groups.items()):
        pres = [float(r["preserve_ratio"]) for r in group]
        mean, lo, hi = _interval(pres)
        soft = [float(r["soft_preserve_ratio"]) for r in group if r.get("soft_preserve_ratio")]
        soft_cell = f"{statistics.median(soft):.3f}" if soft else "-"
        if soft and len(soft) < len(group):  # rows of an older version lack it
            soft_cell += f" ({len(soft)} of {len(group)})"
        lines.append(
            f"| {method} | {area} | {len({r['image'] for r in group})} | {statistics.fmean(float(r['visible_area']) for r in group):.3f} "
            f"| {statistics.median(pres):.3f} | {mean:.3f} [{lo:.3f}, {hi:.3f}] | {soft_cell} "
            f"| {statistics.fmean(float(r['delete_drop']) for r in group):.3f} "
            f"| {statistics.fmean(float(r['seconds_per_image']) for r in group):.2f} "
            f"| {statistics.fmean(float(r['forward_backward_per_image']) for r in group):.0f} "
            f"| {statistics.fmean(float(r['forward_per_image']) for r in group):.0f} |"
        )
    text = (
        "## Fidelity and cost\n\n"
        "Preserve ratio: the binary mask's (what the user is shown). Soft mask: the preserve ratio of the mask "
        "the method optimised, before it was made binary (mask methods only).\n\n" + "\n".join(lines) + "\n"
    )
    text += _shape_table(groups)
    iou_path = out / "consistency.csv"
    if iou_path.is_file():
        ious = _read_rows(iou_path)
        by: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r in ious:
            by[(r["method"], r["area"])].append(float(r["iou"]))
        table = ["| method | area | images | runs | mean pairwise IoU [95% CI] |", "|---|---|---|---|---|"]
        for (method, area), values in sorted(by.items()):
            mean, lo, hi = _interval(values)
            runs = next(r["runs"] for r in ious if r["method"] == method and r["area"] == area)
            table.append(f"| {method} | {area} | {len(values)} | {runs} | {mean:.3f} [{lo:.3f}, {hi:.3f}] |")
        text += "\n## Run-to-run consistency\n\n" + "\n".join(table) + "\n"
    run_path = out / "run.json"
    record = json.loads(run_path.read_text()) if run_path.is_file() else {}
    maps_path = out / "maps.csv"
    if maps_path.is_file():
        rows_m = _read_rows(maps_path)
        names = MAP_FIELDS[3:]
        table = ["| method | images | " + " | ".join(n.replace("_", " ") for n in names) + " |", "|---|---|" + "---|" * len(names)]
        for method in sorted({r["method"] for r in rows_m}):
            group = [r for r in rows_m if r["method"] == method]
            cells = []
            for name in names:
                vals = [float(r[name]) for r in group if r[name] not in ("", "nan")]
                vals = [v for v in vals if not math.isnan(v)]
                if not vals:
                    cells.append("-")
                    continue
                mean, lo, hi = _interval(vals)
                low, high = METRIC_RANGE.get(name, (-math.inf, math.inf))  # a 0/1 score's interval stays in [0, 1]
                lo, hi = max(lo, low), min(hi, high)
                cell = f"{mean:.3f} [{lo:.3f}, {hi:.3f}]" if len(vals) > 1 else f"{mean:.3f}"
                if len(vals) != len(group):  # computed on part of the rows only (e.g. boxes, or --faithfulness added later)
                    cell += f" (n={len(vals)})"
                cells.append(cell)
            table.append(f"| {method} | {len({r['image'] for r in group})} | " + " | ".join(cells) + " |")
        text += (
            "\n## Attribution maps (mean [95% CI]; localisation only where boxes exist)\n\n"
            "Contour and dense EP maps are their binary regions at the benchmark's areas (averaged when several); "
            "contour_map is the importance map of a nested area sweep."
            + _faithfulness_note(rows_m, record)
            + "\n\n"
            + "\n".join(table)
            + "\n"
        )
    stability_path = out / "stability.csv"
    if stability_path.is_file():
        text += stability_table(_read_rows(stability_path))
    if random_target is None:
        random_target = bool(record.get("random_target"))
    if random_target and rows:
        text += random_target_table(groups)
    speed_path = out / "speed.json"
    if speed_path.is_file() and rows:
        precisions = {}  # methods run in another precision than the float32 floor
        for run in record.get("runs", []):
            for method, opts in (run.get("effective_options") or run.get("options") or {}).items():
                if isinstance(opts, dict) and opts.get("precision", "float32") != "float32":
                    precisions[method] = str(opts["precision"])
        text += speed_table(rows, json.loads(speed_path.read_text()), precisions)
    return text
