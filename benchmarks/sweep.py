#!/usr/bin/env python
"""Sweep integrations x chunk size x dask workers; write a CSV row per run and a PNG of the scaling.

    python benchmarks/sweep.py --nints 200,2000 --chunk-ints 16,64 --workers 1,2,4 --workdir /scratch/me/sweep
    python benchmarks/sweep.py --nints 20000 --sparse --format zarr --chunk-ints 64,256 --workers 8,16,32 \
        --scheduler tcp://node017:8786 --workdir /scratch/me/sweep

* Inputs are synthetic MIRI LRS slitless exposures (``spec2x.synthetic``), made once per ``--nints``
  under ``--workdir`` and reused; ``--sparse`` declares the integrations without writing their data
  (``bench_scale.sparse_case``: no disk needed for 10^5 integrations; use ``--format zarr`` then).
* ``--scheduler local`` (default) starts one LocalCluster of max(``--workers``) one-thread worker
  processes; ``tcp://HOST:PORT`` uses a running cluster (dask-jobqueue, ``dask scheduler`` + ``dask
  worker``), whose workers must see ``--workdir`` at the same path.  A run with ``--workers N`` uses the
  first N workers (by address), so one cluster serves the whole sweep; before the first run every
  worker imports spec2x and loads its compiled kernels (a warm-up run that is not recorded).
* Each run: ``spec2x.calibrate`` (graph and prepared references, ``graph_s``) then the products written
  chunk by chunk on the cluster (``wall_s`` covers both).  ``worker_peak_rss_mb`` is the largest peak
  resident memory of a worker used, since that worker started (so it can only grow along the sweep).
* Rows are appended to ``--csv`` as each run finishes (an interrupted sweep keeps its rows); the PNG
  (``--png``; integrations/s against workers, one panel per nints, one line per chunk size, dashed:
  linear scaling from the fewest workers) is drawn from the whole CSV at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

COLUMNS = ("date", "host", "scheduler", "format", "nints", "chunk_ints", "chunks", "workers", "graph_s", "wall_s",
           "ints_per_s", "input_mb_per_s", "worker_peak_rss_mb")


def _numbers(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated whole numbers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers of at least 1")
    return values


def make_case(workdir: Path, nints: int, sparse: bool) -> dict:
    """The synthetic exposure with ``nints`` integrations (made once, then reused)."""
    folder = workdir / f"n{nints}{'-sparse' if sparse else ''}"
    done = folder / "sweep_case.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if sparse:
        from bench_scale import sparse_case

        case = sparse_case(folder, nints)
    else:
        from spec2x.synthetic import make_miri_lrs_slitless

        info = make_miri_lrs_slitless(folder, nints=nints, seed=1)
        case = {"rateints": [str(p) for p in info["rateints"]], "refs": {k: str(v) for k, v in info["refs"].items()}}
    case["input_bytes"] = sum(os.stat(p).st_size for p in case["rateints"])
    done.write_text(json.dumps(case))
    return case


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm(client):
    """Every worker imports the pipeline (its compiled kernels load at the first chunk)."""
    client.run(lambda: __import__("spec2x.pipeline") and None)


def run_once(client, case: dict, nints: int, chunk: int, workers: list[str], fmt: str, out: Path) -> dict:
    """Calibrate and write one exposure on ``workers``; the row of the CSV (less date/host/scheduler)."""
    import spec2x
    from spec2x import products, scheduling

    started = time.perf_counter()
    result = spec2x.calibrate(case["rateints"], refs=case["refs"], chunk_ints=chunk)
    graph_s = time.perf_counter() - started
    run = scheduling.runner(client, show=False, total=nints, workers=workers)
    products.write(result, out, fmt=fmt, overwrite=True, run=run)
    wall = time.perf_counter() - started
    peaks = client.run(_peak_rss_mb, workers=workers)
    shutil.rmtree(out, ignore_errors=True)
    return {"format": fmt, "nints": nints, "chunk_ints": chunk, "chunks": len(result.cube["sci"].data.chunks[0]),
            "workers": len(workers), "graph_s": round(graph_s, 3), "wall_s": round(wall, 3),
            "ints_per_s": round(nints / wall, 2), "input_mb_per_s": round(case["input_bytes"] / 1e6 / wall, 2),
            "worker_peak_rss_mb": round(max(peaks.values()))}


def append_row(path: Path, row: dict):
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def plot(csv_path: Path, png_path: Path) -> Path:
    """integrations/s against workers: one panel per nints, one line per chunk size (from the whole CSV)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    sizes = sorted({int(r["nints"]) for r in rows})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.5 * len(sizes), 3.8), squeeze=False)
    for ax, nints in zip(axes.flat, sizes):
        mine = [r for r in rows if int(r["nints"]) == nints]
        for i, chunk in enumerate(sorted({int(r["chunk_ints"]) for r in mine})):
            latest = {int(r["workers"]): float(r["ints_per_s"]) for r in mine if int(r["chunk_ints"]) == chunk}
            workers, rate = zip(*sorted(latest.items()))  # a point measured again: its latest row
            ax.plot(workers, rate, "o-", color=f"C{i}", label=f"chunk {chunk}")
            ax.plot(workers, [rate[0] * w / workers[0] for w in workers], "--", color=f"C{i}", alpha=0.4)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({int(r["workers"]) for r in mine}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("dask workers")
        ax.set_ylabel("integrations / s")
        ax.set_title(f"{nints} integrations")
        ax.legend(fontsize="small")
    fig.suptitle(f"spec2x sweep ({csv_path.name}; dashed: linear scaling)", fontsize="medium")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nints", type=_numbers, required=True, help="comma-separated, e.g. 200,2000")
    ap.add_argument("--chunk-ints", type=_numbers, required=True, help="integrations per chunk, e.g. 16,64")
    ap.add_argument("--workers", type=_numbers, required=True, help="dask workers, e.g. 1,2,4")
    ap.add_argument("--scheduler", default="local", help="local (a LocalCluster) or tcp://HOST:PORT")
    ap.add_argument("--format", choices=("fits", "zarr"), default="fits")
    ap.add_argument("--sparse", action="store_true", help="inputs whose data are a hole in the file (large nints)")
    ap.add_argument("--workdir", type=Path, default=Path("benchmarks/work/sweep"))
    ap.add_argument("--csv", type=Path, default=None, help="default: WORKDIR/sweep.csv")
    ap.add_argument("--png", type=Path, default=None, help="default: the CSV's name with .png")
    args = ap.parse_args(argv)
    if args.scheduler != "local" and not args.scheduler.startswith(("tcp://", "tls://")):
        ap.error(f"--scheduler {args.scheduler}: expected local or tcp://HOST:PORT")
    workdir = args.workdir.resolve()  # remote workers open these paths too
    csv_path = (args.csv or workdir / "sweep.csv").resolve()
    png_path = (args.png or csv_path.with_suffix(".png")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    from spec2x import scheduling

    spec = f"local:{max(args.workers)}" if args.scheduler == "local" else args.scheduler
    cases = {n: make_case(workdir, n, args.sparse) for n in args.nints}
    stamp = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M"), "scheduler": args.scheduler,
             "host": f"{platform.node()} ({os.cpu_count()} cores)"}
    with scheduling.scheduler(spec) as client:
        addresses = sorted(client.scheduler_info()["workers"])
        if max(args.workers) > len(addresses):
            print(f"sweep: --workers {max(args.workers)}: the cluster has {len(addresses)} workers", file=sys.stderr)
            return 2
        _warm(client)
        smallest = min(args.nints)
        run_once(client, cases[smallest], smallest, max(1, -(-smallest // len(addresses))), addresses, args.format,
                 workdir / "out-warmup")
        for nints in args.nints:
            for chunk in args.chunk_ints:
                for count in args.workers:
                    row = {**stamp, **run_once(client, cases[nints], nints, chunk, addresses[:count], args.format,
                                               workdir / "out")}
                    append_row(csv_path, row)
                    print(json.dumps(row), flush=True)
    print(f"sweep: {csv_path}\nsweep: {plot(csv_path, png_path)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
