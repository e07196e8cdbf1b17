"""The ``explain --store`` job: rows in one SQLite result store, sharded under torchrun."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from .._errors import first_line
from ..distributed import World, join, leave, on_rank_zero
from ..explainer import ExtremalContour
from ..images import ImageError, load_image
from ..models import LoadedModel
from ..store import ResultStore, done_images, failed_images, merge, settings_key, shard_path
from ..targets import describe
from .naming import image_key
from .spec import ExplainJob

__all__ = ["STORE_FILE", "explain_to_store"]

#: The store's file name under the job's output folder.
STORE_FILE = "explanations.sqlite"


def explain_to_store(job: ExplainJob, loaded: LoadedModel, explainer: ExtremalContour) -> int:
    """Explain the pictures of ``job`` into ``job.out/explanations.sqlite``, skipping pictures
    stored (or failed) before with the same settings; under torchrun each process explains its
    share into its own shard and rank 0 merges them. Returns the exit code (1 if any failed)."""
    world = join()
    main_file = job.out / STORE_FILE
    extra = {"model": loaded.name, "weights": job.weights, "requested_target": job.target}
    key = settings_key(
        explainer.settings() | extra | {"variant": job.variant, "score": describe(explainer.config.score), "contours": job.contours}
    )
    todo = _todo(job, main_file, key, world)
    store = ResultStore(main_file if not world.sharded else shard_path(main_file, world.rank))
    failed = 0
    desc = f"explain[{world.rank}]" if world.sharded else "explain"
    bar = tqdm(todo, desc=desc, unit="image", disable=job.quiet, position=world.rank)
    for path, name in bar:
        try:
            image, _ = load_image(path)
            x = loaded.preprocess(image)
            result = explainer.attribute(
                x, job.target, areas=job.areas, variant=job.variant, seed=job.seed, names=[name], contours=job.contours
            )
            result = replace(result, settings=result.settings | extra)
            store.add(result, images=[name], sources=[str(path.resolve())])
        except (ImageError, ValueError, TypeError, RuntimeError) as exc:
            failed += 1
            message = first_line(exc)
            store.add_error(name, message)
            tqdm.write(f"error: {path}: {message}", file=sys.stderr)
    bar.close()
    on_rank_zero(world, lambda: _merge(main_file, world))
    leave(world)
    return 1 if failed else 0


def _todo(job: ExplainJob, main_file: Path, key: str, world: World) -> list[tuple[Path, str]]:
    """This process's share of the pictures not stored yet (nor failed before, unless
    ``job.force``), each with its name in the store; rank 0 says how many are done."""
    keys = [image_key(f, job.roots) for f in job.files]
    done = set() if job.force else done_images(main_file, key, "contour", job.seed, job.areas)
    bad = {} if job.force else failed_images(main_file)
    if world.leads:
        for name in sorted(set(bad) & set(keys)):
            print(f"{name}: skipped, failed before: {bad[name]} (--force retries)", file=sys.stderr)
    stored = len([k for k in keys if k in done])
    failed_before = len([k for k in keys if k in bad and k not in done])
    done |= set(bad)
    if world.leads:
        print(
            f"{len(job.files)} pictures, {stored} already stored, {failed_before} failed before, {world.size} process(es) -> {main_file}",
            file=sys.stderr,
        )
    mine = [(f, k) for i, (f, k) in enumerate(zip(job.files, keys, strict=True)) if i % world.size == world.rank]
    return [(f, k) for f, k in mine if k not in done]


def _merge(main_file: Path, world: World) -> int:
    """Merge the shards into the main file (those a killed sharded run left, in one process) and say so."""
    total = merge(main_file)
    if world.sharded:
        print(f"merged {world.size} shards: {total} rows in {main_file}", file=sys.stderr)
    else:
        print(f"{total} rows in {main_file}", file=sys.stderr)
    return total

