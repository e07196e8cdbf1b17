"""The explain job: one result folder per picture, skipping pictures already done with the same job."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from .._errors import first_line
from ..explainer import ExtremalContour
from ..images import ImageError, load_image
from ..models import LoadedModel
from ..result import ContourResult
from .naming import Fingerprints, find_result, result_folders
from .spec import ExplainJob

__all__ = ["OVERLAY_MAX_SIDE", "explain_folder", "summary_line"]

#: Longest side of the overlay drawn on the original picture.
OVERLAY_MAX_SIDE = 2048


def explain_folder(job: ExplainJob, loaded: LoadedModel, explainer: ExtremalContour) -> int:
    """Explain (or sweep) every picture of ``job`` into its result folder under ``job.out``; a
    picture that fails is reported and skipped. Prints a line per picture and, for several, a
    count; returns the exit code (1 if any picture failed)."""
    record = job.record(loaded.name, explainer.settings())
    fingerprint = Fingerprints()
    names = result_folders(job.files, job.roots, job.out, fingerprint)
    done = failed = skipped = 0
    bar = tqdm(job.files, desc="sweep" if job.sweep else "explain", unit="image", disable=job.quiet or len(job.files) == 1)
    for path in bar:
        folder, finished = find_result(path, job.out / names[path], record, fingerprint)
        if not job.force and finished and (not job.sweep or (folder / "summary.png").is_file()):
            skipped += 1
            tqdm.write(f"{path.name}: already done -> {folder}", file=sys.stderr)
            continue
        try:
            result = _explain_one(job, loaded, explainer, path, folder, record, fingerprint)
        except (ImageError, ValueError, TypeError, RuntimeError, OSError) as exc:
            failed += 1
            tqdm.write(f"error: {path}: {first_line(exc)}", file=sys.stderr)
            continue
        done += 1
        tqdm.write(summary_line(path.name, result, folder))
    if len(job.files) > 1:
        print(f"{done} explained, {skipped} already done, {failed} failed -> {job.out}", file=sys.stderr)
    return 1 if failed else 0


def _explain_one(
    job: ExplainJob,
    loaded: LoadedModel,
    explainer: ExtremalContour,
    path: Path,
    folder: Path,
    record: dict[str, Any],
    fingerprint: Fingerprints,
) -> ContourResult:
    """Explain one picture and save the result in ``folder`` (with its job's ``record`` and the
    picture's path and fingerprint) and, for a sweep, its figures."""
    image, note = load_image(path)
    if note:
        tqdm.write(f"{path.name}: note: {note}", file=sys.stderr)
    x = loaded.preprocess(image)
    options: dict[str, Any] = {"areas": job.areas, "variant": job.variant, "seed": job.seed, "names": [path.name]}
    if job.sweep:
        result = explainer.sweep(x, job.target, nesting=job.nesting, families=job.families, **options)
    else:
        result = explainer.attribute(x, job.target, contours=job.contours, **options)
    result = replace(result, meta={"job": record, "source": str(path.resolve()), "source_sha1": fingerprint(path)})
    result.save(folder, image=None if loaded.fixed_input_size else _overlay_picture(image))
    if job.sweep:
        from ..figures import save_sweep

        save_sweep(result, folder)
    return result


def _overlay_picture(image: Image.Image) -> Image.Image:
    """The picture the overlay is drawn on: the original, at most :data:`OVERLAY_MAX_SIDE` a side."""
    if max(image.size) <= OVERLAY_MAX_SIDE:
        return image
    factor = OVERLAY_MAX_SIDE / max(image.size)
    return image.resize((round(image.width * factor), round(image.height * factor)))


def summary_line(name: str, result: ContourResult, out: Path) -> str:
    """The line printed for an explained picture: its class, and per area the fidelity (and contours)."""
    label = result.class_names[0] if result.class_names else (f"class {int(result.classes[0])}" if result.classes is not None else result.score)
    head = f"{name}: {label}"
    if result.classes is not None:
        head += f" ({int(result.classes[0])})"
    if result.clean_probability is not None:
        head += f" p={float(result.clean_probability[0]):.2f}"
    parts = [
        f"area {a:g} preserve {float(result.preserve_ratio[0, j]):.2f} delete-drop {float(result.delete_drop[0, j]):.2f}"
        + (f" contours {int(result.parts.count[0, j])}" if result.parts is not None else "")
        for j, a in enumerate(result.areas)
    ]
    return f"{head} | " + "; ".join(parts) + f" -> {out}"
