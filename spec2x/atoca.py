"""ATOCA: the linear model of overlapping NIRISS SOSS orders that jwst 3.0.0's extract_1d fits by default
(``soss_atoca=True``), written as the same mathematics on numpy/scipy.sparse arrays.

A pixel's flux is the sum over the orders of  profile(pixel) * integral over the pixel's wavelength bounds of
throughput(lambda) * lambda * (kernel * f)(lambda),  with the spectrum f sampled on a wavelength grid and
interpolated linearly between grid nodes.  So the image is A @ f, A sparse; f solves the Tikhonov-regularised
least squares  (A^T A + t^2 D^T D) f = A^T b,  D the first derivative on the grid.

Pieces (each as jwst defines it): pixel wavelength bounds from the wavelength map, the spectral resolution
kernel interpolated from the SPECKERNEL reference, the throughput spline, the adaptive wavelength grid
(Romberg error estimate of a flux estimate), and the choice of the Tikhonov factor (where the slope of the
Cauchy-loss chi2 against log10(factor) first exceeds 1e-3).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.interpolate import Akima1DInterpolator, RectBivariateSpline, UnivariateSpline, make_interp_spline
from scipy.sparse.linalg import MatrixRankWarning, lsqr, splu, spsolve

from kernels import atoca as katoca

MIN_GOOD_PIXELS = 25          # an order needs this many pixels to be modelled
CHI2_SLOPE_THRESHOLD = 1e-3   # d chi2_cauchy / d log10(factor) that marks the chosen Tikhonov factor
N_DERIVATIVE_SAMPLES = 10000


class MaskOverlapError(ValueError):
    """Too few pixels to model an order."""


# ----------------------------------------------------------------------------- wavelengths and grids
def pixel_wave_bounds(wavemap: np.ndarray):
    """(upper, lower) wavelength edges of every pixel: midway to the neighbouring valid pixels along each
    row (the end pixels mirror their inner half-step); 0 where the map is not finite or negative."""
    left = np.zeros_like(wavemap, dtype=np.float64)
    right = np.zeros_like(left)
    for r in range(wavemap.shape[0]):
        row = wavemap[r]
        valid = np.isfinite(row) & (row >= 0)
        v = row[valid]
        if v.size < 2:
            continue
        half = np.diff(v) / 2
        left[r, valid] = v - np.concatenate((half[:1], half))
        right[r, valid] = v + np.concatenate((half, half[-1:]))
    invalid = wavemap == 0
    if np.all((right >= left) | invalid):
        return right, left
    if np.all((right <= left) | invalid):
        return left, right
    raise ValueError("wavelength map is not monotonic along its rows")


def oversample(grid: np.ndarray, n_os) -> np.ndarray:
    """``grid`` with each interval split in ``n_os`` equal parts (one value, or one per interval)."""
    n_os = np.asarray(n_os)
    if n_os.ndim == 0:
        n_os = np.full(grid.size - 1, int(n_os))
    steps = np.concatenate(([0.0], np.repeat(1.0 / n_os, n_os)))
    return np.unique(np.interp(np.cumsum(steps), np.arange(grid.size), grid))


def column_wavelength_grid(wavemap: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Sorted profile-weighted wavelength of each column whose map is finite.

    Like jwst, this edits ``profile`` in place (negative -> 0, 0 where the map is <= 0, empty columns -> 1):
    later models of the same order see the edited profile."""
    profile[profile < 0] = 0
    profile[wavemap <= 0] = 0
    empty = np.sum(profile, axis=0) == 0
    profile[:, empty] = 1
    centre = np.average(wavemap, weights=profile, axis=0)
    centre[empty] = np.nan
    return np.sort(centre[~np.isnan(centre)])


def trace_pixel_grid(wave_trace: np.ndarray, n_os: int) -> np.ndarray:
    """Pixel-edge wavelength grid of a trace lambda(column), oversampled ``n_os`` times."""
    w = np.sort(wave_trace[np.isfinite(wave_trace)])
    upper, lower = pixel_wave_bounds(w[None, :])
    edges = np.append(np.sort(lower[0]), np.sort(upper[0])[-1])
    return oversample(edges, n_os)


def _trapezoid_error(grid: np.ndarray, fct):
    """(absolute, relative) error of the one-trapezoid integral of ``fct`` on each grid interval,
    from the first Romberg extrapolation with the two-trapezoid estimate."""
    a, b = grid[:-1], grid[1:]
    width = b - a
    one = 0.5 * (fct(a) + fct(b))
    two = one + fct(a + 0.5 * width)
    t1, t2 = width * one, width * two / 2
    romberg = (4.0 * t2 - t1) / 3.0
    err = np.abs(romberg - t1)
    rel = np.full_like(err, np.inf)
    nz = romberg != 0
    rel[nz] = np.abs(err[nz] / romberg[nz])
    return err, rel


def _refine_grid(grid, fct, max_size, max_iter, rtol, atol=1e-6, min_step=1e-5):
    """Halve the intervals whose integral of ``fct`` is not converged, up to ``max_size`` nodes."""
    full = grid.size > max_size
    converged_all = False
    for _ in range(max_iter):
        err, rel = _trapezoid_error(grid, fct)
        ok = (rel < rtol) | (err < atol)
        converged_all = bool(ok.all())
        if full or converged_all:
            break
        n_os = np.where(ok, 1, 2)
        if n_os.sum() > max_size:
            full = True
            n_os = np.ones(rel.shape, int)
            n_os[np.argsort(rel)[-(max_size - grid.size):]] = 2
        grid = oversample(grid, n_os)
        keep = [grid[0]]
        for g in grid[1:]:
            if g - keep[-1] > min_step:
                keep.append(g)
        grid = np.array(keep)
    return grid, converged_all


def _trim(grids, lo, hi):
    """Each grid cut to [lo, hi] (one node beyond), and to the part outside the grids before it."""
    out = []
    for grid in grids:
        i0 = max(np.searchsorted(grid, lo, side="right") - 1, 0)
        i1 = min(np.searchsorted(grid, hi, side="left"), grid.size - 1)
        grid = grid[i0: i1 + 1]
        if out:
            done = np.concatenate(out)
            below, above = grid < done.min(), grid > done.max()
            if below.any():
                grid = grid[: min(np.nonzero(below)[0].max() + 1, grid.size - 1) + 1]
            if above.any():
                grid = grid[max(np.nonzero(above)[0].min() - 1, 0):]
            if not below.any() and not above.any():
                grid = np.array([])
        out.append(grid)
    return out


def combined_adaptive_grid(grids, estimates, lo, hi, rtol, max_size, max_iter=30) -> np.ndarray:
    """Union of the ``grids`` (highest priority first) each refined for its flux estimate, within
    [lo, hi], sharing ``max_size`` nodes."""
    grids = _trim(grids, lo, hi)
    sizes = [g.size for g in grids]
    combined = np.array([])
    for i, grid in enumerate(grids):
        budget = max(max_size - combined.size - sum(sizes[i + 1:]), sizes[i])
        grid, _ = _refine_grid(grid, estimates[i], budget, max_iter, rtol)
        sizes[i] = grid.size
        combined = np.concatenate((combined, grid))
    return np.unique(combined)


# ----------------------------------------------------------------------------- throughput and kernel
class Throughput:
    """Clamped cubic spline of the throughput (zero at both ends), constant beyond the table."""

    def __init__(self, wavelength, throughput):
        self.wavelength = np.sort(wavelength)
        values = np.array(throughput, np.float64)
        values[0] = values[-1] = 0.0
        self.spline = make_interp_spline(self.wavelength, values, k=3, bc_type=("clamped", "clamped"))

    def __call__(self, wave):
        return self.spline(np.clip(wave, self.wavelength[0], self.wavelength[-1]))


class ResolutionKernel:
    """Spectral resolution kernel of one order at any (wavelength, centre wavelength), from the SPECKERNEL
    reference's kernels on a pixel axis, mapped to wavelength with the local linear dispersion of the trace
    lambda(column) (``wave_trace``: 0 where undefined)."""

    def __init__(self, wave_kernels, kernels, wave_trace, n_pix):
        self.n_pix = n_pix
        trace = np.ma.array(wave_trace, mask=wave_trace == 0)
        if np.diff(trace).mean() < 0:
            trace = np.flip(trace)
        self.pixels = np.linspace(-(n_pix // 2), n_pix // 2, wave_kernels.shape[0])
        centres = wave_kernels[0, :]
        positive = trace[trace > 0]
        i0 = np.searchsorted(centres, np.amin(positive))
        i1 = np.searchsorted(centres, np.amax(positive)) - 1
        bbox = [None, None, centres[max(i0 - 1, 0)], centres[min(i1 + 1, centres.size - 1)]]
        self.kernels = kernels[:, i0: i1 + 1].copy()
        centres = np.array(wave_kernels[0, i0: i1 + 1])
        self.min_value = np.min(self.kernels[self.kernels > 0.0])
        around = np.arange(-(n_pix // 2), n_pix // 2 + 1)
        lines = []
        for j, wc in enumerate(centres):
            col = np.argmin(np.abs(trace - wc))
            centres[j] = trace[col]
            idx = col + around
            inside = (idx >= 0) & (idx < trace.size)
            wv = np.ma.masked_all(around.shape)
            wv[inside] = trace[idx[inside]]
            ok = ~np.ma.getmaskarray(wv)
            lines.append(np.polynomial.Polynomial.fit(around[ok], np.asarray(wv[ok]), 1).convert().coef[::-1])
        self.centres = centres
        self.lines = np.array(lines)    # per centre: (dlambda/dpixel, lambda at pixel 0)
        self.spline = RectBivariateSpline(self.pixels, self.centres, self.kernels, bbox=bbox)

    def __call__(self, wave, wave_c):
        c, lines = self.centres, self.lines
        j = np.clip(np.searchsorted(c, wave_c) - 1, 0, c.size - 2)
        a = (c[j + 1] - wave_c) / (c[j + 1] - c[j])
        b = (wave_c - c[j]) / (c[j + 1] - c[j])
        slope = a * lines[j, 0] + b * lines[j + 1, 0]
        pix = (1 / slope) * wave + (-(a * lines[j, 1] + b * lines[j + 1, 1]) / slope)
        # the spline is evaluated only inside the kernel's pixel window (pointwise: the same values)
        inside = np.abs(pix) <= self.n_pix // 2
        ker = np.zeros(pix.shape)
        if inside.any():
            wave_c = np.broadcast_to(wave_c, pix.shape)
            ker[inside] = np.clip(self.spline(pix[inside], wave_c[inside], grid=False), self.min_value, None)
        return ker


def convolution_matrix(kernel, grid: np.ndarray, bounds) -> sparse.csr_matrix:
    """C (b - a, grid.size): row j is the kernel centred on grid[a + j] with trapezoid weights, normalised
    to unit sum, out to where both wings fall below the kernel's smallest tabulated value.  ``None`` is
    the identity."""
    a, b = bounds
    n = grid.size
    if kernel is None:
        return sparse.diags([np.ones(b - a)], [a], shape=(b - a, n), format="csr")
    thresh = kernel.min_value
    centre = np.arange(a, b)
    rows = [kernel(grid, grid)[a:b]]
    h = 0
    while True:
        h += 1
        left, right = np.zeros(b - a), np.zeros(b - a)
        ok = centre - h >= 0
        if ok.any():
            left[ok] = kernel(grid[centre[ok] - h], grid[centre[ok]])
        ok = centre + h < n
        if ok.any():
            right[ok] = kernel(grid[centre[ok] + h], grid[centre[ok]])
        if (left < thresh).all() and (right < thresh).all():
            break
        left[left < thresh] = 0.0
        right[right < thresh] = 0.0
        rows = [left] + rows + [right]
    ker = np.array(rows)
    half = (ker.shape[0] - 1) // 2
    d = np.diff(grid)
    weight = np.zeros(ker.shape)
    for r in range(-half, half):
        k = centre + r
        bad = (k < 0) | (k >= n - 1)
        w = np.where(bad, 0.0, 0.5 * d[np.where(bad, 0, k)])
        weight[r + half] += w
        weight[r + half + 1] += w
    ker = ker * weight
    ker = ker / np.nansum(ker, axis=0)
    diagonals, offsets = [], []
    for r in range(-half, half + 1):
        off = a + r
        diagonals.append(ker[r + half, -off:] if off < 0 else ker[r + half])
        offsets.append(off)
    return sparse.diags(diagonals, offsets, shape=(b - a, n), format="csr")


def derivative_matrix(grid: np.ndarray) -> sparse.csr_matrix:
    """D (n-1, n): first finite difference divided by the grid step."""
    n = grid.size
    diff = sparse.diags([-1.0], shape=(n - 1, n))
    diff += sparse.diags([1.0], 1, shape=(n - 1, n))
    return sparse.diags(1.0 / diff.dot(grid)).dot(diff)


# ----------------------------------------------------------------------------- the linear model
@dataclass
class Order:
    """One order's inputs to a model: wavelength map, its pixel bounds, profile, throughput, kernel."""

    wavemap: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    profile: np.ndarray
    throughput: object      # callable of wavelength
    kernel: object = None   # ResolutionKernel, a precomputed csr matrix, or None (identity)


class Engine:
    """The pixels modelled, and per order the sparse map from the grid spectrum to them (profile excluded)."""

    def __init__(self, orders: list, grid, trace_masks, global_mask=None, threshold=1e-3):
        self.grid = np.asarray(grid, np.float64)
        self.orders = orders
        self.profiles = [np.asarray(o.profile, np.float64) for o in orders]
        n = self.grid.size
        self.bounds = [(0, n)] * len(orders)
        trace_masks = [np.asarray(m, bool) for m in trace_masks]
        self.mask, mask_ord = self._masks(trace_masks, global_mask, threshold)
        if np.any((~mask_ord).sum(axis=(1, 2)) < MIN_GOOD_PIXELS):
            raise MaskOverlapError(f"an order has fewer than {MIN_GOOD_PIXELS} pixels to model")
        self.bounds = [self._grid_bounds(o.wavemap[~m]) for o, m in zip(orders, mask_ord)]
        self.throughputs = [np.asarray(o.throughput(self.grid), np.float64) for o in orders]
        self.mask, mask_ord = self._masks(trace_masks, global_mask, threshold)
        self.pixels = np.flatnonzero(~self.mask)
        self.kernels = []
        for o, (a, b) in zip(orders, self.bounds):
            if sparse.issparse(o.kernel):
                if o.kernel.shape != (b - a, n):
                    raise ValueError("precomputed kernel does not match the grid")
                self.kernels.append(o.kernel)
            else:
                self.kernels.append(convolution_matrix(o.kernel, self.grid, (a, b)))
        self.maps = []
        for i, (o, (a, b)) in enumerate(zip(orders, self.bounds)):
            sub = self.grid[a:b]
            keep = ~self.mask
            skip = mask_ord[i][keep]
            indptr, indices, data = katoca.integration_weights(sub, o.lower[keep].astype(np.float64),
                                                               o.upper[keep].astype(np.float64), skip)
            w = sparse.csr_matrix((data, indices, indptr), shape=(self.pixels.size, b - a))
            product = sparse.diags((self.throughputs[i] * self.grid)[a:b]).dot(self.kernels[i])
            self.maps.append(w.dot(product).tocsr())

    def _wave_mask(self, o: Order, bounds):
        a, b = bounds
        return (o.lower < self.grid[a]) | (o.upper > self.grid[b - 1])

    def _masks(self, trace_masks, global_mask, threshold):
        wave = np.array([self._wave_mask(o, b) for o, b in zip(self.orders, self.bounds)])
        mask_ord = wave | np.array(trace_masks)
        if global_mask is not None:
            mask_ord |= global_mask[None]
        general = np.all(mask_ord, axis=0)
        crowded = np.all(np.array([p > threshold for p in self.profiles]), axis=0)
        general |= np.any(wave, axis=0) & crowded
        return general, wave | general[None]

    def _grid_bounds(self, waves):
        a = int(np.min(np.nonzero(self.grid >= waves.min())[0]))
        b = int(np.max(np.nonzero(self.grid <= waves.max())[0])) + 1
        return a, b

    def design(self, error=None) -> sparse.csr_matrix:
        """A (modelled pixels, grid): the image per unit spectrum, each pixel divided by ``error``."""
        total = None
        for i, m in enumerate(self.maps):
            scale = self.profiles[i].ravel()[self.pixels]
            if error is not None:
                scale = scale / np.asarray(error).ravel()[self.pixels]
            term = sparse.diags(scale).dot(m)
            total = term if total is None else total + term
        return total.tocsr()

    def data_vector(self, data, error):
        return (np.asarray(data).ravel()[self.pixels] / np.asarray(error).ravel()[self.pixels]).astype(np.float64)


# ----------------------------------------------------------------------------- solving and Tikhonov
def solve_subset(matrix, rhs, valid) -> np.ndarray:
    """Solution of matrix[valid, valid] x = rhs[valid]; NaN outside ``valid`` (least squares if singular).

    The unregularised and weakly regularised systems are ill-conditioned, so the sparse operations follow
    jwst's (same formats, same order): the solutions then agree to far better than their condition number
    would allow otherwise."""
    out = np.full(rhs.size, np.nan)
    idx = np.nonzero(valid)[0]
    out[idx] = _spsolve_or_lsqr(matrix[idx, :][:, idx], rhs[idx])
    return out


def _spsolve_or_lsqr(matrix, rhs):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=MatrixRankWarning)
        try:
            return spsolve(matrix, rhs)
        except MatrixRankWarning:
            return lsqr(matrix, rhs)[0]


def least_squares(a_mat, b_vec) -> np.ndarray:
    """Unregularised solution of min |A f - b| (NaN where no pixel constrains f)."""
    rhs = sparse.csr_matrix(b_vec).dot(a_mat).toarray().squeeze()
    return solve_subset(a_mat.T.dot(a_mat), rhs, rhs != 0)


class Factorized:
    """Sparse LU factors of a square matrix, to solve for many right-hand sides; pickles as the matrix."""

    def __init__(self, matrix):
        self.matrix = sparse.csc_matrix(matrix)
        self._lu = splu(self.matrix)

    def __getstate__(self):
        return {"matrix": self.matrix}

    def __setstate__(self, state):
        self.__init__(state["matrix"])

    def solve(self, rhs):
        return self._lu.solve(np.asarray(rhs, np.float64))


def gram(a_mat) -> sparse.csc_matrix:
    """A^T A (csc, sorted indices) with the bits of scipy's ``A.T @ A`` (each entry summed over the rows in
    increasing order; ``kernels.atoca.gram_upper``), computing only the upper triangle."""
    a = sparse.csr_matrix(a_mat)
    if not a.has_sorted_indices:
        a = a.sorted_indices()
    c = a.tocsc()
    c.sort_indices()
    n = a.shape[1]
    rows, cols, vals = katoca.gram_upper(n, c.indptr, c.indices, a.indptr, a.indices, a.data)
    off = rows != cols
    return sparse.csc_matrix((np.concatenate((vals, vals[off])),
                              (np.concatenate((rows, cols[off])), np.concatenate((cols, rows[off])))), shape=(n, n))


class Tikhonov:
    """min |A f - b|^2 + t^2 |D f|^2 for any factor t."""

    def __init__(self, a_mat, b_vec, d_mat, dtd=None):
        self.a, self.b, self.d = a_mat, b_vec, d_mat
        self.ata = ata = gram(a_mat)
        self.dtd = dtd = sparse.csc_matrix(d_mat.T.dot(d_mat) if dtd is None else dtd)
        self.rhs = a_mat.T.dot(sparse.csr_matrix(b_vec).T).toarray().squeeze()
        self.valid = self.rhs != 0
        self.idx = np.nonzero(self.valid)[0]
        # sliced once (the sum commutes with the slicing), not at all when every node is constrained
        self.ata_sub, self.dtd_sub = (ata, dtd) if self.idx.size == self.rhs.size else \
            (ata[self.idx, :][:, self.idx], dtd[self.idx, :][:, self.idx])

    def solve(self, factor):
        out = np.full(self.rhs.size, np.nan)
        out[self.idx] = _spsolve_or_lsqr(self.ata_sub + factor ** 2 * self.dtd_sub, self.rhs[self.idx])
        return out

    def chi2_cauchy(self, factors):
        """Mean Cauchy loss log(1 + r^2) of the residuals of each factor's solution."""
        out = []
        for f in factors:
            resid = self.a.dot(self.solve(f)) - self.b
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
                out.append(np.nanmean(np.log(1 + resid ** 2)))
        return np.array(out)


def guess_factor(engine: Engine, estimate) -> float:
    """sqrt(pixels / |D estimate|^2): the factor that weighs the regularisation like the data."""
    reg = derivative_matrix(engine.grid).dot(estimate(engine.grid))
    return float((engine.pixels.size / np.nansum(np.array(reg) ** 2)) ** 0.5)


def _best_factor(factors, chi2) -> float:
    """Smallest factor where d chi2 / d log10(factor) (modified-Akima spline) exceeds the threshold."""
    ok = np.isfinite(chi2)
    order = np.argsort(factors[ok])
    logx = np.log10(factors[ok][order])
    y = chi2[ok][order]
    k = min(3, int(ok.sum()) - 1)
    spline = Akima1DInterpolator(logx, y, method="makima") if k >= 3 else UnivariateSpline(logx, y, k=k, s=0)
    xs = np.linspace(logx[0], logx[-1], N_DERIVATIVE_SAMPLES)
    slope = spline.derivative()(xs)
    above = slope > CHI2_SLOPE_THRESHOLD
    return float(10 ** np.amin(xs[above])) if above.any() else float(10 ** logx[-1])


def search_factor(tik: Tikhonov, guess: float, log_range, n_refine=3) -> float:
    """jwst's search: 10 factors over ``guess * 10**log_range``, then ``n_refine`` times two more factors
    about the best (geometric midpoints, or one step beyond an end)."""
    factors = np.logspace(np.log10(guess) + log_range[0], np.log10(guess) + log_range[1], 10)
    chi2 = tik.chi2_cauchy(factors)
    best = _best_factor(factors, chi2)
    for _ in range(n_refine):
        f = np.sort(factors)
        dist = np.abs(np.log(f) - np.log(best))
        j = int(np.nonzero(dist == dist.min())[0][0])
        if j == 0:
            new = np.array([f[0] ** 2 / f[1], np.sqrt(f[0] * f[1])])
        elif j == f.size - 1:
            new = np.array([np.sqrt(f[-1] * f[-2]), f[-1] ** 2 / f[-2]])
        else:
            new = np.array([np.sqrt(f[j] * f[j - 1]), np.sqrt(f[j] * f[j + 1])])
        factors = np.concatenate((factors, new))
        chi2 = np.concatenate((chi2, tik.chi2_cauchy(new)))
        best = _best_factor(factors, chi2)
    return best
