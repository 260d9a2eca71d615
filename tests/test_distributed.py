"""Scheduling on threads, processes and dask.distributed: same bytes everywhere, a small graph that
carries paths rather than data, a worker killed mid-run that does not fail the run, and one clear
line for a scheduler that cannot be reached."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
from astropy.io import fits

import spec2x
from parity import ref_args
from spec2x import cli, products, scheduling
from spec2x.errors import Spec2xError
from spec2x.synthetic import make_miri_lrs_slitless

distributed = pytest.importorskip("distributed")


def _digest(folder):
    """Hash of every data array of the FITS products in ``folder`` (headers carry DATE)."""
    h = hashlib.sha256()
    paths = sorted(Path(folder).glob("*.fits"))
    assert len(paths) == 2, paths
    for path in paths:
        h.update(path.name.encode())
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.name != "ASDF" and hdu.data is not None:
                    h.update(hdu.name.encode())
                    h.update(np.ascontiguousarray(hdu.data).tobytes())
    return h.hexdigest()


def _chunk_tasks(result, outdir):
    """The chunk tasks ``products.write`` would run for ``result`` (nothing is computed)."""
    captured = []

    def run(tasks):
        captured.extend(tasks)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        products.write(result, outdir, run=run)
    return captured


def _cli_run(case, out, scheduler, capsys):
    argv = ["run", str(case.rateints), "-o", str(out), "--chunk-ints", "2", "--quiet", "--scheduler", scheduler,
            *ref_args(case.refs)]
    code = cli.main(argv)
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def threads_digest(lrs_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("threads")
    assert cli.main(["run", str(lrs_synthetic.rateints), "-o", str(out), "--chunk-ints", "2", "--quiet",
                     *ref_args(lrs_synthetic.refs)]) == 0
    return _digest(out)


@pytest.mark.parametrize("scheduler", ("processes", "local:2"))
def test_schedulers_write_the_same_bytes(lrs_synthetic, threads_digest, tmp_path, capsys, scheduler):
    code, err = _cli_run(lrs_synthetic, tmp_path, scheduler, capsys)
    assert code == 0, err
    assert _digest(tmp_path) == threads_digest
    if scheduler.startswith("local:"):
        assert "dask dashboard: http://" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # journal and partials gone


def test_graph_carries_paths_not_data(lrs_synthetic, tmp_path):
    """One small task per chunk: the graph grows by a few hundred bytes per chunk, far less than the
    600 kB of input a one-integration chunk reads (the reference data are in it once)."""
    sizes = {}
    for chunk_ints in (1, 11):
        result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=chunk_ints)
        tasks = _chunk_tasks(result, tmp_path / str(chunk_ints))
        assert len(tasks) == -(-11 // chunk_ints)
        sizes[len(tasks)] = len(cloudpickle.dumps(tasks))
    per_chunk = (sizes[11] - sizes[1]) / 10
    assert per_chunk < 2_000, sizes
    assert sizes[1] < 4_000_000, sizes                     # inputs are 6.6 MB
    assert scheduling._writer_calls(tasks) is not None    # a cluster gets the writer once, not per task


def test_bad_scheduler_spec_is_a_clear_error():
    for spec in ("local:0", "local:x", "mpi://somewhere", "tcp://127.0.0.1:notaport"):
        with pytest.raises(Spec2xError, match="--scheduler"):
            scheduling.check(spec)


def test_a_port_where_no_dask_scheduler_answers():
    with socket.socket() as sock:                # listens, never answers (distributed alone would hang)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        started = time.monotonic()
        with pytest.raises(Spec2xError, match="not a dask scheduler there"):
            scheduling._probe(f"tcp://127.0.0.1:{sock.getsockname()[1]}", timeout=1.0)  # check() waits 5 s
    assert time.monotonic() - started < 10


def test_unreachable_scheduler_is_one_line_and_quick(lrs_synthetic, tmp_path):
    with socket.socket() as sock:               # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "spec2x.cli", "run", str(lrs_synthetic.rateints), "-o",
                           str(tmp_path / "out"), "--scheduler", address, *ref_args(lrs_synthetic.refs)],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert address in lines[0] and "cannot reach" in lines[0]
    assert elapsed < 15
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def case120(tmp_path_factory):
    return make_miri_lrs_slitless(tmp_path_factory.mktemp("case120"), nints=120, seed=5)


def test_worker_killed_mid_run(case120, tmp_path, capsys):
    rate, refs = case120["rateints"][0], case120["refs"]
    ref = tmp_path / "ref"
    with scheduling.scheduler("threads"):
        spec2x.run(rate, ref, refs=refs, chunk_ints=4)
    result = spec2x.calibrate(rate, refs=refs, chunk_ints=4)
    nchunks = len(result.cube["sci"].data.chunks[0])
    out = tmp_path / "out"
    killed = {}

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.run(lambda: __import__("spec2x.pipeline") and None)  # both workers up before the run

        def kill_a_busy_worker():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(list(out.glob(".*.spec2x-run/done/*"))) < 3:
                time.sleep(0.005)
            busy = []
            while not busy and time.monotonic() < deadline:
                busy = [w for w, keys in client.processing().items() if keys]
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            killed.update(pid=pid, done=len(list(out.glob(".*.spec2x-run/done/*"))))
            os.kill(pid, signal.SIGKILL)

        run = scheduling.runner(client, show=True, total=120)

        def run_and_kill(tasks):
            killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
            killer.start()
            run(tasks)
            killer.join()

        products.write(result, out, run=run_and_kill)

        def kernel_stats():  # per numba kernel: (signatures compiled here, compilations the cache missed)
            import numba

            from kernels import extract1d

            return {name: (len(f.signatures), sum(f.stats.cache_misses.values()))
                    for name, f in vars(extract1d).items() if isinstance(f, numba.core.registry.CPUDispatcher)}

        stats = client.run(kernel_stats)

    assert killed, "no worker was killed"
    assert 3 <= killed["done"] < nchunks, f"the kill landed after the run ({killed['done']}/{nchunks} chunks)"
    assert "120/120" in capsys.readouterr().err           # the bar counted every integration once
    assert _digest(out) == _digest(ref)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    # numba: each worker has each kernel once, loaded from the on-disk cache the threads run filled
    compiled = [s for worker in stats.values() for s in worker.values()]
    assert any(n == 1 for n, _ in compiled)
    assert all(n <= 1 and misses == 0 for n, misses in compiled), stats


def test_workers_running_other_code_are_refused(monkeypatch):
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        scheduling.check_workers(client)  # the same code: accepted
        monkeypatch.setattr(scheduling, "_worker_fingerprint", lambda: "0.0.1+0123456789ab")
        with pytest.raises(Spec2xError, match=r"dask workers \S+ run spec2x 0\.0\.1\+0123456789ab, this client"):
            scheduling.check_workers(client)


def test_lost_scheduler_keeps_the_finished_chunks_for_resume(lrs_synthetic, tmp_path):
    from spec2x.errors import Interrupted

    def scheduler_lost_after_one_chunk(tasks):
        import dask

        dask.compute(*tasks[:1])
        raise Interrupted("lost the connection to the dask scheduler (test)")

    result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=4)
    with pytest.raises(Interrupted, match="--resume"):
        products.write(result, tmp_path, run=scheduler_lost_after_one_chunk)
    assert len(list(tmp_path.glob(".*.spec2x-run/done/*"))) == 1 and len(list(tmp_path.glob(".*.partial"))) == 2
    spec2x.run(lrs_synthetic.rateints, tmp_path, refs=lrs_synthetic.refs, chunk_ints=4, resume=True)
    assert len(list(tmp_path.glob("*.fits"))) == 2 and not list(tmp_path.glob(".*"))
