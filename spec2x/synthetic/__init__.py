"""Deterministic synthetic exposures and their reference files, one module per mode, for demos, tests
and benchmarks.  Every ``make_*`` writes ``outdir/<name>_rateints.fits`` (or ``-segNNN`` files) plus
``outdir/refs/*`` and ``outdir/case.json``, and returns {"rateints": [paths], "refs": {reftype: path},
"nints", ...truth}, so spec2x and jwst 3.0.0 (run offline) can process the same files."""

from __future__ import annotations

import importlib

# ``spec2x demo --mode NAME``: NAME -> (module in this package, its maker, default number of integrations).
# Named lazily so the command line starts without importing stdatamodels.
DEMOS = {
    "lrs": ("miri_lrs_slitless", "make_miri_lrs_slitless", 20),
    "nircam": ("nircam_tsgrism", "make_nircam_tsgrism", 20),
    "bots": ("nirspec_bots", "make_nirspec_bots", 20),
    "soss": ("niriss_soss", "make_niriss_soss", 10),
}


def demo_case(outdir, mode: str = "lrs", nints: int | None = None) -> dict:
    """The built-in case of ``mode`` (seed 1) for ``spec2x demo``."""
    module, maker, default = DEMOS[mode]
    make = getattr(importlib.import_module(f"spec2x.synthetic.{module}"), maker)
    return make(outdir, nints=nints or default, seed=1)


def __getattr__(name):  # spec2x.synthetic.make_miri_lrs_slitless etc., imported on first use
    for module, maker, _ in DEMOS.values():
        if name == maker:
            return getattr(importlib.import_module(f"spec2x.synthetic.{module}"), maker)
    if name == "segment_bounds":
        from spec2x.synthetic.common import segment_bounds
        return segment_bounds
    raise AttributeError(name)
