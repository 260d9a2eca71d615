"""Deterministic synthetic NIRSpec BOTS (NRS_BRIGHTOBJ, S1600A1) exposures and all their reference files,
for demos, tests and benchmarks.

``make_nirspec_bots`` writes a ``_rateints`` CubeModel (NRS1 or NRS2, a 32-row subarray) and the 16
reference files Spec2Pipeline reads for this mode: the optical model of the slit WCS (fpa, camera,
collimator, disperser, fore, msa, ote, wavelengthrange), the wavelength zero-point correction (wavecorr),
the three flat parts (full-frame fflat/sflat/dflat), photom, area, extract1d and apcorr.

The optical model is a paraxial toy of NIRSpec with the real model's structure: pixels -> focal plane
metres (FPA) -> camera tangent angles -> grating (groove density chosen so the grating/filter band
fills the detector, order -1, small GWA rotation angles and a tilt-sensor correction) -> collimator ->
MSA (S1600A1 = row 3 of quadrant 5) -> FORE (slight anamorphic scale) -> OTE (V2/V3).  The science
scene is placed with that model itself: a star in the slit (Gaussian across the slit), a smooth
spectrum with two absorption lines, a 1 % transit, a flat background, read and Poisson noise, bad
pixels (NaN + DO_NOT_USE) and cosmic-ray NaNs.  Integration i depends only on (seed, i, nints), so
the cube is streamed to disk chunk by chunk at any nints.

PRISM/CLEAR uses a toy CaF2-like prism (Snell law, Sellmeier glass) and a camera offset that centres its
spectrum on the subarray.  The toy NRS2 FPA model undoes the 180-degree turn of the NRS2
detector frame, so an NRS2 exposure looks like NRS1's (2 px apart) while going through jwst's flip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.modeling.models import (
    Identity,
    Mapping,
    Polynomial1D,
    Scale,
    Shift,
    Tabular2D,
)
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from spec2x.synthetic.common import int_times_table, ref_header, save, write_extract1d, write_rateints

_PX = dqflags.pixel
# grating -> (filter, wavelength range in metres)
GRATINGS = {"G395H": ("F290LP", (2.87e-6, 5.27e-6)), "G235H": ("F170LP", (1.66e-6, 3.17e-6)),
            "G140H": ("F100LP", (0.97e-6, 1.89e-6)), "PRISM": ("CLEAR", (0.6e-6, 5.3e-6))}
# A CaF2-like toy prism: Sellmeier K, L (micron^2) and thermal coefficients, angle (deg), reference
# temperature (K) and pressure (atm); 0.6-5.3 micron spread over ~380 px (GWA_TILT=40 K: Sellmeier law).
PRISM = {"angle": 14.0, "kcoef": [0.5675888, 0.4710914, 3.8484723],
         "lcoef": [0.050263605 ** 2, 0.1003909 ** 2, 34.64904 ** 2],
         "tcoef": [-2.66e-5, 0.0, 0.0, 0.0, 0.0, -1.0], "tref": 35.0, "pref": 0.0}
# subarray -> (SUBSTRT1, SUBSIZE1); all 32 rows high
SUBARRAYS = {"SUB2048": (1, 2048), "SUB1024A": (1, 1024), "SUB1024B": (1025, 1024), "SUB512": (1, 512)}
NY = 32
PIXEL = 18e-6            # m
F_CAMERA = 0.16          # m
F_COLLIMATOR = 0.16      # m
SLIT = 2.9e-4            # S1600A1 size on the MSA (m), ~1.6"
V2REF, V3REF = 321.0, -473.0
GWA_ANGLES = {"theta_x": 0.01, "theta_y": -0.02, "theta_z": 0.03, "tilt_y": 0.015}   # degrees
TILT_SLOPE = 2.0         # arcsec of GWA angle per tilt-sensor unit
GWA_XTIL, GWA_YTIL, GWA_ZERO = 0.35, 0.28, 0.3
GWA_TEMP = 40.0         # K (GWA_TILT)
VELOSYS = 25_000.0       # m/s
EFFINTTM = 10.0          # s
DEFAULT_NAME = "jw09999001001_04101_00001-seg001_nrs1"
REF_FILES = ("fpa", "camera", "collimator", "disperser", "fore", "msa", "ote", "wavelengthrange", "wavecorr",
             "fflat", "sflat", "dflat", "photom", "area", "extract1d", "apcorr")


def groove_density(lam_range, nx=2048):
    """Grooves per metre spreading ``lam_range`` over ~``nx`` - 40 pixels of the camera."""
    half = (nx / 2 - 20) * PIXEL / F_CAMERA
    return 2 * np.sin(np.arctan(half)) / (lam_range[1] - lam_range[0])


def _meta(m, reftype, grating="N/A", filt="N/A", detector="NRS1"):
    meta = ref_header(m, reftype, "NIRSPEC", detector)
    meta.exposure.type, meta.exposure.p_exptype = "NRS_BRIGHTOBJ", "NRS_BRIGHTOBJ|NRS_FIXEDSLIT|"
    if hasattr(meta.instrument, "filter"):
        meta.instrument.filter = filt
    if hasattr(meta.instrument, "grating"):
        meta.instrument.grating = grating
    return m


# ---------------------------------------------------------------------------------------------
# Reference files
# ---------------------------------------------------------------------------------------------
def prism_camera_offset(centre_x: float, detector: str) -> float:
    """Camera tangent offset that puts the middle of the prism's deflection range (0.6-5.3 micron, slit
    centre) on full-frame column ``centre_x`` (0-based), for the prism camera (x mirrored so that the
    wavelength increases with the column, as on NRS1)."""
    from spec2x import nirspec_wcs as nw

    prism = nw.Prism(PRISM["angle"], tuple(PRISM["kcoef"]), tuple(PRISM["lcoef"]), tuple(PRISM["tcoef"]),
                     PRISM["tref"], PRISM["pref"], GWA_TEMP)
    rotation = nw.gwa_rotation(list(GWA_ANGLES.values()))
    incoming = rotation(*nw.unitless_to_dircos()(0.0, 0.0))
    lam = np.array(GRATINGS["PRISM"][1])
    out = nw.prism_snell(prism)(lam, *(np.full(2, v) for v in incoming))
    tan_x = nw.dircos_to_unitless()(*rotation.inverse(*out))[0]
    sign = -1.0 if detector == "NRS2" else 1.0
    return float(np.mean(tan_x) + sign * (centre_x - 1024.5) * PIXEL / F_CAMERA)


def make_wcs_refs(refdir: Path, grating: str, detector: str = "NRS1", centre_x: float = 1024.5) -> dict:
    filt, lam_range = GRATINGS[grating]
    if grating == "PRISM":
        offset = prism_camera_offset(centre_x, detector)
    else:
        g = groove_density(lam_range)
        offset = np.tan(np.arcsin(g * 0.5 * sum(lam_range)))   # centre of the band on the detector centre
    paths = {}

    def write(reftype, model, name, **units):
        for k, v in units.items():
            setattr(model.meta, k, v)
        paths[reftype] = refdir / name
        save(model, paths[reftype])

    fpa = _meta(datamodels.FPAModel(), "fpa", detector=detector)
    fpa.nrs1_model = (Shift(-1024.5) | Scale(PIXEL)) & (Shift(-1024.5) | Scale(PIXEL))
    fpa.nrs2_model = (Shift(-1024.5) | Scale(-PIXEL)) & (Shift(-1024.5) | Scale(-PIXEL))
    write("fpa", fpa, "fpa.asdf", input_units="pixel", output_units="m")

    cam = _meta(datamodels.CameraModel(), "camera", detector=detector)
    x_scale = -1 / F_CAMERA if grating == "PRISM" else 1 / F_CAMERA
    cam.model = (Scale(x_scale) | Shift(offset)) & Scale(1 / F_CAMERA)
    write("camera", cam, "camera.asdf", input_units="m", output_units="rad")

    col = _meta(datamodels.CollimatorModel(), "collimator", detector=detector)
    col.model = Scale(F_COLLIMATOR) & Scale(F_COLLIMATOR)
    write("collimator", col, "collimator.asdf", input_units="rad", output_units="m")

    disp = _meta(datamodels.DisperserModel(), "disperser", grating=grating, detector=detector)
    if grating == "PRISM":
        for k, v in PRISM.items():
            setattr(disp, k, v)
    else:
        disp.groovedensity = float(g)
    for k, v in GWA_ANGLES.items():
        setattr(disp, k, v)
    disp.tilt_x = 0.0
    tilt = {"temperatures": [40.0], "tilt_model": Polynomial1D(1, c0=0.1, c1=TILT_SLOPE), "unit": "arcsec",
            "zeroreadings": [GWA_ZERO]}
    disp.gwa_tiltx, disp.gwa_tilty = dict(tilt), dict(tilt)
    write("disperser", disp, f"disperser_{grating}.asdf")

    msa = _meta(datamodels.MSAModel(), "msa", detector=detector)
    shutter = np.array([[1, 0.0, 0.0, 1e-4, 1e-4]])
    for q in range(1, 5):
        setattr(msa, f"Q{q}", {"model": Identity(2), "data": shutter})
    rows = [[i, 0.0, (i - 3) * 3e-3, 2e-4, 1.2e-5] for i in range(5)]
    rows[3] = [3, 0.0, 0.0, SLIT, SLIT]
    msa.Q5 = {"model": Identity(2), "data": np.array(rows, float)}
    write("msa", msa, "msa.asdf", input_units="m", output_units="m")

    fore = _meta(datamodels.FOREModel(), "fore", filt=filt, detector=detector)
    model = Mapping((0, 1), n_inputs=3) | Scale(1.01) & Scale(0.99)
    model.inverse = Mapping((0, 1), n_inputs=3) | Scale(1 / 1.01) & Scale(1 / 0.99)
    fore.model = model
    write("fore", fore, f"fore_{filt}.asdf", input_units="m", output_units="m")

    ote = _meta(datamodels.OTEModel(), "ote", detector=detector)
    ote.model = (Scale(1.6 / SLIT) | Shift(V2REF)) & (Scale(1.6 / SLIT) | Shift(V3REF))
    write("ote", ote, "ote.asdf", input_units="m", output_units="arcsec")

    wr = _meta(datamodels.WavelengthrangeModel(), "wavelengthrange", detector=detector)
    wr.waverange_selector = [f"{f}_{g_}" for g_, (f, _) in GRATINGS.items()]
    wr.order = [-1] * len(GRATINGS)
    wr.wavelengthrange = [list(r) for _, r in GRATINGS.values()]
    wr.meta.wavelength_units = "m"
    write("wavelengthrange", wr, "wavelengthrange.asdf")
    return paths


def _flat_meta(m, reftype, grating, filt, detector):
    _meta(m, reftype, grating=grating, filt=filt, detector=detector)
    s = m.meta.subarray
    s.name, s.xstart, s.ystart, s.xsize, s.ysize = "FULL", 1, 1, 2048, 2048
    return m


def _fast_table(rows):
    """FAST_VARIATION table from [(slit, wavelength, data)], padded to a common length (NELEM)."""
    n = max(len(w) for _, w, _ in rows) + 5
    t = np.zeros(len(rows), dtype=[("slit_name", "S15"), ("nelem", "i4"), ("wavelength", "f4", (n,)),
                                   ("data", "f4", (n,)), ("error", "f4", (n,))])
    for i, (slit, wl, data) in enumerate(rows):
        k = len(wl)
        t["slit_name"][i], t["nelem"][i] = slit, k
        t["wavelength"][i, :k], t["data"][i, :k], t["error"][i, :k] = wl, data, 0.002 * np.asarray(data)
    return t


def make_flats(refdir: Path, grating: str, seed: int, bad_rows: tuple, detector: str = "NRS1") -> dict:
    """F (table only), S (2-D image + table) and D (3-plane cube + table) flats, full frame (microns)."""
    filt, (lo, hi) = GRATINGS[grating]
    rng = np.random.default_rng([seed, 7])
    wl = np.linspace(lo * 1e6 - 0.1, hi * 1e6 + 0.1, 280).astype(np.float32)
    paths = {"fflat": refdir / f"fflat_{filt}.fits", "sflat": refdir / f"sflat_{grating}.fits",
             "dflat": refdir / "dflat.fits"}

    f = _flat_meta(datamodels.NirspecFlatModel(), "fflat", "N/A", filt, detector)
    f.data, f.dq, f.err = np.ones((1, 1), np.float32), np.zeros((1, 1), np.uint32), np.zeros((1, 1), np.float32)
    f.wavelength = np.array([(0.0,)], dtype=[("wavelength", "f4")])
    f.flat_table = _fast_table([("S200A1", wl, np.full(wl.size, 0.7, np.float32)),
                                ("S1600A1", wl, 1.0 + 0.05 * np.sin(3.0 * wl))])
    save(f, paths["fflat"])

    s = _flat_meta(datamodels.NirspecFlatModel(), "sflat", grating, filt, detector)
    s.data = (1.0 + 0.01 * rng.standard_normal((2048, 2048))).astype(np.float32)
    s.err = np.full((2048, 2048), 0.004, np.float32)
    s.dq = np.zeros((2048, 2048), np.uint32)
    y0, y1 = bad_rows
    for y, x in zip(rng.integers(y0, y1, 6), rng.integers(0, 2048, 6)):
        s.data[y, x] = 0.0                                         # zero flat -> DO_NOT_USE, NO_FLAT_FIELD
    s.wavelength = np.array([(0.0,)], dtype=[("wavelength", "f4")])
    s.flat_table = _fast_table([("ANY", wl, 0.9 + 0.1 * (wl - wl.min()) / np.ptp(wl))])
    save(s, paths["sflat"])

    d = _flat_meta(datamodels.NirspecFlatModel(), "dflat", "N/A", "N/A", detector)
    base = (1.0 + 0.02 * rng.standard_normal((2048, 2048))).astype(np.float32)
    d.data = np.stack([base, base * np.float32(1.004), base * np.float32(1.012)])
    d.err = np.stack([np.full((2048, 2048), e, np.float32) for e in (0.003, 0.002, 0.004)])
    d.dq = np.zeros((3, 2048, 2048), np.uint32)
    ys = np.concatenate([rng.integers(0, 2048, 1500), rng.integers(y0, y1, 40)])
    xs = rng.integers(0, 2048, ys.size)
    d.data[:, ys[:20], xs[:20]] = np.nan                           # NaN in every plane
    d.dq[:, ys[20:], xs[20:]] = _PX["DO_NOT_USE"] | _PX["NO_FLAT_FIELD"]
    d.dq[1, ys[-10:], xs[-10:]] |= _PX["UNRELIABLE_FLAT"]          # flagged in one plane only
    d.wavelength = np.array([(0.6,), (3.0,), (5.3,)], dtype=[("wavelength", "f4")])
    dwl = np.linspace(0.5, 5.5, 60).astype(np.float32)
    d.flat_table = _fast_table([("ANY", dwl, 1.0 + 0.01 * np.cos(dwl))])
    save(d, paths["dflat"])
    return paths


def make_photom_area(refdir: Path, grating: str, detector: str = "NRS1") -> dict:
    filt = GRATINGS[grating][0]
    n, size = 180, 200
    dt = [("filter", "S12"), ("grating", "S15"), ("slit", "S15"), ("photmj", "f4"), ("uncertainty", "f4"),
          ("nelem", "i2"), ("wavelength", "f4", (size,)), ("relresponse", "f4", (size,)),
          ("reluncertainty", "f4", (size,))]
    rows = []
    for g, (f, (a, b)) in GRATINGS.items():
        for slit, photmj in (("S200A1", 1.1e-3), ("S1600A1", 2.5e-3 if g == grating else 3.0e-3)):
            wl, rr = np.zeros(size, np.float32), np.zeros(size, np.float32)
            wl[:n] = np.linspace(a * 1e6 - 0.05, b * 1e6 + 0.05, n)
            mid = 0.5 * (a + b) * 1e6
            rr[:n] = 1.0 + 0.3 * np.exp(-0.5 * ((wl[:n] - mid) / (0.3 * (b - a) * 1e6)) ** 2)
            rows.append((f, g, slit, photmj, 1e-5, n, wl, rr, np.full(size, 1e-3, np.float32)))
    p = _meta(datamodels.NrsFsPhotomModel(), "photom", detector=detector)
    p.phot_table = np.array(rows, dtype=dt)
    p.meta.photometry.pixelarea_steradians = 2.2e-13
    p.meta.photometry.pixelarea_arcsecsq = 0.0093
    save(p, refdir / "photom.fits")

    a = _meta(datamodels.NirspecSlitAreaModel(), "area", grating=grating, filt=filt, detector=detector)
    a.area_table = np.array([(b"S200A1", 0.0081), (b"S1600A1", 0.0093)], dtype=[("slit_id", "S15"), ("pixarea", "f4")])
    save(a, refdir / "area.fits")
    return {"photom": refdir / "photom.fits", "area": refdir / "area.fits"}


def make_wavecorr(path: Path, grating: str, detector: str):
    """Zero-point offset (pixels) of S1600A1 vs wavelength (m) and source position across the slit:
    about 6 x SRCXPOS pixels, growing slowly with wavelength."""
    lo, hi = GRATINGS[grating][1]
    lam = np.linspace(lo, hi, 40)
    xpos = np.linspace(-0.5, 0.5, 11)
    table = 6.0 * xpos[None, :] * (1.0 + 0.2 * (lam[:, None] - lo) / (hi - lo))
    offset = Tabular2D(points=(lam, xpos), lookup_table=table, bounds_error=False, fill_value=None)
    m = _meta(datamodels.WaveCorrModel(), "wavecorr", detector=detector)
    m.apertures = [{"aperture_name": "S1600A1", "zero_point_offset": offset,
                    "variance": np.full(table.shape, 0.01, np.float32), "width": SLIT}]
    save(m, path)


def make_apcorr(path: Path, detector: str = "NRS1"):
    """NIRSpec FS aperture correction (NrsFsApcorrModel): for every grating/filter and slit, the
    correction vs wavelength (micron, covering all but the red end of the band, so the last elements
    go uncorrected as in jwst), aperture size (arcsec, slowly growing with wavelength) and pixel phase
    (0.5 falls between the tabulated phases): 1 + 0.4 exp(-size/0.45") (1 + 0.05 (wl - 3)) (1 + 0.1 phase)."""
    nwl, nsize, phases = 30, 12, np.array([0.0, 0.3, 0.7, 1.0], np.float32)
    rows = []
    for grating, (filt, (lo, hi)) in GRATINGS.items():
        wl = np.linspace(lo * 1e6 - 0.1, hi * 1e6 - 0.5, nwl).astype(np.float32)
        size = (np.linspace(0.2, 2.4, nsize)[:, None] * (1 + 0.02 * (wl[None, :] - wl[0]))).astype(np.float32)
        corr = (1 + 0.4 * np.exp(-size[:, :, None] / 0.45) * (1 + 0.05 * (wl[None, :, None] - 3.0))
                * (1 + 0.1 * phases[None, None, :])).astype(np.float32)
        for slit in ("S200A1", "S1600A1"):
            rows.append((filt, grating, slit, wl, nwl, size, nsize, phases, corr, 0.01 * corr))
    dt = [("filter", "S12"), ("grating", "S15"), ("slit", "S15"), ("wavelength", "f4", (nwl,)), ("nelem_wl", "i2"),
          ("size", "f4", (nsize, nwl)), ("nelem_size", "i2"), ("pixphase", "f4", (phases.size,)),
          ("apcorr", "f4", (nsize, nwl, phases.size)), ("apcorr_err", "f4", (nsize, nwl, phases.size))]
    m = _meta(datamodels.NrsFsApcorrModel(), "apcorr", detector=detector)
    m.apcorr_table = np.array(rows, dtype=dt)
    m.sizeunit = "arcsec"
    save(m, path)


def make_extract1d(path: Path, rows: tuple):
    """Box of 12 rows centred on the trace in the cut-out, background from 2 rows at each edge."""
    centre = 0.5 * (rows[0] + rows[1])
    lo, hi = round(centre - 6), round(centre + 5)
    write_extract1d(path, "NIRSPEC", "NRS_BRIGHTOBJ",
                    [{"id": "S1600A1", "region_type": "target", "disp_axis": 1, "xstart": 0, "xstop": 2047,
                      "ystart": lo, "ystop": hi, "use_source_posn": False,
                      "bkg_coeff": [[rows[0] - 0.5], [rows[0] + 1.5], [rows[1] - 1.5], [rows[1] + 0.5]],
                      "bkg_fit": "poly", "bkg_order": 0}], indent=1)


# ---------------------------------------------------------------------------------------------
# Science exposure
# ---------------------------------------------------------------------------------------------
def _exposure_keywords(grating, subarray, ystart, detector):
    filt = GRATINGS[grating][0]
    xstart, xsize = SUBARRAYS[subarray]
    return {"DETECTOR": detector, "FILTER": filt, "GRATING": grating, "GWA_XTIL": GWA_XTIL, "GWA_YTIL": GWA_YTIL,
            "GWA_TILT": GWA_TEMP,
            "SUBSTRT1": xstart, "SUBSTRT2": ystart, "SUBSIZE1": xsize, "SUBSIZE2": NY}


def _slit_geometry(refs, grating, subarray, ystart, detector):
    """(wavelength micron, position in slit) at every subarray pixel, and the slit WCS (spec2x's own)."""
    from spec2x import nirspec_wcs
    from spec2x.steps.assign_wcs import Pointing

    kw = _exposure_keywords(grating, subarray, ystart, detector)
    optics = nirspec_wcs.read_optics({k: str(v) for k, v in refs.items()}, kw, "S1600A1")
    p = Pointing(xstart=kw["SUBSTRT1"], ystart=ystart, xsize=kw["SUBSIZE1"], v2_ref=V2REF, v3_ref=V3REF,
                 roll_ref=90.0, ra_ref=150.0, dec_ref=2.0, va_scale=1.0, velosys=VELOSYS)
    wcs = nirspec_wcs.slit_wcs(optics, p, detector)
    y, x = np.mgrid[:NY, : kw["SUBSIZE1"]].astype(float)
    _, y_slit, lam = wcs.get_transform("detector", "slit_frame")(x, y)
    return lam * 1e6, y_slit, wcs, optics


def slit_row(refs, grating, detector) -> float:
    """Full-frame row (1-based) of the slit centre at the middle of the band."""
    from spec2x import nirspec_wcs
    from spec2x.steps.assign_wcs import Pointing

    kw = _exposure_keywords(grating, "SUB2048", 1, detector)
    optics = nirspec_wcs.read_optics({k: str(v) for k, v in refs.items()}, kw, "S1600A1")
    p = Pointing(xstart=1, ystart=1, xsize=2048, v2_ref=V2REF, v3_ref=V3REF, roll_ref=90.0, ra_ref=150.0,
                 dec_ref=2.0, velosys=VELOSYS)
    to_slit = nirspec_wcs.slit_wcs(optics, p, detector).get_transform("detector", "slit_frame")
    _, y = to_slit.inverse(0.0, 0.0, 0.5 * sum(GRATINGS[grating][1]))
    return float(y) + 1


def stellar_rate(lam):
    """DN/s per column of a smooth spectrum with two absorption lines (relative positions in the band)."""
    lam = np.nan_to_num(lam, nan=0.0)
    return 900.0 * np.exp(-0.5 * ((lam - 2.5) / 2.0) ** 2) * (1 - 0.25 * np.exp(-0.5 * ((lam % 0.37 - 0.18) / 0.004) ** 2))


class _Scene:
    def __init__(self, lam, y_slit, nints, seed):
        self.nints, self.seed = nints, seed
        prof = np.where(np.isfinite(y_slit), np.exp(-0.5 * (np.nan_to_num(y_slit) / 0.07) ** 2), 0.0)
        norm = prof.sum(axis=0, keepdims=True)
        prof = np.divide(prof, norm, out=np.zeros_like(prof), where=norm > 0)
        col_lam = np.nanmean(np.where(np.isfinite(lam), lam, np.nan), axis=0)
        self.star = (stellar_rate(col_lam)[None, :] * prof).astype(np.float32)
        self.bkg = np.float32(0.5)
        self.var_rn = np.float32(2.0e-3)
        t = np.arange(nints) * EFFINTTM / 86400.0
        self.lc = 1 - 0.01 * np.exp(-0.5 * ((t - t.mean()) / max(np.ptp(t) / 8, 1e-6)) ** 2)
        rng = np.random.default_rng([seed, 3])
        shape = lam.shape
        self.bad = (rng.integers(0, shape[0], 20), rng.integers(0, shape[1], 20))
        self.start = 60000.0 + t

    def block(self, i0, i1) -> dict:
        n = i1 - i0
        sci = np.empty((n,) + self.star.shape, np.float32)
        vp = np.empty_like(sci)
        dq = np.zeros(sci.shape, np.uint32)
        for k, i in enumerate(range(i0, i1)):
            rng = np.random.default_rng([self.seed, 1, i])
            truth = self.star * np.float32(self.lc[i]) + self.bkg
            vp[k] = np.maximum(truth, 0) / np.float32(EFFINTTM)
            sci[k] = truth + rng.standard_normal(truth.shape, dtype=np.float32) * np.sqrt(vp[k] + self.var_rn)
            hy, hx = rng.integers(0, sci.shape[1], 2), rng.integers(0, sci.shape[2], 2)
            sci[k, hy, hx] = np.nan
            dq[k, hy, hx] |= _PX["JUMP_DET"] | _PX["DO_NOT_USE"]
        sci[:, self.bad[0], self.bad[1]] = np.nan
        dq[:, self.bad[0], self.bad[1]] |= _PX["DEAD"] | _PX["DO_NOT_USE"]
        vr = np.full_like(sci, self.var_rn)
        err = np.sqrt(vp + vr)
        return {"SCI": sci, "ERR": err, "DQ": dq, "VAR_POISSON": vp, "VAR_RNOISE": vr}

    def int_times(self, dtype):
        start, mid, end = (self.start + frac * EFFINTTM / 86400.0 for frac in (0.0, 0.5, 1.0))
        return int_times_table(dtype, 0, start, mid, end, lambda t: t + 2400000.5 + 0.004)


def _set_meta(m, nints, grating, subarray, ystart, detector, filename):
    kw = _exposure_keywords(grating, subarray, ystart, detector)
    mt = m.meta
    mt.telescope, mt.filename, mt.model_type = "JWST", filename, "CubeModel"
    ins = mt.instrument
    ins.name, ins.detector, ins.grating, ins.filter = "NIRSPEC", detector, grating, kw["FILTER"]
    ins.fixed_slit, ins.msa_metadata_file = "S1600A1", "N/A"
    ins.gwa_xtilt, ins.gwa_ytilt, ins.gwa_tilt = GWA_XTIL, GWA_YTIL, GWA_TEMP
    ex = mt.exposure
    ex.type, ex.readpatt, ex.nints, ex.ngroups, ex.nframes, ex.groupgap = "NRS_BRIGHTOBJ", "NRSRAPID", nints, 12, 1, 0
    ex.integration_start, ex.integration_end = 1, nints
    ex.frame_time = ex.group_time = 0.902
    ex.integration_time, ex.effective_exposure_time = EFFINTTM, EFFINTTM * nints
    ex.exposure_time = ex.duration = EFFINTTM * nints
    ex.start_time, ex.end_time = 60000.0, 60000.0 + EFFINTTM * nints / 86400
    ex.mid_time = 0.5 * (ex.start_time + ex.end_time)
    mt.visit.tsovisit = True
    mt.observation.date, mt.observation.time = "2024-01-01", "00:00:00"
    s = mt.subarray
    s.name, s.xstart, s.ystart, s.xsize, s.ysize = subarray, kw["SUBSTRT1"], ystart, kw["SUBSIZE1"], NY
    s.fastaxis, s.slowaxis = 2, 1
    mt.target.ra, mt.target.dec, mt.target.source_type = 150.0, 2.0, "POINT"
    mt.pointing.ra_v1, mt.pointing.dec_v1, mt.pointing.pa_v3 = 150.0, 2.0, 90.0
    w = mt.wcsinfo
    w.v2_ref, w.v3_ref, w.v3yangle, w.vparity = V2REF, V3REF, 138.5, -1
    w.ra_ref, w.dec_ref, w.roll_ref, w.velosys = 150.0, 2.0, 90.0, VELOSYS
    mt.velocity_aberration.scale_factor = 1.0
    mt.dither.x_offset, mt.dither.y_offset = 0.02, -0.01
    mt.bunit_data = mt.bunit_err = "DN/s"


def make_nirspec_bots(outdir, nints=10, seed=1, grating="G395H", subarray="SUB2048", detector="NRS1",
                      name=None, chunk=None) -> dict:
    """Write a synthetic NIRSpec BOTS exposure and its reference files into ``outdir``.

    Returns {"rateints": [path], "refs": {reftype: path}, "nints", "seed", "grating", "filter",
    "subarray", "ystart"}.  ``chunk`` (integrations generated at a time) does not change the content.
    """
    if grating not in GRATINGS:
        raise ValueError(f"grating {grating!r}: choose one of {', '.join(GRATINGS)}")
    if detector not in ("NRS1", "NRS2"):
        raise ValueError(f"detector {detector!r}: NRS1 or NRS2")
    if subarray not in SUBARRAYS:
        raise ValueError(f"subarray {subarray!r}: choose one of {', '.join(SUBARRAYS)}")
    outdir = Path(outdir)
    refdir = outdir / "refs"
    refdir.mkdir(parents=True, exist_ok=True)
    xstart, xsize = SUBARRAYS[subarray]
    refs = make_wcs_refs(refdir, grating, detector, centre_x=xstart - 1 + xsize / 2)
    ystart = round(slit_row(refs, grating, detector) - NY / 2)
    lam, y_slit, wcs, optics = _slit_geometry(refs, grating, subarray, ystart, detector)
    refs.update(make_flats(refdir, grating, seed, (ystart - 1, ystart - 1 + NY), detector))
    refs.update(make_photom_area(refdir, grating, detector))
    refs["wavecorr"] = refdir / "wavecorr.asdf"
    make_wavecorr(refs["wavecorr"], grating, detector)
    refs["apcorr"] = refdir / "apcorr.fits"
    make_apcorr(refs["apcorr"], detector)
    refs["extract1d"] = refdir / "extract1d.json"
    # extraction rows relative to the cut-out that extract_2d will make
    from spec2x import nirspec_wcs

    ylo = nirspec_wcs.cutout(nirspec_wcs.bounding_box(wcs, optics.wrange))[2]
    inside = np.flatnonzero(np.isfinite(lam).any(axis=1))
    make_extract1d(refs["extract1d"], (int(inside[0]) - ylo, int(inside[-1]) - ylo))

    scene = _Scene(lam, y_slit, nints, seed)
    path = outdir / f"{name or DEFAULT_NAME.replace('nrs1', detector.lower())}_rateints.fits"
    write_rateints(path, (nints, NY, SUBARRAYS[subarray][1]),
                   lambda m: _set_meta(m, nints, grating, subarray, ystart, detector, path.name),
                   scene.int_times, scene.block, chunk)
    info = {"rateints": [path], "refs": refs, "nints": nints, "seed": seed, "grating": grating, "detector": detector,
            "filter": GRATINGS[grating][0], "subarray": subarray, "ystart": ystart}
    case = {**{k: v for k, v in info.items() if k not in ("rateints", "refs")},
            "rateints": [path.name], "refs": {k: f"refs/{p.name}" for k, p in refs.items()}}
    (outdir / "case.json").write_text(json.dumps(case, indent=2) + "\n")
    return info
