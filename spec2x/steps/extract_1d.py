"""extract_1d: box extraction of one spectrum per integration, as jwst 3.0.0 does by default.

Everything fixed for the exposure is planned once in numpy from the EXTRACT1D (JSON) and APCORR
references, the wavelength map and the WCS: aperture and background weights, the output spectral
elements (finite wavelength under the aperture, in detector order), their wavelengths, the
aperture-correction grid and the EXTRACT1D header keywords.  The cubes are then reduced lazily, one
numba call per integration chunk (``kernels.extract1d``).

jwst's default step parameters are assumed (box extraction, background from the reference's
``bkg_coeff`` regions, no position offset), so a PSF reference is accepted but not used.
NIRISS SOSS has its own extraction (``spec2x.soss_extract``), chosen by EXP_TYPE; its ``soss_*``
parameters are ignored by other modes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import dask
import dask.array as da
import numpy as np
import xarray as xr
from astropy.io import fits

from kernels import extract1d as k1d
from spec2x.errors import NotImplementedForMode, RefError
from spec2x.meta import exposure_keywords

# jwst 3.0.0's defaults (Extract1dStep spec) of the parameters spec2x supports.
PARAMETERS = {"soss_atoca": True, "soss_width": 40.0, "soss_bad_pix": "masking", "soss_order_3": True,
              "soss_threshold": 1e-2, "soss_n_os": 2, "soss_rtol": 1e-4, "soss_max_grid_size": 20000,
              "soss_tikfac": None, "soss_wave_grid_in": None, "soss_wave_grid_out": None, "soss_estimate": None,
              "soss_modelname": None,
              # spec2x only: solve ATOCA's joint model with jwst's dense inverse (jwst's bits in the order overlap,
              # at n^3 setup time and n^2 memory for the n ~ 16000-point grid) instead of sparse LU factors
              "soss_dense_inverse": False}

HORIZONTAL = 1
CUBES = ("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat")
# EXTRACT1D header keyword -> SpecModel attribute (what product writers set).
SPEC_META = {"SLTNAME": "name", "SRCTYPE": "source_type", "EXTRXSTR": "extraction_xstart",
             "EXTRXSTP": "extraction_xstop", "EXTRYSTR": "extraction_ystart", "EXTRYSTP": "extraction_ystop",
             "SLIT_RA": "slit_ra", "SLIT_DEC": "slit_dec", "SPORDER": "spectral_order",
             "DISPAXIS": "dispersion_direction", "DETECTOR": "detector", "PA_APER": "position_angle"}
# Slit keywords jwst copies from the calibrated cube (a cut-out's) to each spectrum, when they are set.
SLIT_META = {"SOURCEID": "source_id", "SRCNAME": "source_name", "SRCALIAS": "source_alias",
             "SRCXPOS": "source_xpos", "SRCYPOS": "source_ypos", "SRCRA": "source_ra", "SRCDEC": "source_dec"}
# Exposure types for which jwst would move the aperture to the source position by default.
_SRCPOS_EXPTYPES = ("MIR_LRS-FIXEDSLIT", "NRS_FIXEDSLIT", "NRS_MSASPEC", "NRS_BRIGHTOBJ")


@dataclass(frozen=True)
class Plan:
    """Per-exposure inputs of the kernels (small numpy arrays and scalars)."""

    rows: np.ndarray
    prof: np.ndarray
    ap_cols: np.ndarray
    ap_n: np.ndarray
    bg_cols: np.ndarray
    bg_n: np.ndarray
    ycoef: np.ndarray
    bkg_mat: np.ndarray
    mode: int
    half: int
    wavelength: np.ndarray
    to_jy: bool
    pixar: float
    use_apcorr: bool
    ap_size: np.ndarray
    ap_wl: np.ndarray
    ap_table: np.ndarray
    horizontal: bool
    megajansky: bool = False   # NIRSpec point source: the cube is in MJy, not MJy/sr
    apcorr: np.ndarray | None = None   # NIRSpec: one aperture correction per output element


def run(ds: xr.Dataset, refs: dict) -> xr.Dataset:
    """Spectra ``(integration, spectral)`` with the x1dints columns, lazily extracted from ``ds``."""
    return apply(ds, prepare(ds, refs))


def prepare(ds: xr.Dataset, refs: dict, **params):
    """(kernel plan, EXTRACT1D keywords, column units) for this exposure; a ``SossPlan`` for NIRISS SOSS."""
    if str(exposure_keywords(ds).get("EXP_TYPE", "")).upper() == "NIS_SOSS":
        from spec2x import soss_extract  # imported for SOSS only: ATOCA's modules cost 0.3 s to import

        values = {**PARAMETERS, **params}
        return soss_extract.prepare(ds, refs, **{k: v for k, v in values.items() if k.startswith("soss_")})
    return _plan(ds, refs)


def apply(ds: xr.Dataset, prepared) -> xr.Dataset:
    """Spectra of ``ds``: lazily (one task per chunk) for dask cubes, at once for numpy ones."""
    if not isinstance(prepared, tuple):  # a SossPlan
        from spec2x import soss_extract

        return soss_extract.apply(ds, prepared)
    plan, ext_header, units = prepared
    if isinstance(ds["sci"].data, da.Array):
        sci = _cube(ds, "sci")
        cubes = [sci] + [_cube(ds, name, sci) for name in CUBES[1:]]
        stacked = da.map_blocks(_extract_block, *cubes, dask.delayed(plan, pure=True), dtype=np.float64,
                                chunks=(sci.chunks[0], (len(k1d.COLUMNS),), (plan.rows.size,)))
    else:
        zeros = np.zeros(ds["sci"].shape, np.float32) if any(n not in ds for n in CUBES) else None
        cubes = [ds[n].variable.transpose("integration", "y", "x").values if n in ds else zeros for n in CUBES]
        stacked = _extract_block(*cubes, plan)
    dims = ("integration", "spectral")
    data_vars = {"wavelength": (("spectral",), plan.wavelength, {"units": "um"})}
    for k, name in enumerate(k1d.COLUMNS):
        column = stacked[:, k, :]
        if name == "dq":
            column = column.astype(np.uint32)
        data_vars[name] = (dims, column, {"units": units[name]} if units.get(name) else {})
    coords = {name: c for name, c in ds.coords.items() if c.dims == ("integration",)}
    attrs = {k: v for k, v in ds.attrs.items() if k != "wcs"}
    attrs.update(extract1d=ext_header,
                 spec_meta={{**SPEC_META, **SLIT_META}[k]: v for k, v in ext_header.items()})
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _extract_block(sci, err, dq, vp, vr, vf, plan: Plan):
    """Kernel call on one integration chunk: (n, y, x) cubes -> (n, 17, nout) columns."""
    cubes = [np.asarray(a, np.uint32 if a is dq else np.float32) for a in (sci, err, dq, vp, vr, vf)]
    if plan.horizontal:
        cubes = [np.swapaxes(a, 1, 2) for a in cubes]
    if plan.horizontal and _row_wise(plan):
        raw = k1d.box_extract_rows(*cubes, plan.rows, plan.prof, plan.ap_cols, plan.ap_n, plan.bg_cols,
                                   plan.bg_n, plan.ycoef, plan.bkg_mat, plan.mode)
    else:
        raw = k1d.box_extract(*cubes, plan.rows, plan.prof, plan.ap_cols, plan.ap_n, plan.bg_cols,
                              plan.bg_n, plan.ycoef, plan.bkg_mat, plan.mode, plan.half)
    out = k1d.calibrate(raw, plan.wavelength, plan.to_jy and not plan.megajansky, plan.pixar, plan.use_apcorr,
                        plan.ap_size, plan.ap_wl, plan.ap_table)
    out = from_megajansky(out, plan.pixar) if plan.megajansky else out
    return out if plan.apcorr is None else apply_correction(out, plan.apcorr)


def _row_wise(plan: Plan) -> bool:
    """Whether ``kernels.extract1d.box_extract_rows`` covers the plan: no smoothing, no background or
    an order-0 polynomial one (the other cases take ``box_extract``)."""
    return plan.half == 0 and (plan.mode == k1d.MODE_NONE or (plan.mode == k1d.MODE_POLY and plan.ycoef.shape[1] == 1))


_COL = {name: k for k, name in enumerate(k1d.COLUMNS)}


def from_megajansky(out: np.ndarray, pixar: float) -> np.ndarray:
    """jwst's units for spectra of a cube in MJy (NIRSpec point sources): flux in Jy (x 1e6, variances
    x 1e12), no surface brightness (0), background per steradian (/ PIXAR_SR, variances / PIXAR_SR²)."""
    c = _COL
    out[:, c["flux"]] *= 1.0e6
    for name in ("flux_var_poisson", "flux_var_rnoise", "flux_var_flat"):
        out[:, c[name]] *= 1.0e12
    out[:, c["flux_error"]] = np.sqrt(out[:, c["flux_var_poisson"]] + out[:, c["flux_var_rnoise"]]
                                      + out[:, c["flux_var_flat"]])
    for name in ("surf_bright", "sb_error", "sb_var_poisson", "sb_var_rnoise", "sb_var_flat"):
        out[:, c[name]] = 0.0
    out[:, c["background"]] /= pixar
    for name in ("bkgd_var_poisson", "bkgd_var_rnoise", "bkgd_var_flat"):
        out[:, c[name]] = out[:, c[name]] / pixar ** 2
    out[:, c["bkgd_error"]] = np.sqrt(out[:, c["bkgd_var_poisson"]] + out[:, c["bkgd_var_rnoise"]]
                                      + out[:, c["bkgd_var_flat"]])
    return out


def apply_correction(out: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """Multiply flux, surface brightness and their errors by ``corr`` and their variances by its square
    (jwst's tabulated NIRSpec aperture correction; the background is not corrected)."""
    c = _COL
    for name in ("flux", "flux_error", "surf_bright", "sb_error"):
        out[:, c[name]] *= corr
    for name in ("flux_var_poisson", "flux_var_rnoise", "flux_var_flat", "sb_var_poisson", "sb_var_rnoise",
                 "sb_var_flat"):
        out[:, c[name]] *= corr ** 2
    return out


def _cube(ds: xr.Dataset, name: str, like=None):
    """The dask cube of ``name`` in whole frames, chunked like ``like``; zeros for an absent variance
    (as jwst uses)."""
    if name not in ds:
        return da.zeros(like.shape, np.float32, chunks=like.chunks)
    data = ds[name].transpose("integration", "y", "x").data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=(max(1, min(64, data.shape[0])), -1, -1))
    wanted = like.chunks if like is not None else (data.chunks[0], (data.shape[1],), (data.shape[2],))
    return data if data.chunks == wanted else data.rechunk(wanted)


# ----------------------------------------------------------------------------------- planning


def _plan(ds: xr.Dataset, refs: dict):
    """Kernel plan, EXTRACT1D header keywords and column units for this exposure."""
    kw = exposure_keywords(ds)
    exp_type = str(kw.get("EXP_TYPE", "")).upper()
    shape = (ds.sizes["y"], ds.sizes["x"])
    source_type = kw.get("SRCTYPE")
    dispaxis = kw.get("DISPAXIS")
    if dispaxis is None:
        raise NotImplementedForMode("extract_1d: DISPAXIS is missing; jwst skips the extraction")
    dispaxis = int(dispaxis)
    sp_order = int(kw.get("SPORDER") or 1)
    slitname = exp_type
    if exp_type == "NRS_BRIGHTOBJ" and kw.get("SLTNAME"):  # the slit of the cut-out
        slitname = str(kw["SLTNAME"])
    ref = _read_extract1d(refs.get("extract1d"))
    params = _extract_params(ref, slitname, sp_order, shape, exp_type, source_type, dispaxis)

    wl2d = _wavelength_map(ds)
    profile, lower, upper = _box_weights(shape, params, wl2d, "src_coeff")
    profile[~np.isfinite(wl2d)] = 0.0
    bg = None
    if params["subtract_background"] and params["bkg_coeff"] is not None:
        bg = _box_weights(shape, params, wl2d, "bkg_coeff")[0]
    horizontal = dispaxis == HORIZONTAL
    nonzero = np.nonzero(profile.sum(axis=dispaxis - 1) > 0)[0]
    wl1d = _mean_wavelength(wl2d, profile, dispaxis)
    valid = np.isfinite(wl1d)
    if not valid.any() or nonzero.size == 0:
        raise NotImplementedForMode(f"extract_1d: spectrum of {slitname} is empty (no valid wavelength)")

    # Kernel layout is (spectral, cross): transpose for horizontal dispersion.
    prof_sc = np.ascontiguousarray(profile if not horizontal else profile.T, dtype=np.float64)
    bg_sc = None if bg is None else (bg if not horizontal else bg.T)
    ncross = prof_sc.shape[1]
    order = int(params["bkg_order"]) if params["bkg_fit"] == "poly" else 0
    if params["bkg_fit"] == "poly" and (order < 0 or order != params["bkg_order"]):
        raise RefError("extract_1d", "extract1d", "bkg_order must be an integer >= 0")
    ycoef = np.ones((ncross, order + 1))
    y = np.linspace(-1, 1, ncross)
    for k in range(1, order + 1):
        ycoef[:, k] = ycoef[:, k - 1] * y
    bkg_mat = np.sum(ycoef[np.newaxis, :, :] * prof_sc[:, :, np.newaxis], axis=1)
    mode = {None: k1d.MODE_NONE, "poly": k1d.MODE_POLY, "median": k1d.MODE_MEDIAN}.get(
        params["bkg_fit"] if bg is not None else None)
    if mode is None:
        raise RefError("extract_1d", "extract1d", f"bkg_fit={params['bkg_fit']!r}: jwst accepts 'poly' or 'median'")
    ap_cols, ap_n = _column_lists(prof_sc != 0)
    bg_cols, bg_n = _column_lists(np.zeros_like(prof_sc, bool) if bg_sc is None else bg_sc != 0)
    rows = np.nonzero(valid)[0].astype(np.int64)
    wavelength = wl1d[valid]

    s_photom = str(kw.get("S_PHOTOM") or "").upper()
    to_jy = s_photom == "COMPLETE"
    pixar = kw.get("PIXAR_SR") if to_jy else 1.0
    pixar = 1.0 if pixar is None else float(pixar)

    ra, dec = _aperture_radec(ds.attrs.get("wcs"), profile)
    use_apcorr = (str(source_type or "").upper() == "POINT" and refs.get("apcorr") is not None)
    nirspec_apcorr = use_apcorr and str(kw.get("INSTRUME", "")).upper() == "NIRSPEC"
    ap_size = ap_wl = np.zeros(2)
    ap_table = np.zeros((2, 2))
    if use_apcorr and not nirspec_apcorr:
        ap_size, ap_wl, ap_table = _apcorr_grid(refs["apcorr"], kw)

    plan = Plan(rows=rows, prof=prof_sc, ap_cols=ap_cols, ap_n=ap_n, bg_cols=bg_cols, bg_n=bg_n,
                ycoef=ycoef, bkg_mat=bkg_mat, mode=mode, half=params["smoothing_length"] // 2,
                wavelength=wavelength, to_jy=to_jy, pixar=pixar, use_apcorr=use_apcorr and not nirspec_apcorr,
                megajansky=to_jy and str(source_type or "").upper() == "POINT"
                and str(kw.get("INSTRUME", "")).upper() == "NIRSPEC",
                ap_size=ap_size, ap_wl=ap_wl, ap_table=ap_table, horizontal=horizontal)
    if nirspec_apcorr:
        table = nirspec_apcorr_table(refs["apcorr"], kw, slitname, ds.attrs.get("wcs"), (ra, dec, np.median(wl1d)),
                                     dispaxis)
        plan = replace(plan, apcorr=phase_correction(table, wavelength, _first_npixels(ds, plan)))

    left, right = int(nonzero[0]), int(nonzero[-1])
    if horizontal:
        xs, ys = (left + 1, right + 1), (lower + 1, upper + 1)
    else:
        xs, ys = (lower + 1, upper + 1), (left + 1, right + 1)
    header = {"SLTNAME": slitname if slitname not in (None, "ANY") else None, "SRCTYPE": source_type,
              "EXTRXSTR": xs[0], "EXTRXSTP": xs[1], "EXTRYSTR": ys[0], "EXTRYSTP": ys[1],
              "SLIT_RA": ra, "SLIT_DEC": dec, "SPORDER": sp_order, "DISPAXIS": dispaxis,
              "DETECTOR": kw.get("DETECTOR"), "PA_APER": kw.get("PA_APER")}
    header.update({k: kw.get(k) for k in SLIT_META})
    header = {k: v for k, v in header.items() if v is not None}
    return plan, header, _units(to_jy)


def _units(to_jy: bool) -> dict:
    """Column units, as jwst labels them with and without photom."""
    f, f2, sb, sb2 = ("Jy", "Jy^2", "MJy/sr", "MJy^2 / sr^2") if to_jy else \
        ("DN/s", "DN^2 / s^2", "DN/s", "DN^2 / s^2")
    return {"flux": f, "flux_error": f, "flux_var_poisson": f2, "flux_var_rnoise": f2, "flux_var_flat": f2,
            "surf_bright": sb, "sb_error": sb, "sb_var_poisson": sb2, "sb_var_rnoise": sb2, "sb_var_flat": sb2,
            "background": sb, "bkgd_error": sb, "bkgd_var_poisson": sb2, "bkgd_var_rnoise": sb2,
            "bkgd_var_flat": sb2}


def _read_extract1d(path):
    """The EXTRACT1D reference as a dict (None when N/A); jwst accepts JSON only."""
    if path is None or str(path).upper() == "N/A":
        return None
    if not str(path).lower().endswith("json"):
        raise RefError("extract_1d", "extract1d", f"{path}: must be a JSON file")
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RefError("extract_1d", "extract1d", f"{path}: invalid JSON ({exc})") from None


def _extract_params(ref, slitname, sp_order, shape, exp_type, source_type, dispaxis) -> dict:
    """The aperture's extraction parameters, with jwst's defaults and default step parameters."""
    ny, nx = shape
    base = {"xstart": 0, "xstop": nx - 1, "ystart": 0, "ystop": ny - 1, "src_coeff": None,
            "bkg_coeff": None, "extract_width": None, "independent_var": "pixel", "bkg_fit": None,
            "bkg_order": 0, "smoothing_length": 0, "subtract_background": False, "dispaxis": dispaxis}
    if ref is None:
        return base
    partial = False
    for aper in ref.get("apertures", []):
        aid = aper.get("id")
        if aid is None or aid == "dummy" or not (aid == slitname or aid == "ANY" or slitname == "ANY"):
            continue
        if aper.get("region_type", "target") != "target":
            continue
        order = aper.get("spectral_order", sp_order)
        if not (order == sp_order or order == "ANY"):
            partial = True
            continue
        p = dict(base)
        for key in ("xstart", "xstop", "ystart", "ystop"):
            p[key] = aper.get(key, base[key])
        p["src_coeff"] = aper.get("src_coeff")
        p["bkg_coeff"] = aper.get("bkg_coeff")
        p["extract_width"] = aper.get("extract_width")
        p["subtract_background"] = p["bkg_coeff"] is not None
        p["bkg_fit"] = aper.get("bkg_fit", "poly") if p["subtract_background"] else None
        p["bkg_order"] = aper.get("bkg_order", 0)
        p["independent_var"] = str(aper.get("independent_var", "pixel")).lower()
        use_posn = aper.get("use_source_posn")
        if use_posn is None:
            use_posn = exp_type in _SRCPOS_EXPTYPES
        if str(source_type).upper() == "POINT" and use_posn and exp_type in _SRCPOS_EXPTYPES:
            raise NotImplementedForMode(f"extract_1d: source-position aperture shifts ({exp_type})")
        p["smoothing_length"] = _smoothing_length(aper.get("smoothing_length", 0))
        return p
    what = f"spectral order {sp_order}" if partial else f"aperture id {slitname!r}"
    raise RefError("extract_1d", "extract1d", f"no {what} in the reference")


def _smoothing_length(value) -> int:
    """jwst's rules: round to an integer, values below 3 mean none, even values drop by one."""
    n = int(np.round(value)) if value != int(value) else int(value)
    if n != 0 and n < 3:
        return 0
    return n - 1 if n != 0 and n % 2 == 0 else n


def _limits_weights(profile, dval, lower, upper, partial):
    """Add an aperture [lower, upper] (inclusive pixel indices) to ``profile`` in place.

    Whole pixels inside get 1; with ``partial``, pixels cut by a limit get the covered fraction
    unless they already have more.
    """
    profile[(dval >= lower) & (dval <= upper)] = 1.0
    if partial:
        for frac in (dval - lower + 1, upper - dval + 1):
            take = (frac > 0) & (frac < 1) & (profile < frac)
            profile[take] = frac[take]


def _box_weights(shape, p, wl2d, key):
    """Aperture weights image (source or background regions) and its mean lower/upper limits."""
    yidx, xidx = np.mgrid[: shape[0], : shape[1]]
    horizontal = p["dispaxis"] == HORIZONTAL
    dval = yidx if horizontal else xidx
    partial = not (key == "bkg_coeff" and p["bkg_fit"] == "median")
    profile = np.zeros(shape)
    if p[key] is not None:
        coeffs = p[key]
        if len(coeffs) % 2:
            raise RefError("extract_1d", "extract1d", f"{key} must hold pairs of lower/upper limits")
        if p["independent_var"].startswith("wavelength"):
            ival = wl2d
        else:
            ival = (xidx if horizontal else yidx).astype(np.float32)
        lower = upper = None
        for lo_c, hi_c in zip(coeffs[0::2], coeffs[1::2]):
            # Polynomial limits are pixel-centred; shift to start/stop convention.
            lo = np.polynomial.polynomial.polyval(ival.astype(np.float64), lo_c) + 0.5
            hi = np.polynomial.polynomial.polyval(ival.astype(np.float64), hi_c) - 0.5
            _limits_weights(profile, dval, lo, hi, partial)
            mlo, mhi = np.mean(lo), np.mean(hi)
            lower = mlo if lower is None else min(lower, mlo)
            upper = mhi if upper is None else max(upper, mhi)
    elif p["extract_width"] is not None:
        middle = (p["ystart"] + p["ystop"]) / 2.0 if horizontal else (p["xstart"] + p["xstop"]) / 2.0
        width = p["extract_width"]
        lower = middle - (width - 1.0) / 2.0
        upper = lower + width - 1
        _limits_weights(profile, dval, lower, upper, True)
    else:
        lower, upper = (p["ystart"], p["ystop"]) if horizontal else (p["xstart"], p["xstop"])
        _limits_weights(profile, dval, lower, upper, True)
    start, stop = (p["xstart"], p["xstop"]) if horizontal else (p["ystart"], p["ystop"])
    cut = (slice(None), slice(None, int(np.ceil(start)))) if horizontal else slice(None, int(np.ceil(start)))
    profile[cut] = 0
    cut = (slice(None), slice(int(np.floor(stop)) + 1, None)) if horizontal else slice(int(np.floor(stop)) + 1, None)
    profile[cut] = 0
    return profile, lower, upper


def _wavelength_map(ds: xr.Dataset) -> np.ndarray:
    """Wavelength per pixel as jwst's extract_1d sees it: the float32 WAVELENGTH array.

    jwst reads the model's wavelength array, which photom stored as float32; without one it
    evaluates the WCS in float64.
    """
    if "wavelength" in ds.coords or "wavelength" in ds:
        wl = np.asarray(ds["wavelength"].transpose("y", "x").values, dtype=np.float32)
        if not (np.nanmin(wl) == 0.0 and np.nanmax(wl) == 0.0):
            return wl
    wcs = ds.attrs.get("wcs")
    if wcs is None:
        raise NotImplementedForMode("extract_1d: no wavelength map and no WCS (run assign_wcs first)")
    y, x = np.indices((ds.sizes["y"], ds.sizes["x"]), dtype=np.float64)
    return np.asarray(wcs(x, y)[2], dtype=np.float64)


def _mean_wavelength(wl2d, profile, dispaxis):
    """Aperture-weighted wavelength of each spectral element (NaN where nothing is weighted)."""
    mask = np.isnan(wl2d) | (profile <= 0)
    axis = 0 if dispaxis == HORIZONTAL else 1
    avg = np.ma.average(np.ma.masked_array(wl2d, mask=mask),
                        weights=np.ma.masked_array(profile, mask=mask), axis=axis)
    return np.asarray(avg.filled(np.nan), dtype=np.float64)


def _column_lists(mask):
    """Per spectral index, the cross indices where ``mask`` is set (padded) and their count."""
    counts = mask.sum(axis=1).astype(np.int64)
    cols = np.zeros((mask.shape[0], max(1, int(counts.max(initial=0)))), np.int64)
    for s in np.nonzero(counts)[0]:
        idx = np.nonzero(mask[s])[0]
        cols[s, : idx.size] = idx
    return cols, counts


def _aperture_radec(wcs, profile):
    """RA/Dec at the profile-weighted centre of the aperture (None when the WCS gives NaN)."""
    if wcs is None:
        return None, None
    weights = np.where(profile > 0, profile, 0.0)
    if weights.sum() == 0:
        weights[:] = 1
    yidx, xidx = np.mgrid[: profile.shape[0], : profile.shape[1]]
    cy = np.average(yidx, weights=weights)
    cx = np.average(xidx, weights=weights)
    coords = wcs(cx, cy)
    if np.any(np.isnan(coords)):
        return None, None
    return float(coords[0]), float(coords[1])


def _apcorr_grid(path, kw):
    """(sizes in pixels, sorted wavelengths, apcorr[size, wavelength]) of the matching APCORR row."""
    try:
        with fits.open(path) as hdul:
            table = np.array(hdul["APCORR"].data)
            sizeunit = hdul["APCORR"].header.get("SIZEUNIT", "pixels")
    except (OSError, KeyError) as exc:
        raise RefError("extract_1d", "apcorr", f"{path}: no APCORR table ({exc})") from None
    names = table.dtype.names
    instrument = str(kw.get("INSTRUME", "")).upper()
    if instrument != "MIRI" or "subarray" not in names:
        raise NotImplementedForMode(f"extract_1d: {path}: aperture correction for {instrument} {kw.get('EXP_TYPE')} "
                                    "is not implemented (give apcorr=N/A to extract without it)")
    subarray = str(kw.get("SUBARRAY", "")).upper()
    match = [i for i, s in enumerate(table["subarray"]) if _text(s).upper() == subarray]
    if len(match) != 1:
        raise RefError("extract_1d", "apcorr", f"{path}: {len(match)} rows for SUBARRAY={subarray}; need one")
    row = table[match[0]]
    nwl, nsize = int(row["nelem_wl"]), int(row["nelem_size"])
    wl = np.asarray(row["wavelength"][:nwl], np.float64)
    size = np.asarray(row["size"][:nsize], np.float64)
    corr = np.asarray(row["apcorr"][:nwl, :nsize], np.float64)
    if str(sizeunit).startswith("arcsec"):
        # jwst 3.0.0 fails here too (it divides the uint8 size column in place).
        raise RefError("extract_1d", "apcorr", f"{path}: SIZEUNIT={sizeunit}; only pixel sizes are supported")
    order = np.argsort(wl)
    return size, wl[order], np.ascontiguousarray(corr[order].T)


# ----------------------------------------------------------------- NIRSpec aperture correction
_PIXEL_PHASE = 0.5   # jwst's default: the step never passes the source's pixel phase


def nirspec_apcorr_table(path, kw, slitname, wcs, location, dispaxis) -> dict:
    """The APCORR row of this FILTER/GRATING/slit (NrsFsApcorrModel layout) as full arrays, sizes in
    pixels: jwst converts arcsec sizes with the cross-dispersion pixel scale at ``location``
    (aperture RA/Dec, median wavelength), in float32 in place."""
    try:
        with fits.open(path) as hdul:
            table = np.array(hdul["APCORR"].data)
            sizeunit = str(hdul["APCORR"].header.get("SIZEUNIT", "pixels"))
    except (OSError, KeyError) as exc:
        raise RefError("extract_1d", "apcorr", f"{path}: no APCORR table ({exc})") from None
    names = table.dtype.names or ()
    missing = [c for c in ("filter", "grating", "slit", "wavelength", "size", "pixphase", "apcorr") if c not in names]
    if missing:
        raise RefError("extract_1d", "apcorr", f"{path}: APCORR table lacks columns {missing} (NIRSpec FS format)")
    wanted = {"filter": kw.get("FILTER"), "grating": kw.get("GRATING"), "slit": slitname}
    match = np.ones(len(table), bool)
    for column, value in wanted.items():
        match &= np.array([_text(v).strip().upper() == str(value).upper() for v in table[column]])
    if match.sum() != 1:
        what = " ".join(f"{k.upper()}={v}" for k, v in wanted.items())
        raise RefError("extract_1d", "apcorr", f"{path}: {int(match.sum())} rows for {what}; need one")
    row = table[np.nonzero(match)[0][0]]
    size = np.array(row["size"], np.float32)
    if sizeunit.startswith("arcsec"):
        size /= _cross_dispersion_scale(wcs, location, dispaxis) * 3600.0
    return {"wavelength": np.asarray(row["wavelength"]), "size": size, "pixphase": np.asarray(row["pixphase"]),
            "apcorr": np.asarray(row["apcorr"])}


def _cross_dispersion_scale(wcs, location, dispaxis) -> float:
    """Degrees per pixel across the dispersion at ``location`` (as stcal's compute_scale)."""
    from stcal.alignment.util import compute_scale

    if wcs is None or location[0] is None:
        raise NotImplementedForMode("extract_1d: APCORR sizes in arcsec need the aperture's RA/Dec")
    return compute_scale(wcs, location, disp_axis=dispaxis)


def phase_correction(table: dict, wavelength: np.ndarray, npixels: np.ndarray) -> np.ndarray:
    """jwst's pixel-phase correction for each (wavelength, npixels): the apcorr[size, wavelength, phase]
    cube linearly interpolated to phase 0.5, the sizes to the wavelength, then bilinear (clamped) in
    (wavelength, size); 1 where the wavelength is outside the table, the sizes are not increasing, or
    the correction is 0.  scipy's degree-1 spline, as jwst, so the factors are the same to the bit."""
    from scipy.interpolate import RectBivariateSpline, interp1d

    try:
        at_phase = interp1d(table["pixphase"], table["apcorr"])(_PIXEL_PHASE)
    except ValueError:
        return np.ones(wavelength.size)
    sizes = interp1d(table["wavelength"], table["size"], bounds_error=False)
    order = np.argsort(table["wavelength"])
    grid_wl = np.asarray(table["wavelength"][order], np.float64)
    grid = np.ascontiguousarray(at_phase[:, order].T, np.float64)
    lo, hi = np.min(table["wavelength"]), np.max(table["wavelength"])
    corr = np.ones(wavelength.size)
    inside = np.flatnonzero((lo <= wavelength) & (wavelength <= hi))
    # the sizes at every wavelength in one call: the same elementwise arithmetic as one call per wavelength
    size_at = np.asarray(sizes(wavelength[inside]), np.float64).T
    for o, size_wl in zip(inside, size_at):
        if not np.all(np.diff(size_wl) > 0):
            continue
        c = RectBivariateSpline(grid_wl, size_wl, grid, kx=1, ky=1)(wavelength[o], npixels[o]).item()
        corr[o] = c if c != 0 else 1.0
    return corr


def _first_npixels(ds: xr.Dataset, plan: Plan) -> np.ndarray:
    """Pixels in the aperture of each output element in the first integration: jwst tabulates the
    NIRSpec correction from them once and applies it to every integration."""
    first = ds.isel(integration=slice(0, 1))
    present = [n for n in CUBES if n in first]
    # one compute for all cubes: the steps before run once on the first chunk, not once per cube
    values = dict(zip(present, dask.compute(*[first[n].transpose("integration", "y", "x").data for n in present])))
    zeros = np.zeros((1,) + first["sci"].shape[1:], np.float32)
    return _extract_block(*[values.get(n, zeros) for n in CUBES], plan)[0, _COL["npixels"]]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
