"""The command line: ``extremal-contours explain|sweep|show|speed|benchmark ...``. Imported by nothing."""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from . import __version__, sample_image_path, speed
from ._errors import first_line
from .baselines import list_explainers
from .benchmark import SANITY_STEPS, BenchmarkConfig, BenchmarkEmpty, BenchmarkMismatch, run_benchmark
from .data import DatasetError
from .explainer import VARIANTS, ContourSettings, ExtremalContour
from .images import ImageError, find_images
from .inputs import area_tag
from .jobs import ExplainJob, JobError, explain_folder, explain_to_store, list_saved, show_saved
from .metrics import FAITHFULNESS_PROTOCOLS
from .modelcall import PRECISIONS
from .models import DEFAULT_MODEL, LoadedModel, ModelError, load_model
from .report import ReportError, write_report
from .sweep import AUTO_AREAS, DEFAULT_AREAS
from .targets import SCORES

#: Help of the --report option of the commands that write a folder.
REPORT_HELP = "at the end, also write OUT/report.html (a self-contained page to browse the results) and print its path"

#: Smallest area the command line takes (16 pixels of a 224 x 224 input is 0.0003).
MIN_AREA = 0.0005


class UsageError(Exception):
    """A problem with the command line itself (exit code 2)."""


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"unknown device {name!r}: use cpu, cuda, cuda:N or auto") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def _target(value: str | None, loaded: LoadedModel) -> int | None:
    """A class index from ``--target`` (an index or a class name)."""
    if value is None:
        return None
    names = loaded.class_names
    if value.lstrip("-").isdigit():
        index = int(value)
        if names is not None and not 0 <= index < len(names):
            raise UsageError(f"--target {index} is outside the model's {len(names)} classes (0..{len(names) - 1})")
        return index
    if names is None:
        raise UsageError(f"--target {value!r}: this model has no class names; give a class index")
    matches = [i for i, n in enumerate(names) if n == value] or [i for i, n in enumerate(names) if n.lower() == value.lower()]
    if len(matches) > 1:
        listed = ", ".join(f"{i} ({names[i]})" for i in matches)
        raise UsageError(f"--target {value!r} names several classes: {listed}; give the index")
    if not matches:
        raise UsageError(f"--target {value!r} is not a class name of this model{_suggest(value, names)}")
    return matches[0]


def _suggest(value: str, names: Sequence[str]) -> str:
    """`` (did you mean 'Egyptian cat'?)`` for the class names closest to ``value``, else nothing."""
    import difflib

    lower = {n.lower(): n for n in names}
    close = [lower[n] for n in difflib.get_close_matches(value.lower(), list(lower), n=1, cutoff=0.6)]
    if not close:  # no near spelling: the names that contain it
        close = [lower[n] for n in lower if value.lower() in n][:3]
    return " (did you mean " + " or ".join(map(repr, close)) + "?)" if close else ""


#: What the numbers on every line mean (``--help``'s closing words).
DEFINITIONS = """preserve ratio ("keeps N%% of the class"): the class probability with only the region kept (the rest blurred), over the probability on the whole picture.
delete drop ("removing it leaves N%%"): the class probability with the region blurred, over the whole picture's; the drop is 1 minus that.
variants: preserve finds the region that keeps the class; delete the region whose removal loses it; dual both at once (keeping it high and removing it low).
flags: keeps little (preserve ratio < 0.25), deletion raises (removing the region makes the class more likely), ambiguous (another region apart from it keeps at least 80%% as much), suspicious (the region makes the class over 3x as likely as the whole picture: an adversarial region), unstable (shifted 4 px with the picture, it keeps under half as much)."""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL}; torchvision/timm names with --weights)")
    p.add_argument("--weights", default=None, help="state-dict file for --model (nothing is downloaded)")
    p.add_argument("--num-classes", type=int, default=None, help="classes of --weights' head, if not the architecture's default (1000)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--harmonics", type=int, default=None, help="Fourier harmonics K (default 8)")
    p.add_argument("--iterations", type=int, default=None, help="optimisation steps (default 64)")
    p.add_argument("--starts", type=int, default=None, help="contours optimised per (image, area) (default 4)")
    p.add_argument(
        "--start-jitter", type=float, default=None,
        help="move each start's centre by a seeded random offset of up to this fraction of the image (default 0: "
        "deterministic, the seed changes nothing); with --seed, shows alternative explanations",
    )  # fmt: skip
    p.add_argument(
        "--score", default="logit", choices=[s for s in SCORES if s != "similarity"],
        help="the number the region keeps while optimising: the class's logit (default), probability, log-probability, "
        "or its logit minus the best other class's (contrastive)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32, help="most images per forward pass (memory bound)")
    p.add_argument(
        "--precision", default=None, choices=list(PRECISIONS),
        help="the model's precision while optimising (default float32; bfloat16 is faster where the hardware has it, "
        "the reported scores stay float32)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of --start-jitter (default 0; without it the result is the same for every seed)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


#: Most contours per region the command line takes (the explainer's ``max_contours`` default).
MAX_CONTOURS = ContourSettings().max_contours


def _contours(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_CONTOURS:
        raise argparse.ArgumentTypeError(f"expected a count from 1 to {MAX_CONTOURS} or 'auto', got {value!r}")
    return count


#: The benchmark methods that are this explainer (they take its options, e.g. precision).
CONTOUR_METHODS = ("contour", "contour_map")


def _at_least(flag: str, value: int, low: int) -> None:
    if value < low:
        raise UsageError(f"{flag} must be >= {low}, got {value}")


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The options among ``names`` that the command line set (the rest keep the library's defaults)."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _explainer(args: argparse.Namespace, loaded: LoadedModel, show_steps: bool = False) -> ExtremalContour:
    """The explainer of the command line's settings; ``show_steps``: its own progress bar (on a
    terminal), for a single picture, where there is no bar over pictures."""
    options = _given(args, ("harmonics", "iterations", "starts", "start_jitter", "precision"))
    try:
        return ExtremalContour(
            loaded.model,
            score=args.score,
            batch_size=args.batch_size,
            mean=loaded.mean,
            std=loaded.std,
            class_names=loaded.class_names,
            progress=None if show_steps else False,
            **options,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _load(args: argparse.Namespace) -> LoadedModel:
    device = _device(args.device)
    if args.weights == "random":
        print("warning: random weights; the explanations mean nothing", file=sys.stderr)
    num_classes = getattr(args, "num_classes", None)
    if num_classes is not None:
        _at_least("--num-classes", num_classes, 1)
    if num_classes is not None and not args.weights:
        raise UsageError("--num-classes describes the head of --weights; give both")
    return load_model(args.model, args.weights, device=device, num_classes=num_classes)


def _areas(values: Sequence[float], flag: str) -> tuple[float, ...]:
    """Area fractions from the command line: in (0, 1) and distinct (as result files name them)."""
    areas = tuple(values)
    if any(not 0 < a < 1 for a in areas):
        raise UsageError(f"{flag} takes fractions in (0, 1), got {', '.join(map(str, areas))}")
    if any(a < MIN_AREA for a in areas):
        raise UsageError(f"{flag} {min(areas):g} is too small: at least {MIN_AREA:g} (a few pixels of the model's input)")
    if len({area_tag(a) for a in areas}) != len(areas):
        raise UsageError(f"{flag} values must be distinct to 4 significant digits (result files are named so), got {', '.join(map(str, areas))}")
    return areas


def _numbers(values: Sequence[Any], flag: str) -> list[float]:
    """The command line's area values as numbers (``auto`` is only the whole of ``--area``)."""
    try:
        return [float(v) for v in values]
    except ValueError:
        raise UsageError(f"{flag} takes fractions in (0, 1) (or, alone, auto), got {' '.join(map(str, values))}") from None


def _weights_source(args: argparse.Namespace) -> str | None:
    """Where ``--weights`` came from, as recorded with results: an absolute path, ``"random"`` or ``None``."""
    return str(Path(args.weights).resolve()) if args.weights and args.weights != "random" else args.weights


def _out_folder(value: str) -> Path:
    out = Path(value)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    return out


def cmd_explain(args: argparse.Namespace) -> int:
    return _report_after(args, Path(args.out), _explain_pictures(args, sweep=False))


def cmd_sweep(args: argparse.Namespace) -> int:
    return _report_after(args, Path(args.out), _explain_pictures(args, sweep=True))


def _report_after(args: argparse.Namespace, folder: Path, code: int) -> int:
    """With ``--report``, write the folder's HTML report once the job is done (under torchrun:
    rank 0) and print its path; a report that cannot be written is an error line and exit code 1."""
    if not getattr(args, "report", False) or os.environ.get("RANK", "0") != "0":
        return code
    try:
        print(write_report(folder))
    except (ReportError, OSError) as exc:
        print(f"error: report: {first_line(exc)}", file=sys.stderr)
        return max(code, 1)
    return code


def cmd_report(args: argparse.Namespace) -> int:
    try:
        print(write_report(Path(args.folder)))
    except (ReportError, OSError) as exc:
        raise UsageError(first_line(exc)) from exc
    return 0


def _explain_pictures(args: argparse.Namespace, sweep: bool) -> int:
    paths = list(args.images)
    if not paths:
        paths = [sample_image_path()]
        print(f"no image given: explaining the bundled sample {paths[0]}", file=sys.stderr)
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    out = _out_folder(args.out)
    files = find_images(paths)
    if not files:
        raise UsageError(f"no pictures found in {', '.join(map(str, paths))}")
    auto = None
    areas: tuple[float, ...]
    if not sweep and [str(a) for a in args.area] == ["auto"]:
        if not 0 < args.keep <= 1:
            raise UsageError(f"--keep takes a share in (0, 1], got {args.keep:g}")
        areas, auto = AUTO_AREAS, args.keep
    else:
        areas = _areas(_numbers(args.area, "--areas" if sweep else "--area"), "--areas" if sweep else "--area")
    _at_least("--batch-size", args.batch_size, 2)
    if not sweep:
        _at_least("--alternatives", args.alternatives, 1)
        if args.alternatives > 1 and args.contours != 1:
            raise UsageError("--alternatives are found for one contour per region; leave --contours at 1")
    if sweep:
        _at_least("--families", args.families, 1)
        if not (math.isfinite(args.nesting) and args.nesting >= 0):
            raise UsageError(f"--nesting must be >= 0, got {args.nesting}")
    loaded = _load(args)
    job = ExplainJob(
        files=files,
        roots=[Path(p) for p in paths],
        out=out,
        areas=areas,
        target=_target(args.target, loaded),
        variant=args.variant,
        seed=args.seed,
        contours=getattr(args, "contours", 1),
        weights=_weights_source(args),
        sweep=sweep,
        auto=auto,
        alternatives=getattr(args, "alternatives", 1),
        nesting=getattr(args, "nesting", 5.0),
        families=getattr(args, "families", 2),
        force=args.force,
        quiet=args.quiet,
    )
    explainer = _explainer(args, loaded, show_steps=len(files) == 1 and not args.quiet)
    if getattr(args, "store", False):
        return explain_to_store(job, loaded, explainer)
    return explain_folder(job, loaded, explainer)


def cmd_show(args: argparse.Namespace) -> int:
    results = Path(args.results)
    if not results.exists():
        raise UsageError(f"no such file or folder: {results}")
    if args.list:
        return list_saved(results)
    if args.image is None:
        raise UsageError("show needs --image NAME (or --list to see the names)")
    return show_saved(results, args.image, _out_folder(args.out), area=args.area)


def cmd_speed(args: argparse.Namespace) -> int:
    _areas(args.area, "--area")
    for flag, value in (("--repeats", args.repeats), ("--images", args.images), ("--families", args.families)):
        _at_least(flag, value, 1)
    _at_least("--batch-size", args.batch_size, 2)
    if args.compare == "batching":
        if args.method not in list_explainers():
            raise UsageError(f"unknown method {args.method!r}; choose from {', '.join(list_explainers())}")
        if not args.data or not Path(args.data).is_dir():
            raise UsageError(f"--compare batching needs --data DIR (a dataset folder), got {args.data!r}")
        if args.precision is not None and args.method not in CONTOUR_METHODS:
            raise UsageError(f"--precision is an option of the contour methods, not of {args.method}")
    loaded = _load(args)
    explainer = _explainer(args, loaded)  # checks the explainer's options in every mode
    image = args.image or sample_image_path()
    if args.compare == "sweep":
        print(speed.report_sweep(loaded, explainer, image, areas=args.area, families=args.families))
    elif args.compare == "batching":
        options = _given(args, ("iterations", "precision"))
        print(speed.report_batching(loaded, args.data, method=args.method, images=args.images, stride=args.stride, options=options))
    else:
        print(speed.report_overhead(loaded, explainer, image, areas=args.area, repeats=args.repeats))
    return 0


def _option_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _method_options(items: Sequence[str], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--option METHOD.NAME=VALUE`` items as options per method (the contour's checked now, not
    after the model is timed)."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UsageError(f"--option takes METHOD.NAME=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        method, name = key.split(".", 1)
        if method not in methods:
            raise UsageError(f"--option {item!r}: {method!r} is not among --methods ({', '.join(methods)})")
        options.setdefault(method, {})[name] = _option_value(value)
    for method in CONTOUR_METHODS:
        if options.get(method):
            try:
                ExtremalContour(torch.nn.Identity(), **options[method])
            except (TypeError, ValueError) as exc:
                raise UsageError(f"--option {method}.*: {first_line(exc)}") from exc
    return options


def _sanity_steps(value: str) -> int:
    """``--sanity-steps``: a count of at least 2, or ``all`` (0: every layer)."""
    if value == "all":
        return 0
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 2:
        raise argparse.ArgumentTypeError(f"expected a count of at least 2 (the top layer alone, then every layer) or 'all', got {value!r}")
    return count


def _benchmark_config(args: argparse.Namespace) -> BenchmarkConfig:
    """The benchmark's settings from the command line, checked (before the model loads)."""
    methods = list(dict.fromkeys(m.strip() for m in args.methods.split(",") if m.strip()))
    if not methods:
        raise UsageError("--methods names no method")
    if len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds has repeats ({' '.join(map(str, args.seeds))}): repeated runs would fake the run-to-run IoU")
    for flag, value, low in (("--batch", args.batch, 1), ("--stride", args.stride, 1), ("--limit", args.limit, 1)):
        if value is not None:
            _at_least(flag, value, low)
    out = _out_folder(args.out)
    unknown = [m for m in methods if m not in list_explainers()]
    if unknown:
        raise UsageError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(list_explainers())}")
    options = _method_options(args.option, methods)
    if not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data} is not a folder")
    if args.faithfulness_subset < 1:
        raise UsageError(f"--faithfulness-subset must be >= 1, got {args.faithfulness_subset}")
    if args.sanity_steps is not None and not args.sanity:
        raise UsageError("--sanity-steps sets the steps of --sanity; give both")
    steps = SANITY_STEPS if args.sanity_steps is None else args.sanity_steps
    return BenchmarkConfig(
        data=Path(args.data),
        methods=methods,
        out=out,
        areas=_areas(args.areas, "--areas"),
        seeds=tuple(args.seeds),
        limit=args.limit,
        stride=args.stride,
        batch=args.batch,
        options=options,
        faithfulness=args.faithfulness,
        faithfulness_subset=args.faithfulness_subset,
        faithfulness_protocol=args.faithfulness_protocol,
        random_target=args.random_target,
        stability=args.stability,
        weights=_weights_source(args),
        sanity=args.sanity,
        sanity_steps=steps or None,
    )


def cmd_benchmark(args: argparse.Namespace) -> int:
    config = _benchmark_config(args)
    loaded = _load(args)
    failures: list[str] = []

    def log(message: str) -> None:
        if message.startswith("error:"):
            failures.append(message)
        print(message, file=sys.stderr)

    try:
        out = run_benchmark(config, loaded, progress=False if args.quiet else None, log=log)
    except (FileNotFoundError, BenchmarkMismatch, BenchmarkEmpty, DatasetError) as exc:
        raise UsageError(str(exc)) from exc
    print((out / "summary.md").read_text())
    if failures:
        print(f"{len(failures)} picture(s) failed in this run (listed above and in {out / 'errors.csv'})", file=sys.stderr)
    # Under torchrun a non-zero exit of one process makes torchrun report a crash: there the
    # failures are only listed.
    return _report_after(args, out, 1 if failures and "WORLD_SIZE" not in os.environ else 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extremal-contours",
        description="Explain image classifiers with Extremal Contours (smallest smooth star-convex region keeping a class's evidence).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_explain_show_sweep(sub)
    _add_benchmark(sub)
    _add_speed(sub)
    _add_report(sub)
    return parser


def _add_explain_show_sweep(sub: Any) -> None:
    p = sub.add_parser(
        "explain", help="explain pictures (files or folders): a result folder per picture, one per area inside it",
        epilog=DEFINITIONS, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("images", nargs="*", metavar="IMAGE_OR_FOLDER", help="pictures or folders (default: the bundled sample)")
    p.add_argument("--target", default=None, help="class index or name to explain (default: the predicted class)")
    p.add_argument(
        "--area", nargs="+", default=["0.1"], metavar="A|auto",
        help="area(s) of the region, as fractions of the picture (default 0.1); auto: try "
        + "/".join(f"{a:g}" for a in AUTO_AREAS) + " in one run and pick the smallest keeping --keep of the class",
    )  # fmt: skip
    p.add_argument("--keep", type=float, default=0.9, help="with --area auto: the share of the class the picked region must keep (default 0.9)")
    p.add_argument("--variant", choices=VARIANTS, default="preserve", help="preserve (default), delete or dual: see below")
    p.add_argument("--alternatives", type=int, default=1, metavar="K", help="regions per picture and area: the answer and up to K-1 others apart from it (default 1)")
    p.add_argument("--out", default="explanations", help="output folder (default ./explanations); results of other areas already there are kept")
    p.add_argument("--force", action="store_true", help="redo areas already explained with the same settings, and replace those explained with other settings")
    p.add_argument("--store", action="store_true", help="write rows to OUT/explanations.sqlite (one per picture and area) instead of folders; shards under torchrun")
    p.add_argument(
        "--contours", type=_contours, default=1, metavar="M|auto",
        help=f"contours per region: 1 to {MAX_CONTOURS}, or auto (add one while it keeps more of the class; default 1)",
    )  # fmt: skip
    p.add_argument("--report", action="store_true", help=REPORT_HELP)
    _add_common(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("show", help="list and redraw saved explanations: an explain or sweep output folder, or a --store database")
    p.add_argument("results", help="an explain/sweep output folder, a result store file (explanations.sqlite) or its folder")
    p.add_argument("--list", action="store_true", help="list the pictures (and areas) the results hold, and stop")
    p.add_argument("--image", default=None, help="the picture to redraw: its stored name, or just its file name when that is unique")
    p.add_argument("--area", type=float, default=None, help="redraw this area only (default: every area saved)")
    p.add_argument("--out", default="shown", help="folder for the redrawn masks and overlays (default ./shown)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "sweep", help="explain pictures at several areas: importance map, fidelity-area profile, summary figure",
        epilog=DEFINITIONS, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("images", nargs="*", metavar="IMAGE_OR_FOLDER", help="pictures or folders (default: the bundled sample)")
    p.add_argument("--target", default=None, help="class index or name to explain (default: the predicted class)")
    p.add_argument(
        "--area", "--areas", dest="area", nargs="+", default=[f"{a:g}" for a in DEFAULT_AREAS], metavar="A",
        help="the areas swept (default " + " ".join(f"{a:g}" for a in DEFAULT_AREAS) + ")",
    )  # fmt: skip
    p.add_argument("--nesting", type=float, default=5.0, help="weight of the nesting penalty between consecutive areas (0: independent areas)")
    p.add_argument("--families", type=int, default=2, help="nested families (starts) of the sweep (default 2)")
    p.add_argument("--variant", choices=VARIANTS, default="preserve", help="preserve (default), delete or dual: see below")
    p.add_argument("--out", default="sweeps", help="output folder (default ./sweeps)")
    p.add_argument("--report", action="store_true", help=REPORT_HELP)
    p.add_argument("--force", action="store_true", help="redo pictures already done with the same settings")
    _add_common(p)
    p.set_defaults(func=cmd_sweep)


def _add_benchmark(sub: Any) -> None:
    p = sub.add_parser("benchmark", help="run methods on a dataset and tabulate fidelity, consistency and cost")
    p.add_argument("--data", required=True, help="dataset folder (annotations.json, LOC_val_solution.csv or VOC)")
    p.add_argument(
        "--methods", default="contour,extremal_perturbation,gradcam,integrated_gradients,saliency,occlusion,rise",
        help="comma-separated: contour, contour_map, extremal_perturbation, gradcam, integrated_gradients, saliency, "
        "occlusion, rise (default: all but contour_map)",
    )  # fmt: skip
    p.add_argument("--areas", type=float, nargs="+", default=[0.1], help="areas of the binary masks (default 0.1)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="several seeds measure run-to-run IoU (the contour then seeds its starts: start_jitter=0.1 unless given)")
    p.add_argument("--limit", type=int, default=None, help="at most this many images")
    p.add_argument("--stride", type=int, default=1, help="take every N-th image")
    p.add_argument("--batch", type=int, default=8, help="images per call")
    p.add_argument("--option", action="append", default=[], metavar="METHOD.NAME=VALUE", help="a method option, e.g. contour.iterations=32")
    p.add_argument("--random-target", action="store_true", help="adversarial-artifact check: explain a seeded random class the model does not predict")
    p.add_argument(
        "--stability", action="store_true",
        help="also explain each picture shifted by 4 px, flipped, saved as JPEG (quality 90) and with faint noise, "
        "and compare each explanation with the picture's own (OUT/stability.csv; 4 more explanations per picture)",
    )  # fmt: skip
    p.add_argument(
        "--sanity", action="store_true",
        help="model-parameter randomisation test (Adebayo et al. 2018): explain every picture again (first seed) on "
        "copies of the model with its layers randomised from the top down, cumulatively, and compare with the "
        "explanation on the model itself (OUT/sanity.csv: Spearman of the maps, IoU of the masks). Costs one more "
        f"explanation per picture, method and step: with the default {SANITY_STEPS} steps, about {SANITY_STEPS + 1} "
        "times the run's explaining time",
    )  # fmt: skip
    p.add_argument(
        "--sanity-steps", type=_sanity_steps, default=None, metavar="N|all",
        help=f"steps of --sanity, evenly spaced over the layers, the top layer alone first and every layer last "
        f"(default {SANITY_STEPS}); all: one step per layer (about 100 for efficientnet_lite0)",
    )  # fmt: skip
    p.add_argument("--faithfulness", action="store_true", help="also faithfulness correlation and insertion/deletion AUC (~170 passes per image and method)")
    p.add_argument("--faithfulness-subset", type=int, default=224, help="pixels (or values, with --faithfulness-protocol quantus) per random subset of the faithfulness correlation (default 224, as Quantus)")
    p.add_argument(
        "--faithfulness-protocol", choices=tuple(FAITHFULNESS_PROTOCOLS), default="blur",
        help="faithfulness subsets: pixels replaced by the most blurred image (blur, default), or single input values replaced by the image's minimum (quantus: Quantus' defaults)",
    )  # fmt: skip
    p.add_argument("--out", default="benchmark", help="output folder (re-running continues)")
    p.add_argument("--report", action="store_true", help=REPORT_HELP)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL}; torchvision/timm names with --weights)")
    p.add_argument("--weights", default=None, help="state-dict file for --model ('random': random weights, for testing)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_benchmark)


def _add_speed(sub: Any) -> None:
    p = sub.add_parser("speed", help="overhead of the explainer over the model's own forward+backward passes")
    p.add_argument("image", nargs="?", default=None, help="picture (default: the bundled sample)")
    p.add_argument("--area", type=float, nargs="+", default=[0.1], help="area(s) explained while timing (default 0.1)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs (default 3; the first, untimed, warms up)")
    p.add_argument("--compare", choices=["overhead", "batching", "sweep"], default="overhead",
                   help="overhead over the model (default); batched vs one image at a time (--method, --data); one sweep vs one run per area")
    p.add_argument("--method", default="extremal_perturbation", help="method for --compare batching")
    p.add_argument("--data", default=None, help="dataset folder for --compare batching")
    p.add_argument("--images", type=int, default=4, help="images for --compare batching")
    p.add_argument("--families", type=int, default=2, help="families of the sweep for --compare sweep (default 2, as sweep)")
    p.add_argument("--stride", type=int, default=15, help="take every N-th image of --data")
    _add_common(p)
    p.set_defaults(func=cmd_speed)


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="write DIR/report.html: a page to browse an explain, sweep, --store or benchmark folder")
    p.add_argument("folder", metavar="DIR", help="an output folder of explain, sweep, explain --store or benchmark")
    p.set_defaults(func=cmd_report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "quiet", False):

            os.environ.setdefault("TQDM_DISABLE", "1")
        return int(args.func(args))
    except (UsageError, JobError, ModelError, ImageError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        where = getattr(args, "results", None) or getattr(args, "out", "")
        if isinstance(exc, sqlite3.OperationalError):  # locked, read-only, disk full: the file itself may be fine
            print(f"error: cannot use the result store under {where}: {exc}", file=sys.stderr)
        else:
            print(f"error: the result store under {where} is damaged or not a result store ({exc})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
