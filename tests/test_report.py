"""The HTML report: what it reads from each kind of folder, the page it writes (self-contained, no web
address) and its size with a thousand pictures. The page in a real browser: test_report_browser.py."""

import io
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TinyNet, write_dataset
from extremal_contours import ExtremalContour
from extremal_contours.benchmark import BenchmarkConfig, overlay_file, run_benchmark
from extremal_contours.cli import main
from extremal_contours.models import LoadedModel
from extremal_contours.report import REPORT_FILE, ReportError, collect, markdown_to_html, write_report
from extremal_contours.store import ResultStore


def page_data(path: Path) -> dict:
    """The JSON object a report embeds."""
    text = path.read_text()
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert found, "no embedded data"
    return json.loads(found.group(1))


def explain(names, areas=(0.1, 0.3), seed=0):
    """A result of TinyNet on random pictures (milliseconds)."""
    x = torch.rand(len(names), 3, 40, 48, generator=torch.Generator().manual_seed(seed))
    explainer = ExtremalContour(TinyNet().eval(), iterations=3, starts=1, scan=2, progress=False)
    return explainer.attribute(x, 1, areas=areas, names=list(names))


def assert_links_exist(data: dict, root: Path) -> None:
    """Every picture the page links (not a data URI) is a file beside it."""
    sources = [t["src"] for p in data["pictures"] for t in p["thumbs"]] + [f["src"] for p in data["pictures"] for f in p["figures"]]
    for src in sources:
        if src and not src.startswith("data:"):
            assert (root / unquote(src)).is_file(), src


def test_markdown_tables_headings_paragraphs_and_escaping():
    text = "## Fidelity\n\nA note with `code` and <b>tags</b>, see https://example.org.\n\n| method | area |\n|---|:---:|\n| a<x> | 0.1 |\n| b | 0.2 |\n\ntail\n"
    html = markdown_to_html(text)
    assert "<h3>Fidelity</h3>" in html and "<code>code</code>" in html
    assert "&lt;b&gt;tags&lt;/b&gt;" in html and "://" not in html and "https:&#47;&#47;example.org" in html
    table = re.search(r"<table.*?</table>", html, re.S).group(0)
    assert table.count("<th>") == 2 and table.count("<tr>") == 3 and "a&lt;x&gt;" in table
    assert '<td class="num">0.1</td>' in table and "<p>tail</p>" in html


def test_area_folder_names_are_told_from_picture_folders():
    from extremal_contours.inputs import area_tag, is_area_tag

    assert all(is_area_tag(area_tag(a)) for a in (0.05, 0.1, 0.2, 0.4, 0.123456, 1e-05))
    assert not any(is_area_tag(n) for n in ("area", "area0.10", "area1", "area0", "areas0.1", "area0.1x", "cat", "area-0.1"))


def test_the_area_folders_of_a_picture_are_one_card_with_its_summary_first(tmp_path):
    out = tmp_path / "explanations"
    result = explain(["cat.png"], areas=(0.05, 0.1, 0.2))
    for j, area in enumerate((0.05, 0.1, 0.2)):
        result.take_areas([j]).save(out / "cat" / f"area{area:g}")  # as explain writes them
    Image.new("RGB", (8, 8)).save(out / "cat" / "summary.png")  # --area auto's figure
    explain(["dog.png"]).save(out / "dog")  # a folder holding its areas itself
    data = page_data(write_report(out))
    assert [p["name"] for p in data["pictures"]] == ["cat.png", "dog.png"]
    cat = data["pictures"][0]
    assert [f["title"] for f in cat["figures"]][:1] == ["summary of the areas"] and len(cat["figures"]) == 4
    assert len(cat["lines"]) == 3 and cat["lines"][0].startswith("area 0.05") and cat["lines"][1].startswith("area 0.1:")
    keys = [c["key"] for c in data["columns"]]
    rows = [dict(zip(keys, r[1:], strict=True)) for r in data["rows"]]
    assert sorted((r["folder"], r["area"]) for r in rows if r["picture"] == "cat.png") == [("cat", 0.05), ("cat", 0.1), ("cat", 0.2)]
    assert {r[0] for r in data["rows"] if r[1] == "cat.png"} == {0}  # every area's row opens the one card
    assert_links_exist(data, out)


def test_report_of_nested_records_with_flags_alternatives_and_a_damaged_one(tmp_path):
    out = tmp_path / "explanations"
    for i, where in enumerate(["cat", "sub/dog", "sub/deeper/bird"]):
        explain([f"{Path(where).name}.png"], seed=i).save(out / where)
    record_path = out / "sub" / "dog" / "explanation.json"
    record = json.loads(record_path.read_text())
    record["contours"][0]["flags"] = ["ambiguous", "keeps_little"]
    polygon = record["contours"][0]["polygon_px"]
    record["contours"][0]["alternatives"] = [{"preserve": 0.8, "polygon_px": polygon}, {"preserve": {"ratio": 0.7}, "polygon_px": polygon}]
    record_path.write_text(json.dumps(record))
    (out / "broken").mkdir()
    (out / "broken" / "explanation.json").write_text("{not json")

    path = write_report(out)
    assert path == out / REPORT_FILE
    text = path.read_text()
    assert "http://" not in text and "https://" not in text
    data = page_data(path)
    keys = [c["key"] for c in data["columns"]]
    rows = [dict(zip(keys, r[1:], strict=True)) for r in data["rows"]]
    assert sorted({(r["folder"], r["area"]) for r in rows}) == sorted((f, a) for f in ("cat", "sub/deeper/bird", "sub/dog") for a in (0.1, 0.3))
    dog = [r for r in rows if r["folder"] == "sub/dog"]
    second = " ".join(record["contours"][1].get("flags", []))  # the explainer's own flags, as recorded
    assert dog[0]["flags"] == "ambiguous keeps_little" and dog[0]["alternatives"] == 2 and dog[1]["flags"] == second
    assert all(0 <= r["visible"] <= 1 and r["preserve"] is not None for r in rows)
    picture = next(p for p in data["pictures"] if p["name"] == "dog.png")
    expected = {"ambiguous", "keeps_little", *record["contours"][1].get("flags", [])}  # a picture's flags: its areas' together
    assert len(picture["flags"]) == len(expected) and set(picture["flags"]) == expected and picture["thumbs"][0]["src"].startswith("data:image/jpeg;base64,")
    first = picture["figures"][0]
    assert unquote(first["src"]) == "sub/dog/overlay_area0.1.png"
    assert [o["kind"] for o in first["outlines"]] == ["alt", "alt"] and first["outlines"][0]["d"].startswith("M")
    assert any("alternative 2: keeps 0.70" in line for line in first["lines"])
    assert_links_exist(data, out)
    assert "broken/explanation.json: skipped" in text  # a damaged record is a note, not a failure


def test_report_of_a_sweep_shows_its_figures(tmp_path):
    from extremal_contours.figures import save_sweep

    result = explain(["a.png"], areas=(0.1, 0.2, 0.4))
    result.save(tmp_path / "a")
    save_sweep(result, tmp_path / "a")
    data = page_data(write_report(tmp_path))
    titles = [f["title"] for f in data["pictures"][0]["figures"]]
    assert titles[:2] == ["importance map", "fidelity-area profile"] and len(titles) == 5
    assert_links_exist(data, tmp_path)


def test_report_of_a_store_draws_on_the_source_or_on_grey(tmp_path):
    sources = []
    for i in range(2):
        path = tmp_path / "pictures" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
        sources.append(str(path))
    out = tmp_path / "stored"
    ResultStore(out / "explanations.sqlite").add(explain(["0.png", "1.png"]), images=["0.png", "1.png"], sources=sources)
    Path(sources[1]).unlink()  # moved away since: outlines on grey
    data = page_data(write_report(out))
    assert [p["name"] for p in data["pictures"]] == ["0.png", "1.png"] and len(data["rows"]) == 4
    found, gone = data["pictures"]
    assert unquote(found["figures"][0]["src"]) == "../pictures/0.png" and found["figures"][0]["outlines"][0]["kind"] == "main"
    assert gone["figures"][0]["src"] is None and any("gone" in line for line in gone["lines"])
    assert all(p["thumbs"][0]["src"].startswith("data:image/jpeg") for p in data["pictures"])
    assert_links_exist(data, out)


@pytest.fixture
def benchmark_folder(tmp_path):
    data = write_dataset(tmp_path / "data", 3)
    loaded = LoadedModel(model=TinyNet(classes=3).eval(), name="tiny", input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    out = tmp_path / "bench"
    config = BenchmarkConfig(data=data, methods=["saliency", "gradcam"], out=out, areas=(0.1, 0.2), stability=False)
    run_benchmark(config, loaded, progress=False, log=lambda m: None)
    return out


def test_report_of_a_benchmark_with_summary_tables_and_methods_side_by_side(benchmark_folder):
    out = benchmark_folder
    path = write_report(out)
    text = path.read_text()
    assert "http://" not in text and "https://" not in text
    assert text.count('<table class="md">') >= 3 and "<h3>Fidelity and cost</h3>" in text and 'src="profile.png"' in text
    data = page_data(path)
    assert data["kind"] == "benchmark" and len(data["rows"]) == 3 * 2 * 2
    assert {c["key"] for c in data["columns"]} >= {"method", "preserve", "drop", "relevance_mass"}
    picture = data["pictures"][0]
    assert [t["label"] for t in picture["thumbs"]] == ["saliency", "gradcam"]
    assert unquote(picture["thumbs"][0]["src"]) == overlay_file(out, "saliency", "0.png", 0.1).relative_to(out).as_posix()
    assert [(f["group"], f["title"]) for f in picture["figures"]] == [
        ("area 0.1", "saliency"), ("area 0.1", "gradcam"), ("area 0.2", "saliency"), ("area 0.2", "gradcam")
    ]  # fmt: skip
    assert_links_exist(data, out)
    # A folder made before the benchmark drew overlays: the page says so and shows the numbers.
    shutil.rmtree(out / "overlays")
    text = write_report(out).read_text()
    assert "has no overlays" in text
    assert all(t["src"] is None for p in page_data(out / REPORT_FILE)["pictures"] for t in p["thumbs"])


def test_a_thousand_pictures_make_a_page_of_a_few_megabytes(tmp_path):
    """Thumbnails are small data URIs, the table and the gallery are built by the page's script from
    one JSON array: the page grows by a few kB per picture."""
    result = explain(["model.png"], areas=(0.1, 0.3))
    result.save(tmp_path / "model")
    record = json.loads((tmp_path / "model" / "explanation.json").read_text())
    photo = io.BytesIO()  # a textured picture: thumbnails of noise or flat colour would mislead the bound
    from extremal_contours import sample_image_path

    Image.open(sample_image_path()).convert("RGB").resize((96, 80)).save(photo, format="PNG")
    out = tmp_path / "many"
    for i in range(1000):
        folder = out / f"part{i // 100}" / f"picture{i:04d}"
        folder.mkdir(parents=True)
        record["image"]["name"] = f"picture{i:04d}.jpg"
        record["contours"][0]["flags"] = ["suspicious"] if i % 10 == 0 else []
        (folder / "explanation.json").write_text(json.dumps(record))
        (folder / "input.png").write_bytes(photo.getvalue())
    path = write_report(out)
    size = path.stat().st_size
    assert size < 4_000_000, f"{size / 1e6:.1f} MB for 1000 pictures"
    text = path.read_text()
    assert text.count("<img") == 0 and text.count("<tr") == 0  # built by the script, lazily for the pictures
    data = page_data(path)
    assert len(data["pictures"]) == 1000 and len(data["rows"]) == 2000
    assert sum("suspicious" in r for r in data["rows"]) == 100


def test_report_refuses_what_it_cannot_describe(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no explain, sweep or benchmark output"):
        collect(tmp_path / "empty")
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "explanation.json" in err[0]
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "bad" / "x").mkdir(parents=True)
    (tmp_path / "bad" / "x" / "explanation.json").write_text("[]")
    assert main(["report", str(tmp_path / "bad")]) == 2
    assert "no readable explanation" in capsys.readouterr().err


def test_report_command_prints_the_page_path(tmp_path, capsys):
    explain(["a.png"]).save(tmp_path / "a")
    assert main(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / REPORT_FILE)


RANDOM = ["--model", "test_efficientnet", "--weights", "random", "--iterations", "3", "--starts", "1", "--quiet", "--device", "cpu"]


def test_sweep_report_flag_and_a_run_that_wrote_nothing(tmp_path, capsys):
    picture = tmp_path / "in" / "a.png"
    picture.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(picture)
    assert main(["sweep", str(picture), "--areas", "0.1", "0.3", "--out", str(tmp_path / "sweeps"), "--report", *RANDOM]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "sweeps" / REPORT_FILE)
    titles = [f["title"] for f in page_data(tmp_path / "sweeps" / REPORT_FILE)["pictures"][0]["figures"]]
    assert titles[:2] == ["importance map", "fidelity-area profile"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "b.png").write_bytes(b"not a picture")
    assert main(["explain", str(tmp_path / "bad"), "--out", str(tmp_path / "none"), "--report", *RANDOM]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: report: ")
