"""Numba kernels: NIRISS SOSS box extraction of a block of integrations (jwst 3.0.0, ``soss_atoca=False``).

Per integration, pixels listed in the in-fill table take the table's value and error (jwst replaces
pixels that are bad in single integrations by a running median in time, with 10x the median error);
a pixel is then left out when it is in the static mask, or its value or error is not finite, or its
error is not positive.  Each order's flux is the weighted sum over its box aperture, the error the
square root of the weighted sum of error², NPIXELS the sum of weights; columns without any weight get
NaN flux and error.  Sums run over rows in increasing order, in float64, as numpy's nansum does.

Only the apertures' rows are read, in place: a slot map (pixel -> column of the in-fill tables) says
where a pixel's value comes from, so no integration is copied whole.

``nanmedian_time`` is ATOCA's median error over time (``np.nanmedian`` of the ERR cube, to the bit).
"""

from __future__ import annotations

import numba
import numpy as np

FLUX, FLUX_ERROR, NPIXELS = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def box_extract(sci, err, rows, fill_pix, fill_data, fill_err, static_mask, weights, lo, hi):
    """(n, norders, 3, nx) flux, flux error and npixels of the block ``sci``/``err`` (n, ny, nx) float32.

    ``rows[k]``: row of integration k in the in-fill tables ``fill_data`` (float32) / ``fill_err``
    (float64), both (nints, npix) over flat pixel indices ``fill_pix``; ``static_mask`` (ny, nx) bool;
    ``weights`` (norders, ny, nx) float64 box apertures; ``lo``/``hi`` (norders, nx) the row range
    holding each column's non-zero weights.  The frame is walked row by row (contiguous reads), each
    column summing its rows in increasing order.
    """
    n, ny, nx = sci.shape
    norders = weights.shape[0]
    out = np.empty((n, norders, 3, nx))
    slot = np.full(ny * nx, -1, np.int32)
    for j in range(fill_pix.size):
        slot[fill_pix[j]] = j
    flux, var, npix = np.empty(nx), np.empty(nx), np.empty(nx)
    for o in range(norders):
        first, last = ny, 0
        for x in range(nx):
            if hi[o, x] > lo[o, x]:
                first, last = min(first, lo[o, x]), max(last, hi[o, x])
        for k in range(n):
            r = rows[k]
            flux[:] = 0.0
            var[:] = 0.0
            npix[:] = 0.0
            for y in range(first, last):
                for x in range(nx):
                    w = weights[o, y, x]
                    if not w > 0 or static_mask[y, x]:
                        continue
                    j = slot[y * nx + x]
                    if j < 0:
                        d = np.float64(sci[k, y, x])
                        e = np.float64(err[k, y, x])
                    else:
                        d = np.float64(fill_data[r, j])
                        e = fill_err[r, j]
                    if np.isfinite(d) and np.isfinite(e) and e > 0:
                        flux[x] += w * d
                        var[x] += w * (e * e)
                        npix[x] += w
            for x in range(nx):
                if npix[x] > 0:
                    out[k, o, FLUX, x] = flux[x]
                    out[k, o, FLUX_ERROR, x] = np.sqrt(var[x])
                else:
                    out[k, o, FLUX, x] = np.nan
                    out[k, o, FLUX_ERROR, x] = np.nan
                out[k, o, NPIXELS, x] = npix[x]
    return out


@numba.njit(cache=True, nogil=True)
def _select(a, m, k):
    """The k-th smallest of ``a[:m]`` (no NaN), moved to ``a[k]`` with the smaller-or-equal ones before it
    (Wirth's selection, in place)."""
    left, right = 0, m - 1
    while left < right:
        pivot = a[k]
        i, j = left, right
        while i <= j:
            while a[i] < pivot:
                i += 1
            while pivot < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if j < k:
            left = i
        if k < i:
            right = j
    return a[k]


@numba.njit(cache=True, nogil=True)
def nanmedian_time(cube):
    """``np.nanmedian(cube, axis=0)`` of a float32 (n, ny, nx) cube, to the bit: per pixel the middle
    non-NaN values summed and halved in float32 (numpy's masked-array median, used below 600 values; from
    600 on numpy's ``np.median`` returns an odd count's middle value as is); NaN where all are NaN."""
    n, ny, nx = cube.shape
    out = np.empty((ny, nx), np.float32)
    values = np.empty(n, np.float32)
    half = np.float32(2.0)
    for y in range(ny):
        for x in range(nx):
            m = 0
            for i in range(n):
                v = cube[i, y, x]
                if not np.isnan(v):
                    values[m] = v
                    m += 1
            if m == 0:
                out[y, x] = np.nan
                continue
            h = m // 2
            high = _select(values, m, h)
            if m % 2 == 1 and n >= 600:
                out[y, x] = high
            else:
                low = high if m % 2 == 1 else values[:h].max()
                out[y, x] = np.float32(low + high) / half
    return out
