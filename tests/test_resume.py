"""Interrupted runs: the journal of finished chunks, --resume, and failures mid-write."""

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import spec2x
from parity import ref_args
from spec2x import products
from spec2x.errors import Interrupted, Spec2xError
from spec2x.products import chunks, fitsfile
from spec2x.synthetic import make_miri_lrs_slitless


def _digest(folder, fmt="fits"):
    """Hash of every data array of the products in ``folder`` (headers carry the date)."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).glob(f"*.{fmt}")):
        if fmt == "fits":
            with fits.open(path) as hdul:
                for hdu in hdul:
                    if hdu.name != "ASDF" and hdu.data is not None:
                        h.update(np.ascontiguousarray(hdu.data).tobytes())
        else:
            import zarr

            def visit(group):
                for name, arr in sorted(group.arrays()):
                    if name == "FITS_TEMPLATE":  # the FITS layout: headers, which carry the date
                        continue
                    h.update(np.ascontiguousarray(arr[...]).tobytes())
                for _, sub in sorted(group.groups()):
                    visit(sub)

            visit(zarr.open_group(str(path), mode="r"))
    return h.hexdigest()


def _interrupted_after(n_chunks):
    """A ``run`` that writes the first chunks, then stops as a kill would."""

    def run(tasks):
        import dask

        dask.compute(*tasks[:n_chunks])
        raise KeyboardInterrupt

    return run


@pytest.fixture(scope="module")
def uninterrupted(lrs_synthetic, tmp_path_factory):
    """``fmt -> folder`` of one uninterrupted run in that format (chunking does not change the bytes:
    tests/test_pipeline.py), made on first use and shared by the tests below."""
    runs = {}

    def folder(fmt="fits"):
        if fmt not in runs:
            runs[fmt] = tmp_path_factory.mktemp(f"uninterrupted_{fmt}")
            spec2x.run(lrs_synthetic.rateints, runs[fmt], refs=lrs_synthetic.refs, chunk_ints=2, fmt=fmt)
        return runs[fmt]

    return folder


@pytest.mark.parametrize("fmt", ("fits", "zarr"))
def test_resume_gives_the_bytes_of_an_uninterrupted_run(lrs_synthetic, uninterrupted, tmp_path, fmt):
    ref = uninterrupted(fmt)
    out = tmp_path / "out"
    result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=2)
    with pytest.raises(KeyboardInterrupt):
        products.write(result, out, fmt=fmt, run=_interrupted_after(3))
    journal = next(out.glob(".*.spec2x-run"))
    assert chunks.Journal(journal).done() == {0, 1, 2}
    assert not list(out.glob(f"*.{fmt}"))                    # nothing at a final name yet
    spec2x.run(lrs_synthetic.rateints, out, refs=lrs_synthetic.refs, chunk_ints=2, fmt=fmt, resume=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    assert _digest(out, fmt) == _digest(ref, fmt)


def test_resume_redoes_a_chunk_that_was_half_written(lrs_synthetic, uninterrupted, tmp_path):
    out = tmp_path / "out"
    result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=4)
    with pytest.raises(KeyboardInterrupt):
        products.write(result, out, run=_interrupted_after(1))
    partial = next(out.glob(".*calints.fits.partial"))
    sci = fitsfile.existing_targets(str(partial), {"SCI": 11})["SCI"]
    with open(partial, "r+b") as f:                          # garbage in chunk 1 (integrations 4-7)
        f.seek(sci.offset + 5 * sci.row_bytes)
        f.write(os.urandom(4096))
    spec2x.run(lrs_synthetic.rateints, out, refs=lrs_synthetic.refs, chunk_ints=4, resume=True)
    assert _digest(out) == _digest(uninterrupted())


def test_resume_refuses_other_inputs(lrs_synthetic, tmp_path):
    result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=2)
    with pytest.raises(KeyboardInterrupt):
        products.write(result, tmp_path, run=_interrupted_after(1))
    with pytest.raises(Spec2xError, match="other inputs, references or chunking"):
        spec2x.run(lrs_synthetic.rateints, tmp_path, refs=lrs_synthetic.refs, chunk_ints=3, resume=True)


def test_without_resume_a_new_run_starts_over(lrs_synthetic, tmp_path):
    result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=2)
    with pytest.raises(KeyboardInterrupt):
        products.write(result, tmp_path, run=_interrupted_after(2))
    spec2x.run(lrs_synthetic.rateints, tmp_path, refs=lrs_synthetic.refs, chunk_ints=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "jw09999001001_02101_00001-seg001_mirimage_calints.fits",
        "jw09999001001_02101_00001-seg001_mirimage_x1dints.fits"]


def test_output_dir_removed_mid_run(lrs_synthetic, tmp_path):
    out = tmp_path / "out"

    def run(tasks):
        import shutil

        import dask

        dask.compute(*tasks[:1])
        shutil.rmtree(out)
        dask.compute(*tasks[1:])

    result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=2)
    with pytest.raises(Spec2xError, match="writing products failed"):
        products.write(result, out, run=run)
    assert not out.exists() or not any(p.suffix == ".fits" for p in out.iterdir())


def test_disk_full_mid_run_then_resume(lrs_synthetic, uninterrupted, tmp_path):
    """No space left mid-run: a clear error, nothing at a final name, the finished chunks kept; once
    space is freed --resume finishes with the bytes of an uninterrupted run."""
    out = tmp_path / "out"

    def disk_fills_after_two_chunks(tasks):
        import dask

        dask.compute(*tasks[:2])
        raise OSError(errno.ENOSPC, "No space left on device")

    result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=2)
    with pytest.raises(Interrupted, match=r"No space left on device.*--resume"):
        products.write(result, out, run=disk_fills_after_two_chunks)
    assert not list(out.glob("*.fits"))
    assert len(list(out.glob(".*.spec2x-run/done/*"))) == 2
    spec2x.run(lrs_synthetic.rateints, out, refs=lrs_synthetic.refs, chunk_ints=2, resume=True)
    assert _digest(out) == _digest(uninterrupted())
    assert not list(out.glob(".*"))


LONG_NINTS = 100   # one-integration chunks: the kill lands after 20, with 80 still to go


@pytest.fixture(scope="module")
def long_case(tmp_path_factory):
    return make_miri_lrs_slitless(tmp_path_factory.mktemp("long"), nints=LONG_NINTS, seed=5)


def test_kill_9_then_resume(long_case, tmp_path):
    args = [sys.executable, "-m", "spec2x.cli", "run", str(long_case["rateints"][0]), "--chunk-ints", "1",
            "--scheduler", "synchronous", "--quiet", *ref_args(long_case["refs"])]
    ref = tmp_path / "ref"   # uninterrupted, in this process, in one chunk (the bytes do not depend on it)
    spec2x.run(long_case["rateints"][0], ref, refs=long_case["refs"], chunk_ints=LONG_NINTS)

    out = tmp_path / "out"
    proc = subprocess.Popen([*args, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = list(out.glob(".*.spec2x-run/done/*"))
        if len(done) >= 20 or proc.poll() is not None:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(out.glob("*.fits")), "the run finished before it could be killed"
    finished = len(list(out.glob(".*.spec2x-run/done/*")))
    assert 0 < finished < LONG_NINTS
    subprocess.run([*args, "-o", str(out), "--resume"], check=True, capture_output=True)
    assert _digest(out) == _digest(ref)
    assert not list(out.glob(".*"))                           # journal and partials gone
