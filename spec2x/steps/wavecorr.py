"""wavecorr: the wavelength zero-point correction for a point source off the slit centre (NIRSpec fixed
slits, BOTS, MOS), as jwst 3.0.0 runs it.

jwst skips the step (S_WAVCOR=SKIPPED) when the WAVECORR reference is N/A, which is what spec2x does.
Applying a WAVECORR reference is not implemented: that is a clear error rather than a silent skip.
"""

from __future__ import annotations

import xarray as xr

from spec2x.errors import NotImplementedForMode
from spec2x.meta import with_keywords


def run(ds: xr.Dataset, refs: dict) -> xr.Dataset:
    return apply(ds, prepare(ds, refs))


def prepare(ds: xr.Dataset, refs: dict) -> dict:
    path = (refs or {}).get("wavecorr")
    if path:
        raise NotImplementedForMode(f"wavecorr: applying {path} is not implemented; give wavecorr=N/A "
                                    "(jwst then skips the step)")
    return {"S_WAVCOR": "SKIPPED"}


def apply(ds: xr.Dataset, primary: dict) -> xr.Dataset:
    return with_keywords(ds, primary=primary)
