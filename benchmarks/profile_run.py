#!/usr/bin/env python
"""Profile a whole ``spec2x run`` (I/O included) by phase and by thread, against the I/O floor.

    python benchmarks/profile_run.py --nints 3000 --segments 3 --workdir /tmp/io

Makes (once) a MIRI LRS slitless case, measures the I/O floor (``cat`` of the inputs + ``dd`` of the
products' bytes, fsync'd, page cache dropped first when root), times the plain CLI run, then runs
spec2x again in this process with timing probes around each phase of a chunk task: read (``Source.read``:
file -> native arrays), calibrate (the recipe's steps), pick (products' blocks taken from the Datasets),
encode (byte swap to big-endian), pwrite (the system call), journal; and around the run's set-up
(calibrate = graph build, layout, commit).  Each probe adds wall and CPU (``time.thread_time``) seconds
and minor page faults (fresh memory mapped in) per thread.  On a shared machine compare CPU seconds:
wall seconds then mostly measure the other processes.  ``--profile-only`` skips the CLI run and the floor.
Prints one table and appends one JSON line to ``benchmarks/profile_runs.jsonl``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_lrs_slitless import isolated, synthetic_case  # noqa: E402
from bench_scale import drop_caches, io_floor, product_bytes  # noqa: E402

WALL = collections.defaultdict(float)   # (thread name, phase) -> seconds
CPU = collections.defaultdict(float)
CALLS = collections.Counter()
FAULTS = collections.Counter()  # minor page faults (fresh memory mapped in)
_LOCK = threading.Lock()
_ACTIVE = threading.local()


def _probe(phase: str, func):
    """``func`` timed under ``phase``; nested probes count only in the outermost one."""

    @functools.wraps(func)
    def timed(*args, **kwargs):
        if getattr(_ACTIVE, "on", False):
            return func(*args, **kwargs)
        _ACTIVE.on = True
        w0, c0, f0 = time.perf_counter(), time.thread_time(), _faults()
        try:
            return func(*args, **kwargs)
        finally:
            w, c, f = time.perf_counter() - w0, time.thread_time() - c0, _faults() - f0
            _ACTIVE.on = False
            key = (threading.current_thread().name, phase)
            with _LOCK:
                WALL[key] += w
                CPU[key] += c
                CALLS[key] += 1
                FAULTS[key] += f

    return timed


def _faults() -> int:
    return resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)).ru_minflt


def _instrument():
    """Probes on the phases of a chunk task and of the run's set-up (monkeypatched, this process only)."""
    import spec2x.pipeline as pipeline
    from spec2x import exposure, products
    from spec2x.products import chunks, fitsfile

    exposure.Source.read = _probe("read", exposure.Source.read)
    pipeline.Recipe.run = _probe("calibrate", pipeline.Recipe.run)
    for name in ("_pick_cube", "_pick_rows"):
        setattr(products, name, _probe("pick", getattr(products, name)))
    fitsfile.encode = _probe("encode", fitsfile.encode)
    real_pwrite = os.pwrite
    fitsfile.os = type(sys)("os_probe")
    fitsfile.os.__dict__.update(os.__dict__)
    fitsfile.os.pwrite = _probe("pwrite", real_pwrite)
    fitsfile.os.open = _probe("open+close", os.open)
    fitsfile.os.close = _probe("open+close", os.close)
    chunks.Journal.mark = _probe("journal", chunks.Journal.mark)
    fitsfile.lay_out = _probe("layout", fitsfile.lay_out)
    products.Output.commit = _probe("commit", products.Output.commit)


def instrumented_run(case: dict, out: Path, chunk_ints: int | None) -> dict:
    """spec2x's CLI path in this process with the probes on; returns wall and per-thread phase times."""
    t0 = time.perf_counter()
    import spec2x  # noqa: F401
    from spec2x import pipeline, products, scheduling

    import_s = time.perf_counter() - t0
    _instrument()
    drop_caches()
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = _probe("graph build", pipeline.calibrate)(case["rateints"], refs=case["refs"], chunk_ints=chunk_ints)
    with scheduling.scheduler("threads"):
        run = scheduling.runner(None, show=False, total=result.cube.sizes["integration"])
        products.write(result, out, overwrite=True, run=_probe("chunk tasks", run))
    wall = time.perf_counter() - t0
    return {"import_s": import_s, "wall_s": wall, "process_cpu_s": time.process_time() - cpu0,
            "chunks": len(result.cube.sci.data.chunks[0])}


def table(run: dict) -> list[dict]:
    rows = []
    for (thread, phase), wall in sorted(WALL.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rows.append({"phase": phase, "thread": thread, "calls": CALLS[(thread, phase)], "wall_s": round(wall, 2),
                     "cpu_s": round(CPU[(thread, phase)], 2), "minor_faults": FAULTS[(thread, phase)]})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nints", type=int, default=3000)
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--chunk-ints", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/spec2x-profile"))
    ap.add_argument("--label", default="")
    ap.add_argument("--profile-only", action="store_true", help="skip the CLI run and the I/O floor")
    a = ap.parse_args()
    from spec2x.synthetic import make_miri_lrs_slitless

    case = synthetic_case(a.workdir / f"case{a.nints}x{a.segments}", make_miri_lrs_slitless, nints=a.nints,
                          segments=a.segments)
    out = a.workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(Path(sys.executable).parent / "spec2x"), "run", *case["rateints"], "-o", str(out), "--quiet",
           "--overwrite", *[f"--ref={k}={v}" for k, v in case["refs"].items()]]
    if a.chunk_ints:
        cmd += ["--chunk-ints", str(a.chunk_ints)]
    load0 = os.getloadavg()
    against = {}
    if not a.profile_only:
        drop_caches()
        cli = isolated(cmd)
        floor = io_floor(case["rateints"], product_bytes(out), a.workdir)
        shutil.rmtree(out, ignore_errors=True)
        floor_s = floor["read_s"] + floor["write_s"]
        against = {"cli_wall_s": round(cli["wall_s"], 2), "cli_peak_rss_mb": round(cli["peak_rss_mb"]),
                   "io_floor_s": round(floor_s, 2), **floor, "fraction_of_io_floor": round(floor_s / cli["wall_s"], 3)}
    run = instrumented_run(case, out, a.chunk_ints)
    shutil.rmtree(out, ignore_errors=True)
    rows = table(run)
    summary = {"date": time.strftime("%Y-%m-%d %H:%M"), "label": a.label, "nints": a.nints, "segments": a.segments,
               "chunk_ints": a.chunk_ints, "load_before": [round(x, 2) for x in load0],
               "load_after": [round(x, 2) for x in os.getloadavg()], **against,
               **{k: round(v, 2) if isinstance(v, float) else v for k, v in run.items()}, "phases": rows}
    print(f"{'phase':14} {'thread':28} {'calls':>6} {'wall s':>8} {'cpu s':>8} {'faults':>9}")
    for r in rows:
        print(f"{r['phase']:14} {r['thread'][:28]:28} {r['calls']:6d} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} "
              f"{r['minor_faults']:9d}")
    print(json.dumps({k: v for k, v in summary.items() if k != "phases"}))
    with open(HERE / "profile_runs.jsonl", "a") as f:
        f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
