"""The little Markdown the benchmark's ``summary.md`` uses, as HTML: headings, paragraphs and pipe
tables (a converter of a few lines rather than a dependency)."""

from __future__ import annotations

import html
import re

__all__ = ["escape", "markdown_to_html"]


def escape(text: str) -> str:
    """``text`` safe in HTML, with ``://`` written as entities: no text of a folder ever makes a
    web address in the page."""
    return html.escape(text, quote=True).replace("://", ":&#47;&#47;")


def _inline(text: str) -> str:
    """Escaped text with ``code`` and **bold** spans."""
    out = escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _is_rule(line: str) -> bool:
    """The line under a table's header: pipes, dashes and colons only."""
    body = line.replace("|", "").replace(":", "").strip()
    return line.strip().startswith("|") and bool(body) and set(body) <= {"-", " "}


def _table(lines: list[str]) -> str:
    """A pipe table (header, rule, rows) as an HTML table; numeric cells are right-aligned."""
    head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(lines[0]))
    rows = []
    for line in lines[2:]:
        cells = _cells(line)
        rows.append("<tr>" + "".join(f"<td{_align(c)}>{_inline(c)}</td>" for c in cells) + "</tr>")
    return f'<div class="wide"><table class="md"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _align(cell: str) -> str:
    return ' class="num"' if re.match(r"^-?[\d.]+(\s|$)", cell) else ""


def markdown_to_html(text: str) -> str:
    """HTML of Markdown ``text``: ``#`` headings (one level lower, under the page's own), pipe tables
    and paragraphs; everything else is kept as escaped text."""
    lines = text.splitlines()
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    k = 0
    while k < len(lines):
        line = lines[k]
        heading = re.match(r"^(#{1,5})\s+(.*)$", line)
        if heading:
            flush()
            level = len(heading.group(1)) + 1
            out.append(f"<h{level}>{_inline(heading.group(2).strip())}</h{level}>")
        elif line.strip().startswith("|") and k + 1 < len(lines) and _is_rule(lines[k + 1]):
            flush()
            end = k + 2
            while end < len(lines) and lines[end].strip().startswith("|"):
                end += 1
            out.append(_table(lines[k:end]))
            k = end
            continue
        elif not line.strip():
            flush()
        else:
            paragraph.append(line.strip())
        k += 1
    flush()
    return "\n".join(out)
