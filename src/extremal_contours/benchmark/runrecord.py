"""``run.json``: the settings that fix what a folder's rows mean, checked when the folder is
continued, and a record of every invocation (its settings, device, library versions)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..models import LoadedModel
from ..versions import library_versions
from .config import BenchmarkConfig
from .errors import BenchmarkMismatch
from .rows import PER_IMAGE, check_columns, part_folders, write_json

__all__ = ["check_run", "fixed_settings", "read_record", "record_options", "record_run"]


def fixed_settings(config: BenchmarkConfig, loaded: LoadedModel) -> dict[str, Any]:
    """The settings that change what a row means: a folder holds rows of one kind only."""
    return {
        "model": loaded.name,
        "weights": config.weights,
        "random_target": bool(config.random_target),
        "resize": config.resize,
        "faithfulness_subset": config.faithfulness_subset,
        "faithfulness_protocol": config.faithfulness_protocol,
    }


def read_record(out: Path) -> dict[str, Any]:
    """``out/run.json`` (empty if there is none)."""
    path = out / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def check_run(out: Path, config: BenchmarkConfig, loaded: LoadedModel, log: Callable[[str], None]) -> dict[str, Any]:
    """This run's fixed settings, checked against ``out/run.json`` (read only) and the columns of
    the folder's files; a folder without rows binds nothing."""
    fixed = fixed_settings(config, loaded)
    path = out / "run.json"
    has_rows = any((p / PER_IMAGE.name).is_file() and (p / PER_IMAGE.name).stat().st_size for p in part_folders(out))
    if not has_rows and (out / "speed.json").is_file():
        (out / "speed.json").unlink(missing_ok=True)  # measured for a run that left no rows: maybe another model; measured again
    if path.is_file() and has_rows:  # a run that wrote no row (all failed, a bad option) binds nothing
        try:
            record = json.loads(path.read_text())
        except ValueError:
            raise BenchmarkMismatch(f"{path} is damaged; its settings cannot be checked (remove it to continue, or use another --out)") from None
        for key, value in fixed.items():
            if key not in record:
                raise BenchmarkMismatch(f"{path} does not record {key}; its settings cannot be checked (use another --out)")
            if record[key] != value:
                raise BenchmarkMismatch(f"{out} holds rows made with {key}={record[key]!r}, not {value!r}; use another --out")
    elif (out / PER_IMAGE.name).is_file():
        log(f"warning: {out} has rows but no run.json (an older version wrote it); its settings cannot be checked")
    check_columns(out)
    return fixed


def record_run(out: Path, config: BenchmarkConfig, fixed: dict[str, Any], device: str = "cpu") -> None:
    """Append this run's settings and library versions to ``out/run.json`` (a folder continued
    several times records each invocation)."""
    path = out / "run.json"
    try:
        record = read_record(out)
    except ValueError:  # damaged, and no rows depend on it (check_run refuses it otherwise)
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
            "sanity": bool(config.sanity),
            "sanity_steps": config.sanity_steps if config.sanity else None,
            "threads": torch.get_num_threads(),
            "versions": library_versions(),
        }
    )
    write_json(path, record)


def record_options(out: Path, config: BenchmarkConfig, options: dict[str, dict[str, Any]]) -> None:
    """Record in this invocation's entry of ``run.json`` the options the methods really ran with,
    where they differ from the configured ones."""
    if all(options[m] == dict(config.options.get(m, {})) for m in config.methods):
        return
    record = read_record(out)
    record["runs"][-1]["effective_options"] = options
    write_json(out / "run.json", record)
