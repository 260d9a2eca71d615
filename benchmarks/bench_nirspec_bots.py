#!/usr/bin/env python
"""spec2x vs jwst 3.0.0 on synthetic NIRSpec BOTS exposures (S1600A1): wall time, peak RSS, input MB/s.

    python benchmarks/bench_nirspec_bots.py --nints 100 1000 --jwst 100 1000 --workdir /tmp/bench-bots
    python benchmarks/bench_nirspec_bots.py --nints 10 --jwst 10 --grating G235H --subarray SUB1024A

Same measurement as bench_lrs_slitless.py (each run a separate process, imports and JIT included, peak
RSS of that process tree); prints one Markdown row per run and appends them to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_lrs_slitless import run_jwst, run_spec2x, synthetic_case


def make_case(workdir: Path, nints: int, grating: str, subarray: str) -> dict:
    from spec2x.synthetic import make_nirspec_bots

    return synthetic_case(workdir / f"case_{grating}_{subarray}_{nints}", make_nirspec_bots, nints=nints,
                          grating=grating, subarray=subarray)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nints", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--jwst", type=int, nargs="*", default=[], help="nints at which jwst also runs")
    ap.add_argument("--grating", default="G395H")
    ap.add_argument("--subarray", default="SUB2048")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/spec2x-bench-bots"))
    ap.add_argument("--scheduler", default="threads")
    ap.add_argument("--chunk-ints", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic inputs")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in a.nints:
        case = make_case(a.workdir, n, a.grating, a.subarray)
        size_mb = sum(Path(p).stat().st_size for p in case["rateints"]) / 1e6
        s2x = run_spec2x(case, a.workdir / f"spec2x{n}", a.scheduler, a.chunk_ints)
        row = {"date": str(date.today()), "machine": f"{platform.node()} {os.cpu_count()} cores",
               "mode": "nirspec_bots", "grating": a.grating, "subarray": a.subarray, "nints": n,
               "input_mb": round(size_mb, 1), "scheduler": a.scheduler, "chunk_ints": a.chunk_ints,
               "spec2x_s": round(s2x["wall_s"], 2), "spec2x_peak_mb": round(s2x["peak_rss_mb"]),
               "spec2x_mb_per_s": round(size_mb / s2x["wall_s"], 1)}
        if n in a.jwst:
            j = run_jwst(case, a.workdir / f"jwst{n}")
            row.update(jwst_s=round(j["wall_s"], 2), jwst_peak_mb=round(j["peak_rss_mb"]),
                       speedup=round(j["wall_s"] / s2x["wall_s"], 1))
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(HERE / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if not a.keep:
            for p in case["rateints"]:
                Path(p).unlink()
            Path(case["rateints"][0]).parent.joinpath("bench_case.json").unlink()
    print("| mode | nints | input MB | spec2x s | spec2x peak MB | spec2x MB/s | jwst s | jwst peak MB | speed-up |")
    for r in rows:
        print(f"| NIRSpec BOTS {r['grating']} {r['subarray']} | {r['nints']} | {r['input_mb']} | {r['spec2x_s']} "
              f"| {r['spec2x_peak_mb']} | {r['spec2x_mb_per_s']} | {r.get('jwst_s', '–')} "
              f"| {r.get('jwst_peak_mb', '–')} | {r.get('speedup', '–')} |")


if __name__ == "__main__":
    main()
