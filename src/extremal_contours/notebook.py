"""How explanations show themselves in Jupyter: a little HTML with small embedded pictures.

:class:`~extremal_contours.result.ContourResult` and the baselines'
:class:`~extremal_contours.baselines.registry.Attribution` call these functions from their
``_repr_html_`` and ``_repr_pretty_`` (lazily, so reading a result never imports the drawing code).
A notebook stores every output it shows, so the HTML is kept light: thumbnails at most
:data:`THUMBNAIL` px on their longest side, PNG in 256 colours, embedded as ``data:`` URIs (the
notebook stays one self-contained file), and at most :data:`MAX_IMAGES` images, saying how many
more there are. The numbers go into a small table, one row per (image, area).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .export import overlay
from .flags import FLAGS
from .viz import PALETTE

if TYPE_CHECKING:
    from .baselines.registry import Attribution
    from .result import ContourResult

__all__ = [
    "MAX_IMAGES",
    "THUMBNAIL",
    "attribution_html",
    "attribution_text",
    "heat_image",
    "png_data_uri",
    "result_html",
    "result_text",
    "thumbnail_size",
]

#: Longest side (px) of a picture in a notebook's output.
THUMBNAIL = 256
#: Images of a batch shown; the rest are counted, not drawn.
MAX_IMAGES = 8

_TABLE = "border-collapse:collapse;font-size:12px;margin:4px 0"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left"
_FIGURE = "display:inline-block;margin:0 6px 6px 0;vertical-align:top;font-size:11px;text-align:center"


# -- pictures --------------------------------------------------------------------------------------


def thumbnail_size(height: int, width: int, limit: int = THUMBNAIL) -> tuple[int, int]:
    """``(width, height)`` of a picture fitted into ``limit`` px, never enlarged (a small model
    input is shown as it is)."""
    factor = min(1.0, limit / max(height, width))
    return max(1, round(width * factor)), max(1, round(height * factor))


def png_data_uri(picture: Image.Image) -> str:
    """``picture`` as a ``data:image/png;base64,...`` URI, in 256 colours (a third of the bytes of
    full colour for photographs; the overlays' flat colours survive it)."""
    rgb = picture.convert("RGB")
    small = rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(picture: Image.Image, caption: str) -> str:
    w, h = picture.size
    alt = html.escape(caption, quote=True)
    return (
        f'<figure style="{_FIGURE}"><img src="{png_data_uri(picture)}" width="{w}" height="{h}" alt="{alt}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def heat_image(values: np.ndarray, size: tuple[int, int], cmap: str = "inferno") -> Image.Image:
    """A map ``(H, W)`` as an RGB picture of ``size`` ``(width, height)``, stretched to its own range
    (a constant or non-finite map is drawn as zeros)."""
    from matplotlib import colormaps

    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(v.min()), float(v.max())
    v = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    colours = (colormaps[cmap](v)[..., :3] * 255).round().astype(np.uint8)
    return Image.fromarray(colours).resize(size, Image.Resampling.BILINEAR)


def _outline(picture: Image.Image, mask: np.ndarray, colour: str) -> Image.Image:
    """``picture`` with the boundary of ``mask`` (any size; resized to the picture's) drawn about
    2 px wide in ``colour``."""
    from scipy.ndimage import binary_dilation, binary_erosion

    inside = np.asarray(Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255).resize(picture.size, Image.Resampling.BILINEAR)) >= 128
    edge = binary_dilation(inside & ~binary_erosion(inside, border_value=0))
    out = np.array(picture.convert("RGB"))
    out[edge] = [int(colour[k : k + 2], 16) for k in (1, 3, 5)]
    return Image.fromarray(out)


# -- numbers ---------------------------------------------------------------------------------------


def _number(value: float, percent: bool = False) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.0%}" if percent else f"{value:.3g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; the cells are HTML already (escaped by the caller)."""
    head = "".join(f'<th style="{_CELL}">{html.escape(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="{_CELL}">{c}</td>' for c in row) + "</tr>" for row in rows)
    return f'<table style="{_TABLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _more(shown: int, total: int) -> str:
    rest = total - shown
    return f"<p style=\"font-size:12px\">... and {rest} more image{'s' if rest != 1 else ''} not shown (the first {shown} of {total}).</p>" if rest > 0 else ""


def _name(result: Any, i: int) -> str:
    names = getattr(result, "names", None)
    return names[i] if names else f"image {i}"


def _flags_cell(result: ContourResult, i: int, j: int) -> str:
    raised = result.flags_of(i, j)
    if not raised:
        return "none"
    return ", ".join(f'<span title="{html.escape(FLAGS[f], quote=True)}">&#9888; {html.escape(f.replace("_", " "))}</span>' for f in raised)


def _verdict_cell(result: ContourResult, i: int, j: int) -> str:
    verdict = result.verdict[i][j]
    if verdict is None:
        return "not checked"
    found = int(result.alternatives.count[i, j]) if result.alternatives is not None else 0
    return f"{verdict} ({found} alternative{'s' if found != 1 else ''})"


def _result_rows(result: ContourResult, shown: int) -> list[list[str]]:
    """One row per (image, area) of the first ``shown`` images."""
    probability = result.clean_probability
    ratio, drop = result.preserve_ratio, result.delete_drop
    rows = []
    for i in range(shown):
        clean = float(probability[i]) if probability is not None else float(result.clean_score[i])
        for j, area in enumerate(result.areas):
            rows.append([
                html.escape(_name(result, i)),
                html.escape(result.label(i)),
                _number(clean),
                f"{area:g}",
                _number(float(result.visible_area[i, j])),
                _number(float(ratio[i, j])),
                _number(float(drop[i, j])),
                _flags_cell(result, i, j),
                _verdict_cell(result, i, j),
            ])  # fmt: skip
    return rows


# -- a ContourResult -------------------------------------------------------------------------------


def result_html(result: ContourResult, limit: int = MAX_IMAGES, size: int = THUMBNAIL) -> str:
    """The HTML a notebook shows for ``result``: per image (the first ``limit``) its overlay at each
    area, drawn on the model input by :func:`extremal_contours.export.overlay` (no pictures when
    the result holds none), then the numbers of every (image, area) in one table."""
    n, areas = result.num_images, len(result.areas)
    shown = min(n, limit)
    seconds = result.cost.get("seconds")
    took = f", {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
    parts = [
        f"<div><p style=\"font-size:12px\"><b>ContourResult</b>: {n} image{'s' if n != 1 else ''} &times; {areas} "
        f"area{'s' if areas != 1 else ''}, {html.escape(result.variant)}, score {html.escape(result.score)}{took}</p>"
    ]
    if result.images is not None:
        h, w = result.image_size
        width, height = thumbnail_size(h, w, size)
        for i in range(shown):
            canvas = Image.fromarray(result.images[i].permute(1, 2, 0).numpy()).resize((width, height), Image.Resampling.LANCZOS)
            figures = [_img(overlay(result, i, j, canvas, width / w), f"{_name(result, i)}, area {a:g}") for j, a in enumerate(result.areas)]
            parts.append("<div>" + "".join(figures) + "</div>")
    header = ["image", "class", "clean p" if result.clean_probability is not None else "clean score", "area", "visible",
              "preserve ratio", "delete drop", "flags", "verdict"]  # fmt: skip
    parts.append(_table(header, _result_rows(result, shown)))
    parts.append(_more(shown, n))
    parts.append(
        '<p style="font-size:11px;color:#555">preserve ratio: the class probability with only the region kept, over the '
        "whole picture's; delete drop: 1 - the probability with the region removed, over the whole picture's.</p></div>"
    )
    return "".join(parts)


def result_text(result: ContourResult, limit: int = MAX_IMAGES) -> str:
    """A few lines for a terminal or a notebook's plain-text output, in place of every tensor."""
    n = result.num_images
    lines = [f"ContourResult: {n} image(s) x {len(result.areas)} area(s) {list(result.areas)}, {result.variant}, score {result.score}"]
    for i in range(min(n, limit)):
        lines.append(f"  {_name(result, i)}: {result.label(i)}")
        for j, area in enumerate(result.areas):
            flags = ", ".join(result.flags_of(i, j)) or "none"
            verdict = result.verdict[i][j]
            lines.append(
                f"    area {area:g}: preserve ratio {_number(float(result.preserve_ratio[i, j]))}, "
                f"delete drop {_number(float(result.delete_drop[i, j]))}; flags: {flags}" + (f"; verdict: {verdict}" if verdict else "")
            )
    if n > limit:
        lines.append(f"  ... and {n - limit} more")
    return "\n".join(lines)


# -- an Attribution --------------------------------------------------------------------------------


def _attribution_pictures(attribution: Attribution, i: int, images: Tensor | None, size: int) -> str:
    """Image ``i``'s map as a heat picture (blended over ``images[i]`` when given), with the masks'
    outlines, one colour per area."""
    _, _, h, w = attribution.maps.shape
    box = thumbnail_size(h, w, size)
    picture = heat_image(attribution.maps[i, 0].numpy(), box)
    if images is not None:
        under = Image.fromarray(images[i].permute(1, 2, 0).numpy()).resize(box, Image.Resampling.LANCZOS)
        picture = Image.blend(under, picture, 0.5)
    caption = f"{_name(attribution.detail, i)}: {attribution.method} map"
    if attribution.masks is not None:
        for j in range(attribution.masks.shape[1]):
            picture = _outline(picture, attribution.masks[i, j, 0].numpy(), PALETTE[j % len(PALETTE)])
        areas = ", ".join(f"{a:g}" for a in attribution.areas or ())
        caption += f", masks at area {areas}" if areas else ", masks"
    return _img(picture, caption)


def _detail_columns(attribution: Attribution) -> list[tuple[float, int]]:
    """``(area, column)`` of the method's own result for each area of the masks: a mask method's
    result may hold more areas than its masks (``contour_map`` sweeps many, keeps the asked ones)."""
    detail = attribution.detail
    if detail is None or not hasattr(detail, "preserve_ratio") or not attribution.areas:
        return []
    own = [float(a) for a in getattr(detail, "areas", attribution.areas)]
    return [(a, own.index(float(a))) for a in attribution.areas if float(a) in own]


def attribution_html(attribution: Attribution, images: Tensor | None = None, limit: int = MAX_IMAGES, size: int = THUMBNAIL) -> str:
    """The HTML a notebook shows for an :class:`Attribution`: per image (the first ``limit``) its map
    as a small heat picture (over ``images``, ``(N, 3, H, W)`` uint8 such as
    :attr:`ContourResult.images`, when given or when the method's result holds them) with its masks'
    outlines, and a table of the classes (and, for mask methods, the fidelity per area)."""
    n = int(attribution.maps.shape[0])
    shown = min(n, limit)
    detail = attribution.detail
    if images is None and detail is not None:
        images = getattr(detail, "images", None)
    if images is not None and tuple(images.shape[-2:]) != tuple(attribution.maps.shape[-2:]):
        raise ValueError(f"images of size {tuple(images.shape[-2:])} for maps of size {tuple(attribution.maps.shape[-2:])}")
    passes = f"{attribution.forward_backward} forward+backward and {attribution.forward} forward passes"
    parts = [
        f'<div><p style="font-size:12px"><b>Attribution</b> {html.escape(attribution.method)}: {n} image{"s" if n != 1 else ""}, '
        f"{attribution.seconds:.1f} s, {passes}</p>",
        "<div>" + "".join(_attribution_pictures(attribution, i, images, size) for i in range(shown)) + "</div>",
    ]
    columns = _detail_columns(attribution)
    if columns:
        header = ["image", "class", "area", "preserve ratio", "delete drop"]
        rows = [[html.escape(_name(detail, i)), str(int(attribution.classes[i])), f"{a:g}", _number(float(detail.preserve_ratio[i, k])),
                 _number(float(detail.delete_drop[i, k]))] for i in range(shown) for a, k in columns]  # fmt: skip
    else:
        header = ["image", "class", "map min", "map max"]
        maps = attribution.maps
        rows = [[f"image {i}", str(int(attribution.classes[i])), _number(float(maps[i].min())), _number(float(maps[i].max()))] for i in range(shown)]
    parts += [_table(header, rows), _more(shown, n), "</div>"]
    return "".join(parts)


def attribution_text(attribution: Attribution) -> str:
    """One line for a terminal or a notebook's plain-text output, in place of every tensor."""
    n, _, h, w = attribution.maps.shape
    classes = attribution.classes.tolist() if isinstance(attribution.classes, torch.Tensor) else attribution.classes
    masks = f", masks at areas {list(attribution.areas or ())}" if attribution.masks is not None else ""
    return f"Attribution {attribution.method}: {n} map(s) {h}x{w}, classes {classes}{masks}, {attribution.seconds:.1f} s"
