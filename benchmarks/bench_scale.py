#!/usr/bin/env python
"""Scale: integrations/s, peak RSS and graph-build time at 10^3, 2x10^4 (10 segments) and 10^5
integrations of MIRI LRS slitless data, against the I/O floor measured in the same run.

    python benchmarks/bench_scale.py --nints 1000 --jwst-at 1000 --workdir /tmp/scale
    python benchmarks/bench_scale.py --nints 20000 --segments 10 --workdir /tmp/scale
    python benchmarks/bench_scale.py --nints 100000 --sparse --format zarr --workdir /tmp/scale

* ``--sparse``: the input is a valid ``_rateints`` whose cube extensions are a hole in the file
  (headers, then unwritten zeros), so 10^5 integrations need no 60 GB of disk; use ``--format zarr``
  (compressed) for the products then.
* I/O floor = time to ``cat`` the inputs to /dev/null + time to write the same number of bytes as the
  products (``dd`` from /dev/zero, fsync'd), both measured in the same run; throughput fraction =
  floor / spec2x wall time.  Page cache is dropped first when possible (root), otherwise noted.
* Graph build = ``spec2x.calibrate`` + building the chunk tasks, in-process, before any compute
  (reference files read, WCS and extraction plan prepared, one task per chunk).
Appends one JSON line per run to benchmarks/results.jsonl and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import isolated, run_jwst  # noqa: E402


def sparse_case(workdir: Path, nints: int) -> dict:
    """A one-integration synthetic case whose rateints is re-declared with ``nints`` integrations
    and its data left as a hole."""
    from astropy.io import fits

    from spec2x.products import fitsfile
    from spec2x.synthetic import make_miri_lrs_slitless

    info = make_miri_lrs_slitless(workdir / "seed", nints=1, seed=1)
    src = info["rateints"][0]
    dst = workdir / src.name
    with fits.open(src) as hdul:
        hdul[0].header["NINTS"] = nints
        hdul[0].header["INTEND"] = nints
        streamed = {h.name: nints for h in hdul if h.name in ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE")}
        fitsfile.lay_out(str(dst), hdul, streamed)
    return {"rateints": [str(dst)], "refs": {k: str(v) for k, v in info["refs"].items()}}


def dense_case(workdir: Path, nints: int, segments: int) -> dict:
    from spec2x.synthetic import make_miri_lrs_slitless

    info = make_miri_lrs_slitless(workdir, nints=nints, seed=1, segments=segments)
    return {"rateints": [str(p) for p in info["rateints"]], "refs": {k: str(v) for k, v in info["refs"].items()}}


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def io_floor(inputs: list[str], out_bytes: int, scratch: Path) -> dict:
    """Seconds to read the inputs (cat > /dev/null) and to write ``out_bytes`` (dd, fsync)."""
    cold = drop_caches()
    t0 = time.perf_counter()
    subprocess.run(["cat", *inputs], stdout=subprocess.DEVNULL, check=True)
    read_s = time.perf_counter() - t0
    target = scratch / "io_floor.bin"
    t0 = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=4M", f"count={max(1, out_bytes >> 22)}",
                    "conv=fsync", "status=none"], check=True)
    write_s = time.perf_counter() - t0
    target.unlink()
    return {"read_s": round(read_s, 2), "write_s": round(write_s, 2), "cold_cache": cold}


def graph_build_seconds(case: dict, chunk: int | None) -> dict:
    probe = (
        "import json,sys,time;t=time.perf_counter();import spec2x;from spec2x.products import chunks;"
        "t1=time.perf_counter();c=json.loads(sys.argv[1]);"
        "r=spec2x.calibrate(c['rateints'],refs=c['refs'],chunk_ints=c['chunk']);"
        "w=chunks.ChunkWriter(r.recipe,r.cube.attrs['source'],(),None);"
        "tasks=chunks.tasks(w,r.cube.sci.data.chunks[0]);t2=time.perf_counter();"
        "print(json.dumps({'import_s':t1-t,'graph_s':t2-t1,'chunks':len(tasks)}))")
    out = subprocess.run([sys.executable, "-c", probe, json.dumps({**case, "chunk": chunk})],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def product_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nints", type=int, required=True)
    ap.add_argument("--segments", type=int, default=1)
    ap.add_argument("--sparse", action="store_true")
    ap.add_argument("--format", default="fits", choices=("fits", "zarr"))
    ap.add_argument("--scheduler", nargs="+", default=["threads"])
    ap.add_argument("--chunk-ints", type=int, default=None)
    ap.add_argument("--jwst-at", type=int, nargs="*", default=[])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/spec2x-scale"))
    a = ap.parse_args()
    work = a.workdir / f"n{a.nints}{'-sparse' if a.sparse else ''}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    case = sparse_case(work, a.nints) if a.sparse else dense_case(work, a.nints, a.segments)
    make_s = time.perf_counter() - t0
    in_bytes = sum(os.stat(p).st_blocks * 512 for p in case["rateints"])
    graph = graph_build_seconds(case, a.chunk_ints)
    jwst = run_jwst(case, work / "jwst") if a.nints in a.jwst_at else None   # once, for every scheduler's row
    for scheduler in a.scheduler:
        out = work / f"out-{scheduler.replace(':', '')}"
        cmd = [str(Path(sys.executable).parent / "spec2x"), "run", *case["rateints"], "-o", str(out), "--quiet",
               "--overwrite", "--format", a.format, "--scheduler", scheduler]
        if a.chunk_ints:
            cmd += ["--chunk-ints", str(a.chunk_ints)]
        for k, v in case["refs"].items():
            cmd += ["--ref", f"{k}={v}"]
        drop_caches()
        run = isolated(cmd)
        floor = io_floor(case["rateints"], product_bytes(out), work)
        floor_s = floor["read_s"] + floor["write_s"]
        row = {"date": str(date.today()), "machine": f"{platform.node()} {os.cpu_count()} cores",
               "bench": "scale", "nints": a.nints, "segments": a.segments, "sparse": a.sparse, "format": a.format,
               "scheduler": scheduler, "chunk_ints": a.chunk_ints, "make_s": round(make_s, 1),
               "input_mb_on_disk": round(in_bytes / 1e6), "output_mb": round(product_bytes(out) / 1e6),
               "spec2x_s": round(run["wall_s"], 2), "ints_per_s": round(a.nints / run["wall_s"], 1),
               "peak_rss_mb": round(run["peak_rss_mb"]), "graph_build_s": round(graph["graph_s"], 2),
               "chunks": graph["chunks"], "io_floor_s": round(floor_s, 2), **floor,
               "fraction_of_io_floor": round(floor_s / run["wall_s"], 2)}
        if jwst:
            row.update(jwst_s=round(jwst["wall_s"], 2), jwst_peak_mb=round(jwst["peak_rss_mb"]),
                       speedup=round(jwst["wall_s"] / run["wall_s"], 1))
        print(json.dumps(row), flush=True)
        with open(HERE / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
