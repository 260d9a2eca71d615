"""The NIRSpec fixed-slit WCS (BOTS: the S1600A1 slit) from the optical-model reference files.

The chain is jwst 3.0.0's (``assign_wcs/nirspec.py: slits_wcs``), for one slit with its name fixed:

    detector  -> sca         subarray (and cut-out) offsets; NRS2 is flipped in x and y
    sca       -> gwa         FPA -> camera -> direction cosines -> rotation at the grating (GWA)
    gwa       -> slit_frame  y in the slit from the incoming beta angle (look-up table), lambda from
                             the grating equation (PRISM: refraction index from the angles, then
                             lambda from a tabulated Sellmeier law), x_slit = 0; NaN outside
                             [slit_ymin, slit_ymax]
    slit_frame-> msa_frame   slit position on the MSA (fixed slits are MSA quadrant 5)
    msa_frame -> oteip       FORE optics
    oteip     -> v2v3        OTE, lambda metres -> microns
    v2v3      -> v2v3vacorr  differential velocity aberration
    v2v3vacorr-> world       V2/V3 -> RA/Dec

Every piece is a standard astropy or gwcs model (the reference files' own models, arithmetic
compounds, ``Tabular1D``, gwcs' grating-equation models), so the gwcs serialises to ASDF like any
other.  jwst's special models (directional cosines, the GWA rotation, the slit mask) are built here as
compounds that evaluate the same formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.constants import c as speed_of_light
from astropy.modeling.models import Const1D, Identity, Mapping, Scale, Shift, Tabular1D
from gwcs import WCS
from gwcs import coordinate_frames as cf
from gwcs.spectroscopy import (
    AnglesFromGratingEquation3D,
    SellmeierGlass,
    SellmeierZemax,
    Snell3D,
    WavelengthFromGratingEquation,
)
from gwcs.utils import to_index
from gwcs.wcstools import grid_from_bounding_box

from spec2x.errors import RefError, Spec2xError

SLIT_Y_RANGE = (-0.55, 0.55)     # jwst assign_wcs slit_y_low / slit_y_high defaults
FULL_RANGE = (0.6e-6, 5.3e-6)     # NIRSpec wavelength range used when the selector is missing
BBOX_STEP = 1e-10                 # wavelength step (m) of the slit-edge trace used for the bounding box
# Fixed slits: their row in MSA quadrant 5 of the MSA reference
FIXED_SLITS = {"S200A1": 0, "S200A2": 1, "S400A1": 2, "S1600A1": 3, "S200B1": 4}
PRISM_LAMBDA = np.arange(0.3, 8.005, 0.005) * 1e-6   # jwst's wavelength grid (m) of the n -> lambda table


# ----------------------------------------------------------------------------- model builders
def _pick(i: int, n: int):
    return Mapping((i,), n_inputs=n)


def _square(m):
    return m * m


def _sqrt(m, n: int):
    return m ** (_pick(0, n) | Const1D(0.5))


def unitless_to_dircos():
    """(x, y) -> direction cosines of the vector (x, y, 1); inverse (cx, cy, cz) -> (cx/cz, cy/cz)."""
    x, y = _pick(0, 2), _pick(1, 2)
    norm = _sqrt((_pick(0, 2) | Const1D(1.0)) + _square(x) + _square(y), 2)
    model = Mapping((0, 1, 0, 1, 0, 1)) | (x / norm) & (y / norm) & ((_pick(0, 2) | Const1D(1.0)) / norm)
    model.name = "unitless2directional_cosines"
    model.inverse = dircos_to_unitless()
    return model


def dircos_to_unitless():
    x, y, z = _pick(0, 3), _pick(1, 3), _pick(2, 3)
    model = Mapping((0, 1, 2, 0, 1, 2)) | (x / z) & (y / z)
    model.name = "directional_cosines2unitless"
    return model


def _axis_rotation(axis: str, theta_deg: float):
    """One elementary rotation of jwst's GWA rotation: two components rotated, z recomputed as
    sqrt(1 - x² - y²)."""
    theta = np.deg2rad(theta_deg)
    c, s = float(np.cos(theta)), float(np.sin(theta))
    x, y, z = _pick(0, 3), _pick(1, 3), _pick(2, 3)
    if axis == "x":
        xo, yo = x, (y | Scale(c)) + (z | Scale(s))
    elif axis == "y":
        xo, yo = (x | Scale(c)) - (z | Scale(s)), y
    else:
        xo, yo = (x | Scale(c)) + (y | Scale(s)), (x | Scale(-s)) + (y | Scale(c))
    zo = _sqrt((_pick(0, 3) | Const1D(1.0)) - _square(xo) - _square(yo), 3)
    return Mapping((0, 1, 2) * 3) | xo & yo & zo


def gwa_rotation(angles_deg, axes: str = "xyzy"):
    """jwst's rotation to the GWA frame (angles in degrees, applied in ``axes`` order), with its inverse."""
    def chain(angles, order):
        model = None
        for angle, axis in zip(angles, order):
            step = _axis_rotation(axis, angle)
            model = step if model is None else model | step
        return model

    forward = chain(angles_deg, axes)
    forward.inverse = chain([-a for a in angles_deg[::-1]], axes[::-1])
    forward.name = "rotation"
    return forward


def slit_mask(ymin: float, ymax: float):
    """(x_slit, y_slit, lam) -> the same with y and lam NaN where y_slit is outside [ymin, ymax]."""
    inside = Tabular1D(points=(np.array([ymin, ymax]),), lookup_table=np.zeros(2), bounds_error=False,
                       fill_value=np.nan, method="linear", name="slit_mask")
    model = (Mapping((0, 1, 2, 1)) | Identity(3) & inside | Mapping((0, 1, 3, 2, 3))
             | Identity(1) & (_pick(0, 2) + _pick(1, 2)) & (_pick(0, 2) + _pick(1, 2)))
    model.inverse = Identity(3)
    return model


@dataclass(frozen=True)
class Prism:
    """The PRISM disperser: angle (deg), Sellmeier K/L and thermal coefficients, reference temperature
    (K) and pressure (atm), and the exposure's GWA temperature (GWA_TILT, K)."""

    angle: float
    kcoef: tuple
    lcoef: tuple
    tcoef: tuple
    tref: float
    pref: float
    temperature: float


def refraction_index(prism: Prism):
    """Wavelength (m) -> refraction index: the Sellmeier glass law, or its Zemax form with air and
    thermal terms when the GWA is 20 K or more above the reference temperature (as jwst's Snell)."""
    if prism.temperature - prism.tref < 20:
        law = SellmeierGlass(list(prism.kcoef), list(prism.lcoef))
    else:
        law = SellmeierZemax(prism.temperature, prism.tref, prism.pref, prism.pref, B_coef=list(prism.kcoef),
                             C_coef=list(prism.lcoef), D_coef=list(prism.tcoef[:3]), E_coef=list(prism.tcoef[3:]))
    return Scale(1.0e6) | law


def prism_snell(prism: Prism):
    """(lambda, alpha_in, beta_in, z_in) -> outgoing direction cosines at the GWA: refraction into the
    prism, reflection on its back face (rotated by the prism angle), refraction out."""
    n = refraction_index(prism)
    flip = Scale(-1) & Scale(-1) & Identity(1)
    inverse_n = (_pick(0, 1) | Const1D(1.0)) / Identity(1)
    model = (Mapping((0, 0, 1, 2, 3)) | n & n & Identity(3)
             | Identity(1) & Snell3D()
             | Identity(1) & (_axis_rotation("y", prism.angle) | flip | _axis_rotation("y", -prism.angle))
             | inverse_n & Identity(3) | Snell3D())
    model.name = "snell_law"
    return model


def prism_wavelength(prism: Prism):
    """(alpha_in, beta_in, alpha_out) -> lambda (m): the prism's refraction index from the angles, then
    lambda from n tabulated on jwst's grid."""
    a = np.deg2rad(prism.angle)
    sa, ca = np.sin(a), np.cos(a)
    a_in, b_in, a_out = _pick(0, 3), _pick(1, 3), _pick(2, 3)
    across = (a_out + (a_in | Scale(1 - 2 * sa ** 2))) / (_pick(0, 3) | Const1D(2 * sa * ca))
    n_prism = _sqrt(_square(across) + _square(a_in) + _square(b_in), 3)
    n_prism.name = "n_prism"
    n = refraction_index(prism)(PRISM_LAMBDA)
    # contiguous copies: a gwcs holding views would serialise them as strided views of a shared block
    table = Tabular1D(points=(np.ascontiguousarray(n[::-1]),), lookup_table=np.ascontiguousarray(PRISM_LAMBDA[::-1]),
                      bounds_error=False)
    return n_prism | table


def velocity_model(velosys: float):
    """Observed -> barycentric wavelength factor (jwst's velocity_correction)."""
    factor = 1 / (1 + velosys / speed_of_light.value)
    model = Identity(1) * Const1D(factor, name="velocity_correction")
    model.inverse = Identity(1) / Const1D(factor, name="inv_vel_correction")
    return model


# ----------------------------------------------------------------------------- references
@dataclass(frozen=True)
class Optics:
    """The reference-file pieces of the fixed-slit chain."""

    fpa: object
    camera: object
    collimator: object
    fore: object
    ote: object
    msa_model: object
    slit_row: np.ndarray      # [id, xcenter, ycenter, xsize, ysize] of the slit in quadrant 5
    groove_density: float | None   # None for the prism
    angles: tuple             # theta_x, theta_y, theta_z, tilt_y (deg), GWA tilt corrections applied
    order: int
    wrange: tuple
    prism: Prism | None = None


def _open(model_class, path: str, reftype: str):
    from stdatamodels.jwst import datamodels

    try:
        return getattr(datamodels, model_class)(path)
    except Exception as exc:  # noqa: BLE001 - stdatamodels raises many kinds for a wrong file
        raise RefError("assign_wcs", reftype, f"{path}: not a NIRSpec {reftype} reference ({exc})") from None


def _tilt_correction(tilt, reading):
    """Half the GWA tilt-sensor angle change, arcsec -> degrees (jwst's correct_tilt)."""
    phi = tilt.tilt_model(reading)
    phi0 = tilt.tilt_model(tilt.zeroreadings[0])
    return 0.5 * (phi - phi0) / 3600.0


def read_optics(refs: dict, kw: dict, slit: str) -> Optics:
    """Read the WCS references for ``slit`` of an exposure with keywords ``kw``."""
    detector = str(kw.get("DETECTOR", "")).lower()
    with _open("FPAModel", refs["fpa"], "fpa") as m:
        fpa = getattr(m, f"{detector}_model", None)
        if fpa is None:
            raise RefError("assign_wcs", "fpa", f"{refs['fpa']}: no {detector}_model for DETECTOR={detector.upper()}")
    with _open("CameraModel", refs["camera"], "camera") as m:
        camera = m.model
    with _open("CollimatorModel", refs["collimator"], "collimator") as m:
        collimator = m.model
    with _open("FOREModel", refs["fore"], "fore") as m:
        fore = m.model
    with _open("OTEModel", refs["ote"], "ote") as m:
        ote = m.model
    with _open("MSAModel", refs["msa"], "msa") as m:
        q5 = m.Q5
        msa_model, data = q5.model, np.asarray(q5.data)
    row = FIXED_SLITS[slit]
    with _open("DisperserModel", refs["disperser"], "disperser") as d:
        prism = None
        if str(kw.get("GRATING", "")).upper() == "PRISM":
            prism = _read_prism(d, refs["disperser"], kw)
        elif d.groovedensity is None:
            raise RefError("assign_wcs", "disperser", f"{refs['disperser']}: no groovedensity (not a grating)")
        theta_x, theta_y = d.theta_x, d.theta_y
        if kw.get("GWA_XTIL") is not None:
            theta_y = theta_y + _tilt_correction(d.gwa_tiltx, kw["GWA_XTIL"])
        if kw.get("GWA_YTIL") is not None:
            theta_x = theta_x + _tilt_correction(d.gwa_tilty, kw["GWA_YTIL"])
        angles = (float(theta_x), float(theta_y), float(d.theta_z), float(d.tilt_y))
        groove_density = None if prism else float(d.groovedensity)
    order, wrange = spectral_order_range(refs["wavelengthrange"], kw)
    return Optics(fpa, camera, collimator, fore, ote, msa_model, data[row], groove_density, angles, order, wrange,
                  prism)


def _read_prism(d, path: str, kw: dict) -> Prism:
    """The prism constants of disperser model ``d`` and the GWA temperature of the exposure."""
    missing = [k for k in ("angle", "kcoef", "lcoef", "tcoef", "tref", "pref") if getattr(d, k, None) is None]
    if missing:
        raise RefError("assign_wcs", "disperser", f"{path}: GRATING=PRISM needs {', '.join(missing)} (not a prism)")
    if kw.get("GWA_TILT") is None:
        raise Spec2xError("assign_wcs: GRATING=PRISM needs the GWA temperature keyword GWA_TILT, which is missing")
    return Prism(float(d.angle), tuple(float(v) for v in d.kcoef), tuple(float(v) for v in d.lcoef),
                 tuple(float(v) for v in d.tcoef), float(d.tref), float(d.pref), float(kw["GWA_TILT"]))


def spectral_order_range(path: str, kw: dict):
    """(order, [lam_min, lam_max] metres) for FILTER_GRATING; by grating alone, else (-1, full range)."""
    with _open("WavelengthrangeModel", path, "wavelengthrange") as m:
        selector = list(m.waverange_selector)
        orders, ranges = list(m.order), [list(r) for r in m.wavelengthrange]
    key = f"{kw.get('FILTER')}_{kw.get('GRATING')}"
    if key in selector:
        i = selector.index(key)
        return int(orders[i]), ranges[i]
    gratings = [s.split("_")[1] for s in selector]
    if kw.get("GRATING") in gratings:
        i = gratings.index(kw.get("GRATING"))
        return int(orders[i]), ranges[i]
    return -1, list(FULL_RANGE)


def check_pair(path: str, kw: dict):
    """A FILTER/GRATING pair absent from the wavelengthrange reference is a user error (jwst would go on
    with the whole NIRSpec range and produce a meaningless spectrum)."""
    with _open("WavelengthrangeModel", path, "wavelengthrange") as m:
        selector = list(m.waverange_selector)
    key = f"{kw.get('FILTER')}_{kw.get('GRATING')}"
    if key not in selector:
        raise RefError("assign_wcs", "wavelengthrange",
                       f"{path}: FILTER={kw.get('FILTER')} GRATING={kw.get('GRATING')} is not a supported pair "
                       f"(waverange_selector has {', '.join(selector)})")


# ----------------------------------------------------------------------------- the chain
def slit_location(row):
    """Relative slit position -> MSA quadrant position of the slit row [id, xc, yc, xsize, ysize]."""
    _, xc, yc, xsize, ysize = (float(v) for v in row)
    return Scale(xsize) & Scale(ysize) | Shift(xc) & Shift(yc)


def detector_to_sca(xstart: int, ystart: int, detector: str, offset=None):
    """Subarray pixels (0-based; cut-out pixels when ``offset`` = (xlo, ylo)) -> full-frame SCA pixels in
    the orientation of jwst's NIRSpec model (NRS2 is flipped in x and y)."""
    model = Shift(xstart - 1) & Shift(ystart - 1)
    if detector.upper() == "NRS2":
        model = model | Shift(-2047) & Shift(-2047) | Scale(-1) & Scale(-1)
    if offset is not None:
        model = Shift(offset[0]) & Shift(offset[1]) | model
    model.name = "dms2sca"
    return model


def gwa_chain(o: Optics, velosys):
    """(sca -> gwa, gwa -> slit_frame) for the slit, each with its inverse."""
    u2d = unitless_to_dircos()
    det2gwa = o.fpa | o.camera | u2d | gwa_rotation(list(o.angles))
    det2gwa.name = "det2gwa"

    collimator2gwa = o.collimator.inverse | unitless_to_dircos() | gwa_rotation(list(o.angles))
    msa2gwa = slit_location(o.slit_row) | o.msa_model | collimator2gwa
    ymin, ymax = SLIT_Y_RANGE
    dy = np.linspace(ymin, ymax, 1000)
    beta_in = msa2gwa(np.zeros_like(dy), dy)[1]
    beta_to_y = Tabular1D(points=(beta_in,), lookup_table=dy, bounds_error=False, name="tabular")

    if o.prism is not None:
        lam_from_angles, angles_from_lam = prism_wavelength(o.prism), prism_snell(o.prism)
    else:
        lam_from_angles = (Mapping((0, 2), n_inputs=3)
                           | WavelengthFromGratingEquation(o.groove_density, o.order, name="lambda_from_gratingeq")
                           | Scale(-1))
        angles_from_lam = (Mapping((0, 1, 2), n_inputs=4) | Identity(1) & Scale(-1) & Identity(1)
                           | AnglesFromGratingEquation3D(o.groove_density, o.order, name="alpha_from_greq"))
    if velosys is not None:
        vcorr = velocity_model(velosys)
        lam_from_angles = lam_from_angles | vcorr
        angles_from_lam = vcorr.inverse & Identity(3) | angles_from_lam

    gwa2slit = (Mapping((0, 1, 0, 1), n_inputs=3)
                | Const1D(0) * Identity(1) & Const1D(-1) * Identity(1) & Identity(2)
                | Identity(1) & beta_to_y & Identity(2)
                | Mapping((0, 1, 0, 1, 2, 3))
                | Identity(2) & msa2gwa & Identity(2)
                | Mapping((0, 1, 2, 3, 5), n_inputs=7)
                | Identity(2) & lam_from_angles
                | slit_mask(ymin, ymax))
    gwa2slit.inverse = msa2gwa & Identity(1) | Mapping((3, 0, 1, 2)) | angles_from_lam
    gwa2slit.name = "gwa2slit"
    return det2gwa, gwa2slit


def sky_chain(o: Optics, p):
    """(slit -> msa, msa -> oteip, oteip -> v2v3, v2v3 -> v2v3vacorr, v2v3vacorr -> world)."""
    from spec2x.steps.assign_wcs import dva_correction, v2v3_to_sky

    slit2msa = (slit_location(o.slit_row) | o.msa_model) & Identity(1)
    slit2msa.name = "slit2msa"
    to_fore = Mapping((0, 1, 2, 2), name="msa2fore_mapping")
    to_fore.inverse = Identity(3)
    msa2oteip = to_fore | (o.fore & Identity(1))
    msa2oteip.name = "msa2oteip"
    to_ote = Identity(3, name="fore2ote_mapping")
    to_ote.inverse = Mapping((0, 1, 2, 2))
    oteip2v23 = to_ote | (o.ote & Scale(1e6))
    oteip2v23.name = "oteip2v23"
    va = dva_correction(p.va_scale, p.v2_ref, p.v3_ref) & Identity(1)
    va.name = "va_corr"
    sky = v2v3_to_sky(p.v2_ref, p.v3_ref, p.roll_ref, p.ra_ref, p.dec_ref) & Identity(1)
    sky.name = "v2v3_to_sky"
    return slit2msa, msa2oteip, oteip2v23, va, sky


def frames():
    """The frames of jwst's NIRSpec slit WCS (same names, axes and units)."""
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))

    def composite(name, spatial, unit, names):
        return cf.CompositeFrame([cf.Frame2D(name=spatial, axes_order=(0, 1), unit=unit, axes_names=names), spec],
                                 name=name)

    return {
        "detector": cf.Frame2D(name="detector", axes_order=(0, 1)),
        "sca": cf.Frame2D(name="sca", axes_order=(0, 1)),
        "gwa": cf.Frame2D(name="gwa", axes_order=(0, 1), unit=(u.rad, u.rad), axes_names=("alpha_in", "beta_in")),
        "slit_frame": composite("slit_frame", "slit_spatial", ("", ""), ("x_slit", "y_slit")),
        "msa_frame": composite("msa_frame", "msa_spatial", (u.m, u.m), ("x_msa", "y_msa")),
        "oteip": composite("oteip", "oteip", (u.deg, u.deg), ("X_OTEIP", "Y_OTEIP")),
        "v2v3": composite("v2v3", "v2v3_spatial", (u.arcsec, u.arcsec), ("v2", "v3")),
        "v2v3vacorr": composite("v2v3vacorr", "v2v3vacorr_spatial", (u.arcsec, u.arcsec), ("v2", "v3")),
        "world": cf.CompositeFrame([cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS()),
                                    spec], name="world"),
    }


def slit_wcs(o: Optics, p, detector: str, offset=None) -> WCS:
    """The fixed-slit gwcs of the subarray, or of the cut-out starting at ``offset`` = (xlo, ylo)."""
    det2gwa, gwa2slit = gwa_chain(o, p.velosys)
    steps = sky_chain(o, p)
    f = frames()
    pipeline = [(f["detector"], detector_to_sca(p.xstart, p.ystart, detector, offset)), (f["sca"], det2gwa),
                (f["gwa"], gwa2slit), (f["slit_frame"], steps[0]), (f["msa_frame"], steps[1]),
                (f["oteip"], steps[2]), (f["v2v3"], steps[3]), (f["v2v3vacorr"], steps[4]), (f["world"], None)]
    return WCS(pipeline)


def shared_steps(wcs: WCS) -> WCS:
    """A new gwcs on the same frames and transform objects (no deep copy, which costs ~0.5 s for this
    chain): its steps can be replaced or inserted without touching ``wcs``; spec2x never modifies a
    transform in place once it is in a gwcs."""
    return WCS([(step.frame, step.transform) for step in wcs.pipeline], name=wcs.name)


def bounding_box(wcs: WCS, wrange, ymin=SLIT_Y_RANGE[0], ymax=SLIT_Y_RANGE[1]):
    """((x_lo, x_hi), (y_lo, y_hi)) subarray pixels framing the slit's spectrum (jwst's
    compute_bounding_box): the slit edges traced over the wavelength range with the inverse transform,
    padded (10 px in x, 2 px in y) and narrowed in y to rows with a finite wavelength."""
    to_slit = wcs.get_transform("detector", "slit_frame")
    from_slit = to_slit.inverse
    lam_min, lam_max = wrange
    n = int((lam_max - lam_min) / BBOX_STEP)
    lam = np.linspace(lam_min, lam_max, n)
    x_lo, y_lo = from_slit(np.zeros(n), np.full(n, ymin), lam)
    x_hi, y_hi = from_slit(np.zeros(n), np.full(n, ymax), lam)
    x_range, y_range = np.hstack((x_lo, x_hi)), np.hstack((y_lo, y_hi))

    def padded(xr, yr):
        return ((max(0, xr.min() - 1 - 10) - 0.5, min(2047, xr.max() - 1 + 10) + 0.5),
                (max(0, yr.min() - 1 - 2) - 0.5, min(2047, yr.max() - 1 + 2) + 0.5))

    bbox = padded(x_range, y_range)
    if bbox[0][0] <= bbox[0][1] and bbox[1][0] <= bbox[1][1]:
        x, y = grid_from_bounding_box(bbox)
        lam_grid = to_slit(x, y)[2]
        valid = np.isfinite(lam_grid)
        if valid.any():
            bbox = padded(x_range, y[valid])
    return bbox


def cutout(bbox):
    """(xlo, xhi, ylo, yhi) array indices of the bounding box (gwcs' pixel-centre rounding)."""
    xlo, xhi = (int(v) for v in to_index(bbox[0]))
    ylo, yhi = (int(v) for v in to_index(bbox[1]))
    return xlo, xhi, ylo, yhi


def footprint_region(wcs: WCS, ymin=SLIT_Y_RANGE[0], ymax=SLIT_Y_RANGE[1]) -> str | None:
    """S_REGION of the slit: its four virtual corners mapped to the sky (None if any is NaN)."""
    to_world = wcs.get_transform("slit_frame", "world")
    ra, dec, _ = to_world([-0.5, -0.5, 0.5, 0.5], [ymin, ymax, ymax, ymin], [2e-6] * 4)
    text = "POLYGON ICRS  " + " ".join(f"{v:.9f}" for v in np.array([ra, dec]).T.flatten())
    return None if "nan" in text else text
