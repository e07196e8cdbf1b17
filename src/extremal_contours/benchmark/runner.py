"""The benchmark's loop: batches of pictures, every method on each batch, rows appended per batch.

``run_benchmark`` reads a dataset (see :mod:`extremal_contours.data`), runs each method on batches
of images, scores each explanation at each area with the same model and perturbation, and appends
one CSV row per (method, image, area, seed) as soon as a batch is done, so a re-run continues where
the last one stopped (with ``sanity``, also the model-parameter randomisation test of each method's
first-seed explanations, ``sanity.csv``). Under torchrun each process takes its share of the pictures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._errors import first_line
from ..baselines import get_explainer
from ..data import Sample, input_mask, open_dataset
from ..distributed import join, leave, on_rank_zero
from ..images import ImageError, load_image
from ..models import LoadedModel
from ..nuisances import NUISANCES
from ..perturbation import Perturbation
from ..sanity import step_plan
from ..speed import model_floor
from .config import SEEDED, BenchmarkConfig, method_options, seeds_of
from .measure import Call, consistency_rows, fidelity_rows, map_rows, random_class, sanity_rows, stability_rows
from .overlays import save_overlays
from .report import write_summary
from .rows import (
    CONSISTENCY,
    ERRORS,
    MAPS,
    PER_IMAGE,
    SANITY,
    STABILITY,
    Table,
    Written,
    append_rows,
    fmt,
    merge_shards,
    read_table,
    repair,
    shard_folder,
    write_json,
)  # fmt: skip
from .runrecord import check_run, record_options, record_run

__all__ = ["BatchRunner", "run_benchmark"]


def run_benchmark(
    config: BenchmarkConfig, loaded: LoadedModel, progress: bool | None = None, log: Callable[[str], None] = print
) -> Path:
    """Run (or continue) a benchmark; returns the output folder."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    world = join()
    # Under torchrun each rank appends to its own files under shards/; rank 0 merges them at the end.
    part = out if not world.sharded else shard_folder(out, world.rank)
    part.mkdir(parents=True, exist_ok=True)
    fixed = check_run(out, config, loaded, log)  # every rank, before any row is written
    dataset = open_dataset(config.data)  # DatasetError: a damaged annotation file, one line
    if world.leads:
        record_run(out, config, fixed, str(next(iter(loaded.model.parameters()), torch.empty(0)).device))
    samples = list(dataset)[:: max(1, config.stride)][: config.limit]
    # A killed run's half-written last rows go before anything reads them.
    on_rank_zero(world, lambda: repair(out), after_all=False)
    runner = BatchRunner(config, loaded, out, part, method_options(config, log), leads=world.leads, log=log)
    if world.leads:
        record_options(out, config, runner.options)
        if config.faithfulness:
            _note_maps_without_faithfulness(out, log)
    todo = [s for s in samples if not runner.complete(s.name)]  # pictures that failed before are tried again
    processes = f" ({world.size} processes)" if world.sharded and world.leads else ""
    log(f"{len(samples)} images, {len(samples) - len(todo)} already done, {len(todo)} to run -> {out}{processes}")
    runner.run(todo[world.rank :: world.size], progress)
    on_rank_zero(world, lambda: _finish(out))
    leave(world)
    return out


def _finish(out: Path) -> None:
    merge_shards(out)  # a sharded run's shards, or what a killed one left behind
    write_summary(out)


def _note_maps_without_faithfulness(out: Path, log: Callable[[str], None]) -> None:
    without = [r for r in read_table(out, MAPS) if r["faithfulness_correlation"] == "nan"]
    if without:
        log(f"note: {len(without)} rows of maps.csv were made without --faithfulness and keep no faithfulness values "
            "(the summary says n=...); use another --out to compute them for every picture")  # fmt: skip


@dataclass(frozen=True)
class Batch:
    """Pictures that loaded and have a class the model knows: the input ``x`` (on the model's
    device), their boxes as masks on the input (``None`` without boxes) and the classes explained."""

    samples: list[Sample]
    x: Tensor
    regions: list[Tensor | None]
    classes: Tensor


@dataclass(frozen=True)
class Overlays:
    """One method's binary masks ``(N, A, 1, H, W)`` of its first seed on the (normalised) pictures
    ``x``, to draw once their rows are written."""

    method: str
    samples: list[Sample]
    x: Tensor
    masks: Tensor


class BatchRunner:
    """Runs every method on batches of pictures and appends the rows the folder lacks.

    ``out`` is the benchmark folder (what it holds counts as done), ``part`` where this process
    appends (``out`` or its shard), ``options`` each method's options; ``leads``: this process
    measures the model's floor (``speed.json``)."""

    def __init__(
        self,
        config: BenchmarkConfig,
        loaded: LoadedModel,
        out: Path,
        part: Path,
        options: dict[str, dict[str, Any]],
        *,
        leads: bool = True,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config, self.loaded, self.out, self.part = config, loaded, out, part
        self.options, self.leads, self.log = options, leads, log
        self.written = Written(out)
        #: The randomisation test's steps, as ``sanity.csv`` names them (layers randomised), if asked.
        self.sanity_steps = [step for step, _ in step_plan(loaded.model, config.sanity_steps)] if config.sanity else []

    def sanity_done(self, method: str, name: str) -> bool:
        """Whether the folder holds every ``sanity.csv`` row this run asks of ``method`` for ``name``."""
        areas = [fmt(a) for a in self.config.areas]
        return all(self.written.has(SANITY, method, name, a, k) for a in areas for k in self.sanity_steps)

    def method_done(self, method: str, name: str) -> bool:
        """Whether the folder holds every row of ``method`` for the picture ``name``."""
        areas = [fmt(a) for a in self.config.areas]
        if not self.sanity_done(method, name):
            return False
        if self.config.stability and not all(
            self.written.has(STABILITY, method, name, a, k) for a in areas for k in NUISANCES
        ):
            return False
        return all(self.written.has(PER_IMAGE, method, name, a, s) for a in areas for s in seeds_of(self.config, method))

    def complete(self, name: str) -> bool:
        """Whether every method is done for the picture ``name``."""
        return all(self.method_done(m, name) for m in self.config.methods)

    def skip(self, name: str, message: str) -> None:
        """A bad picture, box or label: recorded in ``errors.csv`` and logged, and the run goes on."""
        append_rows(self.part / ERRORS.name, ERRORS.fields, [{"image": name, "error": message}])
        self.log(f"error: {name}: {message}")

    def run(self, todo: Sequence[Sample], progress: bool | None = None) -> None:
        """Every batch of ``todo``, with a progress bar (``None``: on a terminal)."""
        bar = tqdm(total=len(todo), desc="benchmark", unit="image", disable=None if progress is None else not progress)
        for start in range(0, len(todo), self.config.batch):
            group = todo[start : start + self.config.batch]
            self.run_batch(group)
            bar.update(len(group))
        bar.close()

    def run_batch(self, group: Sequence[Sample]) -> None:
        """Every method on the pictures of ``group``; their rows appended at the end."""
        batch = self._load(group)
        if batch is None:
            return
        found: dict[str, list[dict[str, Any]]] = {t.name: [] for t in (PER_IMAGE, MAPS, STABILITY, CONSISTENCY, SANITY)}
        drawn: list[Overlays] = []
        for method in self.config.methods:
            self._run_method(batch, method, found, drawn)
        # Rows already written (an area or seed added to a continued folder re-runs the picture): kept once.
        for table in (STABILITY, SANITY, PER_IMAGE, MAPS, CONSISTENCY):
            self._append(table, found[table.name])
        for overlays in drawn:
            self._save_overlays(overlays)

    def _save_overlays(self, overlays: Overlays) -> None:
        """The small overlay pictures of one method's first-seed masks (for the HTML report)."""
        mean = torch.tensor(self.loaded.mean, device=overlays.x.device)[:, None, None]
        std = torch.tensor(self.loaded.std, device=overlays.x.device)[:, None, None]
        names = [s.name for s in overlays.samples]
        save_overlays(self.out, overlays.method, names, overlays.x * std + mean, overlays.masks, self.config.areas)

    def _append(self, table: Table, rows: list[dict[str, Any]]) -> None:
        new = self.written.new(table, rows)
        if new:
            append_rows(self.part / table.name, table.fields, new)

    def _load(self, group: Sequence[Sample]) -> Batch | None:
        """The pictures of ``group`` that load, with a label the model has (the others skipped)."""
        pictures, kept, regions = [], [], []
        for sample in group:
            try:
                image, _ = load_image(sample.path)
                picture = self.loaded.preprocess(image, self.config.resize)
                region = None
                if sample.boxes:
                    resize = lambda im: self.loaded.resize(im, self.config.resize)  # noqa: E731
                    region = torch.from_numpy(input_mask(sample, image.size, resize))
            except (ImageError, ValueError, TypeError, IndexError) as exc:  # a bad picture or box: skip it
                self.skip(sample.name, first_line(exc))
                continue
            pictures.append(picture)
            kept.append(sample)
            regions.append(region)
        if not kept:
            return None
        model = self.loaded.model
        x = torch.cat(pictures).to(next(iter(model.parameters())).device)
        if self.leads and not (self.out / "speed.json").is_file():
            write_json(self.out / "speed.json", model_floor(model, x[:1]))
        return self._with_classes(kept, x, regions)

    def _with_classes(self, kept: list[Sample], x: Tensor, regions: list[Tensor | None]) -> Batch | None:
        """The batch of the pictures whose label is one of the model's classes, with the class each
        is explained for: its label, else the predicted class (a random other class with
        ``random_target``)."""
        with torch.no_grad():
            logits = self.loaded.model(x)
            predicted, width = logits.argmax(1), logits.shape[1]
        keep = []
        for i, sample in enumerate(kept):
            if sample.label is not None and not 0 <= sample.label < width:
                self.skip(sample.name, f"label {sample.label} is outside the model's {width} classes")
            else:
                keep.append(i)
        if not keep:
            return None
        samples, predicted = [kept[i] for i in keep], [int(p) for p in predicted[keep]]
        if self.config.random_target:
            chosen = [random_class(s.name, p, width) for s, p in zip(samples, predicted, strict=True)]
        else:
            chosen = [s.label if s.label is not None else p for s, p in zip(samples, predicted, strict=True)]
        classes = torch.tensor(chosen, device=x.device)
        return Batch(samples=samples, x=x[keep], regions=[regions[i] for i in keep], classes=classes)

    def _run_method(self, batch: Batch, method: str, found: dict[str, list[dict[str, Any]]], drawn: list[Overlays]) -> None:
        """``method`` at every seed on the pictures of ``batch`` it has not done; rows into ``found``,
        its first seed's masks into ``drawn``."""
        need = [i for i, sample in enumerate(batch.samples) if not self.method_done(method, sample.name)]
        if not need:
            return
        samples, x, classes = [batch.samples[i] for i in need], batch.x[need], batch.classes[need]
        regions = [batch.regions[i] for i in need]
        model, areas = self.loaded.model, tuple(self.config.areas)
        perturb = Perturbation(x, "blur")
        explainer = get_explainer(method, model, **self.options[method])
        seeds = seeds_of(self.config, method)
        masks = []
        for seed in seeds:
            kwargs: dict[str, Any] = {}
            if explainer.uses_masks:
                kwargs["areas"] = areas
            if method in SEEDED:
                kwargs["seed"] = seed
            started = time.perf_counter()
            attribution = explainer.attribute(x, classes, **kwargs)
            call = Call(method, seed, samples, x, classes, attribution, time.perf_counter() - started)
            rows, seed_masks = fidelity_rows(model, call, areas, perturb)
            found[PER_IMAGE.name] += rows
            masks.append(seed_masks)
            if self.config.stability and seed == seeds[0]:
                found[STABILITY.name] += stability_rows(explainer, call, kwargs, areas, self.loaded)
            if seed == seeds[0] and not all(self.sanity_done(method, s.name) for s in samples):
                steps, first = self.config.sanity_steps, self.config.seeds[0]
                found[SANITY.name] += sanity_rows(model, call, areas, self.options[method], kwargs, steps, first)
            found[MAPS.name] += map_rows(model, call, regions, self.config)
        found[CONSISTENCY.name] += consistency_rows(method, samples, areas, masks)
        drawn.append(Overlays(method, samples, x, masks[0]))
