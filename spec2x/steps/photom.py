"""photom: DN/s -> MJy/sr for MIRI imager-detector data (imaging and LRS) and NIRCam grism time series,
DN/s -> MJy for NIRSpec BOTS (point source, S1600A1 row), and, for NIRISS SOSS, DN/s -> MJy on the
extracted spectra (``prepare_soss_spectra``), as jwst 3.0.0.  ``CALIBRATORS`` maps INSTRUME to each
instrument's conversion of a cube.

MIRI:

The PHOTOM row is picked by (FILTER, SUBARRAY) (then SUBARRAY=GENERIC).  Conversion = PHOTMJSR
(divided by the time-dependence correction when the reference has one) x RELRESPONSE interpolated at
each pixel's wavelength (LRS).  The (y, x) conversion is built once in numpy; the cubes are scaled
lazily (SCI, ERR x c; VAR_* x c²).  Pixels without a conversion (NaN wavelength or outside the table)
get DO_NOT_USE, then NaN through match_nans_and_flags.  The AREA reference, cut to the subarray,
becomes the ``area`` coordinate; PIXAR_SR/PIXAR_A2 come from it (else from the PHOTOM header).
"""

from __future__ import annotations

from dataclasses import dataclass

import astropy.units as u
import numpy as np
import xarray as xr
from astropy.io import fits
from stdatamodels.jwst import datamodels

from kernels import pixel
from spec2x.blockwise import apply_kernel, variable_or_zeros
from spec2x.dq import DO_NOT_USE
from spec2x.errors import NotImplementedForMode, RefError
from spec2x.meta import keyword, with_keywords

MJSR_TO_UJA2 = (u.megajansky / u.steradian).to(u.microjansky / u.arcsecond / u.arcsecond)
_MICRONS_100 = 1.0e-4  # 100 microns in metres: smaller table wavelengths are in metres
_VARIANCES = ("var_poisson", "var_rnoise", "var_flat")


@dataclass(frozen=True)
class Prepared:
    """What photom does to every integration: keywords, the AREA map, the conversion (scalar or map)."""

    primary: dict
    sci: dict
    err: dict | None = None
    area: np.ndarray | None = None
    conversion: object = None
    no_cal: np.ndarray | None = None


def run(ds: xr.Dataset, refs: dict) -> xr.Dataset:
    """Flux-calibrate ``ds``; S_PHOTOM=SKIPPED when the PHOTOM reference is N/A."""
    return apply(ds, prepare(ds, refs))


def apply(ds: xr.Dataset, p: Prepared) -> xr.Dataset:
    if isinstance(p, SpectraConversion):
        return scale_spectra(ds, p)
    out = ds if p.area is None else ds.assign_coords(area=(("y", "x"), p.area))
    if p.conversion is not None:
        out = scale(out, p.conversion, p.no_cal)
    extra = {"err": p.err} if p.err is not None else {}
    return with_keywords(out, primary=p.primary, sci=p.sci, **extra)


def prepare(ds: xr.Dataset, refs: dict) -> Prepared:
    """Conversion factors and keywords for this exposure, from the PHOTOM and AREA references."""
    if not refs.get("photom"):
        return Prepared(primary={"S_PHOTOM": "SKIPPED"}, sci={})
    if "order" in ds.dims and str(keyword(ds, "EXP_TYPE", "")).upper() == "NIS_SOSS":
        return prepare_soss_spectra(ds, refs["photom"])
    instrument = str(keyword(ds, "INSTRUME", "")).upper()
    calibrator = CALIBRATORS.get(instrument)
    if calibrator is None:
        raise NotImplementedForMode(f"photom: {instrument} is not implemented (only {', '.join(CALIBRATORS)})")
    return calibrator(ds, refs)


def _prepare_miri(ds: xr.Dataset, refs: dict) -> Prepared:
    """MIRI imager detector (imaging, LRS): row by (FILTER, SUBARRAY), relresponse(λ) for LRS."""
    instrument = str(keyword(ds, "INSTRUME", "")).upper()
    detector = str(keyword(ds, "DETECTOR", "")).upper()
    if instrument != "MIRI" or detector != "MIRIMAGE":
        raise NotImplementedForMode(f"photom: only MIRI MIRIMAGE is implemented, not {instrument} {detector}")

    with fits.open(refs["photom"]) as hdul:
        table = np.array(hdul["PHOTOM"].data)
        timecoeffs = {n: np.array(hdul[n].data) for n in ("TIMECOEFF_LINEAR", "TIMECOEFF_EXPONENTIAL",
                                                            "TIMECOEFF_POWERLAW") if n in hdul}
    area, sci_kw = _area_info(ds, refs.get("area"), refs["photom"])

    row = _find_row(table, keyword(ds, "FILTER"), keyword(ds, "SUBARRAY"), refs["photom"])
    if row is None:  # jwst leaves the data uncalibrated and still records COMPLETE
        return Prepared(primary={}, sci=sci_kw, area=area)
    conversion = np.float32(table["photmjsr"][row])  # the schema's dtypes: float32 columns
    correction = _time_correction(timecoeffs, len(table), keyword(ds, "EXPMID"))
    if correction is not None and correction[row] != 1.0:
        conversion = conversion / correction[row]
    sci_kw.update(PHOTMJSR=float(conversion), PHOTUJA2=float(conversion * MJSR_TO_UJA2), BUNIT="MJy/sr")

    no_cal = None
    if "wavelength" in table.dtype.names:
        conversion, no_cal = _conversion_2d(conversion, table[row], _wavelength_map(ds))
    err_hdr = {**ds.attrs.get("err", {}), "BUNIT": "MJy/sr"}
    return Prepared(primary={}, sci=sci_kw, err=err_hdr, area=area, conversion=conversion, no_cal=no_cal)


def scale(ds: xr.Dataset, conversion, no_cal=None) -> xr.Dataset:
    """Lazy SCI, ERR x conversion and VAR_* x conversion² (computed in the conversion's dtype, stored
    float32 as jwst's in-place products are); DO_NOT_USE where ``no_cal``; NaN/flag matching; one fused
    kernel pass per chunk."""
    shape = (ds.sizes["y"], ds.sizes["x"])
    factor = np.broadcast_to(np.asarray(conversion), shape)
    flags = np.zeros(shape, np.uint32) if no_cal is None else np.where(no_cal, DO_NOT_USE, np.uint32(0))
    present = np.array([name in ds.data_vars for name in _VARIANCES])
    inputs = ["sci", "err", "dq", *(variable_or_zeros(ds, name) for name in _VARIANCES)]
    outputs = {"sci": np.float32, "err": np.float32, "dq": np.uint32,
               **{name: np.float32 for name in _VARIANCES}}
    out = apply_kernel(pixel.scale_by_conversion, ds, inputs, outputs,
                       (factor, factor * factor, flags.astype(np.uint32), present))
    return out.drop_vars([name for name, kept in zip(_VARIANCES, present) if not kept])


def _find_row(table, filt, subarray, path):
    """Index of the PHOTOM row for (FILTER, SUBARRAY), retrying with SUBARRAY=GENERIC; None if absent."""
    def column(name):
        return np.char.upper(np.char.strip(table[name].astype(str)))

    filt = None if filt is None else str(filt).upper()
    for sub in (None if subarray is None else str(subarray).upper(), "GENERIC"):
        rows = np.flatnonzero((column("filter") == filt) & (column("subarray") == sub))
        if len(rows) > 1:
            raise RefError("photom", "photom", f"{path}: {len(rows)} rows match FILTER={filt} SUBARRAY={sub}")
        if len(rows) == 1:
            return int(rows[0])
    return None


def _time_correction(timecoeffs: dict, nrows: int, midtime):
    """Per-row multiplicative throughput-loss correction at the exposure mid time, or None."""
    if not timecoeffs:
        return None
    if midtime is None:
        raise RefError("photom", "photom", "time-dependence tables present but the exposure has no EXPMID")
    correction = np.full(nrows, 1.0)
    for name, table in timecoeffs.items():
        p = {k: np.asarray(table[k], dtype=np.float32) for k in table.dtype.names
             if k not in ("filter", "subarray")}
        if len(table) != nrows:
            raise RefError("photom", "photom", f"{name} has {len(table)} rows, PHOTOM has {nrows}")
        if name == "TIMECOEFF_LINEAR":
            correction *= 1.0 - p["lossperyear"] * (midtime - p["t0"]) / 365.0
        elif name == "TIMECOEFF_EXPONENTIAL":
            correction *= p["amplitude"] * np.exp(-(midtime - p["t0"]) / p["tau"]) + p["const"]
        else:
            norm = ((365.0 + p["tsoft"]) ** p["alpha"]) / p["year1value"]
            correction *= ((midtime - p["t0"] + p["tsoft"]) ** p["alpha"]) / norm
    return correction


def _wavelength_map(ds: xr.Dataset) -> np.ndarray:
    """The (y, x) wavelengths as jwst's model holds them: float32 (from assign_wcs' map or the WCS)."""
    if "wavelength" in ds.coords:
        return np.asarray(ds.coords["wavelength"].values, dtype=np.float32)
    wcs = ds.attrs.get("wcs")
    if wcs is None:
        raise RefError("photom", "photom", "LRS photom needs the wavelength map: run assign_wcs first")
    y, x = np.indices((ds.sizes["y"], ds.sizes["x"]), dtype=np.float64)
    return np.asarray(wcs(x, y)[2], dtype=np.float32)


def _conversion_2d(conversion, row, wavelength):
    """PHOTMJSR x relresponse(λ) per pixel (float64) and the mask of pixels with no response."""
    response = _response(row, wavelength, np.float32)
    conv = conversion * response
    no_cal = np.isnan(response)
    conv[no_cal] = 0.0
    return conv, no_cal


def _response(row, wavelength, dtype=None):
    """A PHOTOM row's RELRESPONSE (its first NELEM entries, sorted by wavelength, in microns) interpolated
    at ``wavelength`` as jwst does: NaN wavelengths count as -1, NaN outside the table."""
    waves = np.asarray(row["wavelength"], dtype=dtype)
    relresp = np.asarray(row["relresponse"], dtype=dtype)
    if "nelem" in row.dtype.names:
        waves, relresp = waves[:row["nelem"]], relresp[:row["nelem"]]
    if not np.all(np.diff(waves) > 0):
        order = np.argsort(waves)
        waves, relresp = waves[order], relresp[order]
    if 0.0 < waves.max() < _MICRONS_100:
        waves = waves * 1.0e6
    return np.interp(np.where(np.isnan(wavelength), -1.0, wavelength), waves, relresp, left=np.nan, right=np.nan)


def _pixel_area(path: str) -> dict:
    """PIXAR_SR / PIXAR_A2 of a reference file as jwst reads them: from the ASDF metadata tree when the
    file has one (full precision), else from the FITS header."""
    values = {"PIXAR_SR": None, "PIXAR_A2": None}
    with datamodels.open(path) as model:
        try:
            values = {"PIXAR_SR": model.meta.photometry.pixelarea_steradians,
                      "PIXAR_A2": model.meta.photometry.pixelarea_arcsecsq}
        except AttributeError:  # a model without photometry metadata: read the header
            header = fits.getheader(path)
            values = {key: header.get(key) for key in values}
    return {k: float(v) for k, v in values.items() if v is not None}


def _area_info(ds: xr.Dataset, area_path, photom_path: str):
    """The AREA map cut to the subarray (None without a reference) and the PIXAR_* SCI keywords."""
    if not area_path:
        return None, _pixel_area(photom_path)
    with fits.open(area_path) as hdul:
        area = np.asarray(hdul["SCI"].data, dtype=np.float32)
    y0, x0 = int(keyword(ds, "SUBSTRT2", 1)) - 1, int(keyword(ds, "SUBSTRT1", 1)) - 1
    ny = int(keyword(ds, "SUBSIZE2", ds.sizes["y"]))
    nx = int(keyword(ds, "SUBSIZE1", ds.sizes["x"]))
    cut = area[y0:y0 + ny, x0:x0 + nx]
    if cut.shape != (ds.sizes["y"], ds.sizes["x"]):
        raise RefError("photom", "area", f"{area_path}: {area.shape} array does not cover the subarray")
    return cut.copy(), _pixel_area(area_path)


# ----------------------------------------------------------------------------- NIRCam grism time series
def _prepare_nircam(ds: xr.Dataset, refs: dict) -> Prepared:
    """NRC_TSGRISM: row by (FILTER, PUPIL, SPORDER); conversion = PHOTMJSR x relresponse(λ) / |dλ/dx|
    (jwst divides by the dispersion for grism data), DO_NOT_USE where λ is outside the response."""
    exp_type = str(keyword(ds, "EXP_TYPE", "")).upper()
    if exp_type != "NRC_TSGRISM":
        raise NotImplementedForMode(f"photom: NIRCam {exp_type} is not implemented (only NRC_TSGRISM)")
    with fits.open(refs["photom"]) as hdul:
        table = np.array(hdul["PHOTOM"].data)
        timecoeffs = {n: np.array(hdul[n].data) for n in ("TIMECOEFF_LINEAR", "TIMECOEFF_EXPONENTIAL",
                                                            "TIMECOEFF_POWERLAW") if n in hdul}
    if not {"filter", "pupil", "order", "photmjsr", "wavelength", "relresponse"} <= set(table.dtype.names):
        raise RefError("photom", "photom", f"{refs['photom']}: not a NIRCam grism PHOTOM table "
                       "(needs filter, pupil, order, photmjsr, wavelength, relresponse)")
    area, sci_kw = _area_info(ds, refs.get("area"), refs["photom"])
    row = _find_grism_row(table, keyword(ds, "FILTER"), keyword(ds, "PUPIL"), keyword(ds, "SPORDER"), refs["photom"])
    if row is None:  # jwst leaves the data uncalibrated and still records COMPLETE
        return Prepared(primary={}, sci=sci_kw, area=area)
    conversion = np.float32(table["photmjsr"][row])
    correction = _time_correction(timecoeffs, len(table), keyword(ds, "EXPMID"))
    if correction is not None and correction[row] != 1.0:
        conversion = conversion / correction[row]
    sci_kw.update(PHOTMJSR=float(conversion), PHOTUJA2=float(conversion * MJSR_TO_UJA2), BUNIT="MJy/sr")
    dispaxis = int(keyword(ds, "DISPAXIS", 1))
    conversion, no_cal = _grism_conversion(conversion, table[row], _wavelength_map(ds), dispaxis)
    err_hdr = {**ds.attrs.get("err", {}), "BUNIT": "MJy/sr"}
    return Prepared(primary={}, sci=sci_kw, err=err_hdr, area=area, conversion=conversion, no_cal=no_cal)


def _find_grism_row(table, filt, pupil, order, path):
    """Index of the PHOTOM row for (FILTER, PUPIL, order); None if absent."""
    def column(name):
        return np.char.upper(np.char.strip(table[name].astype(str)))

    match = ((column("filter") == str(filt).upper()) & (column("pupil") == str(pupil).upper())
             & (table["order"] == (None if order is None else int(order))))
    rows = np.flatnonzero(match)
    if len(rows) > 1:
        raise RefError("photom", "photom", f"{path}: {len(rows)} rows match FILTER={filt} PUPIL={pupil} order={order}")
    return int(rows[0]) if len(rows) else None


def _grism_conversion(conversion, row, wavelength, dispaxis):
    """PHOTMJSR x relresponse(λ) / |dλ/dpixel| per pixel (float64) and the mask of pixels without
    response.  jwst's arithmetic: λ float32 with NaN -> -1, its gradient along the dispersion in float32."""
    wl = np.where(np.isnan(wavelength), -1.0, wavelength)
    response = _response(row, wavelength, np.float32)
    dispersion = np.gradient(wl, axis=1 if dispaxis == 1 else 0).astype(np.float64)
    response /= np.abs(dispersion)
    conv = conversion * response
    no_cal = np.isnan(response)
    conv[no_cal] = 0.0
    return conv, no_cal


# ----------------------------------------------------------------------------- NIRSpec fixed slit / BOTS
A2_TO_SR = (np.pi / (180.0 * 3600.0)) ** 2


def nirspec_slit_area(path: str, slit: str) -> dict:
    """PIXAR_A2/PIXAR_SR of ``slit`` from a NIRSpec AREA table (1.0 each when the slit is not listed)."""
    try:
        with fits.open(path) as hdul:
            table = np.array(hdul["AREA"].data)
    except (OSError, KeyError) as exc:
        raise RefError("photom", "area", f"{path}: not a NIRSpec slit AREA table ({exc})") from None
    names = [str(n).strip() for n in table["slit_id"].astype(str)]
    if slit not in names:
        return {"PIXAR_A2": 1.0, "PIXAR_SR": 1.0}
    a2 = float(table["pixarea"][names.index(slit)])
    return {"PIXAR_A2": a2, "PIXAR_SR": a2 * A2_TO_SR}


def prepare_nirspec_bots(ds: xr.Dataset, refs: dict) -> Prepared:
    """S1600A1 row of the PHOTOM table (FILTER, GRATING, SLIT): PHOTMJ (MJy per DN/s for a point
    source; divided by the pixel solid angle otherwise) x RELRESPONSE(lambda) per pixel."""
    slit = "S1600A1"
    if not refs.get("area"):  # jwst 3.0.0 fails without it (pixel area of the slit)
        raise RefError("photom", "area", "NIRSpec photom needs the AREA reference (slit pixel areas); it is N/A")
    area_kw = nirspec_slit_area(refs["area"], slit)
    with fits.open(refs["photom"]) as hdul:
        table = np.array(hdul["PHOTOM"].data)
        timecoeffs = {n: np.array(hdul[n].data) for n in ("TIMECOEFF_LINEAR", "TIMECOEFF_EXPONENTIAL",
                                                            "TIMECOEFF_POWERLAW") if n in hdul}
    if "photmj" not in table.dtype.names or "slit" not in table.dtype.names:
        raise RefError("photom", "photom", f"{refs['photom']}: not a NIRSpec fixed-slit PHOTOM table "
                       "(needs SLIT and PHOTMJ columns)")
    want = {"filter": keyword(ds, "FILTER"), "grating": keyword(ds, "GRATING"), "slit": slit}
    match = np.ones(len(table), bool)
    for column, value in want.items():
        match &= np.char.upper(np.char.strip(table[column].astype(str))) == str(value).upper()
    rows = np.flatnonzero(match)
    if len(rows) > 1:
        raise RefError("photom", "photom", f"{refs['photom']}: {len(rows)} rows match {want}")
    if len(rows) == 0:  # jwst leaves the data uncalibrated and still records COMPLETE
        return Prepared(primary={}, sci=dict(area_kw))
    row = int(rows[0])
    conversion = np.float32(table["photmj"][row])
    point = str(keyword(ds, "SRCTYPE", "")).upper() == "POINT"
    if not point:
        conversion = conversion / area_kw["PIXAR_SR"]
    correction = _time_correction(timecoeffs, len(table), keyword(ds, "EXPMID"))
    if correction is not None and correction[row] != 1.0:
        conversion = conversion / correction[row]
    unit = "MJy" if point else "MJy/sr"
    sci = {**area_kw, "PHOTMJSR": float(conversion), "PHOTUJA2": float(conversion * MJSR_TO_UJA2), "BUNIT": unit}
    conversion, no_cal = _conversion_2d(conversion, table[row], _wavelength_map(ds))
    err_hdr = {**ds.attrs.get("err", {}), "BUNIT": unit}
    return Prepared(primary={}, sci=sci, err=err_hdr, conversion=conversion, no_cal=no_cal)


NIRSPEC_PREPARE = {"NRS_BRIGHTOBJ": prepare_nirspec_bots}


def _prepare_nirspec(ds: xr.Dataset, refs: dict) -> Prepared:
    exp_type = str(keyword(ds, "EXP_TYPE", "")).upper()
    if exp_type not in NIRSPEC_PREPARE:
        raise NotImplementedForMode(f"photom: NIRSpec {exp_type} is not implemented (only {', '.join(NIRSPEC_PREPARE)})")
    return NIRSPEC_PREPARE[exp_type](ds, refs)


CALIBRATORS = {"MIRI": _prepare_miri, "NIRCAM": _prepare_nircam, "NIRSPEC": _prepare_nirspec}


# ----------------------------------------------------------------------------- NIRISS SOSS spectra
_FLUX_COLUMNS = ("flux", "flux_error", "background", "bkgd_error")
_FLUX_VARIANCES = ("flux_var_poisson", "flux_var_rnoise", "flux_var_flat", "bkgd_var_poisson", "bkgd_var_rnoise",
                   "bkgd_var_flat")


@dataclass(frozen=True)
class SpectraConversion:
    """Per order (rows of ``factor``, NaN rows = left uncalibrated) the MJy per DN/s at each spectral element."""

    factor: np.ndarray


def prepare_soss_spectra(spectra: xr.Dataset, path: str) -> SpectraConversion:
    """PHOTMJ (over the time correction, if any) x relresponse(lambda) for each order's row (FILTER, PUPIL,
    order); as jwst, the first order without a row stops the calibration of it and the later orders."""
    with fits.open(path) as hdul:
        table = np.array(hdul["PHOTOM"].data)
        timecoeffs = {n: np.array(hdul[n].data) for n in ("TIMECOEFF_LINEAR", "TIMECOEFF_EXPONENTIAL",
                                                            "TIMECOEFF_POWERLAW") if n in hdul}
    missing = [c for c in ("filter", "pupil", "order", "photmj", "wavelength", "relresponse") if c not in table.dtype.names]
    if missing:
        raise RefError("photom", "photom", f"{path}: PHOTOM table has no column {missing[0]!r} (NIRISS SOSS needs it)")
    correction = _time_correction(timecoeffs, len(table), keyword(spectra, "EXPMID"))
    filt, pupil = str(keyword(spectra, "FILTER", "")).upper(), str(keyword(spectra, "PUPIL", "")).upper()

    def text(name):
        return np.char.upper(np.char.strip(table[name].astype(str)))

    wavelength = np.asarray(spectra["wavelength"].values, np.float64)
    factor = np.full(wavelength.shape, np.nan)
    for k, order in enumerate(spectra["sporder"].values):
        rows = np.flatnonzero((text("filter") == filt) & (text("pupil") == pupil) & (table["order"] == order))
        if len(rows) > 1:
            raise RefError("photom", "photom", f"{path}: {len(rows)} rows match FILTER={filt} PUPIL={pupil} order={order}")
        if len(rows) == 0:
            break
        row = table[rows[0]]
        conversion = row["photmj"]
        if correction is not None and correction[rows[0]] != 1.0:
            conversion = conversion / correction[rows[0]]
        factor[k] = _conversion_1d(conversion, row, wavelength[k])
    return SpectraConversion(factor)


def _conversion_1d(conversion, row, wavelength):
    """conversion x relresponse interpolated at ``wavelength`` (0 where the table does not reach)."""
    response = _response(row, wavelength)
    out = conversion * response
    out[np.isnan(response)] = 0.0
    return out


def scale_spectra(spectra: xr.Dataset, p: SpectraConversion) -> xr.Dataset:
    """Flux-like columns x factor, variances x factor**2 (orders with a NaN row untouched); units MJy.
    Products of the bare Variables, assigned at once: DataArray arithmetic aligned every column's
    coordinates, which cost more than the rest of a chunk's work."""
    done = ~np.isnan(p.factor[:, 0])
    factor = xr.Variable(("order", "spectral"), np.where(done[:, None], p.factor, 1.0))
    squared = factor ** 2.0
    scaled = {}
    for name in _FLUX_COLUMNS + _FLUX_VARIANCES:
        if name in spectra:
            column = spectra[name].variable
            product = (column * (factor if name in _FLUX_COLUMNS else squared)).transpose(*column.dims)
            product.attrs = {"units": "MJy" if name in _FLUX_COLUMNS else "MJy^2"}
            scaled[name] = product
    return spectra.assign(scaled)
