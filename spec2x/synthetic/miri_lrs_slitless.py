"""Deterministic synthetic MIRI LRS slitless TSO exposures and reference files, for demos, tests
and benchmarks.

``make_miri_lrs_slitless`` writes a ``_rateints`` CubeModel exposure (optionally split into
``-segNNN`` files) plus the 7 reference files Spec2Pipeline needs for this mode, so both spec2x and
jwst 3.0.0 (run offline) can process it.  The geometry follows the SIAF aperture MIRIM_SLITLESSPRISM
(values hard-coded), the scene is a star on a thermal background with a 1% transit.

Integration ``i`` (0-based, exposure-wide) depends only on ``(seed, i, nints)``: its noise comes from
``default_rng([seed, 1, i])``, so an exposure is identical whatever the chunk size and however it is
segmented.  The cubes are streamed to disk chunk by chunk (headers and the ASDF extension come from
stdatamodels, the data are written at their offsets; the file is byte-identical to what
``model.save`` would write), so memory stays ~50 MB above imports whatever ``nints`` is
(each integration is 600 kB on disk: 3000 -> 1.8 GB, 30000 -> 18 GB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.modeling import models
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from spec2x.synthetic.common import (
    int_times_table,
    ref_header,
    save,
    segment_bounds,
    segment_stem,
    set_tso_timing,
    write_case_json,
    write_extract1d,
    write_rateints,
)

# Geometry (pysiaf, MIRI, PRDOPSSOC-075)
SUB_NAME = "SLITLESSPRISM"
XSTART, YSTART, XSIZE, YSIZE = 1, 529, 72, 416          # SUBSTRT1, SUBSTRT2, SUBSIZE1, SUBSIZE2
V2REF_SLITLESS, V3REF_SLITLESS = -378.600113, -344.752445
V3IDLYANG, VPARITY = 4.83544897, -1
X_REF_SLITLESS, Y_REF_SLITLESS = 38.5, 829.0            # full frame, 1-based
X_REF_SLIT, Y_REF_SLIT = 326.13, 300.70                 # LRS fixed slit (stored, unused)
FULL_XREF, FULL_YREF = 693.5, 512.5                     # MIRIM_FULL XDetRef/YDetRef (1-based)
FULL_V2REF, FULL_V3REF = -453.34829, -373.667949
XSCALE, YSCALE = 0.11049812, 0.11133593                 # arcsec/pixel

# Exposure
FRAME_TIME = 0.15904                                    # s, SLITLESSPRISM FASTR1
NGROUPS = 40
GAIN = 3.1                                              # e-/DN, noise model only
T0_MJD = 60500.25                                       # 2024-07-09 06:00 UTC
BJD_OFFSET = 0.0037                                     # crude barycentric offset (days)
VELOSYS = -12345.6                                      # m/s
TRANSIT_DEPTH = 0.01
JITTER = 1e-3                                           # per-integration gray jitter (rms)
DEFAULT_NAME = "jw09999001001_02101_00001-seg001_mirimage"

# Trace / wavelength truth (subarray, 0-based)
ZP_X = X_REF_SLITLESS - 1 - (XSTART - 1)                # 37.5
ZP_Y = Y_REF_SLITLESS - 1 - (YSTART - 1)                # 300.0
Y_BLUE, Y_RED = 390.0, 10.0
LAM_BLUE, LAM_RED = 4.0, 14.5

# Calibration truth
PHOTMJSR = 20.0
PIXAR_A2 = XSCALE * YSCALE
PIXAR_SR = PIXAR_A2 * (np.pi / 180 / 3600) ** 2
EXTRACT = {"xstart": 32, "xstop": 43, "bkg_coeff": [[14.5], [24.5], [50.5], [60.5]]}

REF_FILES = {"specwcs": "specwcs.fits", "distortion": "distortion.asdf", "flat": "flat.fits",
             "photom": "photom.fits", "area": "area.fits", "extract1d": "extract1d.json",
             "apcorr": "apcorr.fits"}
_PX = dqflags.pixel
STATIC_BAD = [(100, 36, "HOT"), (250, 40, "DEAD"), (300, 20, "HOT"), (17, 33, "HOT")]
SATURATED_PIXEL = (330, 37)


def wave_of_row(y):
    """Truth wavelength (micron) of subarray row ``y``: monotonic, decreasing with y (prism-like)."""
    t = (Y_BLUE - np.asarray(y, float)) / (Y_BLUE - Y_RED)
    return LAM_BLUE + (LAM_RED - LAM_BLUE) * (1.6 * t - 0.6 * t**2)


def xshift_of_row(y):
    """Trace x offset (pixels) from ZP_X: small tilt and curvature."""
    yr = np.asarray(y, float) - ZP_Y
    return -0.15 + 1.5e-3 * yr + 2.0e-6 * yr**2


def stellar_rate(lam):
    """Source count rate per row (DN/s summed over the PSF): 4500 K star x Gaussian throughput."""
    lam = np.asarray(lam, float)
    s = np.exp(-0.5 * ((lam - 7.0) / 3.0) ** 2) / (lam**4 * (np.exp(1.4388e4 / (lam * 4500.0)) - 1.0))
    return 3000.0 * s / s.max()


def transit(t_mjd, tc, depth=TRANSIT_DEPTH, dur=0.06):
    """Transit light curve (fractional flux): flat bottom with linear ingress/egress."""
    x = (np.asarray(t_mjd) - tc) / (dur / 2)
    return 1.0 - depth * np.clip(2.0 - 1.5 * np.abs(x), 0, 1)


# ---------------------------------------------------------------------------------------------
# Reference files
# ---------------------------------------------------------------------------------------------
def _ref_meta(m, reftype, p_exptype="MIR_LRS-FIXEDSLIT|MIR_LRS-SLITLESS|", exp_type="MIR_LRS-SLITLESS",
              subarray=False):
    meta = ref_header(m, reftype, "MIRI", "MIRIMAGE")
    if hasattr(meta.instrument, "filter"):
        meta.instrument.filter = "P750L"
    meta.exposure.type, meta.exposure.p_exptype = exp_type, p_exptype
    if subarray:
        s = meta.subarray
        s.name, s.xstart, s.ystart, s.xsize, s.ysize = SUB_NAME, XSTART, YSTART, XSIZE, YSIZE
        s.fastaxis, s.slowaxis = 1, 2


def make_specwcs(path):
    """WAVETABLE with decreasing y_center (jwst's spline fit needs it), relative to the ref point."""
    yc = np.arange(Y_BLUE, Y_RED - 0.1, -2.0)
    tab = np.zeros(yc.size, dtype=[(c, "f8") for c in ("x_center", "y_center", "wavelength", "x0", "y0",
                                                          "x1", "y1", "x2", "y2", "x3", "y3")])
    tab["x_center"], tab["y_center"], tab["wavelength"] = xshift_of_row(yc), yc - ZP_Y, wave_of_row(yc)
    tab["x0"] = tab["x3"] = tab["x_center"] - 2.0
    tab["x1"] = tab["x2"] = tab["x_center"] + 2.0
    tab["y0"] = tab["y1"] = tab["y_center"] + 0.5
    tab["y2"] = tab["y3"] = tab["y_center"] - 0.5
    m = datamodels.MiriLRSSpecwcsModel()
    _ref_meta(m, "SPECWCS")
    m.meta.x_ref, m.meta.y_ref = X_REF_SLIT, Y_REF_SLIT
    m.meta.x_ref_slitless, m.meta.y_ref_slitless = X_REF_SLITLESS, Y_REF_SLITLESS
    for i, (v2, v3) in enumerate([(-414.0, -400.0), (-413.0, -400.0), (-413.0, -405.0), (-414.0, -405.0)], 1):
        setattr(m.meta, f"v2_vert{i}", v2)
        setattr(m.meta, f"v3_vert{i}", v3)
    m.wavetable = tab
    save(m, path)


def make_distortion(path):
    """Full-frame 0-based pixel -> (V2, V3) arcsec: shift | SIAF-like affine, analytic inverse."""
    th = np.deg2rad(V3IDLYANG)
    mat = np.array([[VPARITY * XSCALE * np.cos(th), YSCALE * np.sin(th)],
                    [-VPARITY * XSCALE * np.sin(th), YSCALE * np.cos(th)]])
    tr = (models.Shift(-(FULL_XREF - 1)) & models.Shift(-(FULL_YREF - 1))
          | models.AffineTransformation2D(matrix=mat, translation=[FULL_V2REF, FULL_V3REF]))
    tr.name = "synthetic_miri_imager_distortion"
    m = datamodels.DistortionModel(model=tr, input_units=u.pix, output_units=u.arcsec)
    _ref_meta(m, "DISTORTION", exp_type="MIR_IMAGE",
              p_exptype="MIR_IMAGE|MIR_TACQ|MIR_LYOT|MIR_4QPM|MIR_CORONCAL|MIR_LRS-FIXEDSLIT|"
                        "MIR_LRS-SLITLESS|MIR_TACONFIRM|")
    m.meta.instrument.band = "N/A"
    save(m, path)


def make_flat(path, seed):
    """SLITLESSPRISM-sized flat: 2% ripple + 0.5% seeded noise, NaN and NO_FLAT_FIELD pixels."""
    shape = (YSIZE, XSIZE)
    yy, xx = np.mgrid[0:YSIZE, 0:XSIZE]
    rng = np.random.default_rng([seed, 0])
    flat = 1.0 + 0.02 * np.sin(yy / 37.0) * np.cos(xx / 11.0) + rng.normal(0, 0.005, shape)
    dq = np.zeros(shape, np.uint32)
    flat[:, :4] = 1.0
    dq[:, :4] = _PX["REFERENCE_PIXEL"]
    for y, x in [(50, 20), (200, 60), (333, 12)]:
        flat[y, x] = np.nan
    dq[120, 45] = _PX["NO_FLAT_FIELD"]
    m = datamodels.FlatModel(data=flat.astype(np.float32), dq=dq, err=np.full(shape, 0.003, np.float32))
    _ref_meta(m, "FLAT", p_exptype="MIR_LRS-SLITLESS|", subarray=True)
    m.meta.instrument.band = "N/A"
    save(m, path)


def make_photom(path):
    """PHOTOM rows (P750L, FULL/SLITLESSPRISM): PHOTMJSR x smooth relresponse(lambda)."""
    nelem = 60
    lam = np.linspace(3.5, 15.0, nelem)
    wl, rr, ru = (np.zeros(500, np.float32) for _ in range(3))
    wl[:nelem], rr[:nelem], ru[:nelem] = lam, 1.0 + 0.6 * ((lam - 7.5) / 7.5) ** 2, 0.02
    dt = [("filter", "S12"), ("subarray", "S17"), ("photmjsr", "f4"), ("uncertainty", "f4"), ("nelem", "i2"),
          ("wavelength", "f4", (500,)), ("relresponse", "f4", (500,)), ("reluncertainty", "f4", (500,))]
    m = datamodels.MirLrsPhotomModel()
    _ref_meta(m, "PHOTOM")
    m.meta.instrument.band = "N/A"
    m.meta.photometry.pixelarea_steradians = PIXAR_SR
    m.meta.photometry.pixelarea_arcsecsq = PIXAR_A2
    m.phot_table = np.array([("P750L", sub, PHOTMJSR, 0.5, nelem, wl, rr, ru) for sub in ("FULL", SUB_NAME)], dt)
    save(m, path)


def make_area(path):
    """Full-frame pixel area map (~1 +- 2%); photom cuts the subarray from it."""
    yy, xx = np.ogrid[0:1024, 0:1032]
    area = 1.0 + 0.01 * ((xx - 516) / 516.0) ** 2 + 0.01 * ((yy - 512) / 512.0) ** 2
    m = datamodels.PixelAreaModel(data=area.astype(np.float32))
    _ref_meta(m, "AREA", exp_type="MIR_IMAGE", p_exptype="MIR_IMAGE|MIR_LRS-FIXEDSLIT|MIR_LRS-SLITLESS|")
    m.meta.photometry.pixelarea_steradians = PIXAR_SR
    m.meta.photometry.pixelarea_arcsecsq = PIXAR_A2
    save(m, path)


def make_extract1d(path):
    """JSON EXTRACT1D ref: box around the trace + two background regions (id = EXP_TYPE)."""
    write_extract1d(path, "MIRI", "MIR_LRS-SLITLESS",
                    [{"id": "MIR_LRS-SLITLESS", "region_type": "target", "dispaxis": 2,
                      "xstart": EXTRACT["xstart"], "xstop": EXTRACT["xstop"], "bkg_coeff": EXTRACT["bkg_coeff"],
                      "bkg_fit": "poly", "bkg_order": 0, "use_source_posn": False, "smoothing_length": 0}])


def make_apcorr(path):
    """APCORR table (FULL/SLITLESSPRISM): 30 wavelengths x 8 sizes, 1 + 0.5 exp(-size/(0.6 lambda))."""
    nwl, nsize = 30, 8
    lam = np.linspace(3.5, 15.0, nwl)
    sz = np.array([4, 6, 8, 10, 12, 14, 16, 20], np.uint8)
    wl, size = np.zeros(100, np.float32), np.zeros(20, np.uint8)
    ap, aperr = np.ones((100, 20), np.float32), np.zeros((100, 20), np.float32)
    wl[:nwl], size[:nsize] = lam, sz
    ap[:nwl, :nsize] = 1.0 + 0.5 * np.exp(-sz.astype(float)[None, :] / (0.6 * lam[:, None]))
    aperr[:nwl, :nsize] = 0.01
    dt = [("subarray", "S17"), ("wavelength", "f4", (100,)), ("nelem_wl", "i2"), ("size", "u1", (20,)),
          ("nelem_size", "i2"), ("apcorr", "f4", (100, 20)), ("apcorr_err", "f4", (100, 20))]
    m = datamodels.MirLrsApcorrModel()
    _ref_meta(m, "APCORR")
    m.apcorr_table = np.array([(sub, wl, nwl, size, nsize, ap, aperr) for sub in ("FULL", SUB_NAME)], dt)
    m.sizeunit = "pixels"
    save(m, path)


def make_refs(refdir, seed=1) -> dict:
    """Write the 7 reference files into ``refdir``; returns {reftype: path}. Only the flat uses ``seed``."""
    refdir = Path(refdir)
    refdir.mkdir(parents=True, exist_ok=True)
    paths = {k: refdir / v for k, v in REF_FILES.items()}
    make_specwcs(paths["specwcs"])
    make_distortion(paths["distortion"])
    make_flat(paths["flat"], seed)
    make_photom(paths["photom"])
    make_area(paths["area"])
    make_extract1d(paths["extract1d"])
    make_apcorr(paths["apcorr"])
    return paths


# ---------------------------------------------------------------------------------------------
# Science exposure
# ---------------------------------------------------------------------------------------------
class _Scene:
    """Noise-free scene and time axis of a whole exposure; ``block`` makes integrations [i0, i1)."""

    def __init__(self, nints, seed):
        self.nints, self.seed = nints, seed
        self.tint = NGROUPS * FRAME_TIME
        self.effinttm = (NGROUPS - 1) * FRAME_TIME
        self.tcycle = self.tint + FRAME_TIME                      # one reset frame between integrations
        y = np.arange(YSIZE, dtype=float)
        lam = wave_of_row(y)
        in_trace = (y >= Y_RED - 1) & (y <= Y_BLUE + 1)
        taper = 50.0 * np.exp(-np.minimum(np.abs(y - Y_BLUE), np.abs(y - Y_RED)) / 8.0)
        rate = np.where(in_trace, stellar_rate(lam), taper)
        sig = ((0.031 * np.clip(lam, 4, 15) / 0.11 + 0.5) / 2.3548)[:, None]
        prof = np.exp(-0.5 * ((np.arange(XSIZE) - (ZP_X + xshift_of_row(y))[:, None]) / sig) ** 2)
        prof /= prof.sum(axis=1, keepdims=True)
        self.star = (rate[:, None] * prof).astype(np.float32)                           # DN/s
        bkg = 2.0 + 25.0 * np.clip((np.clip(lam, 4, 16) - 4.0) / 10.0, 0, None) ** 2   # thermal
        self.bkg = np.repeat(bkg[:, None], XSIZE, axis=1).astype(np.float32)
        self.var_rn = np.float32((14.0 * np.sqrt(12.0 / (NGROUPS**3 - NGROUPS)) / FRAME_TIME) ** 2)
        self.start = T0_MJD + np.arange(nints) * self.tcycle / 86400.0
        self.end = self.start + self.tint / 86400.0
        self.mid = 0.5 * (self.start + self.end)
        self.tc = float(self.mid[nints // 2])
        self.dur = max(0.3 * (self.end[-1] - self.start[0]), 1e-4)
        self.lc = transit(self.mid, self.tc, dur=self.dur)
        self.static_dq = np.zeros((YSIZE, XSIZE), np.uint32)
        self.static_dq[:, :4] = _PX["REFERENCE_PIXEL"] | _PX["DO_NOT_USE"]
        for y0, x0, flag in STATIC_BAD:
            self.static_dq[y0, x0] |= _PX[flag] | _PX["DO_NOT_USE"]
        self.static_nan = self.static_dq != 0

    def block(self, i0, i1) -> dict:
        """SCI/ERR/DQ/VAR_* of integrations [i0, i1); integration i uses only rng([seed, 1, i])."""
        n = i1 - i0
        noise = np.empty((n, YSIZE, XSIZE), np.float32)
        scale = np.empty(n, np.float32)                            # transit x gray jitter
        dq = np.broadcast_to(self.static_dq, noise.shape).copy()
        hits = []                                      # (k, jump ys, jump xs, jump values, NaN y, NaN x)
        for k, i in enumerate(range(i0, i1)):
            rng = np.random.default_rng([self.seed, 1, i])
            scale[k] = self.lc[i] * (1.0 + JITTER * rng.standard_normal())
            rng.standard_normal(out=noise[k], dtype=np.float32)
            jy, jx = rng.integers(0, YSIZE, 3), rng.integers(4, XSIZE, 3)
            hits.append((k, jy, jx, rng.uniform(5, 50, 3), rng.integers(0, YSIZE), rng.integers(4, XSIZE)))
        truth = self.star * scale[:, None, None] + self.bkg
        vp = np.clip(truth, 0, None) / np.float32(GAIN * self.effinttm)
        sci = truth + noise * np.sqrt(vp + self.var_rn)
        sci[:, self.static_nan] = np.nan
        for k, jy, jx, jv, ny_, nx_ in hits:
            dq[k, jy, jx] |= _PX["JUMP_DET"]                        # cosmic-ray hits: kept, flagged
            np.add.at(sci[k], (jy, jx), jv.astype(np.float32))
            if (i0 + k) % 10 == 2:                                  # saturated core every 10th int
                dq[k][SATURATED_PIXEL] |= _PX["SATURATED"] | _PX["DO_NOT_USE"]
                sci[k][SATURATED_PIXEL] = np.nan
            sci[k, ny_, nx_] = np.nan                               # unflagged NaN (pipeline flags it)
        vr = np.full_like(sci, self.var_rn)
        bad = np.isnan(sci)
        vp[bad] = np.nan
        vr[bad] = np.nan
        err = np.sqrt(vp + vr)
        return {"SCI": sci, "ERR": err, "DQ": dq, "VAR_POISSON": vp, "VAR_RNOISE": vr}

    def int_times(self, i0, i1, dtype):
        """INT_TIMES rows of integrations [i0, i1)."""
        return int_times_table(dtype, i0, self.start[i0:i1], self.mid[i0:i1], self.end[i0:i1],
                               lambda t: t + BJD_OFFSET)


def _set_exposure_meta(m, scene, i0, i1, segnum, segtot, filename):
    """Keywords of a MIRI LRS slitless TSO rateints (segment) file."""
    n = scene.nints
    mt = m.meta
    mt.telescope = "JWST"
    mt.filename, mt.model_type = filename, "CubeModel"
    mt.instrument.name, mt.instrument.detector = "MIRI", "MIRIMAGE"
    mt.instrument.filter, mt.instrument.band = "P750L", "N/A"
    ex = mt.exposure
    ex.type, ex.readpatt, ex.primary_type = "MIR_LRS-SLITLESS", "FASTR1", "SCIENCE"
    ex.nints, ex.integration_start, ex.integration_end = n, i0 + 1, i1
    ex.segment_number, ex.segment_total = segnum, segtot
    set_tso_timing(ex, scene, NGROUPS, 0, FRAME_TIME)
    ex.zero_frame = False
    mt.visit.tsovisit, mt.visit.type = True, "PRIME_TARGETED_FIXED"
    ob = mt.observation
    ob.date, ob.time = "2024-07-09", "06:00:00.000"
    ob.program_number, ob.observation_number, ob.visit_number = "09999", "001", "001"
    ob.visit_group, ob.sequence_id, ob.activity_id, ob.exposure_number = "02", "1", "01", "00001"
    s = mt.subarray
    s.name, s.xstart, s.ystart, s.xsize, s.ysize = SUB_NAME, XSTART, YSTART, XSIZE, YSIZE
    s.fastaxis, s.slowaxis = 1, 2
    mt.target.ra, mt.target.dec, mt.target.proposer_name, mt.target.type = 260.0, 65.0, "SYNTH-STAR", "FIXED"
    mt.aperture.name, mt.aperture.position_angle = "MIRIM_SLITLESSPRISM", 150.0
    mt.pointing.ra_v1, mt.pointing.dec_v1, mt.pointing.pa_v3 = 260.02, 65.05, 145.0
    w = mt.wcsinfo
    w.v2_ref, w.v3_ref, w.vparity, w.v3yangle = V2REF_SLITLESS, V3REF_SLITLESS, VPARITY, V3IDLYANG
    w.ra_ref, w.dec_ref, w.roll_ref = 260.0, 65.0, 145.0
    w.dispersion_direction, w.velosys = 2, VELOSYS
    va = mt.velocity_aberration
    va.scale_factor, va.va_ra_ref, va.va_dec_ref = 1.0000321, 260.0, 65.0
    mt.ephemeris.velocity_x = 10.0
    mt.cal_step.dq_init = mt.cal_step.ramp_fit = "COMPLETE"
    mt.bunit_data = mt.bunit_err = "DN/s"


def make_miri_lrs_slitless(outdir, nints=10, seed=1, name=None, segments=1, chunk=None) -> dict:
    """Write a synthetic MIRI LRS slitless TSO exposure and its reference files.

    Writes ``outdir/<name>_rateints.fits`` (``-segNNN`` in the name numbered per segment when
    ``segments > 1``) and ``outdir/refs/*``; returns {"rateints": [paths], "refs": {reftype: path},
    "nints", "seed", "segments", "bounds", truth parameters}.  ``chunk`` = integrations generated
    and written at a time (default ~4 MB per cube); it does not change the content.
    """
    if nints < 1 or segments < 1:
        raise ValueError("nints and segments must be >= 1")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    refs = make_refs(outdir / "refs", seed)
    scene = _Scene(nints, seed)
    name = name or DEFAULT_NAME
    bounds = segment_bounds(nints, segments)
    paths = []
    for s, (i0, i1) in enumerate(bounds, 1):
        path = outdir / f"{segment_stem(name, s, segments)}_rateints.fits"
        write_rateints(path, (i1 - i0, YSIZE, XSIZE),
                       lambda m: _set_exposure_meta(m, scene, i0, i1, s, segments, path.name),
                       lambda dtype: scene.int_times(i0, i1, dtype),
                       lambda j0, j1: scene.block(i0 + j0, i0 + j1), chunk)
        paths.append(path)
    info = {"rateints": paths, "refs": refs, "nints": nints, "seed": seed, "segments": segments,
            "bounds": bounds, "name": name, "tint": scene.tint, "effinttm": scene.effinttm,
            "tcycle": scene.tcycle, "tc_mjd": scene.tc, "transit_depth": TRANSIT_DEPTH,
            "transit_dur_days": scene.dur, "photmjsr": PHOTMJSR, "pixar_sr": PIXAR_SR, "pixar_a2": PIXAR_A2,
            "extract": EXTRACT, "velosys": VELOSYS, "lam_range_um": [LAM_BLUE, LAM_RED]}
    write_case_json(outdir, info)
    return info


