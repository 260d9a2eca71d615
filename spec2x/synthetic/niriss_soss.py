"""Deterministic synthetic NIRISS SOSS time series (NIS_SOSS; SUBSTRIP256, SUBSTRIP96 or FULL; GR700XD with
CLEAR or F277W) and the reference files stage 2 uses for it: specwcs, pastasoss, specprofile, speckernel,
flat, photom, and on request a BKG library of background templates.

The geometry is a smooth model of its own (not instrument data), written in the CRDS formats: orders 1 and
2 follow polynomial traces close to where SOSS puts them (order 2 overlaps the wings of order 1 at
x < ~750), the wavelength solution is a 2-D polynomial in (x, pupil-wheel offset) and the exposure's
PWCPOS is 0.04 deg from the commanded position, so traces are rotated as in real data.  The scene is
sum_orders profile(y - y_o(x)) * F_o(x) on a background with a step at x = 750, times a flat, with a 1%
box-shaped transit.  Integration ``i`` depends only on ``(seed, i, nints)`` (noise from
``default_rng([seed, 1, i])``); cubes are streamed to disk chunk by chunk, so memory stays flat in nints.
"""

from __future__ import annotations

from pathlib import Path

import asdf
import numpy as np
from astropy.modeling.models import Tabular2D
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from spec2x import pastasoss
from spec2x.synthetic.common import CUBES, MODEL_ATTR, lazy_array, save, write_streamed

NX, NY = 2048, 256                        # SUBSTRIP256; the specwcs always covers these rows
SUBSTRT1, SUBSTRT2 = 1, 1793
SUBARRAYS = {"SUBSTRIP256": (1793, 256), "SUBSTRIP96": (1803, 96), "FULL": (1, 2048)}   # SUBSTRT2, SUBSIZE2
FILTERS = ("CLEAR", "F277W")
PWCPOS_CMD, PWCPOS = 245.76, 245.80
PWCPOS_BOUNDS = [245.54, 246.04]
SEPARATION_CUTOFF = [0.77, 0.95]
CUTOFF = {1: 2048, 2: 1783}
PIVOT_X = {1: 1900.0, 2: 1700.0}
OFFSET_EXTENTS = (-0.25, 0.25)            # wavecal scaling of the PWCPOS offset (deg)
WAVE = {1: (2.84, -1.99, 0.04, 0.02), 2: (1.42, -0.90, -0.02, 0.01)}  # c0 + c1 xs + c2 xs^2 + k (os - 1/2)
PAD = 20                                  # specprofile padding
GAIN, TFRAME, NGROUPS, READNOISE_E = 1.61, 5.49132, 9, 14.0
RA, DEC = 200.0, -30.0
XREF_SCI, YREF_SCI = 1980.0, 258.0
V2REF, V3REF, V3YANGLE, VPARITY = -351.786079, -686.173172, 0.56126717, -1
T0_MJD, BJD_OFFSET = 60462.25, 0.0042
TRANSIT_DEPTH = 0.01
DEFAULT_NAME = "jw09999002001_03101_00001-seg001_nis"
REF_FILES = {"specwcs": "specwcs.asdf", "pastasoss": "pastasoss.asdf", "specprofile": "specprofile.fits",
             "speckernel": "speckernel.fits", "flat": "flat.fits", "photom": "photom.fits"}
_PX = dqflags.pixel
DEAD = [(40, 300), (80, 1200), (150, 1700), (60, 900), (30, 1500)]


def trace_y(order: int, x):
    """Trace row at the commanded pupil-wheel position (subarray pixels)."""
    x = np.asarray(x, float)
    if order == 1:
        u = (x - 1400.0) / 1400.0
        return 40.0 + 42.0 * u**2 + 2.0 * u**3
    v = (x - 600.0) / 1000.0
    return 95.5 + 12.0 * v**2 + 60.0 * np.clip(v, 0, None) ** 3


def wavecal_coefficients(order: int) -> np.ndarray:
    """Graded-lexicographic coefficients (C00, C10, C01, C20, C11, C02) of lambda(xs, os)."""
    c0, c1, c2, k = WAVE[order]
    return np.array([c0 - 0.5 * k, c1, k, c2, 0.0, 0.0])


def throughput(order: int, lam):
    lam = np.asarray(lam, float)
    if order == 1:
        return 0.42 * np.exp(-0.5 * ((lam - 1.35) / 0.75) ** 2)
    return 0.045 * np.exp(-0.5 * ((lam - 0.95) / 0.25) ** 2)


def cross_profile(dy, lam):
    """Flat-topped cross-dispersion profile (half-width 9 + 1.5 lambda px) with a mild red-side horn."""
    w = 9.0 + 1.5 * lam
    return np.exp(-0.5 * (dy / w) ** 4) * (1.0 + 0.15 * np.exp(-0.5 * ((dy - 0.7 * w) / 2.0) ** 2))


def stellar_photons(lam):
    """5500 K photon spectrum with two broad absorption bands, peak-normalised."""
    lam = np.asarray(lam, float)
    bb = lam**-4 / np.expm1(1.4388e4 / (lam * 5500.0))
    bb = bb / bb.max()
    return bb * (1 - 0.07 * np.exp(-0.5 * ((lam - 1.15) / 0.04) ** 2) - 0.05 * np.exp(-0.5 * ((lam - 2.3) / 0.1) ** 2))


# ---------------------------------------------------------------------------------------------
# Reference files
# ---------------------------------------------------------------------------------------------
def _ref_meta(m, reftype, subarray=None, filt="CLEAR"):
    """Selection keywords of a synthetic reference (``subarray``: name, for subarray-sized references)."""
    meta = m.meta
    meta.reftype, meta.pedigree, meta.useafter = reftype, "DUMMY", "2022-01-01T00:00:00"
    meta.author, meta.description = "spec2x.synthetic", "Synthetic reference file (spec2x)"
    meta.telescope = "JWST"
    meta.instrument.name, meta.instrument.detector = "NIRISS", "NIS"
    meta.exposure.type = "NIS_SOSS"
    if hasattr(meta.instrument, "filter"):
        meta.instrument.filter = filt
    if hasattr(meta.instrument, "pupil"):
        meta.instrument.pupil = "GR700XD"
    if subarray is not None:
        ystart, ysize = SUBARRAYS[subarray]
        s = meta.subarray
        s.name, s.xstart, s.ystart, s.xsize, s.ysize = subarray, SUBSTRT1, ystart, NX, ysize


def make_pastasoss(path, orders=(1, 2)):
    m = datamodels.PastasossModel()
    _ref_meta(m, "PASTASOSS")
    meta = m.meta
    meta.order2_separation_cutoff, meta.pwcpos_bounds, meta.pwcpos_cmd = SEPARATION_CUTOFF, PWCPOS_BOUNDS, PWCPOS_CMD
    meta.soss_xdim, meta.soss_ydim, meta.subarray_ymin = 2048, 300, 1792
    meta.wavemap_nwl, meta.wavemap_wlmin, meta.wavemap_wlmax = 5001, 0.5, 5.5
    x = np.arange(NX, dtype=float)
    grid = np.linspace(0.5, 5.5, 5001)
    m.traces = [{"spectral_order": o, "pivot_x": PIVOT_X[o], "pivot_y": float(trace_y(o, PIVOT_X[o])),
                 "trace": np.column_stack([x, trace_y(o, x)]), "cutoff": CUTOFF[o], "oversampling": 1}
                for o in orders]
    m.wavecal_models = [{"spectral_order": o, "polynomial_degree": 2, "coefficients": wavecal_coefficients(o),
                         "scale_extents": np.array([[0.0, OFFSET_EXTENTS[0]], [float(NX), OFFSET_EXTENTS[1]]])}
                        for o in orders]
    m.throughputs = [{"spectral_order": o, "wavelength": grid, "throughput": throughput(o, grid)} for o in orders]
    save(m, path)


def profile_image(trace, ny, nx, y0=0, x0=0):
    """Column-normalised cross profile of one order on a (ny, nx) grid starting at pixel (y0, x0)."""
    x = np.arange(x0, x0 + nx)
    inside = (x >= 0) & (x < trace.x.size)
    xc = np.clip(x, 0, trace.x.size - 1)
    yt = np.interp(x, trace.x, trace.y)
    p = cross_profile(np.arange(y0, y0 + ny, dtype=float)[:, None] - yt[None, :], trace.wavelength[xc][None, :])
    p[:, ~inside] = 0.0
    total = p.sum(axis=0)
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.0)


def make_specprofile(path, traces, subarray="SUBSTRIP256"):
    m = datamodels.SpecProfileModel()
    _ref_meta(m, "SPECPROFILE", subarray)
    ny = SUBARRAYS[subarray][1]
    m.profile = [{"order": o, "oversampling": 1, "padding": PAD,
                  "data": profile_image(t, ny + 2 * PAD, NX + 2 * PAD, -PAD, -PAD).astype(np.float32)}
                 for o, t in traces.items()]
    save(m, path)


def make_speckernel(path):
    hw, over = 6, 10
    nk = over * (2 * hw + 1) - (over - 1)
    wave = np.linspace(0.5, 5.5, 51)
    pix = np.linspace(-hw, hw, nk)
    ker = np.exp(-0.5 * (pix[:, None] / (0.6 + 0.1 * wave[None, :])) ** 2)
    ker /= ker.sum(axis=0, keepdims=True)
    m = datamodels.SpecKernelModel(wavelengths=np.repeat(wave[None, :], nk, 0).astype(np.float32),
                                   kernels=ker.astype(np.float32))
    _ref_meta(m, "SPECKERNEL")
    m.meta.nwave, m.meta.wavemin, m.meta.wavemax = wave.size, float(wave[0]), float(wave[-1])
    m.meta.spectral_oversampling, m.meta.halfwidth, m.meta.centroid_index = over, hw, nk // 2
    save(m, path)


def make_specwcs(path, traces_cmd, filt="CLEAR"):
    """Plain asdf with tree keys 1, 2, 3: lambda(y_full, x_full) look-up tables (order 3 = 2/3 order 2)."""
    yf = np.arange(SUBSTRT2 - 1, SUBSTRT2 - 1 + NY, dtype=float)
    xf = np.arange(NX, dtype=float)
    tables = {}
    for o in (1, 2, 3):
        t = traces_cmd[min(o, 2)]
        lam = np.full(NX, np.nan)
        lam[: t.x.size] = t.wavelength * (2.0 / 3.0 if o == 3 else 1.0)
        tables[o] = Tabular2D(points=(yf, xf), lookup_table=np.repeat(lam[None, :], NY, 0), bounds_error=False,
                              fill_value=np.nan, name=f"order{o}_wavelength")
    meta = {"reftype": "SPECWCS", "telescope": "JWST", "pedigree": "DUMMY", "useafter": "2022-01-01T00:00:00",
            "author": "spec2x.synthetic", "description": "Synthetic reference file (spec2x)",
            "instrument": {"name": "NIRISS", "detector": "NIS", "filter": filt, "pupil": "GR700XD"},
            "exposure": {"type": "NIS_SOSS"}}
    asdf.AsdfFile({1: tables[1], 2: tables[2], 3: tables[3], "meta": meta}).write_to(str(path))


def make_flat(path, seed, subarray="SUBSTRIP256", filt="CLEAR"):
    ny = SUBARRAYS[subarray][1]
    yy, xx = np.mgrid[0:ny, 0:NX]
    rng = np.random.default_rng([seed, 0])
    flat = 1.0 + 0.02 * (xx / NX - 0.5) - 0.01 * (yy / ny - 0.5) ** 2 + rng.normal(0, 0.004, (ny, NX))
    dq = np.zeros((ny, NX), np.uint32)
    for y, x in [(45, 400), (90, 650), (120, 1300), (200, 1800), (70, 1000)]:
        if y < ny:
            flat[y, x] = np.nan
    dq[ny // 2, 100] = _PX["NO_FLAT_FIELD"]
    m = datamodels.FlatModel(data=flat.astype(np.float32), dq=dq, err=np.full((ny, NX), 0.004, np.float32))
    _ref_meta(m, "FLAT", subarray, filt)
    save(m, path)


def make_photom(path):
    """PHOTOM rows CLEAR orders 1-3 and F277W order 1: PHOTMJ x smooth relresponse(lambda), 3000 elements."""
    n = 3000
    rows = []
    for filt, order, lo, hi, pmj in (("CLEAR", 1, 0.80, 2.90, 5.0e-5), ("CLEAR", 2, 0.55, 1.45, 5.0e-5),
                                     ("CLEAR", 3, 0.55, 0.95, 5.0e-5), ("F277W", 1, 2.40, 2.90, 1.0e-4)):
        lam = np.linspace(lo, hi, n)
        rel = 1.0 / (0.2 + throughput(min(order, 2), lam) / throughput(min(order, 2), lam).max())
        rows.append((filt, "GR700XD", order, pmj, 0.01 * pmj, n, lam, rel, 0.01 * rel))
    m = datamodels.NisSossPhotomModel()
    _ref_meta(m, "PHOTOM")
    m.meta.photometry.pixelarea_steradians = 1.0e-13
    m.meta.photometry.pixelarea_arcsecsq = 0.0043
    m.phot_table = np.array(rows, dtype=[("filter", "S12"), ("pupil", "S15"), ("order", "<i2"),
                                         ("photmj", "<f4"), ("uncertainty", "<f4"), ("nelem", "<i2"),
                                         ("wavelength", "<f4", (n,)), ("relresponse", "<f4", (n,)),
                                         ("reluncertainty", "<f4", (n,))])
    save(m, path)


BKG_STEP = (695, 20)          # template step column at row 0, and its drift over 256 rows
BKG_SCALES = (0.9, 1.2)       # scene background = template BKG_TRUE x these left / right of the step
BKG_TRUE = 1


def background_templates(ntemplates=3) -> np.ndarray:
    """(n, 256, 2048) zodi-like templates: a smooth level with a step near column 700 whose height grows with n."""
    yy, xx = np.mgrid[0:NY, 0:NX].astype(float)
    step = BKG_STEP[0] + np.round(BKG_STEP[1] * yy / (NY - 1))
    out = np.empty((ntemplates, NY, NX), np.float32)
    for k in range(ntemplates):
        level = 0.8 + 0.1 * k + 1.0e-4 * xx + 0.05 * (yy / NY) ** 2
        out[k] = level + (0.3 + 0.15 * k) * (xx >= step)
    return out


def make_bkg(path, ntemplates=3, filt="CLEAR"):
    """SOSS BKG reference (``SossBkgModel``): ``background_templates``, no subarray selector (256 rows)."""
    data = background_templates(ntemplates)
    m = datamodels.SossBkgModel(data=data, dq=np.zeros(data.shape, np.uint32), err=np.zeros(data.shape, np.float32))
    _ref_meta(m, "BKG", filt=filt)
    save(m, path)


def make_refs(refdir, seed=1, subarray="SUBSTRIP256", filt="CLEAR") -> tuple[dict, dict]:
    """Write the six references; returns ({reftype: path}, traces at the exposure's PWCPOS).  ``filt``
    is the FILTER of the references the steps before extraction use (specwcs, flat)."""
    refdir = Path(refdir)
    refdir.mkdir(parents=True, exist_ok=True)
    paths = {k: refdir / v for k, v in REF_FILES.items()}
    make_pastasoss(paths["pastasoss"])
    ref = pastasoss.read_pastasoss(str(paths["pastasoss"]))
    traces = {o: pastasoss.trace(ref, o, PWCPOS, subarray) for o in (1, 2)}
    if subarray == "FULL":   # the traces sit on the full-frame rows of SUBSTRIP256
        below = SUBARRAYS["SUBSTRIP256"][0] - 1
        traces = {o: pastasoss.Trace(o, t.x, t.y + below, t.wavelength) for o, t in traces.items()}
    make_specprofile(paths["specprofile"], traces, subarray)
    make_speckernel(paths["speckernel"])
    make_specwcs(paths["specwcs"], {o: pastasoss.trace(ref, o, PWCPOS_CMD) for o in (1, 2)}, filt)
    make_flat(paths["flat"], seed, subarray, filt)
    make_photom(paths["photom"])
    return paths, traces


# ---------------------------------------------------------------------------------------------
# Science exposure
# ---------------------------------------------------------------------------------------------
class _Scene:
    def __init__(self, nints, seed, traces, flat_path, subarray, background=False):
        self.nints, self.seed = nints, seed
        self.ystart, ny = SUBARRAYS[subarray]
        self.ny = ny
        self.tint, self.teff = NGROUPS * TFRAME, (NGROUPS - 1) * TFRAME
        scene = np.zeros((ny, NX))
        for o, t in traces.items():
            column = 4.0e6 * stellar_photons(t.wavelength) * throughput(o, t.wavelength) * np.abs(np.gradient(t.wavelength))
            scene[:, : t.x.size] += profile_image(t, ny, NX)[:, : t.x.size] * column[None, :]
        if background and ny <= NY:   # FULL frames keep the default background
            template = background_templates()[BKG_TRUE]
            step = BKG_STEP[0] + np.round(BKG_STEP[1] * np.arange(NY) / (NY - 1))
            right = np.arange(NX)[None, :] >= step[:, None]
            rows = slice(self.ystart - SUBARRAYS["SUBSTRIP256"][0], self.ystart - SUBARRAYS["SUBSTRIP256"][0] + ny)
            scene += (template * np.where(right, BKG_SCALES[1], BKG_SCALES[0]))[rows]
        else:
            scene += 1.0 + 0.4 * (np.arange(NX) > 750)[None, :]
        with datamodels.FlatModel(str(flat_path)) as flat:
            f = np.where(np.isfinite(flat.data), flat.data, 1.0)
        self.rate = (scene * f).astype(np.float32)
        self.var_rn = np.float32((READNOISE_E / GAIN) ** 2 * 12 / (NGROUPS * (NGROUPS**2 - 1)) / TFRAME**2)
        it = np.arange(nints)
        phase = (it - (nints - 1) / 2) / max(nints, 1)
        self.lc = 1 - TRANSIT_DEPTH * 0.5 * (1 - np.tanh((np.abs(phase) - 0.2) / 0.02))
        self.start = T0_MJD + it * (self.tint + TFRAME) / 86400
        self.trace1 = traces[1]
        self.static_dq = np.zeros((ny, NX), np.uint32)
        ref = np.uint32(_PX["REFERENCE_PIXEL"])
        top = 2044 - (self.ystart - 1)                       # full-frame rows 2044-2047 are reference rows
        if top < ny:
            self.static_dq[top:, :] |= ref
        self.static_dq[:, :4] |= ref
        if self.ystart == 1:                                 # full frame: rows 0-3 are reference rows too
            self.static_dq[:4, :] |= ref
        self.static_dq[:, -4:] |= ref
        for y, x in DEAD:
            if y < ny:
                self.static_dq[y, x] |= _PX["DO_NOT_USE"] | _PX["DEAD"]

    def block(self, i0, i1) -> dict:
        """SCI/ERR/DQ/VAR_* of integrations [i0, i1); integration i uses only rng([seed, 1, i])."""
        truth = self.rate[None] * self.lc[i0:i1, None, None].astype(np.float32)
        vp = (np.clip(truth, 0, None) / np.float32(GAIN * self.teff)).astype(np.float32)
        sci = np.empty_like(truth)
        dq = np.broadcast_to(self.static_dq, truth.shape).copy()
        for k, i in enumerate(range(i0, i1)):
            rng = np.random.default_rng([self.seed, 1, i])
            sci[k] = truth[k] + np.sqrt(vp[k] + self.var_rn) * rng.standard_normal((self.ny, NX), dtype=np.float32)
            jy, jx = rng.integers(0, self.ny - 4, 5), rng.integers(4, NX - 4, 5)
            dq[k, jy, jx] |= _PX["JUMP_DET"]
            if i % 2 == 1:                                   # a saturated pixel on the order-1 trace
                x = int(rng.integers(100, 1900))
                dq[k, round(self.trace1.y[x]), x] |= _PX["DO_NOT_USE"] | _PX["SATURATED"]
        sci[(dq & _PX["DO_NOT_USE"]) != 0] = np.nan
        vr = np.full_like(sci, self.var_rn)
        bad = np.isnan(sci)
        vp[bad] = np.nan
        vr[bad] = np.nan
        return {"SCI": sci, "ERR": np.sqrt(vp + vr), "DQ": dq, "VAR_POISSON": vp, "VAR_RNOISE": vr}

    def int_times(self, dtype):
        t = np.zeros(self.nints, dtype=dtype)
        t["integration_number"] = np.arange(1, self.nints + 1)
        for edge, dt in (("start", 0.0), ("mid", 0.5), ("end", 1.0)):
            t[f"int_{edge}_MJD_UTC"] = self.start + dt * self.tint / 86400
            t[f"int_{edge}_BJD_TDB"] = self.start + dt * self.tint / 86400 + 2400000.5 + BJD_OFFSET
        return t


def _set_meta(m, scene, filename, pwcpos, subarray, filt="CLEAR"):
    mt = m.meta
    mt.telescope, mt.filename, mt.model_type = "JWST", filename, "CubeModel"
    ins = mt.instrument
    ins.name, ins.detector, ins.filter, ins.pupil = "NIRISS", "NIS", filt, "GR700XD"
    if pwcpos is not None:
        ins.pupil_position = pwcpos
    ex = mt.exposure
    ex.type, ex.readpatt, ex.nints, ex.ngroups, ex.nframes, ex.groupgap = "NIS_SOSS", "NISRAPID", scene.nints, NGROUPS, 1, 0
    ex.nresets_at_start = ex.nresets_between_ints = 1
    ex.frame_time = ex.group_time = TFRAME
    ex.integration_time = scene.tint
    ex.effective_exposure_time = scene.teff * scene.nints
    ex.exposure_time = scene.tint * scene.nints
    ex.duration = (scene.tint + TFRAME) * scene.nints
    ex.integration_start, ex.integration_end, ex.segment_number = 1, scene.nints, 1
    ex.start_time = float(scene.start[0])
    ex.end_time = float(scene.start[-1] + scene.tint / 86400)
    ex.mid_time = 0.5 * (ex.start_time + ex.end_time)
    mt.visit.tsovisit, mt.visit.type = True, "PRIME_TARGETED_FIXED"
    mt.observation.date, mt.observation.time = "2024-06-01", "06:00:00.000"
    mt.target.ra, mt.target.dec, mt.target.proposer_name, mt.target.source_type = RA, DEC, "SYNTH-SOSS", "POINT"
    mt.aperture.name = mt.aperture.pps_name = f"NIS_{subarray}"
    s = mt.subarray
    s.name, s.xstart, s.ystart, s.xsize, s.ysize, s.fastaxis, s.slowaxis = subarray, SUBSTRT1, scene.ystart, NX, scene.ny, -2, -1
    w = mt.wcsinfo
    w.wcsaxes, w.ra_ref, w.dec_ref, w.roll_ref = 2, RA, DEC, 250.0
    w.v2_ref, w.v3_ref, w.v3yangle, w.vparity = V2REF, V3REF, V3YANGLE, VPARITY
    w.siaf_xref_sci, w.siaf_yref_sci, w.crpix1, w.crpix2 = XREF_SCI, YREF_SCI, XREF_SCI, YREF_SCI
    w.crval1, w.crval2, w.ctype1, w.ctype2, w.cunit1, w.cunit2 = RA, DEC, "RA---TAN", "DEC--TAN", "deg", "deg"
    w.cdelt1 = w.cdelt2 = 0.0656 / 3600
    w.pc1_1, w.pc1_2, w.pc2_1, w.pc2_2 = -1.0, 0.0, 0.0, 1.0
    mt.velocity_aberration.scale_factor = 1.0
    mt.bunit_data = mt.bunit_err = "DN/s"
    for step in ("dq_init", "saturation", "superbias", "refpix", "linearity", "dark_sub", "jump", "ramp_fit",
                 "gain_scale"):
        setattr(mt.cal_step, step, "COMPLETE")


def make_niriss_soss(outdir, nints=5, seed=1, name=None, chunk=None, pwcpos=PWCPOS, subarray="SUBSTRIP256",
                     background=False, filt="CLEAR") -> dict:
    """Write a synthetic SOSS exposure (``outdir/<name>_rateints.fits``; SUBSTRIP256, SUBSTRIP96 or FULL,
    FILTER ``filt`` CLEAR or F277W; jwst extracts spectra for CLEAR and the strips only) and
    ``outdir/refs/*``.

    Returns {"rateints": [path], "refs": {reftype: path}, "nints", "seed", truth...}.  ``pwcpos=None``
    writes an exposure without the PWCPOS keyword (for error tests).  ``background=True`` adds a BKG
    reference (``refs/bkg.fits``, 3 templates) and makes the scene's background template ``BKG_TRUE``
    scaled by ``BKG_SCALES`` left / right of its step (instead of the default flat step at x = 750; FULL
    frames keep the default).
    """
    if nints < 1:
        raise ValueError("nints must be >= 1")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if subarray not in SUBARRAYS:
        raise ValueError(f"subarray must be one of {', '.join(SUBARRAYS)}")
    if filt not in FILTERS:
        raise ValueError(f"filt must be one of {', '.join(FILTERS)}")
    refs, traces = make_refs(outdir / "refs", seed, subarray, filt)
    if background:
        refs["bkg"] = outdir / "refs" / "bkg.fits"
        make_bkg(refs["bkg"], filt=filt)
    scene = _Scene(nints, seed, traces, refs["flat"], subarray, background)
    path = outdir / f"{name or DEFAULT_NAME}_rateints.fits"
    m = datamodels.CubeModel(**{MODEL_ATTR[k]: lazy_array((nints, scene.ny, NX), dt) for k, dt in CUBES.items()})
    _set_meta(m, scene, path.name, pwcpos, subarray, filt)
    m.int_times = scene.int_times(m.get_dtype("int_times"))
    write_streamed(path, m, scene.block, nints, chunk or 2)
    return {"rateints": [path], "refs": {k: str(v) for k, v in refs.items()}, "nints": nints, "seed": seed,
            "params": {"extract_1d": {"soss_atoca": False}},   # box: ATOCA's per-exposure setup outlasts a demo
            "pwcpos": pwcpos, "transit_depth": TRANSIT_DEPTH, "lightcurve": scene.lc.tolist(),
            "trace_y_order1_x1000": float(traces[1].y[1000]), "trace_y_order2_x1000": float(traces[2].y[1000])}
