"""The explain job: a result folder per picture and, inside it, one per area, so that nothing is lost.

Layout under ``--out``: ``<picture>/area<a>/`` holds one area's explanation (record, model input,
mask, overlay, GeoJSON). Areas explained by earlier runs stay beside the new ones; an area already
explained with the same settings is skipped; an area explained with other settings is never
replaced silently: the run refuses before computing anything and says how to keep both. With
``--area auto`` the picture's folder also gets the summary figure of all the areas tried. A sweep
is one artefact per picture (its figures), kept in the picture's folder itself.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from .._errors import first_line
from ..explainer import ExtremalContour
from ..images import ImageError, load_image
from ..inputs import area_tag
from ..models import LoadedModel
from ..result import ContourResult
from .naming import Fingerprints, find_result, result_folders, saved_meta
from .say import summary_line
from .spec import ExplainJob, JobError

__all__ = ["OVERLAY_MAX_SIDE", "explain_folder", "writable"]

#: Longest side of the overlay drawn on the original picture.
OVERLAY_MAX_SIDE = 2048


@dataclass
class _Plan:
    """What a picture needs: its folder, and the areas not yet explained with this job."""

    folder: Path
    todo: tuple[float, ...]


def writable(out: Path) -> None:
    """Refuse, in one line naming it, an output folder that cannot be written (checked before any
    picture is computed)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-check-{id(out)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise JobError(f"cannot write to --out {out}: {reason}") from None


def _differences(saved: dict[str, Any], job: dict[str, Any]) -> str:
    """The first few settings in which a saved job differs from this one, for the refusal line."""
    keys = [k for k in sorted(set(saved) | set(job)) if saved.get(k) != job.get(k) and k != "settings"]
    settings_saved, settings_job = saved.get("settings") or {}, job.get("settings") or {}
    keys += [k for k in sorted(set(settings_saved) | set(settings_job)) if settings_saved.get(k) != settings_job.get(k)]
    flat = {**saved, **settings_saved}
    return ", ".join(f"{k} {flat.get(k)!r}" for k in keys[:3]) or "other settings"


def _plan(job: ExplainJob, path: Path, folder: Path, record: dict[str, Any], fingerprint: Fingerprints) -> _Plan:
    """Which areas of the picture ``path`` are done, and which would replace another job's result."""
    folder, _ = find_result(path, folder, record, fingerprint)
    places = [folder] if job.sweep else [folder / area_tag(a) for a in job.areas]
    todo = []
    for area, place in zip(job.areas if not job.sweep else [None], places, strict=True):
        meta = saved_meta(place)
        if meta is None or job.force:
            todo.append(area)
            continue
        if meta.get("job") != record:
            raise JobError(
                f"{place} holds an explanation made with other settings ({_differences(meta.get('job') or {}, record)}); "
                "use another --out to keep both, or --force to replace it"
            )
        if meta.get("source_sha1") != fingerprint(path) or (job.sweep and not (place / "summary.png").is_file()):
            todo.append(area)
    if job.sweep:
        return _Plan(folder, job.areas if todo else ())
    if job.auto is not None and (todo or not (folder / "summary.png").is_file()):  # the pick needs every area
        return _Plan(folder, job.areas)
    return _Plan(folder, tuple(a for a in todo if a is not None))


def explain_folder(job: ExplainJob, loaded: LoadedModel, explainer: ExtremalContour) -> int:
    """Explain (or sweep) every picture of ``job`` under ``job.out``; a picture that fails is
    reported and skipped. Prints a line per picture and, for several, a count; returns the exit
    code (1 if any picture failed)."""
    record = job.record(loaded.name, explainer.settings())
    fingerprint = Fingerprints()
    names = result_folders(job.files, job.roots, job.out, fingerprint)
    plans = {}
    for path in job.files:
        try:
            plans[path] = _plan(job, path, job.out / names[path], record, fingerprint)
        except OSError as exc:  # an unreadable picture: reported when it is loaded
            plans[path] = _Plan(job.out / names[path], job.areas)
            tqdm.write(f"{path.name}: note: {first_line(exc)}", file=sys.stderr)
    writable(job.out)
    done = failed = skipped = 0
    bar = tqdm(job.files, desc="sweep" if job.sweep else "explain", unit="image", disable=job.quiet or len(job.files) == 1)
    for path in bar:
        plan = plans[path]
        if not plan.todo:
            skipped += 1
            tqdm.write(f"{path.name}: already done -> {plan.folder}", file=sys.stderr)
            continue
        try:
            result = _explain_one(job, loaded, explainer, path, plan, record, fingerprint)
        except (ImageError, ValueError, TypeError, RuntimeError, OSError) as exc:
            failed += 1
            tqdm.write(f"error: {path}: {first_line(exc)}", file=sys.stderr)
            continue
        done += 1
        tqdm.write(summary_line(path.name, result, plan.folder, job.auto))
    if len(job.files) > 1:
        print(f"{done} explained, {skipped} already done, {failed} failed -> {job.out}", file=sys.stderr)
    return 1 if failed else 0


def _explain_one(
    job: ExplainJob,
    loaded: LoadedModel,
    explainer: ExtremalContour,
    path: Path,
    plan: _Plan,
    record: dict[str, Any],
    fingerprint: Fingerprints,
) -> ContourResult:
    """Explain one picture's areas still to do and save each (with its job's ``record`` and the
    picture's path and fingerprint); a sweep or an ``auto`` run also gets its figures."""
    image, note = load_image(path)
    if note:
        tqdm.write(f"{path.name}: note: {note}", file=sys.stderr)
    x = loaded.preprocess(image)
    options: dict[str, Any] = {"areas": plan.todo, "variant": job.variant, "seed": job.seed, "names": [path.name]}
    if job.sweep:
        result = explainer.sweep(x, job.target, nesting=job.nesting, families=job.families, **options)
    else:
        result = explainer.attribute(x, job.target, contours=job.contours, alternatives=job.alternatives, **options)
    meta = {"job": record, "source": str(path.resolve()), "source_sha1": fingerprint(path)}
    if job.auto is not None:
        meta["auto"] = {"keep": job.auto, "areas": list(plan.todo), "chosen": _chosen(result, job.auto)}
    result = replace(result, meta=meta)
    picture = None if loaded.fixed_input_size else _overlay_picture(image)
    if job.sweep:
        from ..figures import save_sweep

        result.save(plan.folder, image=picture)
        save_sweep(result, plan.folder)
        return result
    for j, area in enumerate(plan.todo):
        result.take_areas([j]).save(plan.folder / area_tag(area), image=picture)
    if job.auto is not None:
        from ..figures import summary_figure

        summary_figure(result, plan.folder / "summary.png", level=job.auto)
    return result


def _chosen(result: ContourResult, keep: float) -> float | None:
    """The smallest area whose region keeps at least ``keep`` of the class (``None`` if none does)."""
    ratios = result.preserve_ratio[0].tolist()
    kept = [a for a, r in sorted(zip(result.areas, ratios, strict=True)) if r >= keep]
    return kept[0] if kept else None


def _overlay_picture(image: Image.Image) -> Image.Image:
    """The picture the overlay is drawn on: the original, at most :data:`OVERLAY_MAX_SIDE` a side."""
    if max(image.size) <= OVERLAY_MAX_SIDE:
        return image
    factor = OVERLAY_MAX_SIDE / max(image.size)
    return image.resize((round(image.width * factor), round(image.height * factor)))
