"""assign_wcs: the detector -> (RA, Dec, lambda) gwcs of MIRI LRS slitless, NIRCam grism TSO, NIRSpec
BOTS and NIRISS SOSS exposures.  ``BUILDERS`` maps EXP_TYPE to the function building each mode's WCS.

NRS_BRIGHTOBJ (``nirspec_bots``): the slit chain of ``spec2x.nirspec_wcs`` with the slit's bounding box; no
wavelength map until extract_2d cuts the slit out, as jwst.

NRC_TSGRISM (jwst 3.0.0 ``assign_wcs/nircam.py: tsgrism``): subarray (x, y, order) -> full frame ->
the row grism dispersion with the source fixed at XREF_SCI/YREF_SCI (taken as 0-based, as jwst does)
-> (x0, y0, lambda, order) -> imager distortion (+ FILTEROFFSET shift) -> V2/V3 -> velocity aberration
-> sky.  No wavelength map here: extract_2d evaluates the cut-out's WCS, as jwst does.

NIS_SOSS (``prepare_soss``): three per-order look-up tables from the specwcs, behind the subarray shift,
with the target's RA/Dec as constants; no wavelength map is attached.

MIR_LRS-SLITLESS:

The WCS is the same transform chain jwst 3.0.0 builds (``assign_wcs/miri.py: lrs``), so it evaluates to
the same numbers:

    detector (subarray x, y)
      -> alpha_beta   alpha = pscale * (x - dx(y) - x_ref), beta = 0, lambda = L(y) * barycentric factor
      -> v2v3         slit (x, y) -> full frame -> imager distortion
      -> v2v3vacorr   differential velocity aberration (VA_SCALE about V2_REF/V3_REF)
      -> world        V2/V3 -> sky rotation (RA_REF, DEC_REF, ROLL_REF)

``dx(y)`` and ``L(y)`` are linear look-up tables of smoothing splines (s=0.002) fitted to the specwcs
WAVETABLE trace; both are NaN outside the table's rows.  The bounding box spans x from the first science
column (4 reference columns on the left) to the subarray edge, y from the WAVETABLE box corners.

The WAVELENGTH map is ``wcs(x, y)[2]`` over every pixel of the subarray (NaN outside the bounding box),
stored by jwst as float32; the ``wavelength`` coordinate holds those float32 values as float64, which is
what jwst's photom and extract_1d read downstream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asdf
import gwcs.coordinate_frames as cf
import numpy as np
import xarray as xr
from astropy import coordinates as coord
from astropy import units as u
from astropy.constants import c as speed_of_light
from astropy.io import fits
from astropy.modeling import bind_bounding_box, models
from gwcs import WCS
from gwcs.geometry import CartesianToSpherical, SphericalToCartesian
from scipy.interpolate import UnivariateSpline

from spec2x.errors import InputError, NotImplementedForMode, RefError
from spec2x.meta import exposure_keywords, keyword, with_keywords

log = logging.getLogger(__name__)

DISPERSION_AXIS = {"MIR_LRS-SLITLESS": 2, "NRC_TSGRISM": 1, "NIS_SOSS": 1}
SPLINE_SMOOTHING = 0.002
N_REFERENCE_COLUMNS = 4


# ----------------------------------------------------------------------------- reference files
@dataclass(frozen=True)
class LrsSpecwcs:
    """The MIRI LRS specwcs: WAVETABLE columns (pixels relative to the reference point) and reference points."""

    x_center: np.ndarray
    y_center: np.ndarray
    wavelength: np.ndarray
    y_upper: np.ndarray      # y0: upper corners of each wavelength element's box
    y_lower: np.ndarray      # y2: lower corners
    x_ref_slitless: float    # IMXSLTL, full frame, 1-based
    y_ref_slitless: float    # IMYSLTL


def read_specwcs(path: str) -> LrsSpecwcs:
    """Read an LRS specwcs FITS file (WAVETABLE + IMXSLTL/IMYSLTL)."""
    try:
        with fits.open(path) as hdul:
            hdr, tab = hdul[0].header, hdul["WAVETABLE"].data
            col = lambda name: np.asarray(tab.field(name), dtype=np.float64)  # noqa: E731
            return LrsSpecwcs(col("X_CENTER"), col("Y_CENTER"), col("WAVELENGTH"), col("Y0"), col("Y2"),
                              float(hdr["IMXSLTL"]), float(hdr["IMYSLTL"]))
    except (OSError, KeyError) as exc:
        raise RefError("assign_wcs", "specwcs", f"{path}: not a MIRI LRS specwcs ({exc})") from None


def read_distortion(path: str):
    """The full-frame (0-based pixel) -> (V2, V3) arcsec model of a DISTORTION asdf file."""
    try:
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            return af.tree["model"]
    except (OSError, ValueError, KeyError) as exc:
        raise RefError("assign_wcs", "distortion", f"{path}: not a distortion file ({exc})") from None


# ----------------------------------------------------------------------------- transform pieces
def subarray_to_full(xstart: int, ystart: int):
    """Shift of subarray pixels to full-frame pixels (SUBSTRTn are 1-based); None for full frame."""
    sx = models.Shift(xstart - 1) if xstart not in (None, 1) else models.Identity(1)
    sy = models.Shift(ystart - 1) if ystart not in (None, 1) else models.Identity(1)
    if isinstance(sx, models.Identity) and isinstance(sy, models.Identity):
        return None
    return sx & sy


def barycentric_factor(velosys: float) -> float:
    """Multiplier taking observed wavelengths to the barycentric frame (VELOSYS in m/s)."""
    return 1 / (1 + velosys / speed_of_light.value)


def smoothed_table(y: np.ndarray, values: np.ndarray, name: str):
    """Linear look-up ``values(y)`` through a smoothing spline of the table; NaN outside ``y``.

    The spline is fitted on increasing y (the WAVETABLE runs in decreasing y) and sampled back on ``y``.
    """
    spline = UnivariateSpline(y[::-1], values[::-1], s=SPLINE_SMOOTHING)
    return models.Tabular1D(points=y, lookup_table=spline(y), name=name, bounds_error=False, fill_value=np.nan)


def wavelength_model(y_center: np.ndarray, wavelength: np.ndarray, velosys: float | None):
    """y (subarray pixels) -> lambda (micron), with the barycentric correction when VELOSYS is known."""
    model = smoothed_table(y_center, wavelength, "waveref")
    if velosys is None:
        return model
    factor = barycentric_factor(velosys)
    corr = models.Identity(1) * models.Const1D(factor, name="velocity_correction")
    corr.inverse = models.Identity(1) / models.Const1D(factor, name="inv_vel_correction")
    return model | corr


def slitless_bounding_box(xstart: int, xsize: int, zero_y: float, spec: LrsSpecwcs):
    """((x_lo, x_hi), (y_lo, y_hi)) in subarray pixels.

    x: from the first science column to the last column, computed as jwst does from SUBSTRT1/SUBSIZE1;
    y: outer edges of the WAVETABLE element boxes, rounded out to pixel edges.
    """
    x = (xstart - 1 + N_REFERENCE_COLUMNS - 0.5, xsize - 1 + 0.5)
    y = (np.floor(spec.y_lower.min() + zero_y) - 0.5, np.ceil(spec.y_upper.max() + zero_y) + 0.5)
    return x, y


def wavelength_map(shape: tuple, y_center: np.ndarray, wavelength: np.ndarray, bbox,
                   velosys: float | None = None) -> np.ndarray:
    """WAVELENGTH image (micron, float64 holding jwst's float32 values) for a subarray of ``shape``.

    ``y_center`` in subarray pixels (decreasing, as in the WAVETABLE); ``bbox`` = ((x_lo, x_hi), (y_lo, y_hi)).
    Wavelength depends on y only; pixels outside the bounding box are NaN.
    """
    ny, nx = shape
    wave_y = wavelength_model(y_center, wavelength, velosys)(np.arange(ny, dtype=np.float64))
    (x0, x1), (y0, y1) = bbox
    x, y = np.arange(nx), np.arange(ny)
    inside = ((y >= y0) & (y <= y1))[:, None] & ((x >= x0) & (x <= x1))[None, :]
    out = np.where(inside, wave_y[:, None], np.nan)
    return out.astype(np.float32).astype(np.float64)


def dva_correction(va_scale, v2_ref, v3_ref):
    """Differential velocity aberration: scale V2/V3 about the aperture reference point."""
    if va_scale is None or va_scale == 1:
        return models.Identity(2)
    if va_scale <= 0:
        raise ValueError("velocity aberration scale VA_SCALE must be positive")
    model = models.Scale(va_scale, name="dva_scale_v2") & models.Scale(va_scale, name="dva_scale_v3")
    v2_ref, v3_ref = v2_ref or 0, v3_ref or 0
    if v2_ref == 0 and v3_ref == 0:
        return model
    model |= (models.Shift((1 - va_scale) * v2_ref, name="dva_v2_shift")
              & models.Shift((1 - va_scale) * v3_ref, name="dva_v3_shift"))
    model.name = "DVA_Correction"
    return model


def v2v3_to_sky(v2_ref, v3_ref, roll_ref, ra_ref, dec_ref):
    """(V2, V3) arcsec -> (RA, Dec) deg: rotation putting (V2_REF, V3_REF) at (RA_REF, DEC_REF), V3 at ROLL_REF."""
    angles = np.array([v2_ref / 3600, -v3_ref / 3600, roll_ref, dec_ref, -ra_ref])
    model = ((models.Scale(1 / 3600) & models.Scale(1 / 3600)) | SphericalToCartesian(wrap_lon_at=180)
             | models.RotationSequence3D(angles, axes_order="zyxyz") | CartesianToSpherical(wrap_lon_at=360))
    model.name = "v23tosky"
    return model


# ----------------------------------------------------------------------------- the WCS
@dataclass(frozen=True)
class Pointing:
    """Exposure keywords the WCS uses."""

    xstart: int
    ystart: int
    xsize: int
    v2_ref: float
    v3_ref: float
    roll_ref: float
    ra_ref: float
    dec_ref: float
    va_scale: float | None = None
    velosys: float | None = None


def _frames():
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    alpha_beta = cf.Frame2D(name="alpha_beta_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                            axes_names=("alpha", "beta"))
    lam = dict(axes_order=(2,), unit=(u.micron,), axes_names=("lambda",))
    focal = cf.CompositeFrame([alpha_beta, cf.SpectralFrame(name="alpha_beta_spectral", **lam)], name="alpha_beta")
    spec = cf.SpectralFrame(name="spec", **lam)
    v2v3 = cf.CompositeFrame([cf.Frame2D(name="v2v3_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                                         axes_names=("v2", "v3")), spec], name="v2v3")
    v2v3va = cf.CompositeFrame([cf.Frame2D(name="v2v3vacorr_spatial", axes_order=(0, 1),
                                           unit=(u.arcsec, u.arcsec), axes_names=("v2", "v3")), spec],
                               name="v2v3vacorr")
    icrs = cf.CelestialFrame(name="icrs", reference_frame=coord.ICRS(), axes_order=(0, 1), unit=(u.deg, u.deg),
                             axes_names=("RA", "DEC"))
    world = cf.CompositeFrame(name="world", frames=[icrs, spec])
    return detector, focal, v2v3, v2v3va, world


def reference_point(p: Pointing, spec: LrsSpecwcs) -> tuple[float, float]:
    """The slitless trace reference point (IMXSLTL, IMYSLTL) in 0-based subarray pixels."""
    sub2full = subarray_to_full(p.xstart, p.ystart)
    if sub2full is None:
        raise InputError("exposure", "MIR_LRS-SLITLESS needs a subarray (SUBSTRT1/SUBSTRT2), got full frame")
    return sub2full.inverse(spec.x_ref_slitless - 1, spec.y_ref_slitless - 1)


def lrs_slitless_wcs(p: Pointing, spec: LrsSpecwcs, distortion) -> WCS:
    """The MIR_LRS-SLITLESS gwcs for an exposure with pointing ``p``."""
    sub2full = subarray_to_full(p.xstart, p.ystart)
    sub_dist = sub2full | distortion
    zx, zy = reference_point(p, spec)
    v2a, v3a = sub_dist(zx, zy)
    v2b, v3b = sub_dist(zx + 1, zy)
    pscale = np.sqrt(np.power(v2a - v2b, 2) + np.power(v3a - v3b, 2))   # arcsec per pixel along x

    # trace: x offset and wavelength as functions of subarray y
    xcen, ycen = spec.x_center + zx, spec.y_center + zy
    dx = smoothed_table(ycen, xcen - zx, "xshiftref")
    wave = wavelength_model(ycen, spec.wavelength, p.velosys)

    # detector -> (alpha, beta, lambda); the do-nothing shift pair records the reference point
    m0, m1 = models.Mapping([0], n_inputs=2), models.Mapping([1], n_inputs=2)
    ref_point = (models.Shift(-zx) & models.Shift(-zy)) | (models.Shift(zx) & models.Shift(zy))
    slit_xy = models.Mapping((0, 1, 0, 1)) | (m0 - (m1 | dx)) & models.Mapping([1], n_inputs=2)
    alpha = models.Mapping([0], n_inputs=2) | models.Shift(-zx) | models.Polynomial1D(1, c0=0, c1=pscale)
    to_ab = models.Mapping((0, 1, 0)) | alpha & models.Const1D(0)
    det2abl = models.Mapping((0, 1, 0, 1)) | (ref_point | slit_xy | to_ab) & (models.Mapping([1], n_inputs=2) | wave)
    alpha2x = models.Polynomial1D(1, c0=0, c1=1 / pscale) | models.Shift(zx)
    lam2y = wave.inverse
    x_back = (models.Mapping((0, 2)) | alpha2x & lam2y
              | models.Mapping([0], n_inputs=2) + (models.Mapping([1], n_inputs=2) | dx))
    y_back = models.Mapping([2], n_inputs=3) | lam2y
    det2abl.inverse = models.Mapping((0, 1, 2, 0, 1, 2)) | x_back & y_back
    bind_bounding_box(det2abl, slitless_bounding_box(p.xstart, p.xsize, zy, spec), order="F")

    # (alpha, beta, lambda) -> (v2, v3, lambda)
    beta2y = models.Polynomial1D(1, c0=0, c1=1 / pscale) | models.Shift(zy)
    abl2v2v3 = models.Mapping((0, 1, 2)) | (alpha2x & beta2y | sub_dist) & models.Identity(1)
    x2alpha = models.Shift(-zx) | models.Polynomial1D(1, c0=0, c1=pscale)
    y2beta = models.Shift(-zy) | models.Polynomial1D(1, c0=0, c1=pscale)
    abl2v2v3.inverse = models.Mapping((0, 1, 2)) | (sub_dist.inverse | x2alpha & y2beta) & models.Identity(1)

    va = dva_correction(p.va_scale, p.v2_ref, p.v3_ref) & models.Identity(1)
    sky = v2v3_to_sky(p.v2_ref, p.v3_ref, p.roll_ref, p.ra_ref, p.dec_ref) & models.Identity(1)
    detector, focal, v2v3, v2v3va, world = _frames()
    return WCS([(detector, det2abl), (focal, abl2v2v3), (v2v3, va), (v2v3va, sky), (world, None)])


def wcs_world(wcs: WCS, x, y):
    """(RA deg, Dec deg, wavelength micron) at subarray pixel (x, y); NaN outside the bounding box.

    This is the call jwst's extract_1d makes for SLIT_RA/SLIT_DEC at the aperture centre.
    """
    return wcs(x, y)


def s_region(wcs: WCS) -> str | None:
    """S_REGION polygon from the WCS footprint over the bounding box corners; None if any corner is NaN.

    For this mode the corners lie outside the WAVETABLE rows, so the trace x-shift (hence RA/Dec) is NaN
    there and jwst leaves S_REGION as it was.
    """
    corners = wcs.footprint(wcs.bounding_box, center=False, axis_type="spatial").T[:2]
    np.mod(corners[0], 360, out=corners[0])
    text = "POLYGON ICRS  " + " ".join(f"{v:.9f}" for v in corners.T.flatten())
    return None if "nan" in text else text


# ----------------------------------------------------------------------------- the step
def pointing_of(ds: xr.Dataset) -> Pointing:
    """The WCS keywords of an exposure; missing pointing keywords are an input error."""
    def need(name):
        value = keyword(ds, name)
        if value is None:
            raise InputError(ds.attrs.get("filename", "exposure"), f"keyword {name} is missing (needed by assign_wcs)")
        return value

    return Pointing(xstart=int(keyword(ds, "SUBSTRT1", 1)), ystart=int(keyword(ds, "SUBSTRT2", 1)),
                    xsize=int(keyword(ds, "SUBSIZE1", ds.sizes["x"])),
                    v2_ref=float(need("V2_REF")), v3_ref=float(need("V3_REF")), roll_ref=float(need("ROLL_REF")),
                    ra_ref=float(need("RA_REF")), dec_ref=float(need("DEC_REF")),
                    va_scale=keyword(ds, "VA_SCALE"), velosys=keyword(ds, "VELOSYS"))


@dataclass(frozen=True)
class Prepared:
    wcs: object
    wavelength: np.ndarray | None   # None where jwst attaches no WAVELENGTH here (slits, grism, SOSS)
    sci: dict


def run(ds: xr.Dataset, refs: dict) -> xr.Dataset:
    """Attach the gwcs (``attrs['wcs']``) and the ``wavelength`` (y, x) coordinate."""
    return apply(ds, prepare(ds, refs))


def apply(ds: xr.Dataset, prepared: Prepared) -> xr.Dataset:
    out = with_keywords(ds, sci=prepared.sci, wcs=prepared.wcs)
    if prepared.wavelength is None:  # NIRSpec slits, NIRCam grism: from extract_2d; SOSS: none
        return out
    return out.assign_coords(wavelength=(("y", "x"), prepared.wavelength, {"units": "um"}))


def prepare(ds: xr.Dataset, refs: dict) -> Prepared:
    """The gwcs (and, where jwst makes one here, the wavelength map) of the exposure, built once."""
    exp_type = str(keyword(ds, "EXP_TYPE", "")).upper()
    builder = BUILDERS.get(exp_type)
    if builder is None:
        raise NotImplementedForMode(f"assign_wcs: EXP_TYPE={exp_type} is not implemented "
                                    f"(only {', '.join(BUILDERS)})")
    return builder(ds, refs)


def _prepare_lrs_slitless(ds: xr.Dataset, refs: dict) -> Prepared:
    """MIR_LRS-SLITLESS: the slitless gwcs, its WAVELENGTH map and S_REGION."""
    exp_type = "MIR_LRS-SLITLESS"
    spec = read_specwcs(refs["specwcs"])
    p = pointing_of(ds)
    wcs = lrs_slitless_wcs(p, spec, read_distortion(refs["distortion"]))

    if p.velosys is not None:
        log.info("Applied barycentric velocity correction: %s", barycentric_factor(p.velosys))
    _, zy = reference_point(p, spec)
    bbox = wcs.bounding_box.bounding_box(order="F")
    wave = wavelength_map((ds.sizes["y"], ds.sizes["x"]), spec.y_center + zy, spec.wavelength, bbox, p.velosys)

    sci = {"SPECSYS": "BARYCENT", "DISPAXIS": DISPERSION_AXIS[exp_type]}
    region = s_region(wcs)
    if region is not None:
        sci["S_REGION"] = region
    return Prepared(wcs, wave, sci)


# ----------------------------------------------------------------------------- NIRCam grism time series
def _source(ds: xr.Dataset) -> str:
    return (ds.attrs.get("paths") or [ds.attrs.get("filename", "exposure")])[0]


def read_nircam_specwcs(path: str) -> dict:
    """The grism polynomials of a NIRCam SPECWCS (NIRCAMGrismModel): displ, dispx, dispy, their
    inverses (None when absent) and the orders, as lists of astropy models."""
    from stdatamodels.jwst.datamodels import NIRCAMGrismModel

    try:
        with NIRCAMGrismModel(path) as grism:
            out = {name: (getattr(grism, name).instance if getattr(grism, name) is not None else None)
                   for name in ("displ", "dispx", "dispy", "invdispl", "invdispx", "orders")}
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise RefError("assign_wcs", "specwcs", f"{path}: not a NIRCam grism specwcs ({exc})") from None
    if not out["displ"] or not out["dispx"] or not out["orders"]:
        raise RefError("assign_wcs", "specwcs", f"{path}: no displ/dispx/orders polynomials")
    return out


def filter_offset(path: str | None, filt, pupil):
    """(column, row) offset of FILTER/PUPIL in a FILTEROFFSET file, or None (no file, no row)."""
    if not path:
        return None
    try:
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            rows = list(af.tree["filters"])
    except (OSError, ValueError, KeyError) as exc:
        raise RefError("assign_wcs", "filteroffset", f"{path}: no 'filters' table ({exc})") from None
    want = {"filter": str(filt).upper(), "pupil": str(pupil).upper()}
    for row in rows:
        if all(str(row.get(k, "")).upper() == v for k, v in want.items()):
            col, r = row.get("column_offset", "N/A"), row.get("row_offset", "N/A")
            return None if "N/A" in (col, r) else (col, r)
    return None


def imaging_distortion(path: str, offsets, shape):
    """The full-frame pixel -> (V2, V3) model, shifted by the filter offset, with its bounding box
    (the reference's own, else the data frame's)."""
    transform = read_distortion(path)
    try:
        bbox = transform.bounding_box.bounding_box(order="F")
    except NotImplementedError:
        bbox = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    if offsets is not None:
        transform = models.Shift(offsets[0]) & models.Shift(offsets[1]) | transform
    bind_bounding_box(transform, bbox, order="F")
    return transform


def grism_dispersion(grism: dict, velosys: float | None):
    """(x, y, x0, y0, order) -> (x0, y0, lambda, order) for row-dispersing GRISMR, with its inverse and
    the barycentric correction of lambda when VELOSYS is known (stdatamodels' NIRCam transforms, so the
    gwcs serialises as jwst's does)."""
    from stdatamodels.jwst.transforms.models import (
        NIRCAMBackwardGrismDispersion,
        NIRCAMForwardRowGrismDispersion,
    )

    polys = {"lmodels": grism["displ"], "xmodels": grism["dispx"], "ymodels": grism["dispy"],
             "inv_lmodels": grism["invdispl"], "inv_xmodels": grism["invdispx"]}
    model = NIRCAMForwardRowGrismDispersion(grism["orders"], **polys)
    model.inverse = NIRCAMBackwardGrismDispersion(grism["orders"], **polys)
    if velosys is None:
        return model
    factor = barycentric_factor(velosys)
    corr = models.Identity(1) * models.Const1D(factor, name="velocity_correction")
    corr.inverse = models.Identity(1) / models.Const1D(factor, name="inv_vel_correction")
    return model | models.Mapping((0, 1, 2, 3)) | models.Identity(2) & corr & models.Identity(1)


def _fixed(value: float):
    model = models.Const1D(value)
    model.inverse = models.Const1D(value)
    return model


def _grism_frames():
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))
    grism = cf.Frame2D(name="grism_detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    direct = cf.CompositeFrame([cf.Frame2D(name="full_detector", axes_order=(0, 1), axes_names=("dx", "dy"),
                                           unit=(u.pix, u.pix)), spec], name="direct_image")
    v2v3 = cf.CompositeFrame([cf.Frame2D(name="v2v3_spatial", axes_order=(0, 1), axes_names=("v2", "v3"),
                                         unit=(u.deg, u.deg)), spec], name="v2v3")
    v2v3va = cf.CompositeFrame([cf.Frame2D(name="v2v3vacorr_spatial", axes_order=(0, 1), axes_names=("v2", "v3"),
                                           unit=(u.arcsec, u.arcsec)), spec], name="v2v3vacorr")
    world = cf.CompositeFrame([cf.CelestialFrame(reference_frame=coord.ICRS(), name="icrs"), spec], name="world")
    return grism, direct, v2v3, v2v3va, world


def tsgrism_wcs(p: Pointing, grism: dict, distortion, xref: float, yref: float) -> WCS:
    """The NRC_TSGRISM gwcs: (x, y, order) subarray pixels -> (RA, Dec, lambda, order).

    As in jwst, the source sits at XREF_SCI/YREF_SCI used *as is* as 0-based direct-image pixels.
    """
    to_direct = (models.Mapping((0, 1, 0, 1, 2)) | models.Identity(2) & _fixed(xref) & _fixed(yref)
                 & models.Identity(1) | grism_dispersion(grism, p.velosys))
    sub2full = subarray_to_full(p.xstart, p.ystart)
    if sub2full is not None:
        to_direct = sub2full & models.Identity(1) | to_direct
    va = dva_correction(p.va_scale, p.v2_ref, p.v3_ref) & models.Identity(2)
    sky = v2v3_to_sky(p.v2_ref, p.v3_ref, p.roll_ref, p.ra_ref, p.dec_ref) & models.Identity(2)
    grism_frame, direct, v2v3, v2v3va, world = _grism_frames()
    return WCS([(grism_frame, to_direct), (direct, distortion & models.Identity(2)), (v2v3, va),
                (v2v3va, sky), (world, None)])


def source_position_keywords(ds: xr.Dataset) -> tuple[float, float]:
    """(XREF_SCI, YREF_SCI): where a grism TSO source is; their absence is an input error."""
    values = []
    for name in ("XREF_SCI", "YREF_SCI"):
        value = keyword(ds, name)
        if value is None:
            raise InputError(_source(ds), f"keyword {name} is missing: NRC_TSGRISM needs the source position "
                             "(XREF_SCI, YREF_SCI)")
        values.append(float(value))
    return values[0], values[1]


def _prepare_tsgrism(ds: xr.Dataset, refs: dict) -> Prepared:
    """NRC_TSGRISM: the grism gwcs (the WAVELENGTH map comes from extract_2d's cut-out, as in jwst)."""
    source = _source(ds)
    if str(keyword(ds, "MODULE", "")).upper() != "A":
        raise InputError(source, f"MODULE={keyword(ds, 'MODULE')}: NRC_TSGRISM exists for module A only")
    if "DHS" in str(keyword(ds, "SUBARRAY", "")).upper():
        raise NotImplementedForMode(f"assign_wcs: NIRCam DHS subarrays ({keyword(ds, 'SUBARRAY')}) are not implemented")
    xref, yref = source_position_keywords(ds)
    p = pointing_of(ds)
    offsets = filter_offset(refs.get("filteroffset"), keyword(ds, "FILTER"), keyword(ds, "PUPIL"))
    distortion = imaging_distortion(refs["distortion"], offsets, (ds.sizes["y"], ds.sizes["x"]))
    wcs = tsgrism_wcs(p, read_nircam_specwcs(refs["specwcs"]), distortion, xref, yref)
    if p.velosys is not None:
        log.info("Applied barycentric velocity correction: %s", barycentric_factor(p.velosys))
    return Prepared(wcs, None, {"SPECSYS": "BARYCENT", "DISPAXIS": DISPERSION_AXIS["NRC_TSGRISM"]})




# ----------------------------------------------------------------------------- NIRSpec slits
def nirspec_bots(ds: xr.Dataset, refs: dict) -> Prepared:
    """The S1600A1 gwcs of a NIRSpec BOTS exposure, with the slit's bounding box (subarray pixels) that
    extract_2d cuts out; the keywords jwst records (order, default wavelength range, dispersion axis)."""
    from spec2x import nirspec_wcs

    kw = exposure_keywords(ds)
    nirspec_wcs.check_pair(refs["wavelengthrange"], kw)
    optics = nirspec_wcs.read_optics(refs, kw, "S1600A1")
    p = pointing_of(ds)
    wcs = nirspec_wcs.slit_wcs(optics, p, str(kw.get("DETECTOR", "")))
    wcs.bounding_box = nirspec_wcs.bounding_box(wcs, optics.wrange)
    if p.velosys is not None:
        log.info("Applied barycentric velocity correction: %s", barycentric_factor(p.velosys))
    sci = {"SPECSYS": "BARYCENT", "DISPAXIS": 1, "SPORDER": optics.order,
           "WAVSTART": float(optics.wrange[0]), "WAVEND": float(optics.wrange[1])}
    return Prepared(wcs, None, sci)


# ----------------------------------------------------------------------------- NIRISS SOSS
SOSS_ORDERS = (1, 2, 3)


def read_soss_specwcs(path: str) -> list:
    """The three lambda(y, x) look-up models (full-frame 0-based pixels) of a SOSS specwcs asdf file."""
    try:
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            missing = [o for o in SOSS_ORDERS if o not in af.tree]
            if missing:
                raise RefError("assign_wcs", "specwcs", f"{path}: tree key {missing[0]} (the order-{missing[0]} "
                               "wavelength model) is missing")
            return [af.tree[o].copy() for o in SOSS_ORDERS]
    except (OSError, ValueError) as exc:
        raise RefError("assign_wcs", "specwcs", f"{path}: not a NIRISS SOSS specwcs ({exc})") from None


def soss_wcs(wavelength_models: list, ra: float, dec: float, xstart, ystart, xsize: int, ysize: int,
             velosys: float | None = None) -> WCS:
    """detector (x, y) -> (RA, Dec, lambda) for each of the 3 orders, as one ``NirissSOSSModel``."""
    from stdatamodels.jwst.transforms.models import NirissSOSSModel

    shift = subarray_to_full(xstart, ystart)
    per_order = []
    for order, wl in zip(SOSS_ORDERS, wavelength_models):
        if velosys is not None:
            wl = wl | wavelength_model_velocity(velosys)
        model = (models.Mapping((0, 1, 1, 0)) | (models.Const1D(ra) & models.Const1D(dec) & wl)).rename(f"Order{order}")
        if shift is not None:
            model = shift | model
            bind_bounding_box(model, ((-0.5, xsize - 0.5), (-0.5, ysize - 0.5)), order="F")
        per_order.append(model)
    soss = NirissSOSSModel(list(SOSS_ORDERS), per_order).rename("3-order SOSS Model")
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))
    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), axes_names=("ra", "dec"), axes_order=(0, 1),
                            unit=(u.deg, u.deg), name="sky")
    return WCS([(detector, soss), (cf.CompositeFrame([sky, spec], name="world"), None)])


def wavelength_model_velocity(velosys: float):
    """lambda -> barycentric lambda, with its inverse."""
    factor = barycentric_factor(velosys)
    corr = models.Identity(1) * models.Const1D(factor, name="velocity_correction")
    corr.inverse = models.Identity(1) / models.Const1D(factor, name="inv_vel_correction")
    return corr


def prepare_soss(ds: xr.Dataset, refs: dict) -> Prepared:
    """The SOSS gwcs from the specwcs and the target position (TARG_RA/TARG_DEC)."""
    source = ds.attrs.get("filename", "exposure")
    ra, dec = keyword(ds, "TARG_RA"), keyword(ds, "TARG_DEC")
    if ra is None or dec is None:
        raise InputError(source, "keyword TARG_RA or TARG_DEC is missing (the SOSS WCS needs the target position)")
    velosys = keyword(ds, "VELOSYS")
    wcs = soss_wcs(read_soss_specwcs(refs["specwcs"]), float(ra), float(dec), keyword(ds, "SUBSTRT1", 1),
                   keyword(ds, "SUBSTRT2", 1), int(keyword(ds, "SUBSIZE1", ds.sizes["x"])),
                   int(keyword(ds, "SUBSIZE2", ds.sizes["y"])), velosys)
    if velosys is not None:
        log.info("Applied barycentric velocity correction: %s", barycentric_factor(velosys))
    return Prepared(wcs, None, {"SPECSYS": "BARYCENT", "DISPAXIS": DISPERSION_AXIS["NIS_SOSS"]})


BUILDERS = {"MIR_LRS-SLITLESS": _prepare_lrs_slitless, "NRC_TSGRISM": _prepare_tsgrism,
            "NRS_BRIGHTOBJ": nirspec_bots, "NIS_SOSS": prepare_soss}
