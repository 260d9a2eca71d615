#!/usr/bin/env python
"""Where a run's fixed cost goes: the libraries' import floor, a cold ``spec2x run``, and the fixed cost
per exposure in a warm process (a notebook, a dask worker, a batch of exposures in one script).

    python benchmarks/bench_startup.py --modes lrs nircam bots soss --nints 5 50 --workdir /tmp/startup

* floor: a fresh Python importing what any stage-2 run in Python needs (numpy, astropy.io.fits, xarray,
  dask.array, gwcs, numba, the asdf extensions, the stdatamodels schemas) and nothing of spec2x;
* cold: ``spec2x run`` of the smaller case in a fresh process (what the mode benchmarks pay at start);
* warm: ``spec2x.pipeline.run`` in one process, after one run of the same mode, at both sizes; the fixed
  cost per exposure is the intercept of the line through the two (time at zero integrations).

Prints one Markdown row per mode and appends it to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import isolated, run_spec2x, synthetic_case  # noqa: E402

FLOOR = ("import numpy, astropy.io.fits, xarray, dask.array, gwcs, numba, asdf\n"
         "from stdatamodels.jwst import datamodels\n"
         "asdf.get_config().extensions\n"
         "datamodels.CubeModel((1, 2, 2)).validate()\n")

WARM = """
import json, sys, time
from spec2x.pipeline import run
cases, out = json.loads(sys.argv[1]), sys.argv[2]
times = []
for k, case in enumerate([cases[0], *cases]):
    t = time.perf_counter()
    run(case["rateints"], f"{out}/warm{k}", refs=case["refs"], overwrite=True)
    times.append(time.perf_counter() - t)
print(json.dumps(times[1:]))
"""


def case(workdir: Path, mode: str, nints: int) -> dict:
    from spec2x.synthetic import DEMOS, __getattr__ as maker

    return synthetic_case(workdir / f"{mode}{nints}", maker(DEMOS[mode][1]), nints=nints)


def floor(repeats: int = 3) -> float:
    return statistics.median(isolated([sys.executable, "-c", FLOOR])["wall_s"] for _ in range(repeats))


def cold(info: dict, out: Path) -> float:
    return run_spec2x(info, out)["wall_s"]


def warm(infos: list, out: Path) -> list:
    proc = subprocess.run([sys.executable, "-c", WARM, json.dumps(infos), str(out)], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["lrs", "nircam", "bots", "soss"])
    parser.add_argument("--nints", nargs=2, type=int, default=[5, 50])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/spec2x-startup"))
    args = parser.parse_args(argv)
    n1, n2 = args.nints
    base = floor()
    print(f"import floor (libraries only): {base:.2f} s\n")
    print(f"| mode | cold `spec2x run`, {n1} ints s | warm {n1} ints s | warm {n2} ints s "
          "| warm fixed cost per exposure s | warm s per integration |")
    print("|---|---|---|---|---|---|")
    with open(HERE / "results.jsonl", "a") as log:
        for mode in args.modes:
            infos = [case(args.workdir, mode, n) for n in (n1, n2)]
            t_cold = cold(infos[0], args.workdir / "out")
            t1, t2 = warm(infos, args.workdir / "out")
            slope = (t2 - t1) / (n2 - n1)
            row = {"bench": "startup", "mode": mode, "nints": [n1, n2], "floor_s": base, "cold_s": t_cold,
                   "warm_s": [t1, t2], "warm_fixed_s": t1 - n1 * slope, "warm_per_int_s": slope,
                   "date": str(date.today()), "machine": platform.node()}
            print(f"| {mode} | {t_cold:.2f} | {t1:.2f} | {t2:.2f} | {row['warm_fixed_s']:.2f} | {slope:.4f} |",
                  flush=True)
            log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
