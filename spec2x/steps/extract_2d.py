"""extract_2d: cut the slit's spectrum out of the exposure, as jwst 3.0.0 does.

A dispatcher on EXP_TYPE; each mode's cut-out lives in its own functions.

NIRSpec BOTS (``NRS_BRIGHTOBJ``): the S1600A1 bounding box that assign_wcs attached to the WCS gives the
cut-out rows/columns (gwcs' pixel-centre rounding); the cut-out's gwcs is the slit WCS with the cut-out
offset prepended, its WAVELENGTH map is that WCS evaluated at every cut-out pixel (float32, NaN outside
the slit).  The slit geometry goes to the SCI header (SLTNAME, SLTSTRTn/SLTSIZEn, SHUTTRID, SOURCEID)
with the source position in the slit from the dither offsets (SRCXPOS/SRCYPOS) and the slit's sky
footprint (S_REGION).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import xarray as xr
from astropy.modeling.models import Shift

from spec2x.errors import NotImplementedForMode, Spec2xError
from spec2x.meta import exposure_keywords, with_keywords

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cutout:
    """Where the slit lies in the exposure, its WCS and wavelengths, and the keywords jwst records."""

    xlo: int
    xhi: int
    ylo: int
    yhi: int
    wcs: object
    wavelength: np.ndarray
    sci: dict


def run(ds: xr.Dataset, refs: dict) -> xr.Dataset:
    return apply(ds, prepare(ds, refs))


def prepare(ds: xr.Dataset, refs: dict) -> Cutout:
    exp_type = str(exposure_keywords(ds).get("EXP_TYPE", "")).upper()
    if exp_type not in PREPARE:
        raise NotImplementedForMode(f"extract_2d: EXP_TYPE={exp_type} is not implemented")
    return PREPARE[exp_type](ds, refs)


def apply(ds: xr.Dataset, c: Cutout) -> xr.Dataset:
    """The cut-out of every integration (lazy on dask), with its wavelength map, WCS and keywords."""
    out = ds.isel(y=slice(c.ylo, c.yhi), x=slice(c.xlo, c.xhi))
    out = with_keywords(out, sci=c.sci, wcs=c.wcs)
    return out.assign_coords(wavelength=(("y", "x"), c.wavelength, {"units": "um"}))


# ----------------------------------------------------------------------------- NIRSpec slits
# Fixed slits: (SHUTTRID, SOURCEID of the primary slit), as jwst numbers them.
_FIXED_SLIT_IDS = {"S1600A1": (3, 1)}


def offset_wcs(wcs, xlo: int, ylo: int):
    """A copy of ``wcs`` whose detector frame starts at (xlo, ylo), bounded by the cut-out."""
    out = copy.deepcopy(wcs)
    first = Shift(xlo) & Shift(ylo) | out.get_transform("detector", "sca")
    first.name = "dms2sca"
    out.set_transform("detector", "sca", first)
    return out


def source_position(wcs, kw: dict) -> tuple[float, float]:
    """(SRCXPOS, SRCYPOS): the dither offsets (XOFFSET/YOFFSET, arcsec in the ideal frame) taken to
    V2/V3 about the aperture reference, then to the slit frame; 0, 0 when they are missing."""
    names = ("XOFFSET", "YOFFSET", "V2_REF", "V3_REF", "V3I_YANG", "VPARITY")
    values = [kw.get(n) for n in names]
    if any(v is None for v in values):
        log.warning("extract_2d: dither offsets or aperture keywords missing; source position set to 0, 0")
        return 0.0, 0.0
    x, y, v2ref, v3ref, angle, parity = (float(v) for v in values)
    a = np.deg2rad(angle)
    v2 = v2ref + parity * x * np.cos(a) + y * np.sin(a)
    v3 = v3ref - parity * x * np.sin(a) + y * np.cos(a)
    xpos, ypos, _ = wcs.get_transform("v2v3", "slit_frame")(v2, v3, 2.0)
    return float(xpos), float(ypos)


def nirspec_bots(ds: xr.Dataset, refs: dict) -> Cutout:
    """The S1600A1 cut-out of a NIRSpec BOTS exposure."""
    from spec2x import nirspec_wcs

    wcs = ds.attrs.get("wcs")
    if wcs is None or wcs.bounding_box is None:
        raise Spec2xError("extract_2d: the exposure has no slit WCS; run assign_wcs first")
    kw = exposure_keywords(ds)
    bbox = wcs.bounding_box.bounding_box(order="F")
    xlo, xhi, ylo, yhi = nirspec_wcs.cutout(bbox)
    log.info("extract_2d: S1600A1 x %d..%d, y %d..%d", xlo, xhi, ylo, yhi)
    cut = offset_wcs(wcs, xlo, ylo)
    # the box may run past a narrow subarray (SUB512): the data stop at its edge, SLTSIZEn do not
    ny, nx = min(yhi, ds.sizes["y"]) - ylo, min(xhi, ds.sizes["x"]) - xlo
    cut.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    y, x = np.mgrid[:ny, :nx].astype(np.float64)
    wavelength = np.asarray(cut(x, y)[2], dtype=np.float32).astype(np.float64)
    shutter, source = _FIXED_SLIT_IDS["S1600A1"]
    xpos, ypos = source_position(cut, kw)
    sci = {"SLTNAME": "S1600A1", "SLTSTRT1": xlo + 1, "SLTSIZE1": xhi - xlo, "SLTSTRT2": ylo + 1, "SLTSIZE2": yhi - ylo,
           "SHUTTRID": shutter, "SOURCEID": source, "SRCXPOS": xpos, "SRCYPOS": ypos}
    region = nirspec_wcs.footprint_region(cut)
    if region is not None:
        sci["S_REGION"] = region
    return Cutout(xlo, xlo + nx, ylo, ylo + ny, cut, wavelength, sci)


PREPARE = {"NRS_BRIGHTOBJ": nirspec_bots}
