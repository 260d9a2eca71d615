#!/usr/bin/env python
"""spec2x vs jwst 3.0.0 on synthetic MIRI LRS slitless TSO exposures: wall time, peak RSS, input MB/s.

    python benchmarks/bench_lrs_slitless.py --nints 100 1000 --jwst 100 1000 --workdir /tmp/bench
    python benchmarks/bench_lrs_slitless.py --nints 10000 30000 --workdir /tmp/bench   # spec2x alone

Each run is a separate process measured by its own rusage (peak RSS of that process tree), so
imports and JIT start-up are included, as a user sees them.  Prints one Markdown table row per run
and appends them to benchmarks/results.jsonl.
"""

from __future__ import annotations

from pathlib import Path

from _common import isolated, parser, print_table, run_all, synthetic_case  # noqa: F401 (isolated: for
# bench_niriss_soss.py, which imports it from here)


def make_case(workdir: Path, nints: int) -> dict:
    from spec2x.synthetic import make_miri_lrs_slitless

    return synthetic_case(workdir / f"case{nints}", make_miri_lrs_slitless, nints=nints)


def main():
    a = parser(__doc__.splitlines()[0], [100, 1000], "/tmp/spec2x-bench").parse_args()
    print_table(run_all(a, make_case, {}))


if __name__ == "__main__":
    main()
