"""The NIRSpec spectroscopic flat: fore-optics (F), spectrograph (S) and detector (D) parts evaluated at
each pixel's wavelength and multiplied, as jwst 3.0.0's ``flatfield/flat_field.py`` does for fixed slits
and BOTS.  Built once per exposure in numpy (the per-pixel interpolation in ``kernels.flat``); the
cubes are then divided by it like any flat.

Each part = slow image (F: none for fixed slits; S: 2-D image; D: cube interpolated between its planes)
x fast-variation table (averaged over the pixel's wavelength step).  Unusable parts of a component
are flagged DO_NOT_USE (+NO_FLAT_FIELD) and set to 1; their combined error is the product times the
root sum of squared relative errors.  Table and image wavelengths are microns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from kernels import flat as kflat
from spec2x.dq import PIXEL, remap_dq
from spec2x.errors import RefError

DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])
NO_FLAT_FIELD = np.uint32(PIXEL["NO_FLAT_FIELD"])
BAD = DO_NOT_USE | NO_FLAT_FIELD
BADFLAT = BAD | np.uint32(PIXEL["UNRELIABLE_FLAT"])
MICRONS_100 = 1.0e-4


@dataclass(frozen=True)
class Part:
    """One flat component read for a cut-out: its fast-variation table and slow image (None for F)."""

    tab_wl: np.ndarray
    tab_flat: np.ndarray
    tab_err: np.ndarray
    image: np.ndarray | None = None
    dq: np.ndarray | None = None
    err: np.ndarray | None = None
    image_wl: np.ndarray | None = None


def read_part(path: str, reftype: str, slit: str, window=None) -> Part:
    """Table row for ``slit`` (or ANY) and, with ``window`` = (y slice, x slice) in full-frame pixels,
    the slow image/cube, DQ (remapped through DQ_DEF) and ERR cut to it."""
    try:
        with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
            table = hdul["FAST_VARIATION"].data
            tab = _table_row(table, slit, path, reftype)
            if window is None:
                return Part(*tab)
            ys, xs = window
            image = np.array(hdul["SCI"].section[..., ys, xs], dtype=np.float32)
            dq = _unsigned(hdul["DQ"], hdul["DQ"].section[..., ys, xs])
            err = np.array(hdul["ERR"].section[..., ys, xs], dtype=np.float32)
            names = [h.name for h in hdul]
            dq = remap_dq(dq, hdul["DQ_DEF"].data if "DQ_DEF" in names else None)
            image_wl = None
            if image.ndim == 3:
                wl = np.asarray(hdul["WAVELENGTH"].data["wavelength"], dtype=np.float32).ravel()
                image_wl = wl[np.isfinite(wl) & (wl > 0)]
                if image_wl.size != image.shape[0]:
                    raise RefError("flat_field", reftype, f"{path}: WAVELENGTH has {image_wl.size} valid rows "
                                   f"for {image.shape[0]} planes")
    except (OSError, KeyError) as exc:
        raise RefError("flat_field", reftype, f"{path}: not a NIRSpec {reftype} reference ({exc})") from None
    if image.shape[-2:] != (ys.stop - ys.start, xs.stop - xs.start):
        raise RefError("flat_field", reftype, f"{path}: {image.shape} image does not cover the slit; "
                       "NIRSpec flats are full frame")
    return Part(*tab, image=image, dq=dq, err=err, image_wl=image_wl)


def _unsigned(hdu, raw) -> np.ndarray:
    """uint32 DQ from its FITS storage (signed int32 with BZERO = 2**31), read unscaled."""
    raw = np.asarray(raw)
    if hdu.header.get("BZERO") == 2**31:
        return raw.astype(np.int32).view(np.uint32) ^ np.uint32(2**31)
    return raw.astype(np.uint32)


def _table_row(table, slit, path, reftype):
    """(wavelength, flat, error) of the FAST_VARIATION row for ``slit``; NaN, non-positive-wavelength and
    zero-flat entries dropped, truncated to NELEM."""
    names = [n.lower() for n in table.columns.names]
    col = {n.lower(): table.field(n) for n in table.columns.names}
    row = 0
    if "slit_name" in names and slit is not None:
        slits = [str(s).strip().lower() for s in col["slit_name"]]
        matches = [i for i, s in enumerate(slits) if s in ("any", slit.lower())]
        if not matches:
            raise RefError("flat_field", reftype, f"{path}: FAST_VARIATION has no slit_name {slit} (nor ANY)")
        row = matches[0]
    wl, fl, er = (np.asarray(col[n][row] if col[n].ndim > 1 else col[n]) for n in ("wavelength", "data", "error"))
    if "nelem" in names:
        n = min(int(col["nelem"][row]), wl.size)
        wl, fl, er = wl[:n], fl[:n], er[:n]
    keep = ~np.isnan(wl) & ~np.isnan(fl)
    wl, fl, er = wl[keep], fl[keep], er[keep]
    keep = (wl > 0) & (fl != 0)
    wl, fl, er = wl[keep], fl[keep], er[keep]
    if wl.size and wl.max() < MICRONS_100:
        raise RefError("flat_field", reftype, f"{path}: FAST_VARIATION wavelengths look like metres, not microns")
    return wl, fl, er


def clean_wavelengths(wl: np.ndarray) -> np.ndarray:
    """Wavelengths with the gaps (<= 0 or NaN) filled by their column's mean, and the columns beyond the
    first/last one with any wavelength copied from it (horizontal dispersion; jwst's clean_wl).  The
    column means are summed in numpy's own order (``column_sums``), so they equal np.nanmean's to the bit."""
    out = wl.copy()
    out[out <= 0.0] = np.nan
    has = np.flatnonzero(np.isfinite(out).any(axis=0))
    if has.size:
        columns = out[:, has]
        gaps = np.isnan(columns)
        means = column_sums(np.where(gaps, 0, columns)) / np.sum(~gaps, axis=0, dtype=np.intp)
        columns[gaps] = np.broadcast_to(means, columns.shape)[gaps]
        out[:, has] = columns
        out[:, : has[0]] = out[:, has[0]][:, None]
        out[:, has[-1]:] = out[:, has[-1]][:, None]
    return out


def column_sums(a: np.ndarray) -> np.ndarray:
    """``np.sum`` of each column of ``a`` on its own, for all columns at once: numpy's pairwise summation
    (8 partial sums per block of up to 128, halves above), the order that fixes the rounding."""
    n = a.shape[0]
    if n < 8:
        total = np.zeros(a.shape[1:], a.dtype)
        for i in range(n):
            total = total + a[i]
        return total
    if n <= 128:
        partial = a[:8].copy()
        i = 8
        while i < n - n % 8:
            partial += a[i:i + 8]
            i += 8
        r = partial
        total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for k in range(i, n):
            total = total + a[k]
        return total
    half = n // 2
    half -= half % 8
    return column_sums(a[:half]) + column_sums(a[half:])


def wavelength_steps(wl):
    """(filled wavelengths, their step along x) at which every fast-variation table is averaged."""
    wl_c = clean_wavelengths(wl)
    dwl = np.zeros_like(wl_c)
    dwl[:, :-1] = wl_c[:, 1:] - wl_c[:, :-1]
    dwl[:, -1] = dwl[:, -2]
    return wl_c, dwl


def combine_fast_slow(wl, steps, slow, dq, err, part: Part):
    """(flat, dq, err) of slow image x fast-variation table at the wavelengths ``wl`` (float32, 0 = none);
    ``steps`` = ``wavelength_steps(wl)``."""
    wl_c, dwl = steps
    values, error = kflat.fast_variation(wl_c, dwl, part.tab_wl.astype(np.float32), part.tab_flat.astype(np.float32),
                                         part.tab_err.astype(np.float32), kflat.GAUSS_OFFSETS, kflat.GAUSS_WEIGHTS)
    dq = np.zeros(wl.shape, np.uint32) if dq is None else dq.copy()
    err = np.zeros(wl.shape, np.float64) if err is None else err.copy()
    none = wl <= 0
    values[none] = 1.0
    error[none] = 0.0
    missing = np.isnan(values)
    values[missing] = 1.0
    error[missing] = 0.0
    dq[missing] |= BAD
    v1 = np.square(error * slow)
    v2 = np.square(err * values)
    return slow * values, dq, np.sqrt(np.nansum([v1, v2], axis=0))


def _flag_bad(flat, dq, fill):
    """NaN or zero flat -> DO_NOT_USE + NO_FLAT_FIELD; DO_NOT_USE pixels get ``fill``."""
    dq[np.isnan(flat) | (flat == 0.0)] |= BAD
    flat[(dq & DO_NOT_USE) != 0] = fill


def fore_flat(wl, steps, part: Part | None):
    if part is None:
        return np.ones(wl.shape, np.float32), None, None
    flat, dq, err = combine_fast_slow(wl, steps, 1.0, None, None, part)
    _flag_bad(flat, dq, np.nan)
    return flat, dq, err


def spectrograph_flat(wl, steps, part: Part | None):
    if part is None:
        return np.ones(wl.shape, np.float32), None, None
    image, dq, err = part.image, part.dq, part.err
    if image.ndim == 3:
        image, dq, err = kflat.interpolate_planes(image, dq, err, part.image_wl, wl)
    _flag_bad(image, dq, 1.0)
    return combine_fast_slow(wl, steps, image, dq, err, part)


def detector_flat(wl, steps, part: Part | None):
    if part is None:
        return np.ones(wl.shape, np.float32), None, None
    image, dq, err = kflat.interpolate_planes(part.image, part.dq, part.err, part.image_wl, wl)
    _flag_bad(image, dq, 1.0)
    return combine_fast_slow(wl, steps, image, dq, err, part)


def combine_dq(parts_dq, shape):
    dq = np.zeros(shape, np.uint32)
    given = [d for d in parts_dq if d is not None]
    if not given:
        dq |= BADFLAT
    for d in given:
        dq |= d
    dq[(dq & NO_FLAT_FIELD) != 0] |= DO_NOT_USE
    dq[(dq & DO_NOT_USE) != 0] |= BADFLAT
    return dq


def nirspec_flat(wavelength: np.ndarray, fflat: Part | None, sflat: Part | None, dflat: Part | None):
    """(flat float32, dq uint32, err float32) for a cut-out whose wavelengths (microns, NaN outside the
    slit) are ``wavelength``."""
    wl = np.asarray(wavelength, dtype=np.float32).copy()
    wl[np.isnan(wl)] = 0.0
    steps = wavelength_steps(wl)
    f, f_dq, f_err = fore_flat(wl, steps, fflat)
    s, s_dq, s_err = spectrograph_flat(wl, steps, sflat)
    d, d_dq, d_err = detector_flat(wl, steps, dflat)
    flat = f * s * d
    dq = combine_dq((f_dq, s_dq, d_dq), flat.shape)
    sum_var = np.zeros_like(flat)
    for part, part_err in ((f, f_err), (s, s_err), (d, d_err)):
        if part_err is not None:
            np.place(part, part == 0, 1.0)
            sum_var += (part_err / part) ** 2
    err = flat * np.sqrt(sum_var)
    flat[(dq & DO_NOT_USE) != 0] = 1.0
    bad = flat <= 0.0
    flat[bad] = np.nan
    dq[bad] |= BADFLAT
    return flat, dq, err.astype(np.float32)
