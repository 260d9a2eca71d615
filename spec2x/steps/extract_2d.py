"""extract_2d: cut the calibrated region of each spectrum out of the exposure, as jwst 3.0.0 does.

``EXTRACTORS`` maps EXP_TYPE to the function that plans the cut-out once per exposure (a ``Cutout``:
rows and columns to keep, the cut-out's gwcs and WAVELENGTH map, the SCI keywords jwst writes);
``apply`` is the same for every mode: a lazy ``isel`` of the cubes plus those coordinates and keywords.

NRC_TSGRISM (jwst ``extract_2d/grisms.py: extract_tso_object``): one cut-out, named "1", of one
spectral order (the wavelengthrange reference's ``extract_orders`` for the FILTER, or the
``extract_orders`` parameter).  Columns: all of them (the NIRCam team's choice).  Rows: jwst puts the
source on cut-out row 34 whatever YREF_SCI is, so with the default height of 64 rows the cut-out is
rows 0-63 of every SUBGRISM subarray (``tsgrism_extract_height`` changes the height).  The source
column comes from the dither offset (XOFFSET/YOFFSET) through the inverse distortion; SRCYPOS and
YREF_SCI become 34, as jwst writes them.  WAVELENGTH is the cut-out's WCS evaluated on every pixel.

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
from astropy.modeling import models

from spec2x.errors import InputError, NotImplementedForMode, RefError, Spec2xError
from spec2x.meta import exposure_keywords, keyword, with_keywords

log = logging.getLogger(__name__)

# jwst's defaults of the extract_2d parameters spec2x supports.
PARAMETERS = {"tsgrism_extract_height": None, "extract_orders": None}


@dataclass(frozen=True)
class Cutout:
    """What extract_2d does to every integration: keep ``rows`` x ``cols``, attach ``wcs``, ``wavelength``
    (float64 holding jwst's float32 values) and the SCI keywords."""

    rows: slice
    cols: slice
    wcs: object
    wavelength: np.ndarray
    sci: dict


def run(ds: xr.Dataset, refs: dict, **params) -> xr.Dataset:
    return apply(ds, prepare(ds, refs, **params))


def prepare(ds: xr.Dataset, refs: dict, **params) -> Cutout:
    exp_type = str(keyword(ds, "EXP_TYPE", "")).upper()
    extractor = EXTRACTORS.get(exp_type)
    if extractor is None:
        raise NotImplementedForMode(f"extract_2d: EXP_TYPE={exp_type} is not implemented "
                                    f"(only {', '.join(EXTRACTORS)})")
    return extractor(ds, refs, **{**PARAMETERS, **params})


def apply(ds: xr.Dataset, cutout: Cutout) -> xr.Dataset:
    out = ds.isel(y=cutout.rows, x=cutout.cols)
    out = out.assign_coords(wavelength=(("y", "x"), cutout.wavelength, {"units": "um"}))
    return with_keywords(out, sci=cutout.sci, wcs=cutout.wcs)


# ----------------------------------------------------------------------------- NIRCam grism time series
TSO_SOURCE_ROW = 34        # jwst: the source lands on this row of every TSO grism cut-out
TSO_DEFAULT_HEIGHT = 64


def read_wavelengthrange(path: str):
    """(wavelengthrange rows, extract_orders) of a NIRCam TSGRISM WAVELENGTHRANGE file."""
    from stdatamodels.jwst.datamodels import WavelengthrangeModel

    try:
        with WavelengthrangeModel(path) as ref:
            instrument, exp_type = ref.meta.instrument.name, ref.meta.exposure.type
            ranges, orders = list(ref.wavelengthrange), list(ref.extract_orders)
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise RefError("extract_2d", "wavelengthrange", f"{path}: not a wavelengthrange file ({exc})") from None
    if instrument != "NIRCAM" or exp_type != "NRC_TSGRISM":
        raise RefError("extract_2d", "wavelengthrange",
                       f"{path}: INSTRUME={instrument} EXP_TYPE={exp_type}, not a NIRCAM NRC_TSGRISM file")
    return ranges, orders


def tso_order(path: str, ranges, ref_orders, filt, extract_orders) -> int:
    """The one spectral order to cut out: the parameter's, else the reference's for FILTER."""
    if extract_orders is None:
        matches = [orders for name, orders in ref_orders if name == filt]
        if not matches:
            raise RefError("extract_2d", "wavelengthrange", f"{path}: extract_orders has no entry for FILTER={filt}")
        orders = list(matches[-1])
    else:
        orders = list(extract_orders)
        if not all(isinstance(o, (int, np.integer)) for o in orders):
            raise Spec2xError(f"extract_2d: extract_orders={extract_orders!r} must be a list of integers")
    if len(orders) != 1:
        raise NotImplementedForMode(f"extract_2d: {len(orders)} orders {orders}; jwst extracts one order for TSO")
    order = int(orders[0])
    if not any(row[0] == order and row[2] == filt for row in ranges):
        raise RefError("extract_2d", "wavelengthrange", f"{path}: no wavelength range for order {order} "
                       f"and FILTER={filt}")
    return order


def tso_rows(height: int, ysize: int) -> slice:
    """Rows of the TSO cut-out, jwst's rule: from row 0, ``height`` rows (35 when ``height`` < 2, since
    the source row 34 must be inside), at most the subarray."""
    top = TSO_SOURCE_ROW if int(height / 2) == 0 else height - 1
    if top < 0:
        raise Spec2xError(f"extract_2d: tsgrism_extract_height={height} gives an empty cut-out")
    return slice(0, min(top, ysize) + 1)


def tso_source_column(ds: xr.Dataset, wcs) -> float:
    """0-based full-frame column of the source: the dither offset (arcsec, ideal frame) through V2/V3
    and the inverse distortion."""
    from stdatamodels.jwst.transforms.models import IdealToV2V3

    def need(name):
        value = keyword(ds, name)
        if value is None:
            source = (ds.attrs.get("paths") or [ds.attrs.get("filename", "exposure")])[0]
            raise InputError(source, f"keyword {name} is missing (extract_2d needs it for the source position)")
        return float(value)

    to_v2v3 = IdealToV2V3(need("V3I_YANG"), need("V2_REF"), need("V3_REF"), int(need("VPARITY")))
    v2, v3 = to_v2v3(float(keyword(ds, "XOFFSET", 0.0)), float(keyword(ds, "YOFFSET", 0.0)))
    x, _, _, _ = wcs.get_transform("v2v3", "direct_image")(v2, v3, np.nan, 1)
    return float(x)


def cutout_wcs(wcs, x0: int, y0: int, order: int, shape):
    """The exposure's WCS for cut-out pixels (x, y): shifted to (x0, y0), the order fixed, bounded by
    the cut-out."""
    fixed = models.Const1D(order)
    fixed.inverse = models.Const1D(order)
    to_direct = (models.Mapping((0, 1, 0)) | models.Shift(x0) & models.Shift(y0) & fixed
                 | wcs.get_transform("grism_detector", "direct_image"))
    sub = copy.deepcopy(wcs)
    sub.set_transform("grism_detector", "direct_image", to_direct)
    sub.bounding_box = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    return sub


def wavelength_of(wcs, shape) -> np.ndarray:
    """WAVELENGTH of every cut-out pixel (float32 values as float64), from the forward transform."""
    y, x = np.indices(shape, dtype=np.float64)
    return np.asarray(wcs.forward_transform(x, y)[2], dtype=np.float32).astype(np.float64)


def nrc_tsgrism(ds: xr.Dataset, refs: dict, tsgrism_extract_height=None, extract_orders=None) -> Cutout:
    """The NRC_TSGRISM cut-out of this exposure."""
    wcs = ds.attrs.get("wcs")
    if wcs is None:
        raise Spec2xError("extract_2d: NRC_TSGRISM needs the grism WCS; run assign_wcs first")
    path = refs["wavelengthrange"]
    ranges, ref_orders = read_wavelengthrange(path)
    filt = str(keyword(ds, "FILTER", "")).upper()
    order = tso_order(path, ranges, ref_orders, filt, extract_orders)
    height = TSO_DEFAULT_HEIGHT if tsgrism_extract_height is None else int(tsgrism_extract_height)
    rows = tso_rows(height, int(keyword(ds, "SUBSIZE2", ds.sizes["y"])))
    nx = ds.sizes["x"]
    shape = (len(range(*rows.indices(ds.sizes["y"]))), nx)
    sub = cutout_wcs(wcs, 0, rows.start, order, shape)
    xpos = tso_source_column(ds, wcs)
    sci = {"SLTNAME": "1", "SLTSTRT1": 1, "SLTSIZE1": nx, "SLTSTRT2": rows.start + 1, "SLTSIZE2": shape[0],
           "SPORDER": order, "SOURCEID": 1, "SRCXPOS": xpos, "SRCYPOS": TSO_SOURCE_ROW,
           "XREF_SCI": xpos + 1, "YREF_SCI": TSO_SOURCE_ROW,
           "SRCNAME": keyword(ds, "TARGNAME"), "SRCALIAS": keyword(ds, "TARGPROP")}
    return Cutout(rows, slice(0, nx), sub, wavelength_of(sub, shape), sci)


# ----------------------------------------------------------------------------- NIRSpec slits
# Fixed slits: (SHUTTRID, SOURCEID of the primary slit), as jwst numbers them.
_FIXED_SLIT_IDS = {"S1600A1": (3, 1)}


def offset_wcs(wcs, xlo: int, ylo: int):
    """``wcs`` with its detector frame starting at (xlo, ylo), to be bounded by the cut-out (a new gwcs
    on the same transforms)."""
    from spec2x.nirspec_wcs import shared_steps

    out = shared_steps(wcs)
    first = models.Shift(xlo) & models.Shift(ylo) | out.get_transform("detector", "sca")
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


def nirspec_bots(ds: xr.Dataset, refs: dict, **grism_params) -> Cutout:
    """The S1600A1 cut-out of a NIRSpec BOTS exposure (the grism parameters do not apply)."""
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
    return Cutout(slice(ylo, ylo + ny), slice(xlo, xlo + nx), cut, wavelength, sci)


EXTRACTORS = {"NRC_TSGRISM": nrc_tsgrism, "NRS_BRIGHTOBJ": nirspec_bots}
