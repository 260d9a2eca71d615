#!/usr/bin/env python
"""spec2x vs jwst 3.0.0 on synthetic NIRCam grism TSO exposures: wall time, peak RSS, input MB/s.

    python benchmarks/bench_nircam_tsgrism.py --nints 100 1000 --jwst 100 1000 --workdir /tmp/bench
    python benchmarks/bench_nircam_tsgrism.py --nints 10000 --subarray SUBGRISM256 --workdir /tmp/bench  # spec2x alone

Both pipelines run on the same files in the same invocation, each in its own process measured by its
own rusage (imports and JIT start-up included, as a user sees them).  Prints one JSON row per run and a
Markdown table, and appends the rows to ``--results`` (default benchmarks/results.jsonl).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from _common import parser, print_table, run_all, synthetic_case


def make_case(workdir: Path, nints: int, subarray: str, filt: str) -> dict:
    from spec2x.synthetic import make_nircam_tsgrism

    return synthetic_case(workdir / f"nrc_{subarray}_{filt}_{nints}", make_nircam_tsgrism, nints=nints,
                          subarray=subarray, filter=filt)


def main():
    ap = parser(__doc__.splitlines()[0], [100, 1000], "/tmp/spec2x-bench")
    ap.add_argument("--subarray", default="SUBGRISM64", choices=("SUBGRISM64", "SUBGRISM128", "SUBGRISM256"))
    ap.add_argument("--filter", default="F444W", choices=("F444W", "F322W2"))
    a = ap.parse_args()
    meta = {"mode": "NRC_TSGRISM", "subarray": a.subarray, "filter": a.filter}
    rows = run_all(a, partial(make_case, subarray=a.subarray, filt=a.filter), meta)
    print(f"NIRCam grism TSO, {a.subarray} {a.filter}")
    print_table(rows)


if __name__ == "__main__":
    main()
