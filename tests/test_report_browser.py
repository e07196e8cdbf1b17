"""The HTML report in a real browser: Debian's chromium driven by Playwright, on the reports of a small
``explain`` and a small ``benchmark`` run (random weights), opened from the file system."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_dataset
from extremal_contours.cli import main
from extremal_contours.report import REPORT_FILE

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright; the test extra has it)")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run installs it where apt works)"
)
#: Chromium offline and quiet: nothing it does on its own reaches the network.
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
RANDOM = ["--model", "test_efficientnet", "--weights", "random", "--device", "cpu", "--quiet"]


def _pictures(folder: Path, count: int, size=(48, 64)) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / ("sub" if i >= 3 else "") / f"p{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def explain_report(tmp_path_factory):
    """The report of ``explain`` of 5 pictures at 2 areas, one record given flags and alternatives."""
    root = tmp_path_factory.mktemp("explain")
    _pictures(root / "in", 5)
    out = root / "out"
    code = main(["explain", str(root / "in"), "--out", str(out), "--area", "0.1", "0.2", "--iterations", "4", "--starts", "1", *RANDOM, "--report"])
    assert code == 0 and (out / REPORT_FILE).is_file()
    record_path = out / "p1" / "area0.1" / "explanation.json"  # each area in its own folder
    record = json.loads(record_path.read_text())
    record["contours"][0]["flags"] = ["ambiguous", "unstable"]
    other = json.loads((out / "p1" / "area0.2" / "explanation.json").read_text())["contours"][0]["polygon_px"]
    record["contours"][0]["alternatives"] = [{"preserve": 0.9, "polygon_px": other}]
    record_path.write_text(json.dumps(record))
    assert main(["report", str(out)]) == 0
    return out / REPORT_FILE


@pytest.fixture(scope="module")
def benchmark_report(tmp_path_factory):
    """The report of a ``benchmark`` of 5 pictures, 3 fast methods, 2 areas."""
    root = tmp_path_factory.mktemp("benchmark")
    data = write_dataset(root / "data", 5, seed=1)
    out = root / "out"
    options = ["--option", "contour.iterations=3", "--option", "contour.starts=1", "--option", "contour.scan=2"]
    code = main(["benchmark", "--data", str(data), "--methods", "contour,saliency,gradcam", *options, "--areas", "0.1", "0.2", "--out", str(out), *RANDOM, "--report"])
    assert code == 0 and (out / REPORT_FILE).is_file()
    return out / REPORT_FILE


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")  # a new, empty user-data folder
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=ARGS, viewport={"width": 1280, "height": 900}
        )
        yield context
        context.close()


class Page:
    """A report opened from the file system, with what went wrong on the way: console errors,
    uncaught exceptions and any attempt to reach the network."""

    def __init__(self, browser, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route(re.compile(r"^(https?|wss?|ftp)://"), lambda route: (self.requests.append(route.request.url), route.abort()))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")

    def all_pictures_load(self, scope: str = "body") -> int:
        """Load the lazy pictures too; every picture under ``scope`` decoded with a size. Returns the count."""
        self.page.evaluate(f"document.querySelectorAll('{scope} img').forEach(i => (i.loading = 'eager'))")
        self.page.wait_for_function(f"Array.from(document.querySelectorAll('{scope} img')).every(i => i.complete)", timeout=20000)
        broken = self.page.evaluate(f"Array.from(document.querySelectorAll('{scope} img')).filter(i => !(i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
        assert broken == []
        return self.page.evaluate(f"document.querySelectorAll('{scope} img').length")

    def column(self, key: str) -> list[str]:
        """The shown cells of a column, top to bottom."""
        index = self.page.evaluate(f"Array.from(document.querySelectorAll('#table thead th')).findIndex(th => th.dataset.key === '{key}')")
        assert index >= 0, key
        return self.page.evaluate(
            f"Array.from(document.querySelectorAll('#table tbody tr')).filter(tr => !tr.hidden).map(tr => tr.cells[{index}].textContent)"
        )

    def sorts(self, key: str) -> None:
        """Clicking the header sorts by the column's values; clicking again, the other way."""
        before = self.column(key)
        self.page.click(f"#table thead th[data-key='{key}']")
        values = [float(v) for v in self.column(key)]
        assert values == sorted(float(v) for v in before) and self.page.get_attribute(f"th[data-key='{key}']", "aria-sort") == "ascending"
        self.page.click(f"#table thead th[data-key='{key}']")
        assert [float(v) for v in self.column(key)] == sorted(values, reverse=True)

    def filters(self, text: str, rows: int, cards: int) -> None:
        """Typing ``text`` keeps the ``rows`` rows (and ``cards`` pictures) that hold it."""
        total = self.page.locator("#table tbody tr").count()
        self.page.fill("#filter", text)
        shown = self.page.evaluate("Array.from(document.querySelectorAll('#table tbody tr')).filter(tr => !tr.hidden).map(tr => tr.textContent.toLowerCase())")
        assert len(shown) == rows < total and all(text.lower() in row for row in shown)
        assert self.page.locator("#gallery .card:not([hidden])").count() == cards
        assert self.page.inner_text("#count") == f"{rows} of {total} rows"
        self.page.fill("#filter", "")
        assert self.page.locator("#table tbody tr:not([hidden])").count() == total

    def opens(self, card: int) -> None:
        """Clicking a picture opens its large view (every picture in it loaded); Esc closes it."""
        name = self.page.locator("#gallery .card strong").nth(card).inner_text()
        assert self.page.locator("#view").is_hidden()
        self.page.locator("#gallery .card img").nth(card * self.thumbs_per_card()).click()
        assert self.page.locator("#view").is_visible() and self.page.inner_text("#view-title") == name
        assert self.all_pictures_load("#view") >= 2
        self.page.keyboard.press("Escape")
        assert self.page.locator("#view").is_hidden()

    def thumbs_per_card(self) -> int:
        return self.page.locator("#gallery .card").first.locator(".thumb").count()

    def screenshot_is_not_blank(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)
        with Image.open(path) as shot:
            colours = shot.convert("RGB").getcolors(1 << 24)
        assert colours is not None and len(colours) > 50, "a blank page"

    def clean(self) -> None:
        assert self.errors == [] and self.requests == []


def test_explain_report_in_a_browser(browser, explain_report, tmp_path):
    text = explain_report.read_text()
    assert "http://" not in text and "https://" not in text
    page = Page(browser, explain_report)
    assert page.page.locator("#gallery .card").count() == 5
    assert page.all_pictures_load() == 5  # one embedded thumbnail per picture
    assert page.page.locator("#table tbody tr").count() == 10  # 5 pictures x 2 areas
    page.sorts("preserve")
    page.sorts("drop")
    page.page.click("#table thead th[data-key='picture']")
    assert page.column("picture") == sorted(page.column("picture"))
    page.filters("p3.png", rows=2, cards=1)
    page.filters("unstable", rows=1, cards=1)  # flags are text of the table
    flags = page.page.locator("#gallery .card", has_text="p1.png").locator(".flag").all_inner_texts()
    assert flags[:2] == ["ambiguous", "unstable"] and len(set(flags)) == len(flags)  # area 0.1's first, each once
    page.opens(0)
    # The picture with an alternative: drawn dashed over its overlay, its ratio said under it.
    page.page.locator("#gallery .card", has_text="p1.png").click()
    assert page.page.locator("#view svg path.alt").count() == 1 and "alternative 1: keeps 0.90" in page.page.inner_text("#view")
    page.page.click("#view-close")
    # A row of the table opens its picture too.
    page.page.locator("#table tbody tr").first.click()
    assert page.page.locator("#view").is_visible()
    page.page.keyboard.press("Escape")
    page.screenshot_is_not_blank(tmp_path / "explain.png")
    page.clean()


def test_benchmark_report_in_a_browser(browser, benchmark_report, tmp_path):
    text = benchmark_report.read_text()
    assert "http://" not in text and "https://" not in text
    page = Page(browser, benchmark_report)
    assert page.page.locator("table.md").count() >= 3  # the summary's tables
    assert page.page.locator("#gallery .card").count() == 5 and page.thumbs_per_card() == 3  # methods side by side
    assert page.all_pictures_load() == 1 + 5 * 3  # the profile plot and every method's overlay
    assert page.page.locator("#table tbody tr").count() == 3 * 5 * 2
    page.sorts("preserve")
    page.sorts("visible")
    page.filters("gradcam", rows=10, cards=5)
    page.filters("3.png", rows=6, cards=1)
    page.opens(2)
    assert page.page.locator("#view").is_hidden()
    page.screenshot_is_not_blank(tmp_path / "benchmark.png")
    page.clean()


def test_a_benchmark_folder_without_overlays_says_so_in_the_browser(browser, benchmark_report, tmp_path):
    out = tmp_path / "old"
    shutil.copytree(benchmark_report.parent, out, ignore=shutil.ignore_patterns("overlays"))
    assert main(["report", str(out)]) == 0
    page = Page(browser, out / REPORT_FILE)
    assert "has no overlays" in page.page.inner_text("header")
    assert page.page.locator("#gallery .card .missing").count() == 5 * 3
    page.all_pictures_load()
    page.page.locator("#gallery .card").first.click()
    assert page.page.locator("#view").is_visible() and page.page.locator("#view .missing").count() == 6
    page.clean()
