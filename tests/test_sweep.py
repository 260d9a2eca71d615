"""benchmarks/sweep.py: its CSV rows and the scaling plot drawn from them (the sweep itself needs a
cluster and minutes; it was checked on a tiny local sweep)."""

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SWEEP = Path(__file__).resolve().parents[1] / "benchmarks" / "sweep.py"


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("sweep", SWEEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(sweep, nints, chunk, workers, rate):
    return {c: 0 for c in sweep.COLUMNS} | {"nints": nints, "chunk_ints": chunk, "workers": workers,
                                            "ints_per_s": rate, "scheduler": "local", "format": "fits"}


def test_rows_append_under_one_header_and_plot(sweep, tmp_path):
    path = tmp_path / "sweep.csv"
    for nints in (100, 1000):
        for chunk in (16, 64):
            for workers in (1, 2, 4):
                sweep.append_row(path, _row(sweep, nints, chunk, workers, rate=workers * chunk / 8))
    sweep.append_row(path, _row(sweep, 100, 16, 4, rate=99.0))  # measured again: the plot takes the latest
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13 and list(rows[0]) == list(sweep.COLUMNS)
    png = sweep.plot(path, tmp_path / "sweep.png")
    with Image.open(png) as image:
        assert image.size == (990, 418)  # two panels of 4.5 x 3.8 inches at 110 dpi
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert pixels.std() > 10


@pytest.mark.parametrize("argv, message", (
    (["--nints", "10,x", "--chunk-ints", "4", "--workers", "1"], "expected comma-separated whole numbers"),
    (["--nints", "10", "--chunk-ints", "0", "--workers", "1"], "expected numbers of at least 1"),
    (["--nints", "10", "--chunk-ints", "4", "--workers", "1", "--scheduler", "threads"], "expected local or tcp://"),
))
def test_argument_mistakes(sweep, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        sweep.main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err
