"""The notebooks in ``notebooks/`` run from top to bottom without error (each in a fresh kernel, in a
temporary folder), draw their figures, and are committed without outputs."""

import os
from importlib.metadata import entry_points
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SHIM = "[xarray.backends]\nspec2x = spec2x.backend:Spec2xBackend\n"


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """This tree first on the kernel's path; where spec2x is not installed from this tree, an entry point
    shim so ``engine="spec2x"`` resolves as it does after ``pip install``."""
    paths = [str(ROOT)]
    if "spec2x" not in {e.name for e in entry_points(group="xarray.backends")}:
        info = tmp_path / "shim" / "spec2x_engine-0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spec2x-engine\nVersion: 0\n")
        (info / "entry_points.txt").write_text(SHIM)
        paths.append(str(info.parent))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "distributed.ipynb", "parity_with_jwst.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, kernel_env):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{path.name}: commit it without outputs"
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    pictures = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert pictures, f"{path.name} drew no figure"
