"""Numba kernels of the ATOCA extraction (NIRISS SOSS, jwst 3.0.0's ``soss_atoca=True``).

* ``integration_weights``: the linear map from a spectrum sampled on a wavelength grid to the flux a
  pixel collects between its wavelength bounds (jwst's quadrature weights, quirks included), as CSR arrays.
* ``fill_block``: a block of integrations with the per-integration in-fill table applied (values and
  errors), flattened to pixels, in float64.
* ``decontaminated_box``: the box extraction of each order from the data minus the other orders' models.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _at(a, k):
    """a[k] with Python's meaning of a negative k."""
    return a[k + a.size] if k < 0 else a[k]


@numba.njit(cache=True, nogil=True)
def integration_weights(grid, wave_lo, wave_hi, skip):
    """CSR (indptr, indices, data) of W (npix, grid.size), the trapezoid-like weights jwst 3.0.0's ATOCA
    engine gives each grid node for a pixel spanning [wave_lo, wave_hi].

    The nodes run from the one before the last node <= wave_lo (that node itself when equal) to the last
    node < wave_hi; the end weights take the partial intervals, inner ones half their two intervals.  The
    node range is shifted one node down from the pixel's bracket (as in jwst) and a pixel starting in the
    first interval keeps jwst's positional arithmetic (a node index of -1 is dropped, the others kept).
    Rows with ``skip`` are empty."""
    n = wave_lo.size
    dg = np.diff(grid)
    counts = np.zeros(n, np.int64)
    firsts = np.zeros(n, np.int64)
    his = np.zeros(n, np.int64)
    los = np.zeros(n, np.int64)
    for p in range(n):
        if skip[p]:
            continue
        lo = np.searchsorted(grid, wave_lo[p], side="right") - 1
        hi = np.searchsorted(grid, wave_hi[p], side="left") - 1
        first = lo if grid[lo] == wave_lo[p] else lo - 1
        los[p], his[p], firsts[p] = lo, hi, first
        counts[p] = hi - first + 1
    indptr = np.zeros(n + 1, np.int64)
    for p in range(n):
        valid = counts[p] - (1 if (not skip[p] and firsts[p] == -1) else 0)
        indptr[p + 1] = indptr[p] + (valid if not skip[p] else 0)
    indices = np.empty(indptr[n], np.int64)
    data = np.empty(indptr[n], np.float64)
    for p in range(n):
        if skip[p]:
            continue
        lo, hi, first = los[p], his[p], firsts[p]
        length = counts[p]
        k = np.arange(first, first + length)
        nk = length - (1 if first == -1 else 0)
        wm, wp = wave_lo[p], wave_hi[p]
        w = np.zeros(length)
        w[0] = _at(grid, k[1]) - wm
        w[nk - 1] = wp - _at(grid, k[nk - 2])
        if nk == 2:
            if k[0] != lo:
                w[1] += wm - _at(grid, k[0])
            if k[1] != hi:
                w[0] += _at(grid, k[1]) - wp
            w *= (wp - wm) / _at(dg, k[0])
        if nk >= 3:
            w[1] = _at(grid, k[1]) - wm
            w[nk - 2] += wp - _at(grid, k[nk - 2])
            if k[0] != lo:
                n1 = _at(grid, k[1]) - wm
                n2 = wm - _at(grid, k[0])
                den = _at(dg, k[0])
                w[0] *= n1 / den
                w[1] += n1 * n2 / den
            if k[nk - 1] != hi:
                n1 = wp - _at(grid, k[nk - 2])
                n2 = _at(grid, k[nk - 1]) - wp
                den = _at(dg, k[nk - 2])
                w[nk - 1] *= n1 / den
                w[nk - 2] += n1 * n2 / den
        if nk >= 4:
            w[1] += _at(grid, k[2]) - _at(grid, k[1])
            w[nk - 2] += _at(grid, k[nk - 2]) - _at(grid, k[nk - 3])
        if nk > 4:
            for j in range(2, nk - 2):
                w[j] = _at(dg, k[j] - 1) + _at(dg, k[j])
        w /= 2.0
        out = indptr[p]
        for j in range(length):
            if k[j] >= 0:
                indices[out] = k[j]
                data[out] = w[j]
                out += 1
    return indptr, indices, data


@numba.njit(cache=True, nogil=True)
def fill_block(sci, err, rows, fill_pix, fill_data, fill_err):
    """(data, error) (n, ny*nx) float64 of the block with the in-fill table's values for integration rows."""
    n, ny, nx = sci.shape
    data = np.empty((n, ny * nx), np.float64)
    error = np.empty((n, ny * nx), np.float64)
    for k in range(n):
        for y in range(ny):
            for x in range(nx):
                data[k, y * nx + x] = np.float64(sci[k, y, x])
                error[k, y * nx + x] = np.float64(err[k, y, x])
        r = rows[k]
        for j in range(fill_pix.size):
            data[k, fill_pix[j]] = np.float64(fill_data[r, j])
            error[k, fill_pix[j]] = fill_err[r, j]
    return data, error


@numba.njit(cache=True, nogil=True)
def decontaminated_box(data, error, contamination, static_mask, weights, lo, hi):
    """(n, norders, 3, nx) flux, error, npixels: box sums of ``data - contamination[:, o]`` (non-finite
    contamination counts as 0) over each order's aperture, leaving out pixels in the static mask and
    pixels whose value or error is not finite or whose error is not positive."""
    n = data.shape[0]
    norders, ny, nx = weights.shape
    out = np.empty((n, norders, 3, nx))
    for k in range(n):
        for o in range(norders):
            for x in range(nx):
                flux = 0.0
                var = 0.0
                npix = 0.0
                for y in range(lo[o, x], hi[o, x]):
                    w = weights[o, y, x]
                    p = y * nx + x
                    d = data[k, p]
                    e = error[k, p]
                    if w > 0 and not static_mask[y, x] and np.isfinite(d) and np.isfinite(e) and e > 0:
                        c = contamination[k, o, p]
                        if np.isfinite(c):
                            d = d - c
                        flux += w * d
                        var += w * (e * e)
                        npix += w
                if npix > 0:
                    out[k, o, 0, x] = flux
                    out[k, o, 1, x] = np.sqrt(var)
                else:
                    out[k, o, 0, x] = np.nan
                    out[k, o, 1, x] = np.nan
                out[k, o, 2, x] = npix
    return out


@numba.njit(cache=True, nogil=True)
def gram_upper(n, col_ptr, col_rows, row_ptr, row_cols, row_vals):
    """Upper triangle (with diagonal) of A^T A as COO (rows, cols, values), A (m, n) given both as CSC
    structure (``col_ptr``, ``col_rows``: the rows of each column, increasing) and CSR (sorted columns).

    Entry (i, j) sums A[k, i] * A[k, j] over k in increasing order, from 0, and exact zeros are dropped:
    the arithmetic of scipy's sparse product ``A.T @ A``, so the same bits, for half its work."""
    sums = np.zeros(n)
    touched = np.zeros(n, np.bool_)
    cap = max(16, 4 * row_vals.size)
    rows = np.empty(cap, np.int64)
    cols = np.empty(cap, np.int64)
    vals = np.empty(cap)
    nnz = 0
    seen = np.empty(n, np.int64)
    for i in range(n):
        nseen = 0
        for p in range(col_ptr[i], col_ptr[i + 1]):
            k = col_rows[p]
            # A[k, i]: find it in row k (sorted columns)
            lo, hi = row_ptr[k], row_ptr[k + 1]
            q = lo + np.searchsorted(row_cols[lo:hi], i)
            v = row_vals[q]
            for r in range(q, hi):
                j = row_cols[r]
                if not touched[j]:
                    touched[j] = True
                    seen[nseen] = j
                    nseen += 1
                sums[j] += v * row_vals[r]
        if nnz + nseen > cap:
            cap = max(2 * cap, nnz + nseen)
            rows = _grow(rows, cap)
            cols = _grow(cols, cap)
            vals = _grow(vals, cap)
        for s in range(nseen):
            j = seen[s]
            if sums[j] != 0:
                rows[nnz] = i
                cols[nnz] = j
                vals[nnz] = sums[j]
                nnz += 1
            sums[j] = 0.0
            touched[j] = False
    return rows[:nnz], cols[:nnz], vals[:nnz]


@numba.njit(cache=True, nogil=True)
def _grow(a, size):
    out = np.empty(size, a.dtype)
    out[: a.size] = a
    return out
