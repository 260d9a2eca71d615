"""flat_field: divide by the flat, as jwst 3.0.0: the FLAT reference image (every mode but NIRSpec
spectroscopy), or for NIRSpec BOTS the F x S x D flat built at the slit's wavelengths (``spec2x.nirspec_flat``).

The flat (cut to the science subarray when the reference is larger) is a small (y, x) numpy array read
once; the cubes are divided lazily.  Flat pixels that are NaN, zero or NO_FLAT_FIELD become
DO_NOT_USE (+NO_FLAT_FIELD) with value 1; the flat DQ is OR-ed into the science DQ; VAR_POISSON and
VAR_RNOISE are divided by flat², VAR_FLAT = sci_flat² / flat² · flat_err², ERR = sqrt(sum of VARs);
then NaNs and DO_NOT_USE are made consistent.  All arithmetic in float32, in jwst's order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from astropy.io import fits

from kernels import pixel
from spec2x.blockwise import apply_kernel, variable_or_zeros
from spec2x.dq import PIXEL, remap_dq
from spec2x.errors import NotImplementedForMode, RefError, Spec2xError
from spec2x.meta import keyword, with_keywords

NIRSPEC_SPECTRAL = ("NRS_AUTOWAVE", "NRS_BRIGHTOBJ", "NRS_FIXEDSLIT", "NRS_IFU", "NRS_LAMP", "NRS_MSASPEC")
_FULL_FRAME = {"MIRI": (1024, 1032)}  # other instruments: 2048 x 2048


def run(ds: xr.Dataset, refs: dict) -> xr.Dataset:
    """Flat-field ``ds`` with ``refs["flat"]``; S_FLAT=SKIPPED when it is N/A or smaller than the data."""
    return apply(ds, prepare(ds, refs))


def apply(ds: xr.Dataset, flat) -> xr.Dataset:
    if flat is None:
        return with_keywords(ds, primary={"S_FLAT": "SKIPPED"})
    if isinstance(flat, NirspecFlat):
        return apply_nirspec_flat(ds, flat)
    return apply_flat(ds, *flat)


def prepare(ds: xr.Dataset, refs: dict):
    """The prepared (data, dq, err) flat for this exposure, or None when jwst would skip the step."""
    exp_type = str(keyword(ds, "EXP_TYPE", "")).upper()
    if exp_type in NIRSPEC_PREPARE:
        return NIRSPEC_PREPARE[exp_type](ds, refs)
    if exp_type in NIRSPEC_SPECTRAL and keyword(ds, "OPMODE") != "IMAGE":
        raise NotImplementedForMode(f"flat_field: NIRSpec flats for EXP_TYPE={exp_type} are not implemented")
    path = refs.get("flat")
    flat = read_flat(path, ds) if path else None
    return None if flat is None else prepare_flat(*flat)


def read_flat(path: str, ds: xr.Dataset):
    """(data float32, dq uint32, err float32) of the FLAT file matching the science subarray, or None
    when the reference is smaller than the science frame (jwst then skips the step)."""
    with fits.open(path) as hdul:
        hdr = hdul[0].header
        names = [h.name for h in hdul]
        data = np.asarray(hdul["SCI"].data, dtype=np.float32)
        dq = np.asarray(hdul["DQ"].data, dtype=np.uint32) if "DQ" in names else np.zeros(data.shape, np.uint32)
        err = np.asarray(hdul["ERR"].data, dtype=np.float32) if "ERR" in names else np.zeros(data.shape, np.float32)
        dq = remap_dq(dq, hdul["DQ_DEF"].data if "DQ_DEF" in names else None)
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    if nx > data.shape[-1] or ny > data.shape[-2]:
        return None
    window = subarray_window(hdr, data.shape, ds, path)
    if window is not None:
        data, dq, err = (a[..., window[0], window[1]] for a in (data, dq, err))
    return data, dq, err


def subarray_window(ref_hdr, ref_shape, ds: xr.Dataset, path: str):
    """(y slice, x slice) cutting a reference to the science subarray, or None when it already matches.

    Follows jwst: reference corners from SUBSTRT/SUBSIZE (a MIRI 1024x1032 or other 2048x2048 reference
    without them is full frame), sizes taken from the arrays when the keywords disagree.
    """
    ref = [ref_hdr.get(k) for k in ("SUBSTRT1", "SUBSIZE1", "SUBSTRT2", "SUBSIZE2")]
    if None in ref:
        full = _FULL_FRAME.get(str(ref_hdr.get("INSTRUME", "")).upper(), (2048, 2048))
        if tuple(ref_shape[-2:]) != full:
            raise RefError("flat_field", "flat", f"{path}: no SUBSTRT/SUBSIZE keywords and not full frame")
        ref = [1, full[1], 1, full[0]]
    sci = [keyword(ds, k) for k in ("SUBSTRT1", "SUBSIZE1", "SUBSTRT2", "SUBSIZE2")]
    if None in sci:
        raise RefError("flat_field", "flat", "the exposure has no SUBSTRT/SUBSIZE keywords")
    if min(ref[0], ref[2], sci[0], sci[2]) < 1:
        raise RefError("flat_field", "flat", f"{path}: invalid subarray corners")
    if (ref[0], ref_shape[-1], ref[2], ref_shape[-2]) == (sci[0], ds.sizes["x"], sci[2], ds.sizes["y"]):
        return None
    x0, y0 = sci[0] - ref[0], sci[2] - ref[2]
    x1, y1 = x0 + sci[1], y0 + sci[3]
    if x0 < 0 or y0 < 0 or x1 > ref[1] or y1 > ref[3]:
        raise RefError("flat_field", "flat", f"{path}: does not cover the science subarray "
                       f"(SUBSTRT1={sci[0]}, SUBSTRT2={sci[2]}, SUBSIZE1={sci[1]}, SUBSIZE2={sci[3]})")
    return slice(y0, y1), slice(x0, x1)


def prepare_flat(data, dq, err):
    """Flag unusable flat pixels (NaN, zero, NO_FLAT_FIELD) DO_NOT_USE and set them to 1 (no correction)."""
    data, dq = data.copy(), dq.copy()
    bad = np.uint32(PIXEL["DO_NOT_USE"] | PIXEL["NO_FLAT_FIELD"])
    dq[np.isnan(data) | (data == 0.0)] |= bad
    dq[(dq & np.uint32(PIXEL["NO_FLAT_FIELD"])) != 0] |= np.uint32(PIXEL["DO_NOT_USE"])
    data[(dq & np.uint32(PIXEL["DO_NOT_USE"])) != 0] = 1.0
    return data, dq, err


def apply_flat(ds: xr.Dataset, data, dq, err) -> xr.Dataset:
    """Lazy division of the cubes by a prepared (y, x) flat (the generic FLAT reference)."""
    return divide(ds, data, err, dq, per_slit=False)


def divide(ds: xr.Dataset, data, err, dq, per_slit: bool) -> xr.Dataset:
    """Lazy division of the cubes by a prepared (y, x) flat, in jwst's float32 operation order, with its
    NaN / DO_NOT_USE matching (one fused kernel pass per chunk); ``per_slit``: NIRSpec's VAR_FLAT."""
    inputs = ["sci", variable_or_zeros(ds, "var_poisson"), variable_or_zeros(ds, "var_rnoise"), "dq"]
    outputs = {"sci": np.float32, "err": np.float32, "dq": np.uint32, "var_poisson": np.float32,
               "var_rnoise": np.float32, "var_flat": np.float32}
    constants = (data, data * data, err, err ** 2, dq, per_slit)
    return apply_kernel(pixel.divide_by_flat, ds, inputs, outputs, constants)


# ----------------------------------------------------------------------------- NIRSpec (F x S x D flats)
@dataclass(frozen=True)
class NirspecFlat:
    """The interpolated (y, x) NIRSpec flat of a slit cut-out."""

    data: np.ndarray
    dq: np.ndarray
    err: np.ndarray


def prepare_nirspec_slit(ds: xr.Dataset, refs: dict):
    """The F x S x D flat at the cut-out's wavelengths (None, so SKIPPED, when all three are N/A).

    S and D flats are full frame: the cut-out sits at subarray start + slit start (SLTSTRTn)."""
    from spec2x import nirspec_flat

    if not any(refs.get(k) for k in ("fflat", "sflat", "dflat")):
        return None
    if "wavelength" not in ds.coords:
        raise Spec2xError("flat_field: the NIRSpec flat needs the slit wavelengths; run extract_2d first")
    slit = keyword(ds, "SLTNAME")
    x0 = int(keyword(ds, "SUBSTRT1", 1)) - 1 + int(keyword(ds, "SLTSTRT1", 1)) - 1
    y0 = int(keyword(ds, "SUBSTRT2", 1)) - 1 + int(keyword(ds, "SLTSTRT2", 1)) - 1
    window = (slice(y0, y0 + ds.sizes["y"]), slice(x0, x0 + ds.sizes["x"]))
    parts = {k: nirspec_flat.read_part(refs[k], k, slit, None if k == "fflat" else window) if refs.get(k) else None
             for k in ("fflat", "sflat", "dflat")}
    flat, dq, err = nirspec_flat.nirspec_flat(ds.coords["wavelength"].values, parts["fflat"], parts["sflat"],
                                              parts["dflat"])
    return NirspecFlat(flat, dq, err)


def apply_nirspec_flat(ds: xr.Dataset, flat: NirspecFlat) -> xr.Dataset:
    """Lazy division by the NIRSpec flat (VAR_FLAT from the divided SCI, as jwst's NIRSpec branch)."""
    return divide(ds, flat.data, flat.err, flat.dq, per_slit=True)


NIRSPEC_PREPARE = {"NRS_BRIGHTOBJ": prepare_nirspec_slit}
