"""Deterministic synthetic NIRCam grism time-series exposures (EXP_TYPE=NRC_TSGRISM) and reference files.

``make_nircam_tsgrism`` writes a ``_rateints`` CubeModel exposure (optionally split into ``-segNNN``
files) for one SUBGRISM subarray (64, 128 or 256 rows x 2048 columns, module A long-wave detector,
GRISMR) and one filter (F444W or F322W2), plus the 6 reference files Spec2Pipeline asks for
(specwcs, distortion, wavelengthrange, flat, photom, extract1d), so spec2x and jwst 3.0.0 (run offline)
process the same files.

The trace follows the legacy NIRCam grism specwcs form (polynomials in the trace parameter t):
``dx(t) = DX0 + DX1 t`` columns from the source, ``lambda(t) = LAM0 + DLAM t``, ``dy(t) = DY1 t``.  jwst's
TSO grism WCS places the source at XREF_SCI/YREF_SCI taken as 0-based pixel coordinates (no -1), so the
scene does the same.  The star is a smooth spectrum with a Gaussian cross-profile widening with
wavelength, on a flat background, times the flat, times a 1%-deep transit.

Integration ``i`` depends only on ``(seed, i, nints)`` (noise from ``default_rng([seed, 1, i])``): the
exposure is the same whatever the chunk size or the number of segments.  Cubes are streamed to disk
chunk by chunk, so memory stays small whatever ``nints`` is (SUBGRISM64: 2.6 MB per integration).
"""

from __future__ import annotations

from dataclasses import dataclass
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

_PX = dqflags.pixel
NX = 2048
# SUBGRISM subarrays of NRCA5 (module A long wave), science frame: rows, 4-output frame time (s).
SUBARRAYS = {"SUBGRISM64": (64, 0.34061), "SUBGRISM128": (128, 0.67597), "SUBGRISM256": (256, 1.34669)}
FLAT_ROWS = 256            # the flat covers the tallest SUBGRISM subarray (all start at row 1)


@dataclass(frozen=True)
class FilterSetup:
    """Per-filter aperture reference point and trace polynomials (synthetic, SIAF-like)."""

    xref_sci: float        # XREF_SCI (1-based in the SIAF; jwst's grism WCS uses it as 0-based)
    lam0: float            # micron at t = 0
    dlam: float            # micron per unit t
    dx0: float             # columns from the source at t = 0
    dx1: float             # columns per unit t
    band: tuple            # (blue, red) edges of the filter throughput, micron
    wrange: tuple          # wavelengthrange lmin, lmax
    response: tuple        # photom relresponse wavelength range


FILTERS = {
    "F444W": FilterSetup(858.0, 3.80, 1.30, -158.0, 1300.0, (3.88, 4.98), (3.85, 5.05), (3.7, 5.2)),
    "F322W2": FilterSetup(1581.0, 2.40, 1.65, -1500.0, 1650.0, (2.43, 4.01), (2.40, 4.05), (2.3, 4.2)),
}
YREF_SCI = 35.0
DY1 = 1.5                                   # trace rise over t in [0, 1], rows
V2_REF, V3_REF = 96.672068, -556.349005     # arcsec (SIAF NRCA5_GRISM64_F444W)
V3_YANGLE, VPARITY = -0.37562675, -1
PIXEL_SCALE = 0.0629                        # arcsec per pixel, NIRCam long wave
RA_REF, DEC_REF, ROLL_REF = 150.0, 2.2, 110.0
NGROUPS, GAIN = 14, 1.82
T0_MJD = 60431.125                          # 2024-05-01 03:00 UTC
BJD_OFFSET = 0.0035
TRANSIT_DEPTH = 0.01
BACKGROUND = 1.2                            # DN/s
PHOTMJSR = 0.45
PIXAR_SR = 9.31e-14
PIXAR_A2 = PIXAR_SR / 2.350443e-11
EXTRACT = {"xstart": 4, "xstop": 2043, "ystart": 30, "ystop": 40,
           "bkg_coeff": [[1.5], [12.5], [51.5], [62.5]]}
DEFAULT_NAME = "jw09999001001_03101_00001-seg001_nrcalong"
REF_FILES = {"specwcs": "specwcs.asdf", "distortion": "distortion.asdf", "wavelengthrange": "wavelengthrange.asdf",
             "flat": "flat.fits", "photom": "photom.fits", "extract1d": "extract1d.json"}
DEAD_PIXELS = ((20, 300), (36, 1200), (50, 1800), (33, 1500))


def trace(x, setup: FilterSetup):
    """(t, wavelength micron, trace row) at 0-based column ``x``, with the source at XREF_SCI/YREF_SCI."""
    t = (np.asarray(x, float) - setup.xref_sci - setup.dx0) / setup.dx1
    return t, setup.lam0 + setup.dlam * t, YREF_SCI + DY1 * t


def stellar_rate(lam, setup: FilterSetup):
    """Source count rate per column (DN/s): power law x filter throughput with a 5% ripple."""
    blue, red = setup.band
    throughput = 1.0 / (1 + np.exp(-(lam - blue) / 0.02)) / (1 + np.exp((lam - red) / 0.02))
    return 3000.0 * (lam / 4.0) ** -2.5 * throughput * (1 + 0.05 * np.sin(9.0 * lam))


# ---------------------------------------------------------------------------------------------
# Reference files
# ---------------------------------------------------------------------------------------------
def _ref_meta(m, reftype, filt=None, exp_type="NRC_TSGRISM", p_exptype=None):
    meta = ref_header(m, reftype, "NIRCAM", "NRCALONG")
    meta.instrument.channel, meta.instrument.module = "LONG", "A"
    if filt is not None:
        meta.instrument.filter = filt
        meta.instrument.pupil = "GRISMR"
    meta.exposure.type = exp_type
    if p_exptype:
        meta.exposure.p_exptype = p_exptype


def make_specwcs(path, filt):
    """Legacy 1-D grism polynomials for order 1 and their exact inverses."""
    s = FILTERS[filt]
    poly = models.Polynomial1D
    m = datamodels.NIRCAMGrismModel(
        displ=[poly(1, c0=s.lam0, c1=s.dlam)], dispx=[poly(1, c0=s.dx0, c1=s.dx1)], dispy=[poly(1, c0=0.0, c1=DY1)],
        invdispl=[poly(1, c0=-s.lam0 / s.dlam, c1=1.0 / s.dlam)], invdispx=[poly(1, c0=-s.dx0 / s.dx1, c1=1.0 / s.dx1)],
        invdispy=[poly(1, c0=0.0, c1=1.0 / DY1)], orders=[1])
    _ref_meta(m, "specwcs", filt)
    m.meta.input_units = m.meta.output_units = u.micron
    save(m, path)


def make_distortion(path, filt):
    """Full-frame 0-based pixel -> (V2, V3) arcsec about the aperture reference point (affine, invertible)."""
    th = np.deg2rad(V3_YANGLE)
    matrix = PIXEL_SCALE * np.array([[VPARITY * np.cos(th), np.sin(th)], [-VPARITY * np.sin(th), np.cos(th)]])
    xref = FILTERS[filt].xref_sci
    model = (models.Shift(-(xref - 1)) & models.Shift(-(YREF_SCI - 1)) | models.AffineTransformation2D(matrix=matrix)
             | models.Shift(V2_REF) & models.Shift(V3_REF))
    m = datamodels.DistortionModel(model=model, input_units=u.pix, output_units=u.arcsec)
    _ref_meta(m, "distortion")
    m.meta.instrument.pupil, m.meta.instrument.p_pupil = "GRISMR", "GRISMR|"
    m.meta.subarray.name = "GENERIC"
    save(m, path)


def make_wavelengthrange(path):
    """Rows [order, pupil, filter, lmin, lmax] for every synthetic filter; order 1 extracted."""
    m = datamodels.WavelengthrangeModel(
        wrange_selector=list(FILTERS), order=[1], wunits=u.micron,
        wrange=[[1, "GRISMR", f, *s.wrange] for f, s in FILTERS.items()],
        extract_orders=[[f, [1]] for f in FILTERS])
    _ref_meta(m, "wavelengthrange")
    save(m, path)


def make_flat(path, seed):
    """2048 x 256 flat (SUBSTRT 1,1: covers every SUBGRISM subarray): gradients + 0.5% pixel noise,
    some NaN pixels flagged DO_NOT_USE | NO_FLAT_FIELD (a few on the trace rows)."""
    rng = np.random.default_rng([seed, 0])
    yy, xx = np.mgrid[0:FLAT_ROWS, 0:NX] / 2048.0
    flat = 1.0 + 0.03 * (xx - 0.5) - 0.02 * (yy - 0.5) ** 2 + 0.005 * rng.standard_normal((FLAT_ROWS, NX))
    dq = np.zeros((FLAT_ROWS, NX), np.uint32)
    bad_x = rng.integers(4, NX - 4, 40)
    bad_y = np.concatenate([rng.integers(28, 42, 8), rng.integers(4, 60, 12), rng.integers(4, FLAT_ROWS, 20)])
    dq[bad_y, bad_x] = _PX["DO_NOT_USE"] | _PX["NO_FLAT_FIELD"]
    flat[bad_y, bad_x] = np.nan
    m = datamodels.FlatModel(data=flat.astype(np.float32), dq=dq, err=np.full((FLAT_ROWS, NX), 0.005, np.float32))
    _ref_meta(m, "FLAT", p_exptype="NRC_TSGRISM|NRC_WFSS|")
    s = m.meta.subarray
    s.name, s.xstart, s.ystart, s.xsize, s.ysize = "GENERIC", 1, 1, NX, FLAT_ROWS
    save(m, path)


def make_photom(path):
    """NrcWfssPhotomModel: one (filter, GRISMR, order 1) row per filter, relresponse 1 + 0.2 sin."""
    nelem, nmax = 200, 300
    rows = []
    for filt, s in FILTERS.items():
        wl, rr = np.zeros(nmax, np.float32), np.zeros(nmax, np.float32)
        wl[:nelem] = np.linspace(*s.response, nelem)
        rr[:nelem] = 1.0 + 0.2 * np.sin(2.0 * (wl[:nelem] - s.response[0]))
        rows.append((filt, "GRISMR", 1, PHOTMJSR, 0.01, nelem, wl, rr, 0.01 * rr))
    dtype = [("filter", "S12"), ("pupil", "S15"), ("order", "<i2"), ("photmjsr", "<f4"), ("uncertainty", "<f4"),
             ("nelem", "<i2"), ("wavelength", "<f4", (nmax,)), ("relresponse", "<f4", (nmax,)),
             ("reluncertainty", "<f4", (nmax,))]
    m = datamodels.NrcWfssPhotomModel(phot_table=np.array(rows, dtype=dtype))
    _ref_meta(m, "PHOTOM", p_exptype="NRC_WFSS|NRC_TSGRISM|")
    m.meta.photometry.pixelarea_steradians = PIXAR_SR
    m.meta.photometry.pixelarea_arcsecsq = PIXAR_A2
    save(m, path)


def make_extract1d(path):
    """JSON EXTRACT1D: box rows 30-40 around the trace, background rows 2-12 and 52-62 (order-0 fit)."""
    write_extract1d(path, "NIRCAM", "NRC_TSGRISM", [{"id": "ANY", "region_type": "target", "disp": 1, **EXTRACT,
                                                     "bkg_fit": "poly", "bkg_order": 0, "smoothing_length": 0}])


def make_refs(refdir, filt="F444W", seed=1) -> dict:
    """Write the 6 reference files into ``refdir``; returns {reftype: path}.  Only the flat uses ``seed``."""
    refdir = Path(refdir)
    refdir.mkdir(parents=True, exist_ok=True)
    paths = {k: refdir / v for k, v in REF_FILES.items()}
    make_specwcs(paths["specwcs"], filt)
    make_distortion(paths["distortion"], filt)
    make_wavelengthrange(paths["wavelengthrange"])
    make_flat(paths["flat"], seed)
    make_photom(paths["photom"])
    make_extract1d(paths["extract1d"])
    return paths


# ---------------------------------------------------------------------------------------------
# Science exposure
# ---------------------------------------------------------------------------------------------
class _Scene:
    """Noise-free scene and time axis of a whole exposure; ``block`` makes integrations [i0, i1)."""

    def __init__(self, nints, seed, subarray, filt, flat):
        self.nints, self.seed = nints, seed
        self.ny, self.frame_time = SUBARRAYS[subarray]
        self.tint = NGROUPS * self.frame_time
        self.effinttm = (NGROUPS - 1) * self.frame_time
        self.tcycle = self.tint + self.frame_time
        setup = FILTERS[filt]
        t, lam, ytrace = trace(np.arange(NX), setup)
        rate = np.where((t >= 0) & (t <= 1), stellar_rate(lam, setup), 0.0)
        sigma = 1.0 + 0.25 * (lam - setup.lam0)
        y = np.arange(self.ny, dtype=float)[:, None]
        profile = np.exp(-0.5 * ((y - ytrace) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
        flat = np.where(np.isfinite(flat), flat, 1.0)[: self.ny]
        self.star = (rate * profile * flat).astype(np.float32)
        self.bkg = (BACKGROUND * flat).astype(np.float32)
        self.var_rn = np.float32((11.0 / GAIN) ** 2 * 12 / (NGROUPS * (NGROUPS**2 - 1)) / self.frame_time**2)
        self.start = T0_MJD + np.arange(nints) * self.tcycle / 86400.0
        self.end = self.start + self.tint / 86400.0
        self.mid = 0.5 * (self.start + self.end)
        phase = (np.arange(nints) - nints / 2) / nints
        self.lc = 1 - TRANSIT_DEPTH * 0.5 * (1 - np.tanh((np.abs(phase) - 0.2) / 0.02))
        self.static_dq = np.zeros((self.ny, NX), np.uint32)
        self.static_dq[:4, :] |= _PX["REFERENCE_PIXEL"]
        self.static_dq[:, :4] |= _PX["REFERENCE_PIXEL"]
        self.static_dq[:, -4:] |= _PX["REFERENCE_PIXEL"]
        for yx in DEAD_PIXELS:
            if yx[0] < self.ny:
                self.static_dq[yx] |= _PX["DO_NOT_USE"] | _PX["DEAD"]

    def block(self, i0, i1) -> dict:
        """SCI/ERR/DQ/VAR_* of integrations [i0, i1); integration i uses only rng([seed, 1, i])."""
        n = i1 - i0
        noise = np.empty((n, self.ny, NX), np.float32)
        dq = np.broadcast_to(self.static_dq, noise.shape).copy()
        for k, i in enumerate(range(i0, i1)):
            rng = np.random.default_rng([self.seed, 1, i])
            rng.standard_normal(out=noise[k], dtype=np.float32)
            dq[k, rng.integers(4, self.ny, 3), rng.integers(4, NX - 4, 3)] |= _PX["JUMP_DET"]
            if i % 5 == 2:                                     # a saturated pixel on the trace
                dq[k, rng.integers(28, 42), rng.integers(800, 1900)] |= _PX["DO_NOT_USE"] | _PX["SATURATED"]
        truth = self.star * self.lc[i0:i1, None, None].astype(np.float32) + self.bkg
        vp = np.clip(truth, 0, None) / np.float32(GAIN * self.effinttm)
        err = np.sqrt(vp + self.var_rn)
        sci = truth + err * noise
        vr = np.full_like(sci, self.var_rn)
        bad = (dq & _PX["DO_NOT_USE"]) != 0
        for a in (sci, err, vp, vr):
            a[bad] = np.nan
        return {"SCI": sci, "ERR": err, "DQ": dq, "VAR_POISSON": vp, "VAR_RNOISE": vr}

    def int_times(self, i0, i1, dtype):
        return int_times_table(dtype, i0, self.start[i0:i1], self.mid[i0:i1], self.end[i0:i1],
                               lambda t: t + 2400000.5 + BJD_OFFSET)


def _set_exposure_meta(m, scene, subarray, filt, i0, i1, segnum, segtot, filename):
    """Keywords of a NIRCam grism TSO rateints (segment) file."""
    n = scene.nints
    mt = m.meta
    mt.telescope, mt.filename, mt.model_type = "JWST", filename, "CubeModel"
    ins = mt.instrument
    ins.name, ins.detector, ins.channel, ins.module = "NIRCAM", "NRCALONG", "LONG", "A"
    ins.filter, ins.pupil = filt, "GRISMR"
    ex = mt.exposure
    ex.type, ex.readpatt, ex.primary_type = "NRC_TSGRISM", "BRIGHT1", "SCIENCE"
    ex.nints, ex.integration_start, ex.integration_end = n, i0 + 1, i1
    ex.segment_number, ex.segment_total = segnum, segtot
    set_tso_timing(ex, scene, NGROUPS, 1, scene.frame_time)
    mt.visit.tsovisit, mt.visit.type = True, "PRIME_TARGETED_FIXED"
    ob = mt.observation
    ob.date, ob.time = "2024-05-01", "03:00:00.000"
    ob.program_number, ob.observation_number, ob.visit_number = "09999", "001", "001"
    ob.visit_group, ob.sequence_id, ob.activity_id, ob.exposure_number = "03", "1", "01", "00001"
    ny = scene.ny
    s = mt.subarray
    s.name, s.xstart, s.ystart, s.xsize, s.ysize = subarray, 1, 1, NX, ny
    s.fastaxis, s.slowaxis = -1, 2
    mt.target.ra, mt.target.dec, mt.target.proposer_name = RA_REF, DEC_REF, "SYNTH-1"
    mt.target.source_type = "POINT"
    mt.aperture.name = mt.aperture.pps_name = f"NRCA5_GRISM{ny}_{filt}"
    w = mt.wcsinfo
    w.wcsaxes = 2
    w.ra_ref, w.dec_ref, w.roll_ref = RA_REF, DEC_REF, ROLL_REF
    w.v2_ref, w.v3_ref, w.v3yangle, w.vparity = V2_REF, V3_REF, V3_YANGLE, VPARITY
    w.siaf_xref_sci, w.siaf_yref_sci = FILTERS[filt].xref_sci, YREF_SCI
    w.crpix1, w.crpix2 = FILTERS[filt].xref_sci, YREF_SCI
    w.crval1, w.crval2 = RA_REF, DEC_REF
    w.ctype1, w.ctype2 = "RA---TAN", "DEC--TAN"
    w.cunit1, w.cunit2 = "deg", "deg"
    w.cdelt1 = w.cdelt2 = PIXEL_SCALE / 3600
    w.pc1_1, w.pc1_2, w.pc2_1, w.pc2_2 = -1.0, 0.0, 0.0, 1.0
    mt.velocity_aberration.scale_factor = 1.0
    mt.dither.x_offset, mt.dither.y_offset = 0.0, 0.0
    mt.cal_step.dq_init = mt.cal_step.ramp_fit = "COMPLETE"
    mt.bunit_data = mt.bunit_err = "DN/s"


def make_nircam_tsgrism(outdir, nints=10, seed=1, subarray="SUBGRISM64", filter="F444W", name=None, segments=1,
                        chunk=None) -> dict:
    """Write a synthetic NIRCam grism TSO exposure and its reference files.

    Writes ``outdir/<name>_rateints.fits`` (``-segNNN`` numbered per segment when ``segments > 1``) and
    ``outdir/refs/*``; returns {"rateints": [paths], "refs": {reftype: path}, "nints", "seed", "subarray",
    "filter", ...truth}.  ``chunk`` = integrations generated and written at a time (default ~4 MB per
    cube); it does not change the content.
    """
    if nints < 1 or segments < 1:
        raise ValueError("nints and segments must be >= 1")
    if subarray not in SUBARRAYS:
        raise ValueError(f"subarray {subarray!r}: synthetic cases exist for {', '.join(SUBARRAYS)}")
    if filter not in FILTERS:
        raise ValueError(f"filter {filter!r}: synthetic cases exist for {', '.join(FILTERS)}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    refs = make_refs(outdir / "refs", filter, seed)
    with datamodels.FlatModel(str(refs["flat"])) as flat:
        scene = _Scene(nints, seed, subarray, filter, np.array(flat.data))
    name = name or DEFAULT_NAME
    bounds = segment_bounds(nints, segments)
    paths = []
    for s, (i0, i1) in enumerate(bounds, 1):
        path = outdir / f"{segment_stem(name, s, segments)}_rateints.fits"
        write_rateints(path, (i1 - i0, scene.ny, NX),
                       lambda m: _set_exposure_meta(m, scene, subarray, filter, i0, i1, s, segments, path.name),
                       lambda dtype: scene.int_times(i0, i1, dtype),
                       lambda j0, j1: scene.block(i0 + j0, i0 + j1), chunk)
        paths.append(path)
    setup = FILTERS[filter]
    info = {"rateints": paths, "refs": refs, "nints": nints, "seed": seed, "segments": segments, "bounds": bounds,
            "name": name, "subarray": subarray, "filter": filter, "tint": scene.tint, "effinttm": scene.effinttm,
            "xref_sci": setup.xref_sci, "yref_sci": YREF_SCI, "trace": {"lam0": setup.lam0, "dlam": setup.dlam,
            "dx0": setup.dx0, "dx1": setup.dx1, "dy1": DY1}, "transit_depth": TRANSIT_DEPTH,
            "photmjsr": PHOTMJSR, "pixar_sr": PIXAR_SR, "extract": EXTRACT}
    write_case_json(outdir, info)
    return info
