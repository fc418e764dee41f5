"""Every notebook in ``notebooks/`` runs from top to bottom and writes what it promises.

How a notebook is run here (the convention every notebook follows):

* with nbclient, in a kernel that runs *this* interpreter (``sys.executable``): the test
  writes a kernelspec into a temporary ``JUPYTER_PATH``, so no system-wide Jupyter set-up or
  ``python3`` kernel of another environment is used;
* with the repository root first on ``PYTHONPATH`` (the checkout under test, whether or not it
  is pip-installed) and ``XRAY_SEG_NOTEBOOK_SMALL=1``, which the notebook's first code cell (tagged
  ``parameters``) reads to shrink everything to a smoke test (64 px, a few images, one epoch);
* with a fresh temporary directory as the working directory; notebooks write only under it.

A notebook lists the files it promises in its metadata, ``metadata.xray_seg.artefacts``: paths
or glob patterns relative to that working directory, each of which must match a non-empty file.

The committed notebooks must have no outputs (so that diffs stay readable and files small).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "xray-seg-test"
CELL_TIMEOUT_S = 300  # one cell; the small mode of a whole notebook takes about a minute
MAX_NOTEBOOK_BYTES = 40_000
SMALL_ENV = "XRAY_SEG_NOTEBOOK_SMALL"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _ids(paths):
    return [p.name for p in paths]


def test_notebooks_are_found():
    names = [p.name for p in NOTEBOOKS]
    assert "01_quickstart.ipynb" in names and "02_your_labelme_data.ipynb" in names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_notebook_is_clean(path):
    """Valid nbformat 4, no outputs or execution counts, small, parameters cell first."""
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name} is {path.stat().st_size} bytes; clear its outputs"
    nb = _read(path)
    nbformat.validate(nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells, f"{path.name} has no code"
    for index, cell in enumerate(code_cells):
        assert cell.outputs == [], f"{path.name}: code cell {index} has outputs; clear them before committing"
        assert cell.execution_count is None, f"{path.name}: code cell {index} has an execution count"
    first = code_cells[0]
    assert "parameters" in first.metadata.get("tags", []), (
        f"{path.name}: the first code cell must be tagged 'parameters'"
    )
    assert SMALL_ENV in first.source, f"{path.name}: the parameters cell must read {SMALL_ENV}"
    artefacts = nb.metadata.get("xray_seg", {}).get("artefacts")
    assert artefacts and all(isinstance(a, str) and not Path(a).is_absolute() for a in artefacts), (
        f"{path.name}: list the files it writes as relative paths in metadata.xray_seg.artefacts"
    )


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec for this interpreter, plus Jupyter/IPython state dirs, all in a temp dir."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "data" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "xray-seg test kernel",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "JUPYTER_PATH": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "IPYTHONDIR": str(root / "ipython"),
        "PYTHONPATH": pythonpath,
        SMALL_ENV: "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLBACKEND": "Agg",
    }


def _cell_error(exc: Exception) -> str:
    """nbclient's error (the failing cell's source and traceback), without colour codes, capped."""
    text = ANSI_ESCAPE.sub("", str(exc))
    return text if len(text) < 6000 else text[:1500] + "\n...\n" + text[-4500:]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_small_mode(path, kernel_env, tmp_path, monkeypatch):
    for key, value in kernel_env.items():
        monkeypatch.setenv(key, value)
    nb = _read(path)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    repo_entries = sorted(p.name for p in REPO.iterdir())
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name} failed in a cell:\n{_cell_error(exc)}", pytrace=False)
    except nbclient.exceptions.CellTimeoutError as exc:
        pytest.fail(f"{path.name}: a cell ran past {CELL_TIMEOUT_S} s: {exc}", pytrace=False)
    elapsed = time.perf_counter() - start
    print(f"{path.name}: executed in small mode in {elapsed:.1f} s")

    for pattern in nb.metadata["xray_seg"]["artefacts"]:
        found = [p for p in tmp_path.glob(pattern) if p.is_file() and p.stat().st_size > 0]
        assert found, f"{path.name} promised {pattern}, which it did not write"
    new_entries = sorted(set(p.name for p in REPO.iterdir()) - set(repo_entries))
    assert not new_entries, f"{path.name} wrote into the repository, not its working directory: {new_entries}"
    _check_content(path.name, tmp_path)


def _check_content(name: str, cwd: Path) -> None:
    """Spot checks of what the artefacts contain, beyond their existence."""
    for metrics_file in cwd.glob("**/eval-val/metrics.json"):
        scores = json.loads(metrics_file.read_text())
        assert 0.0 <= scores["pa"] <= 1.0 and 0.0 <= scores["miou"] <= 1.0, (name, metrics_file)
        assert scores["class_names"][0] == "_background_", (name, metrics_file)
    for overlay in cwd.glob("**/*_overlay.png"):
        from PIL import Image

        with Image.open(overlay) as img:
            assert img.mode == "RGB" and min(img.size) >= 64, (name, overlay, img.mode, img.size)
