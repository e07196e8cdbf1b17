"""The documentation as a product: the command reference is generated from the parser and kept
current, and nothing the project ships points at files outside it."""

from __future__ import annotations

from pathlib import Path

from extremal_contours.cli_reference import REFERENCE_COMMAND, reference_markdown

ROOT = Path(__file__).resolve().parents[1]

#: What no file under ``src/`` or ``docs/`` may mention: places outside the project.
OUTSIDE = ("../shared", "shared/METHOD.md")


def test_cli_reference_is_generated_from_the_parser():
    written = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert written == reference_markdown(), f"docs/cli.md is out of date with the parser; regenerate it from the repository root: {REFERENCE_COMMAND}"


def test_cli_reference_lists_every_option_of_every_command():
    from extremal_contours.cli import build_parser

    text = reference_markdown()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in commands.items():
        assert f"\n## {name}\n" in text, name
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in command._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in section or f", {option}" in section, (name, option)


def test_nothing_in_src_or_docs_points_outside_the_project():
    found = []
    for folder in ("src", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.parts[-2].endswith(".egg-info"):  # built, not written
                continue
            text = path.read_bytes().decode("utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), 1):
                if any(word in line for word in OUTSIDE):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not found, "files outside the project are named (name a dataset by what it is, its folder as --data DIR):\n" + "\n".join(found)
