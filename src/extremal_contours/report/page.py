"""The report's page: one self-contained HTML file (inline CSS and JS, the data as one embedded JSON
object, pictures as small data URIs or links relative to the page), written into the folder."""

from __future__ import annotations

import json
import os
import re
from importlib.resources import files
from pathlib import Path

from .. import __version__
from ..benchmark.rows import write_atomically
from ..jobs.store import STORE_FILE
from ..store import store_files
from .benchmark import from_benchmark, is_benchmark
from .contents import Contents
from .explanations import from_records, from_store, record_files
from .markdown import escape

__all__ = ["REPORT_FILE", "ReportError", "collect", "render", "write_report"]

#: The report's file name in the folder it describes.
REPORT_FILE = "report.html"


class ReportError(ValueError):
    """A folder the report cannot describe (one line)."""


def collect(folder: Path) -> Contents:
    """What the report of ``folder`` shows: a benchmark's, else its explanations (records below it
    and a result store in it, together)."""
    if not folder.is_dir():
        raise ReportError(f"{folder} is not a folder")
    if is_benchmark(folder):
        return from_benchmark(folder)
    parts = []
    if store_files(folder / STORE_FILE):
        parts.append(from_store(folder, folder / STORE_FILE))
    records = record_files(folder)
    if records:
        parts.append(from_records(folder, records))
    if not parts:
        raise ReportError(
            f"{folder} holds no explain, sweep or benchmark output (no explanation.json below it, no {STORE_FILE}, no per_image.csv)"
        )
    contents = parts[0]
    for other in parts[1:]:
        contents.extend(other)
    if not contents.pictures:
        raise ReportError(f"{folder} holds no readable explanation: " + "; ".join(contents.notes[:3]))
    contents.info[:0] = [("pictures", str(len(contents.pictures))), ("explanations (picture x area)", str(len(contents.rows)))]
    return contents


def _script_json(data: object) -> str:
    """JSON safe inside a ``<script>`` element, with no web address in it (``://`` written ``:\\/\\/``)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("://", ":\\/\\/")


def _header(contents: Contents) -> str:
    info = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in contents.info)
    notes = "".join(f"<li>{escape(n)}</li>" for n in contents.notes)
    return (f'<dl class="info">{info}</dl>' if info else "") + (f'<ul class="notes">{notes}</ul>' if notes else "")


def render(contents: Contents, title: str) -> str:
    """The page of ``contents``."""
    here = files(__package__)
    values = {
        "TITLE": escape(title),
        "VERSION": escape(__version__),
        "KIND": escape(contents.kind),
        "CSS": here.joinpath("page.css").read_text(encoding="utf-8"),
        "JS": here.joinpath("page.js").read_text(encoding="utf-8"),
        "HEADER": _header(contents),
        "SECTIONS": contents.sections,
        "DATA": _script_json(contents.data()),
    }
    template = here.joinpath("page.html").read_text(encoding="utf-8")
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: values[m.group(1)], template)  # one pass: inserted text is never read as a slot


def write_report(folder: str | os.PathLike[str]) -> Path:
    """Write ``folder/report.html`` describing the output ``folder`` holds (``explain``, ``sweep``,
    ``explain --store`` or ``benchmark``); returns its path."""
    folder = Path(folder)
    contents = collect(folder)
    page = render(contents, f"extremal-contours report: {folder.resolve().name}")
    path = folder / REPORT_FILE
    write_atomically(path, page)
    return path
