"""JWST pixel DQ flags and the NaN / DO_NOT_USE consistency rule that jwst steps apply to their output."""

from __future__ import annotations

import numpy as np
import xarray as xr

# Standard JWST pixel flags (bit values), named as in jwst's dqflags.pixel.
PIXEL = {
    "GOOD": 0, "DO_NOT_USE": 1 << 0, "SATURATED": 1 << 1, "JUMP_DET": 1 << 2, "DROPOUT": 1 << 3,
    "OUTLIER": 1 << 4, "PERSISTENCE": 1 << 5, "AD_FLOOR": 1 << 6, "CHARGELOSS": 1 << 7, "RESERVED": 1 << 8,
    "NON_SCIENCE": 1 << 9, "DEAD": 1 << 10, "HOT": 1 << 11, "WARM": 1 << 12, "LOW_QE": 1 << 13,
    "RC": 1 << 14, "TELEGRAPH": 1 << 15, "NONLINEAR": 1 << 16, "BAD_REF_PIXEL": 1 << 17,
    "NO_FLAT_FIELD": 1 << 18, "NO_GAIN_VALUE": 1 << 19, "NO_LIN_CORR": 1 << 20, "NO_SAT_CHECK": 1 << 21,
    "UNRELIABLE_BIAS": 1 << 22, "UNRELIABLE_DARK": 1 << 23, "UNRELIABLE_SLOPE": 1 << 24,
    "UNRELIABLE_FLAT": 1 << 25, "OPEN": 1 << 26, "ADJ_OPEN": 1 << 27, "FLUX_ESTIMATED": 1 << 28,
    "MSA_FAILED_OPEN": 1 << 29, "OTHER_BAD_PIXEL": 1 << 30, "REFERENCE_PIXEL": 1 << 31,
}
DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])

# The float variables whose NaNs mark a pixel invalid (jwst: data, err, var_rnoise, var_poisson, var_flat).
NAN_VARIABLES = ("sci", "err", "var_rnoise", "var_poisson", "var_flat")


def remap_dq(dq: np.ndarray, dq_def) -> np.ndarray:
    """Translate a reference file's DQ bits to the standard ones through its DQ_DEF table (by NAME).

    As stdatamodels does when it opens a reference model: names that are not standard flags are dropped;
    with no (or an empty) DQ_DEF the array is returned as is.
    """
    if dq_def is None or len(dq_def) == 0:
        return dq
    out = np.zeros(dq.shape, dtype=dq.dtype)
    for value, name in zip(dq_def["VALUE"], dq_def["NAME"]):
        standard = PIXEL.get(str(name).strip())
        if standard is not None:
            out[(dq & np.uint32(value)) != 0] |= np.uint32(standard)
    return out


def match_nans_and_flags(ds: xr.Dataset) -> xr.Dataset:
    """NaN in every float cube and DO_NOT_USE in ``dq`` wherever any cube is NaN or DO_NOT_USE is set.

    jwst runs this at the end of flat_field, photom (and others); every variable of ``NAN_VARIABLES``
    present with the shape of the first one takes part.  Lazy: only builds elementwise dask ops.
    """
    present = [v for v in NAN_VARIABLES if v in ds.data_vars]
    if not present:
        return ds
    dims = ds[present[0]].dims
    present = [v for v in present if ds[v].dims == dims]
    invalid = np.isnan(ds[present[0]])
    for name in present[1:]:
        invalid = invalid | np.isnan(ds[name])
    out = ds.copy(deep=False)
    if "dq" in ds.data_vars and ds["dq"].dims == dims:
        invalid = invalid | ((ds["dq"] & DO_NOT_USE) != 0)
        out["dq"] = xr.where(invalid, ds["dq"] | DO_NOT_USE, ds["dq"])
    for name in present:
        out[name] = ds[name].where(~invalid)
    return out
