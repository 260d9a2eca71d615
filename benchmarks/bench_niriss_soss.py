#!/usr/bin/env python
"""spec2x vs jwst 3.0.0 on synthetic NIRISS SOSS SUBSTRIP256 exposures: wall time, peak RSS, input MB/s.

    python benchmarks/bench_niriss_soss.py --nints 20 200 --jwst 20 200 --workdir /tmp/bench-soss
    python benchmarks/bench_niriss_soss.py --nints 5 --jwst 5 --jwst-atoca 5      # quick check

Both sides run the box extraction (``soss_atoca=False``); with ``--atoca`` spec2x runs the default
ATOCA extraction instead, and ``--jwst-atoca`` times jwst's default ATOCA run.  Each run is a separate process
measured by its own rusage (imports and JIT start-up included).  Prints one JSON line and one Markdown
table row per nints and appends the JSON to benchmarks/results.jsonl.
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
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from bench_lrs_slitless import isolated, synthetic_case

BOX = {"extract_1d": {"soss_atoca": False}}


def make_case(workdir: Path, nints: int) -> dict:
    from spec2x.synthetic import make_niriss_soss

    return synthetic_case(workdir / f"soss{nints}", make_niriss_soss, nints=nints)


def run_spec2x(case: dict, out: Path, chunk: int | None, params: dict = BOX) -> dict:
    code = ("import sys, json, spec2x; c = json.loads(sys.argv[1]); "
            "spec2x.run(c['rateints'][0], sys.argv[2], refs=c['refs'], overwrite=True, params=c['params'], "
            "chunk_ints=c['chunk'])")
    spec = json.dumps({**case, "params": params, "chunk": chunk})
    return isolated([sys.executable, "-c", code, spec, str(out)])


def run_jwst(case: dict, out: Path, steps: dict) -> dict:
    oracle = HERE.parent / "tests" / "oracle.py"
    out.mkdir(parents=True, exist_ok=True)
    spec = {"input": case["rateints"][0], "outdir": str(out), "refs": case["refs"], "steps": steps, "skip": []}
    (out / "spec.json").write_text(json.dumps(spec))
    from oracle import OFFLINE_ENV

    os.environ.update(OFFLINE_ENV)
    return isolated([sys.executable, str(oracle), str(out / "spec.json")])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nints", type=int, nargs="+", default=[20, 200])
    ap.add_argument("--jwst", type=int, nargs="*", default=[], help="nints at which jwst (box) also runs")
    ap.add_argument("--jwst-atoca", type=int, nargs="*", default=[], help="nints at which jwst's default ATOCA runs")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/spec2x-bench-soss"))
    ap.add_argument("--chunk-ints", type=int, default=None)
    ap.add_argument("--atoca", action="store_true", help="spec2x runs the default ATOCA extraction")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic inputs")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in a.nints:
        case = make_case(a.workdir, n)
        size_mb = sum(Path(p).stat().st_size for p in case["rateints"]) / 1e6
        s2x = run_spec2x(case, a.workdir / f"spec2x{n}", a.chunk_ints, {} if a.atoca else BOX)
        row = {"date": str(date.today()), "machine": f"{platform.node()} {os.cpu_count()} cores", "mode": "NIS_SOSS",
               "extraction": "atoca" if a.atoca else "box", "nints": n, "input_mb": round(size_mb, 1), "chunk_ints": a.chunk_ints,
               "spec2x_s": round(s2x["wall_s"], 2), "spec2x_peak_mb": round(s2x["peak_rss_mb"]),
               "spec2x_mb_per_s": round(size_mb / s2x["wall_s"], 1)}
        if n in a.jwst:
            j = run_jwst(case, a.workdir / f"jwst{n}", BOX)
            row.update(jwst_s=round(j["wall_s"], 2), jwst_peak_mb=round(j["peak_rss_mb"]),
                       speedup=round(j["wall_s"] / s2x["wall_s"], 1))
        if n in a.jwst_atoca:
            j = run_jwst(case, a.workdir / f"jwst_atoca{n}", {})
            row.update(jwst_atoca_s=round(j["wall_s"], 2), jwst_atoca_peak_mb=round(j["peak_rss_mb"]),
                       speedup_vs_atoca=round(j["wall_s"] / s2x["wall_s"], 1))
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(HERE / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if not a.keep:
            for p in case["rateints"]:
                Path(p).unlink()
            (a.workdir / f"soss{n}" / "bench_case.json").unlink()
    print("| nints | input MB | spec2x s | spec2x peak MB | jwst box s | jwst box peak MB | speed-up | "
          "jwst ATOCA s | jwst ATOCA peak MB |")
    for r in rows:
        print(f"| {r['nints']} | {r['input_mb']} | {r['spec2x_s']} | {r['spec2x_peak_mb']} | {r.get('jwst_s', '–')} "
              f"| {r.get('jwst_peak_mb', '–')} | {r.get('speedup', '–')} | {r.get('jwst_atoca_s', '–')} "
              f"| {r.get('jwst_atoca_peak_mb', '–')} |")


if __name__ == "__main__":
    main()
