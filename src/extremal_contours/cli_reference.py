"""``docs/cli.md``, the command reference, generated from the command line's own parser
(``tests/test_docs.py`` keeps the file current)."""

from __future__ import annotations

import argparse

from .cli import DEFINITIONS, build_parser

__all__ = ["REFERENCE_COMMAND", "REFERENCE_HEAD", "reference_markdown"]

#: How ``docs/cli.md`` is regenerated (said in the file and by the test that compares it).
REFERENCE_COMMAND = "python -c \"from extremal_contours.cli_reference import reference_markdown; print(reference_markdown(), end='')\" > docs/cli.md"

#: The hand-written head of ``docs/cli.md``: what each command writes.
REFERENCE_HEAD = f"""# Command reference

This file is generated from the command line's own parser by `extremal_contours.cli_reference.reference_markdown()`;
do not edit it by hand. Regenerate it with

```bash
{REFERENCE_COMMAND}
```

(`tests/test_docs.py` fails while it differs from the parser). `python -m extremal_contours` is the
same program as `extremal-contours`; `docs/METHOD.md` describes the method behind the options.

## What each command writes

`OUT` is the command's `--out` folder, `<picture>` a picture's path inside the folder it was found in
(its file name for a single file) without its suffix, `<A>` an area to 4 significant digits (`area0.1`).

- **explain**: one folder per picture and, inside it, one per area. `OUT/<picture>/area<A>/` holds
  `explanation.json` (the record: settings, contours, scores, flags, alternatives), `input.png` (the
  picture as the model saw it), `mask_area<A>.png` (the binary region), `overlay_area<A>.png` (the
  region on the picture, with its legend) and `contours.geojson` (the outline). With `--area auto`
  the picture's folder also gets `OUT/<picture>/summary.png` (every area tried, and the one picked).
  With `--store` the rows go to `OUT/explanations.sqlite` (one per picture and area) instead.
- **sweep**: one folder per picture, `OUT/<picture>/`, holding `explanation.json`, `input.png`,
  `contours.geojson`, `mask_area<A>.png` and `overlay_area<A>.png` for every area, and the sweep's
  figures: `summary.png`, `importance.png` (the importance contour map), `profile.png` and
  `profile.csv` (the fidelity-area profile: area, visible_area, preserve_ratio, delete_drop).
- **show**: `OUT/mask_<picture>_area<A>.png` and `OUT/overlay_<picture>_area<A>.png` for the picture
  asked; redrawn from a result store, the names end in `_seed<S>` (and `_target<T>` where the picture
  was stored for several classes).
- **benchmark**: `per_image.csv` (per method, picture, area and seed: the binary mask's fidelity,
  shape and cost), `maps.csv` (per method, picture and seed: the map's localisation and structure, and
  its faithfulness with `--faithfulness`), `stability.csv` (with `--stability`: per method, picture,
  area and nuisance), `consistency.csv` (with several `--seeds`: the run-to-run IoU per method,
  picture and area), `errors.csv` (the pictures that failed, and why), `run.json` (the settings that
  fix what the rows mean: a run with other settings into the same folder is refused), `speed.json`
  (the model's own time per image, the floor of the cost columns), `summary.md` (the tables, also
  printed), `profile.png` (fidelity against area, one line per method) and
  `overlays/<method>/<picture>_area<A>.png`. A run into a folder that has rows continues it.
- **speed**: prints its table; writes nothing.
- **report**: `DIR/report.html`, one self-contained page; `--report` on explain, sweep and benchmark
  writes `OUT/report.html` at the end of the run.
"""


def _reference_args(action: argparse.Action) -> str:
    """What follows an option (or stands for a positional) on the command line, e.g. ``A [A ...]``."""
    if action.nargs == 0:
        return ""
    if action.metavar is not None:
        name = str(action.metavar)
    elif action.choices is not None:
        name = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        name = action.dest.upper() if action.option_strings else action.dest
    forms = {"?": f"[{name}]", "*": f"[{name} ...]", "+": f"{name} [{name} ...]"}
    return forms.get(action.nargs, name) if isinstance(action.nargs, str) else name


def _reference_item(action: argparse.Action) -> str:
    """One argument or option as a Markdown list item: how it is written, its help and its default."""
    args = _reference_args(action)
    written = ", ".join(action.option_strings) + (f" {args}" if args else "") if action.option_strings else args
    text = f"- `{written}`"
    if action.help:
        text += f": {action.help.replace('%%', '%')}"
    default = action.default
    if isinstance(default, (list, tuple)):
        default = " ".join(map(str, default)) or None
    said = "default" in (action.help or "") and str(default) in (action.help or "")  # the help says it already
    if action.required and (action.option_strings or action.nargs not in ("?", "*")):
        text += " (required)"
    elif default not in (None, False, argparse.SUPPRESS) and action.option_strings and not said:
        text += f" (default: `{default}`)"
    return text


def _reference_usage(parser: argparse.ArgumentParser) -> str:
    """A short usage line: the program, its required options, ``[options]`` and its positionals."""
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    required = [f"{a.option_strings[-1]} {_reference_args(a)}".rstrip() for a in actions if a.option_strings and a.required]
    optional = any(a.option_strings and not a.required for a in actions)
    positionals = [_reference_args(a) for a in actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
    return " ".join([parser.prog, *required, *(["[options]"] if optional else []), *positionals])


def reference_markdown() -> str:
    """``docs/cli.md``: :data:`REFERENCE_HEAD`, then every command of :func:`build_parser` (its
    purpose, usage, arguments and options with their help and defaults) and :data:`DEFINITIONS` once."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    purposes = {choice.dest: choice.help for choice in sub._choices_actions}
    lines = [REFERENCE_HEAD, "## Commands", "", f"{parser.description}", "", "```", f"{parser.prog} COMMAND ...", f"{parser.prog} --version", "```", ""]
    lines += [f"- [`{name}`](#{name}): {purposes[name]}" for name in sub.choices]
    for name, command in sub.choices.items():
        actions = [a for a in command._actions if not isinstance(a, argparse._HelpAction)]
        purpose = str(purposes[name])
        lines += ["", f"## {name}", "", f"{purpose[:1].upper()}{purpose[1:]}.", "", "```", _reference_usage(command), "```"]
        for title, group in (("Arguments", [a for a in actions if not a.option_strings]), ("Options", [a for a in actions if a.option_strings])):
            if group:
                lines += ["", f"{title}:", "", *map(_reference_item, group)]
        if command.epilog == DEFINITIONS:
            lines += ["", "The numbers and flags on the lines it prints: see [What the numbers mean](#what-the-numbers-mean)."]
    lines += ["", "## What the numbers mean", "", "As `--help` of explain and sweep ends:", ""]
    lines += [f"- {line}" for line in DEFINITIONS.replace("%%", "%").splitlines()]
    return "\n".join(lines) + "\n"
