"""What the per-mode benchmark scripts share: a synthetic case made once, each pipeline run in its own
measured process (imports and JIT start-up included, as a user sees them), and the loop over ``--nints``
that appends one JSON row per run to a results file and prints a Markdown table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def isolated(cmd: list[str]) -> dict:
    """Run ``cmd`` under a fresh Python that reports the child's own wall time and peak RSS (MB)."""
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


def run_spec2x(case: dict, out: Path, scheduler: str = "threads", chunk: int | None = None) -> dict:
    """``spec2x run`` on the case, measured."""
    cmd = [str(Path(sys.executable).parent / "spec2x"), "run", *case["rateints"], "-o", str(out), "--overwrite",
           "--quiet", "--scheduler", scheduler]
    if chunk:
        cmd += ["--chunk-ints", str(chunk)]
    for k, v in case["refs"].items():
        cmd += ["--ref", f"{k}={v}"]
    return isolated(cmd)


def run_jwst(case: dict, out: Path, steps: dict | None = None) -> dict:
    """jwst 3.0.0's Spec2Pipeline on the case's first file, offline (tests/oracle.py), measured."""
    from oracle import OFFLINE_ENV

    oracle = HERE.parent / "tests" / "oracle.py"
    spec = {"input": case["rateints"][0], "outdir": str(out), "refs": case["refs"], "steps": steps or {}, "skip": []}
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec))
    os.environ.update(OFFLINE_ENV)
    return isolated([sys.executable, str(oracle), str(out / "spec.json")])


def parser(description: str, nints: list[int], workdir: str, scheduler: bool = True) -> argparse.ArgumentParser:
    """The options every mode script takes; the script adds its own (subarray, grating...)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--nints", type=int, nargs="+", default=nints)
    ap.add_argument("--jwst", type=int, nargs="*", default=[], help="nints at which jwst also runs")
    ap.add_argument("--workdir", type=Path, default=Path(workdir))
    if scheduler:
        ap.add_argument("--scheduler", default="threads")
    ap.add_argument("--chunk-ints", type=int, default=None)
    ap.add_argument("--results", type=Path, default=HERE / "results.jsonl", help="JSON lines file to append to")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic inputs")
    return ap


def timed_row(case: dict, s2x: dict, meta: dict, a) -> dict:
    """One results row: the machine, the case (``meta``, nints, input size) and spec2x's figures."""
    size_mb = sum(Path(p).stat().st_size for p in case["rateints"]) / 1e6
    row = {"date": str(date.today()), "machine": f"{platform.node()} {os.cpu_count()} cores", **meta,
           "input_mb": round(size_mb, 1)}
    if hasattr(a, "scheduler"):
        row["scheduler"] = a.scheduler
    row.update(chunk_ints=a.chunk_ints, spec2x_s=round(s2x["wall_s"], 2), spec2x_peak_mb=round(s2x["peak_rss_mb"]),
               spec2x_mb_per_s=round(size_mb / s2x["wall_s"], 1))
    return row


def add_jwst(row: dict, j: dict, s2x: dict, tag: str = "") -> None:
    """jwst's wall time, peak RSS and the speed-up of spec2x over it (``tag`` names a jwst variant)."""
    t = f"_{tag}" if tag else ""
    row.update({f"jwst{t}_s": round(j["wall_s"], 2), f"jwst{t}_peak_mb": round(j["peak_rss_mb"]),
                f"speedup_vs_{tag}" if tag else "speedup": round(j["wall_s"] / s2x["wall_s"], 1)})


def run_all(a, make_case, meta: dict, spec2x=None, jwst_steps: dict | None = None, extra=None) -> list[dict]:
    """For each ``a.nints``: make the case, time spec2x (``spec2x(case, out)``, default ``spec2x run``), at
    ``a.jwst`` time jwst too (``jwst_steps``: its step parameters), then ``extra(case, n, row, s2x)`` if
    given; append each row to ``a.results`` as it comes and delete the inputs unless ``a.keep``."""
    spec2x = spec2x or (lambda case, out: run_spec2x(case, out, a.scheduler, a.chunk_ints))
    a.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in a.nints:
        case = make_case(a.workdir, n)
        s2x = spec2x(case, a.workdir / f"spec2x{n}")
        row = timed_row(case, s2x, {**meta, "nints": n}, a)
        if n in a.jwst:
            add_jwst(row, run_jwst(case, a.workdir / f"jwst{n}", jwst_steps), s2x)
        if extra:
            extra(case, n, row, s2x)
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(a.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        if not a.keep:
            for p in case["rateints"]:
                Path(p).unlink()
            (Path(case["rateints"][0]).parent / "bench_case.json").unlink()
    return rows


TIMING_COLUMNS = [("nints", "nints"), ("input MB", "input_mb"), ("spec2x s", "spec2x_s"),
                  ("spec2x peak MB", "spec2x_peak_mb"), ("spec2x MB/s", "spec2x_mb_per_s"), ("jwst s", "jwst_s"),
                  ("jwst peak MB", "jwst_peak_mb"), ("speed-up", "speedup")]


def print_table(rows: list[dict], columns=TIMING_COLUMNS) -> None:
    """Markdown table of ``rows``: ``columns`` are (header, key or row -> text); '–' where a row has none."""
    print("| " + " | ".join(h for h, _ in columns) + " |")
    for r in rows:
        cells = (key(r) if callable(key) else r.get(key, "–") for _, key in columns)
        print("| " + " | ".join(str(c) for c in cells) + " |")
