"""Numba kernels for 1-D box extraction of a block of integrations (jwst extract_1d, box mode).

Arrays are laid out ``(integration, spectral, cross)``: for vertical dispersion (MIRI LRS) that is
the cube as stored, ``(integration, y, x)``; for horizontal dispersion pass a swapped-axes view.
Everything that is the same for all integrations (aperture weights, the column lists, the
polynomial design terms, the aperture-correction grid) is prepared once by the caller.

Numerical conventions follow jwst 3.0.0 so results agree to rounding:

* a pixel is invalid when DO_NOT_USE is set or any of sci/err/var_* is NaN (jwst first runs
  ``match_nans_and_flags``), and then counts as NaN everywhere;
* the background fit uses a pixel when it is in a background region, its (smoothed) value is
  finite and its sci value and float32 total variance are finite; fractional background weights
  do not matter, only "non-zero";
* the median background and the smoothed image are float32, as jwst computes them on the float32
  image; the polynomial background is float64.
"""

from __future__ import annotations

import numba
import numpy as np

DO_NOT_USE = 1
MODE_NONE, MODE_POLY, MODE_MEDIAN = 0, 1, 2
# Columns of the raw block returned by box_extract.
RAW = ("flux_sum", "var_poisson", "var_rnoise", "var_flat", "bkg_sum",
       "bkg_var_poisson", "bkg_var_rnoise", "bkg_var_flat", "npixels")
# Columns of the calibrated block returned by calibrate, in x1dints order (dq stored as float).
COLUMNS = ("flux", "flux_error", "flux_var_poisson", "flux_var_rnoise", "flux_var_flat",
           "surf_bright", "sb_error", "sb_var_poisson", "sb_var_rnoise", "sb_var_flat", "dq",
           "background", "bkgd_error", "bkgd_var_poisson", "bkgd_var_rnoise", "bkgd_var_flat",
           "npixels")


@numba.njit(cache=True, nogil=True, inline="always")
def _pixel(sci, err, dq, vp, vr, vf, i, s, j):
    """(value, var_poisson, var_rnoise, var_flat, weight) of one pixel, NaN when invalid.

    ``weight`` is jwst's unit fit weight: value finite and float32 total variance finite.
    """
    x = sci[i, s, j]
    p = vp[i, s, j]
    r = vr[i, s, j]
    f = vf[i, s, j]
    if (dq[i, s, j] & DO_NOT_USE) or np.isnan(x) or np.isnan(err[i, s, j]) or np.isnan(p) \
            or np.isnan(r) or np.isnan(f):
        nan = np.float32(np.nan)
        return nan, nan, nan, nan, False
    return x, p, r, f, np.isfinite(x) and np.isfinite((r + p) + f)


@numba.njit(cache=True, nogil=True)
def _smooth(sci, err, dq, vp, vr, vf, i, bg_any, half, out):
    """Box-smooth (width 2*half+1) along the spectral axis, NaN-interpolating, edges extended.

    Same arithmetic as astropy ``convolve(boundary='extend')`` with a flat kernel, rounded to
    float32 like the image it smooths.  Only columns with ``bg_any`` are computed.
    """
    nspec = sci.shape[1]
    k = 1.0 / (2 * half + 1)
    for j in range(sci.shape[2]):
        if not bg_any[j]:
            continue
        for s in range(nspec):
            top = 0.0
            bot = 0.0
            for t in range(s - half, s + half + 1):
                tt = min(max(t, 0), nspec - 1)
                x = _pixel(sci, err, dq, vp, vr, vf, i, tt, j)[0]
                if not np.isnan(x):
                    top += x * k
                    bot += k
            out[s, j] = np.float32(top / bot) if bot != 0.0 else np.float32(np.nan)


@numba.njit(cache=True, nogil=True)
def box_extract(sci, err, dq, vp, vr, vf, rows, prof, ap_cols, ap_n, bg_cols, bg_n,
                ycoef, bkg_mat, mode, half):
    """Background-subtracted box sums for each integration and each output spectral element.

    Parameters: the six cubes ``(nint, nspec, ncross)``; ``rows`` (nout,) spectral indices to
    extract; ``prof`` (nspec, ncross) aperture weights; ``ap_cols/ap_n`` and ``bg_cols/bg_n`` the
    cross indices with non-zero aperture / background weight per spectral index; ``ycoef``
    (ncross, order+1) polynomial terms of the cross coordinate (linspace(-1, 1)); ``bkg_mat``
    (nspec, order+1) aperture-weighted sums of ``ycoef``; ``mode`` MODE_*; ``half`` smoothing
    half-width (0 = none).

    Returns ``(nint, 9, nout)`` float64 with the RAW columns; variances include the background's.
    """
    nint, nspec, ncross = sci.shape
    nout = rows.size
    npar = ycoef.shape[1]
    out = np.empty((nint, 9, nout))
    sm = np.empty((nspec, ncross), np.float32)
    bg_any = np.zeros(ncross, np.bool_)
    for s in range(nspec):
        for jj in range(bg_n[s]):
            bg_any[bg_cols[s, jj]] = True
    bk = np.zeros(ncross)            # background at each cross pixel of the current element
    bk32 = np.zeros(ncross, np.float32)
    mat = np.zeros((npar, npar))
    vec = np.zeros(npar)
    cov = np.zeros((npar, npar))
    coefs = np.zeros(npar)
    vals = np.empty(ncross, np.float32)
    for i in range(nint):
        if mode != MODE_NONE and half > 0:
            _smooth(sci, err, dq, vp, vr, vf, i, bg_any, half, sm)
        for o in range(nout):
            s = rows[o]
            bvp = 0.0
            bvr = 0.0
            bvf = 0.0
            if mode == MODE_POLY:
                mat[:, :] = 0.0
                vec[:] = 0.0
                sp = 0.0
                sr = 0.0
                sf = 0.0
                for jj in range(bg_n[s]):
                    j = bg_cols[s, jj]
                    x, p, r, f, w = _pixel(sci, err, dq, vp, vr, vf, i, s, j)
                    t = sm[s, j] if half > 0 else x
                    if not (w and np.isfinite(t)):
                        continue
                    sp += p
                    sr += r
                    sf += f
                    for k in range(npar):
                        vec[k] += ycoef[j, k] * np.float64(t)
                        for m in range(npar):
                            mat[k, m] += ycoef[j, k] * ycoef[j, m]
                if npar == 1:
                    # Mean of the fitted pixels; every one has the same weight P/N on the
                    # aperture-summed background, so its variance is (P/N)^2 * sum(var).
                    if mat[0, 0] != 0.0:
                        c = 1.0 / mat[0, 0]
                        tot = bkg_mat[s, 0] * c
                        tot2 = tot * tot
                        bvp = sp * tot2
                        bvr = sr * tot2
                        bvf = sf * tot2
                        b = c * vec[0]
                    else:
                        b = 0.0
                    for jj in range(ap_n[s]):
                        bk[ap_cols[s, jj]] = b
                else:
                    sv = np.linalg.svd(mat)[1]
                    ok = sv[-1] > 0.0 and sv[0] / sv[-1] < 1e10
                    if ok:
                        cov[:, :] = np.linalg.inv(mat)
                    else:
                        cov[:, :] = 0.0
                    for k in range(npar):
                        c = 0.0
                        for m in range(npar):
                            c += cov[m, k] * vec[m]
                        coefs[k] = c
                    # Background variance under the aperture: each fitted pixel's weight on the
                    # aperture-summed background model, squared, times its variance.
                    for jj in range(bg_n[s]):
                        j = bg_cols[s, jj]
                        x, p, r, f, w = _pixel(sci, err, dq, vp, vr, vf, i, s, j)
                        t = sm[s, j] if half > 0 else x
                        if not (w and np.isfinite(t)):
                            continue
                        tot = 0.0
                        for k in range(npar):
                            pw = 0.0
                            for m in range(npar):
                                pw += cov[m, k] * ycoef[j, m]
                            tot += bkg_mat[s, k] * pw
                        tot2 = tot * tot
                        bvp += p * tot2
                        bvr += r * tot2
                        bvf += f * tot2
                    for jj in range(ap_n[s]):
                        j = ap_cols[s, jj]
                        b = 0.0
                        for k in range(npar):
                            b += coefs[k] * ycoef[j, k]
                        bk[j] = b
            elif mode == MODE_MEDIAN:
                n = 0
                nw = 0
                for jj in range(bg_n[s]):
                    j = bg_cols[s, jj]
                    x, p, r, f, w = _pixel(sci, err, dq, vp, vr, vf, i, s, j)
                    t = sm[s, j] if half > 0 else x
                    if not np.isnan(t):
                        # insertion sort: the background regions hold few pixels per element
                        q = n
                        while q > 0 and vals[q - 1] > t:
                            vals[q] = vals[q - 1]
                            q -= 1
                        vals[q] = t
                        n += 1
                    if w:
                        nw += 1
                if n == 0:
                    med = np.float32(np.nan)
                else:
                    med = (vals[(n - 1) // 2] + vals[n // 2]) / np.float32(2.0)
                if nw > 0:
                    pw = 1.0 / nw
                    pw2 = pw * pw
                    for jj in range(bg_n[s]):
                        j = bg_cols[s, jj]
                        x, p, r, f, w = _pixel(sci, err, dq, vp, vr, vf, i, s, j)
                        if w:
                            if not np.isnan(p * pw2):
                                bvp += p * pw2
                            if not np.isnan(r * pw2):
                                bvr += r * pw2
                            if not np.isnan(f * pw2):
                                bvf += f * pw2
                scale = 1.2 ** 2 * bkg_mat[s, 0] ** 2
                bvp *= scale
                bvr *= scale
                bvf *= scale
                for jj in range(ap_n[s]):
                    bk32[ap_cols[s, jj]] = med
            # Box sum of the background-subtracted image over the aperture.
            fsum = 0.0
            npx = 0.0
            vsp = 0.0
            vsr = 0.0
            vsf = 0.0
            bsum = 0.0
            for jj in range(ap_n[s]):
                j = ap_cols[s, jj]
                x, p, r, f, w = _pixel(sci, err, dq, vp, vr, vf, i, s, j)
                if mode == MODE_POLY:
                    b = bk[j]
                    d = np.float64(x) - b
                elif mode == MODE_MEDIAN:
                    b = np.float64(bk32[j])
                    d = np.float64(x - bk32[j])
                else:
                    b = 0.0
                    d = np.float64(x)
                wt = prof[s, j] if np.isfinite(d) else 0.0
                if wt != 0.0:
                    fsum += d * wt
                    npx += wt
                bsum += b * wt
                wt2 = wt * wt
                if not np.isnan(p * wt2):
                    vsp += p * wt2
                if not np.isnan(r * wt2):
                    vsr += r * wt2
                if not np.isnan(f * wt2):
                    vsf += f * wt2
            if abs(npx) <= 1e-8:
                fsum = np.nan
            if not np.isfinite(bsum):
                bsum = 0.0
            out[i, 0, o] = fsum
            out[i, 1, o] = vsp + bvp
            out[i, 2, o] = vsr + bvr
            out[i, 3, o] = vsf + bvf
            out[i, 4, o] = bsum
            out[i, 5, o] = bvp
            out[i, 6, o] = bvr
            out[i, 7, o] = bvf
            out[i, 8, o] = npx
    return out


@numba.njit(cache=True, nogil=True)
def box_extract_rows(sci, err, dq, vp, vr, vf, rows, prof, ap_cols, ap_n, bg_cols, bg_n, ycoef, bkg_mat, mode):
    """``box_extract`` for cubes stored with the spectral axis contiguous (a swapped-axes view of a
    horizontally dispersed cube), without smoothing, with no background or a constant (order-0
    polynomial) one: the same sums of the same terms in the same order, reached one cross row at a
    time along the spectral axis.

    ``box_extract`` walks each element's cross pixels, one image row (8 KB for NIRCam) apart in each of
    six cubes; here the running sums of all elements are arrays and each cross row is read once, in
    memory order (NIRCam SUBGRISM64, 16 integrations, one thread: 1.95 -> 0.85 ms per integration on
    the loaded 2-core VM; copying tiles into (spectral, cross) order first gained nothing).  Cross rows
    are visited in increasing order, the order of ``ap_cols``/``bg_cols``, so every element adds its
    terms as ``box_extract`` does and the results are bit-identical.
    """
    nint, nspec, ncross = sci.shape
    nout = rows.size
    out = np.empty((nint, 9, nout))
    in_bg = np.zeros((ncross, nspec), np.bool_)
    in_ap = np.zeros((ncross, nspec), np.bool_)
    for s in range(nspec):
        for jj in range(bg_n[s]):
            in_bg[bg_cols[s, jj], s] = True
        for jj in range(ap_n[s]):
            in_ap[ap_cols[s, jj], s] = True
    bg_rows = np.array([j for j in range(ncross) if in_bg[j].any()], np.int64)
    ap_rows = np.array([j for j in range(ncross) if in_ap[j].any()], np.int64)
    mat = np.empty(nout)
    vec = np.empty(nout)
    sp = np.empty(nout)
    sr = np.empty(nout)
    sf = np.empty(nout)
    bk = np.empty(nout)
    bvp = np.empty(nout)
    bvr = np.empty(nout)
    bvf = np.empty(nout)
    fsum = np.empty(nout)
    npx = np.empty(nout)
    vsp = np.empty(nout)
    vsr = np.empty(nout)
    vsf = np.empty(nout)
    bsum = np.empty(nout)
    for i in range(nint):
        bvp[:] = 0.0
        bvr[:] = 0.0
        bvf[:] = 0.0
        bk[:] = 0.0
        if mode == MODE_POLY:
            mat[:] = 0.0
            vec[:] = 0.0
            sp[:] = 0.0
            sr[:] = 0.0
            sf[:] = 0.0
            for j in bg_rows:
                c0 = ycoef[j, 0]
                for o in range(nout):
                    s = rows[o]
                    if not in_bg[j, s]:
                        continue
                    x, p, r, f, w = _pixel(sci, err, dq, vp, vr, vf, i, s, j)
                    if not (w and np.isfinite(x)):
                        continue
                    sp[o] += p
                    sr[o] += r
                    sf[o] += f
                    vec[o] += c0 * np.float64(x)
                    mat[o] += c0 * c0
            for o in range(nout):
                if mat[o] != 0.0:
                    c = 1.0 / mat[o]
                    tot = bkg_mat[rows[o], 0] * c
                    tot2 = tot * tot
                    bvp[o] = sp[o] * tot2
                    bvr[o] = sr[o] * tot2
                    bvf[o] = sf[o] * tot2
                    bk[o] = c * vec[o]
        fsum[:] = 0.0
        npx[:] = 0.0
        vsp[:] = 0.0
        vsr[:] = 0.0
        vsf[:] = 0.0
        bsum[:] = 0.0
        for j in ap_rows:
            for o in range(nout):
                s = rows[o]
                if not in_ap[j, s]:
                    continue
                x, p, r, f, w = _pixel(sci, err, dq, vp, vr, vf, i, s, j)
                if mode == MODE_POLY:
                    b = bk[o]
                    d = np.float64(x) - b
                else:
                    b = 0.0
                    d = np.float64(x)
                wt = prof[s, j] if np.isfinite(d) else 0.0
                if wt != 0.0:
                    fsum[o] += d * wt
                    npx[o] += wt
                bsum[o] += b * wt
                wt2 = wt * wt
                if not np.isnan(p * wt2):
                    vsp[o] += p * wt2
                if not np.isnan(r * wt2):
                    vsr[o] += r * wt2
                if not np.isnan(f * wt2):
                    vsf[o] += f * wt2
        for o in range(nout):
            total = fsum[o]
            if abs(npx[o]) <= 1e-8:
                total = np.nan
            bs = bsum[o]
            if not np.isfinite(bs):
                bs = 0.0
            out[i, 0, o] = total
            out[i, 1, o] = vsp[o] + bvp[o]
            out[i, 2, o] = vsr[o] + bvr[o]
            out[i, 3, o] = vsf[o] + bvf[o]
            out[i, 4, o] = bs
            out[i, 5, o] = bvp[o]
            out[i, 6, o] = bvr[o]
            out[i, 7, o] = bvf[o]
            out[i, 8, o] = npx[o]
    return out


@numba.njit(cache=True, nogil=True)
def _interval(grid, v):
    """Index i and fraction t locating v in the increasing grid, clamped to its ends."""
    n = grid.size
    if v <= grid[0]:
        return 0, 0.0
    if v >= grid[n - 1]:
        return n - 2, 1.0
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if grid[mid] <= v:
            lo = mid
        else:
            hi = mid
    return lo, (v - grid[lo]) / (grid[lo + 1] - grid[lo])


@numba.njit(cache=True, nogil=True)
def bilinear(xs, ys, table, x, y):
    """Bilinear interpolation of ``table[len(xs), len(ys)]`` at (x, y), clamped at the edges.

    Equals scipy ``RectBivariateSpline(xs, ys, table, kx=1, ky=1)(x, y)``: a degree-1 spline
    through the grid is the bilinear interpolant, and FITPACK clamps outside the grid.
    """
    i, tx = _interval(xs, x)
    j, ty = _interval(ys, y)
    a = table[i, j] + ty * (table[i, j + 1] - table[i, j])
    b = table[i + 1, j] + ty * (table[i + 1, j + 1] - table[i + 1, j])
    return a + tx * (b - a)


@numba.njit(cache=True, nogil=True)
def calibrate(raw, wavelength, to_jy, pixar, use_apcorr, ap_size, ap_wl, ap_table):
    """x1dints columns (COLUMNS order) from box_extract's RAW block.

    Surface brightness = sum / npixels; flux = sum * PIXAR_SR * 1e6 (MJy/sr -> Jy) when
    ``to_jy``; errors are root sums of the variances; DQ is DO_NOT_USE where flux is NaN; the
    aperture correction at (npixels, wavelength) multiplies flux, surface brightness and their
    errors, and its square multiplies their variances (not the background's).
    """
    nint, _, nout = raw.shape
    out = np.empty((nint, 17, nout))
    vscale = pixar ** 2 * 1.0e12
    for i in range(nint):
        for o in range(nout):
            fsum = raw[i, 0, o]
            fvp = raw[i, 1, o]
            fvr = raw[i, 2, o]
            fvf = raw[i, 3, o]
            npx = raw[i, 8, o]
            nd = npx if npx > 0.0 else 1.0
            nd2 = nd * nd
            sb = fsum / nd
            sbp = fvp / nd2
            sbr = fvr / nd2
            sbf = fvf / nd2
            bkg = raw[i, 4, o] / nd
            bvp = raw[i, 5, o] / nd2
            bvr = raw[i, 6, o] / nd2
            bvf = raw[i, 7, o] / nd2
            if to_jy:
                flux = fsum * pixar * 1.0e6
                fvp *= vscale
                fvr *= vscale
                fvf *= vscale
            else:
                flux = fsum
            ferr = np.sqrt(fvp + fvr + fvf)
            sberr = np.sqrt(sbp + sbr + sbf)
            berr = np.sqrt(bvp + bvr + bvf)
            dq = DO_NOT_USE if np.isnan(flux) else 0
            if use_apcorr:
                c = bilinear(ap_size, ap_wl, ap_table, npx, wavelength[o])
                c2 = c * c
                flux *= c
                ferr *= c
                sb *= c
                sberr *= c
                fvp *= c2
                fvr *= c2
                fvf *= c2
                sbp *= c2
                sbr *= c2
                sbf *= c2
            out[i, 0, o] = flux
            out[i, 1, o] = ferr
            out[i, 2, o] = fvp
            out[i, 3, o] = fvr
            out[i, 4, o] = fvf
            out[i, 5, o] = sb
            out[i, 6, o] = sberr
            out[i, 7, o] = sbp
            out[i, 8, o] = sbr
            out[i, 9, o] = sbf
            out[i, 10, o] = dq
            out[i, 11, o] = bkg
            out[i, 12, o] = berr
            out[i, 13, o] = bvp
            out[i, 14, o] = bvr
            out[i, 15, o] = bvf
            out[i, 16, o] = npx
    return out
