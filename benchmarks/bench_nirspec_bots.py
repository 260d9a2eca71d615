#!/usr/bin/env python
"""spec2x vs jwst 3.0.0 on synthetic NIRSpec BOTS exposures (S1600A1): wall time, peak RSS, input MB/s.

    python benchmarks/bench_nirspec_bots.py --nints 100 1000 --jwst 100 1000 --workdir /tmp/bench-bots
    python benchmarks/bench_nirspec_bots.py --nints 10 --jwst 10 --grating G235H --subarray SUB1024A

Same measurement as bench_lrs_slitless.py (each run a separate process, imports and JIT included, peak
RSS of that process tree); prints one Markdown row per run and appends them to benchmarks/results.jsonl.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from _common import TIMING_COLUMNS, parser, print_table, run_all, synthetic_case


def make_case(workdir: Path, nints: int, grating: str, subarray: str) -> dict:
    from spec2x.synthetic import make_nirspec_bots

    return synthetic_case(workdir / f"case_{grating}_{subarray}_{nints}", make_nirspec_bots, nints=nints,
                          grating=grating, subarray=subarray)


def main():
    ap = parser(__doc__.splitlines()[0], [100, 1000], "/tmp/spec2x-bench-bots")
    ap.add_argument("--grating", default="G395H")
    ap.add_argument("--subarray", default="SUB2048")
    a = ap.parse_args()
    meta = {"mode": "nirspec_bots", "grating": a.grating, "subarray": a.subarray}
    rows = run_all(a, partial(make_case, grating=a.grating, subarray=a.subarray), meta)
    print_table(rows, [("mode", lambda r: f"NIRSpec BOTS {r['grating']} {r['subarray']}"), *TIMING_COLUMNS])


if __name__ == "__main__":
    main()
