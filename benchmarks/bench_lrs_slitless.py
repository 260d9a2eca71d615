#!/usr/bin/env python
"""spec2x vs jwst 3.0.0 on synthetic MIRI LRS slitless TSO exposures: wall time, peak RSS, input MB/s.

    python benchmarks/bench_lrs_slitless.py --nints 100 1000 --jwst 100 1000 --workdir /tmp/bench
    python benchmarks/bench_lrs_slitless.py --nints 10000 30000 --workdir /tmp/bench   # spec2x alone

Each run is a separate process measured by its own rusage (peak RSS of that process tree), so
imports and JIT start-up are included, as a user sees them.  Prints one Markdown table row per run
and appends them to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def measure(cmd: list[str], env=None) -> dict:
    """Wall time and peak RSS (MB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    # ru_maxrss of children is the max over all children so far: run each measurement in its own
    # python -c wrapper below so the figure belongs to this command alone.
    return {"wall_s": wall, "peak_rss_mb": max(peak, before) / 1024.0, "stderr": proc.stderr[-500:]}


def isolated(cmd: list[str]) -> dict:
    """Run ``cmd`` under a fresh Python that reports the child's own peak RSS."""
    probe = ("import json,resource,subprocess,sys,time;t=time.perf_counter();"
             "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);w=time.perf_counter()-t;"
             "r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024;"
             "print(json.dumps({'rc':p.returncode,'wall_s':w,'peak_rss_mb':r,'err':p.stderr[-2000:]}))")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{result['err']}")
    return result


def synthetic_case(case: Path, maker, **kwargs) -> dict:
    """``maker(case, seed=1, **kwargs)`` (a ``spec2x.synthetic`` case) run once: later calls reuse the files
    listed in ``case/bench_case.json``.  Returns {"rateints": [paths], "refs": {reftype: path}, "make_s"}."""
    marker = case / "bench_case.json"
    if marker.exists():
        return json.loads(marker.read_text())
    t0 = time.perf_counter()
    info = maker(case, seed=1, **kwargs)
    info = {"rateints": [str(p) for p in info["rateints"]], "refs": {k: str(v) for k, v in info["refs"].items()},
            "make_s": time.perf_counter() - t0}
    marker.write_text(json.dumps(info))
    return info


def make_case(workdir: Path, nints: int) -> dict:
    from spec2x.synthetic import make_miri_lrs_slitless

    return synthetic_case(workdir / f"case{nints}", make_miri_lrs_slitless, nints=nints)


def run_spec2x(case: dict, out: Path, scheduler: str, chunk: int | None) -> dict:
    cmd = [str(Path(sys.executable).parent / "spec2x"), "run", *case["rateints"], "-o", str(out), "--overwrite",
           "--quiet", "--scheduler", scheduler]
    if chunk:
        cmd += ["--chunk-ints", str(chunk)]
    for k, v in case["refs"].items():
        cmd += ["--ref", f"{k}={v}"]
    return isolated(cmd)


def run_jwst(case: dict, out: Path) -> dict:
    oracle = HERE.parent / "tests" / "oracle.py"
    spec = {"input": case["rateints"][0], "outdir": str(out), "refs": case["refs"], "steps": {}, "skip": []}
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec))
    from oracle import OFFLINE_ENV

    os.environ.update(OFFLINE_ENV)
    return isolated([sys.executable, str(oracle), str(out / "spec.json")])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nints", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--jwst", type=int, nargs="*", default=[], help="nints at which jwst also runs")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/spec2x-bench"))
    ap.add_argument("--scheduler", default="threads")
    ap.add_argument("--chunk-ints", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic inputs")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in a.nints:
        case = make_case(a.workdir, n)
        size_mb = sum(Path(p).stat().st_size for p in case["rateints"]) / 1e6
        s2x = run_spec2x(case, a.workdir / f"spec2x{n}", a.scheduler, a.chunk_ints)
        row = {"date": str(date.today()), "machine": f"{platform.node()} {os.cpu_count()} cores",
               "nints": n, "input_mb": round(size_mb, 1), "scheduler": a.scheduler, "chunk_ints": a.chunk_ints,
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
            (a.workdir / f"case{n}" / "bench_case.json").unlink()
    print("| nints | input MB | spec2x s | spec2x peak MB | spec2x MB/s | jwst s | jwst peak MB | speed-up |")
    for r in rows:
        print(f"| {r['nints']} | {r['input_mb']} | {r['spec2x_s']} | {r['spec2x_peak_mb']} | {r['spec2x_mb_per_s']} "
              f"| {r.get('jwst_s', '–')} | {r.get('jwst_peak_mb', '–')} | {r.get('speedup', '–')} |")


if __name__ == "__main__":
    main()
