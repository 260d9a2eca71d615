"""Per-pixel interpolation of NIRSpec flat-field parts in wavelength (pure numba, numpy in and out).

NIRSpec's flat is three parts (fore optics F, spectrograph S, detector D), each a slow 2-D image (D: a
cube of images at a few wavelengths) times a fast-variation table of wavelength; both are evaluated at
every pixel's wavelength.  jwst 3.0.0 (``flatfield/flat_field.py``) does it with whole-array numpy
operations; these kernels do it in one pass per pixel with the same arithmetic, dtypes and rounding:

* ``interp``: numpy's ``np.interp`` with NaN outside the table;
* ``fast_variation``: the table averaged over each pixel's wavelength extent by 3-point Gauss-Legendre
  quadrature (weights 5/18, 8/18, 5/18 at -d, 0, +d of the pixel's wavelength step, d = sqrt(0.6)/2),
  accumulated in float32 as jwst's in-place sum is; and the table's error at the pixel centre;
* ``interpolate_planes``: the cube's planes linearly interpolated at each pixel's wavelength, errors
  likewise, DQ of both planes OR-ed, DO_NOT_USE outside the cube's wavelengths (flat set to 1 there).

Shared by every NIRSpec spectroscopic mode (BOTS now; fixed slits, MOS, IFU later).
"""

from __future__ import annotations

import math

import numba
import numpy as np

DO_NOT_USE = np.uint32(1)
GAUSS_OFFSETS = np.array([-math.sqrt(0.6) / 2.0, 0.0, math.sqrt(0.6) / 2.0])
GAUSS_WEIGHTS = np.array([5.0, 8.0, 5.0]) / 18.0


@numba.njit(cache=True, nogil=True)
def interp(x, xp, fp):
    """``np.interp(x, xp, fp, left=nan, right=nan)`` for one value (xp increasing, float64 math)."""
    n = xp.size
    if not (x >= xp[0]):           # below the table, or NaN
        return np.nan
    if x > xp[n - 1]:
        return np.nan
    if x == xp[n - 1]:
        return np.float64(fp[n - 1])
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xp[mid] <= x:
            lo = mid
        else:
            hi = mid
    x0 = np.float64(xp[lo])
    if x == x0:
        return np.float64(fp[lo])
    y0 = np.float64(fp[lo])
    y1 = np.float64(fp[lo + 1])
    x1 = np.float64(xp[lo + 1])
    slope = (y1 - y0) / (x1 - x0)
    value = slope * (x - x0) + y0
    if np.isnan(value):
        value = slope * (x - x1) + y1
        if np.isnan(value) and y0 == y1:
            value = y0
    return value


@numba.njit(cache=True, nogil=True)
def fast_variation(wl, dwl, tab_wl, tab_flat, tab_err, offsets, weights):
    """(values float32, errors float64) of a fast-variation table at every pixel.

    ``wl``/``dwl``: (y, x) float32 wavelengths (gaps filled, as jwst's clean_wl does) and their step
    along the dispersion; values are NaN where the table does not cover the pixel.
    """
    ny, nx = wl.shape
    values = np.zeros((ny, nx), np.float32)
    errors = np.empty((ny, nx), np.float64)
    xp = tab_wl.astype(np.float64)
    for j in range(ny):
        for i in range(nx):
            w = np.float64(wl[j, i])
            d = np.float64(dwl[j, i])
            acc = np.float32(0.0)
            for k in range(offsets.size):
                acc = np.float32(np.float64(acc) + weights[k] * interp(w + d * offsets[k], xp, tab_flat))
            values[j, i] = acc
            errors[j, i] = interp(w, xp, tab_err)
    return values, errors


@numba.njit(cache=True, nogil=True)
def _plane_index(w, image_wl):
    """jwst's plane k for wavelength w: 0 at or below the first plane, the last pair at or above the last
    one, else the first k with image_wl[k] <= w < image_wl[k + 1] (-1 when none: wraps as numpy does)."""
    nz = image_wl.size
    k = -1
    if w <= image_wl[0]:
        k = 0
    if w >= image_wl[nz - 1]:
        k = nz - 2
    if k == -1:
        for t in range(nz - 1):
            if w >= image_wl[t] and w < image_wl[t + 1]:
                return t
    return k


@numba.njit(cache=True, nogil=True)
def interpolate_planes(image_flat, image_dq, image_err, image_wl, wl):
    """(flat float32, dq uint32, err float32) of a (planes, y, x) flat cube at the (y, x) float32
    wavelengths ``wl`` (NaN already replaced by 0).  ``image_dq``/``image_err`` are 3-D like the cube or
    2-D (then used as they are)."""
    nz, ny, nx = image_flat.shape
    flat = np.empty((ny, nx), np.float32)
    dq = np.empty((ny, nx), np.uint32)
    err = np.empty((ny, nx), np.float32)
    one = np.float32(1.0)
    dq3 = image_dq.ndim == 3
    err3 = image_err.ndim == 3
    for j in range(ny):
        for i in range(nx):
            w = wl[j, i]
            k = _plane_index(w, image_wl)
            k0 = k % nz
            k1 = (k + 1) % nz
            denom = image_wl[k1] - image_wl[k0]
            if denom == 0:
                p = np.float32(0.0)
            else:
                p = np.float32((w - image_wl[k0]) / denom)
            q = np.float32(one - p)
            f = np.float32(q * image_flat[k0, j, i]) + np.float32(p * image_flat[k1, j, i])
            if err3:
                err[j, i] = np.float32(q * image_err[k0, j, i]) + np.float32(p * image_err[k1, j, i])
            else:
                err[j, i] = image_err[j, i]
            if dq3:
                flags = image_dq[k0, j, i] if p == 0 else image_dq[k0, j, i] | image_dq[k1, j, i]
                if flags & DO_NOT_USE:
                    f = one
            else:
                flags = image_dq[j, i]
            if w < image_wl[0] or w > image_wl[nz - 1]:
                flags |= DO_NOT_USE
            if flags & DO_NOT_USE:
                f = one
            flat[j, i] = f
            dq[j, i] = flags
    return flat, dq, err
