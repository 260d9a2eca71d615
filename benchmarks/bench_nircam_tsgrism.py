#!/usr/bin/env python
"""spec2x vs jwst 3.0.0 on synthetic NIRCam grism TSO exposures: wall time, peak RSS, input MB/s.

    python benchmarks/bench_nircam_tsgrism.py --nints 100 1000 --jwst 100 1000 --workdir /tmp/bench
    python benchmarks/bench_nircam_tsgrism.py --nints 10000 --subarray SUBGRISM256 --workdir /tmp/bench  # spec2x alone

Both pipelines run on the same files in the same invocation, each in its own process measured by its
own rusage (imports and JIT start-up included, as a user sees them).  Prints one JSON row per run and a
Markdown table, and appends the rows to ``--results`` (default benchmarks/results.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import date
from pathlib import Path

from bench_lrs_slitless import run_jwst, run_spec2x, synthetic_case

HERE = Path(__file__).resolve().parent


def make_case(workdir: Path, nints: int, subarray: str, filt: str) -> dict:
    from spec2x.synthetic import make_nircam_tsgrism

    return synthetic_case(workdir / f"nrc_{subarray}_{filt}_{nints}", make_nircam_tsgrism, nints=nints,
                          subarray=subarray, filter=filt)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nints", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--jwst", type=int, nargs="*", default=[], help="nints at which jwst also runs")
    ap.add_argument("--subarray", default="SUBGRISM64", choices=("SUBGRISM64", "SUBGRISM128", "SUBGRISM256"))
    ap.add_argument("--filter", default="F444W", choices=("F444W", "F322W2"))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/spec2x-bench"))
    ap.add_argument("--scheduler", default="threads")
    ap.add_argument("--chunk-ints", type=int, default=None)
    ap.add_argument("--results", type=Path, default=HERE / "results.jsonl", help="JSON lines file to append to")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic inputs")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in a.nints:
        case = make_case(a.workdir, n, a.subarray, a.filter)
        size_mb = sum(Path(p).stat().st_size for p in case["rateints"]) / 1e6
        s2x = run_spec2x(case, a.workdir / f"spec2x_nrc{n}", a.scheduler, a.chunk_ints)
        row = {"date": str(date.today()), "machine": f"{platform.node()} {os.cpu_count()} cores",
               "mode": "NRC_TSGRISM", "subarray": a.subarray, "filter": a.filter, "nints": n,
               "input_mb": round(size_mb, 1), "scheduler": a.scheduler, "chunk_ints": a.chunk_ints,
               "spec2x_s": round(s2x["wall_s"], 2), "spec2x_peak_mb": round(s2x["peak_rss_mb"]),
               "spec2x_mb_per_s": round(size_mb / s2x["wall_s"], 1)}
        if n in a.jwst:
            j = run_jwst(case, a.workdir / f"jwst_nrc{n}")
            row.update(jwst_s=round(j["wall_s"], 2), jwst_peak_mb=round(j["peak_rss_mb"]),
                       speedup=round(j["wall_s"] / s2x["wall_s"], 1))
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(a.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        if not a.keep:
            for p in case["rateints"]:
                Path(p).unlink()
            (Path(case["rateints"][0]).parent / "bench_case.json").unlink()
    print(f"NIRCam grism TSO, {a.subarray} {a.filter}")
    print("| nints | input MB | spec2x s | spec2x peak MB | spec2x MB/s | jwst s | jwst peak MB | speed-up |")
    for r in rows:
        print(f"| {r['nints']} | {r['input_mb']} | {r['spec2x_s']} | {r['spec2x_peak_mb']} | {r['spec2x_mb_per_s']} "
              f"| {r.get('jwst_s', '–')} | {r.get('jwst_peak_mb', '–')} | {r.get('speedup', '–')} |")


if __name__ == "__main__":
    main()
