"""ATOCA decontamination of NIRISS SOSS orders 1 and 2, as jwst 3.0.0's extract_1d does by default.

Once per exposure (``plan``), on the mean integration (plus jwst's seeded noise, so the same factors come out):
flux estimate from order-1 pixels free of order 2, adaptive wavelength grid, Tikhonov factor of the joint
order 1+2 model, its inverse design matrix, and the maps from the grid spectrum to each order's trace model;
then the Tikhonov factor of the separate fit of order 2's blue end (below ``order2_separation_cutoff[1]``).

Per integration (``contamination``) the joint solve is a fixed linear map of the data (jwst weighs it with the
median error of the exposure): sparse LU factors computed once (or, with ``dense_inverse``, jwst's dense
inverse: in the order overlap the normal matrix is so ill-conditioned that only jwst's own arithmetic
reproduces jwst there to better than ~1e-2); the blue fit of order 2 is
weighted by the integration's own errors and is solved per integration (a small banded sparse system).  Each
order is then box-extracted from the data minus the other order's model.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.interpolate import UnivariateSpline
from stdatamodels.jwst import datamodels

from spec2x import atoca, pastasoss

log = logging.getLogger(__name__)

SEED = 42                      # jwst seeds the noise added to the mean integration
ESTIMATE_CONTAMINATION = 1e-4  # order-2 profile level that marks an order-1 pixel contaminated for the estimate
BLUE_OVERSAMPLING = 3
JOINT_LOG_RANGE = (-4, 4)
BLUE_LOG_RANGE = (-2, 8)


@dataclass(frozen=True)
class Blue:
    """The separate fit of order 2's blue end."""

    order: atoca.Order
    grid: np.ndarray
    fit_mask: np.ndarray       # pixels left out of the fit (the exposure's usual mask)
    fit: atoca.Engine
    rebuild_mask: np.ndarray   # outside every box (or a reference pixel): the pixels not rebuilt
    rebuild: sparse.csr_matrix
    rebuild_pixels: np.ndarray
    derivative: sparse.csr_matrix
    dtd: sparse.csc_matrix     # D^T D
    factor: float


@dataclass(frozen=True)
class AtocaPlan:
    tikfac: float
    grid: np.ndarray
    pixels: np.ndarray         # flat pixel indices of the joint model's data vector
    projection: sparse.csr_matrix   # (grid, pixels): A^T diag(1 / median error)
    normal: atoca.Factorized | None   # A^T A + t^2 D^T D, or with ``dense_inverse``:
    inverse: np.ndarray | None        # its dense inverse (jwst's way: the same bits as jwst, ~n^3 once, n^2 memory)
    design: sparse.csr_matrix | None  # A (with ``dense_inverse``)
    mederr_pixels: np.ndarray | None  # float32 median error of the data vector's pixels (with ``dense_inverse``)
    model_pixels: tuple        # per order (1, 2): flat indices of its trace model
    model_maps: tuple          # per order: csr (model pixels, grid)
    blue: Blue | None
    all_dnu: np.ndarray
    refmask: np.ndarray
    box_weights: tuple         # per order (ny, nx): jwst's trace masks are "outside the box"
    token: str = field(default_factory=lambda: uuid.uuid4().hex, compare=False)

    def __dask_tokenize__(self):
        """One key per plan: hashing its ~0.5 GB of matrices (dask pickles them) would cost seconds."""
        return "AtocaPlan", self.token


def order_inputs(ref, refs: dict, orders, pwcpos, subarray, shape):
    """Per order: wavelength map, pixel bounds, cropped SPECPROFILE, throughput, resolution kernel, and the
    trace lambda(column)."""
    with datamodels.SpecKernelModel(refs["speckernel"]) as sk:
        n_pix = 2 * int(sk.meta.halfwidth) + 1
        wave_kernels, kernels = np.array(sk.wavelengths), np.array(sk.kernels)   # jwst keeps their dtype
    with datamodels.SpecProfileModel(refs["specprofile"]) as sp:
        profiles = []
        for k in range(len(orders)):
            prof = np.array(sp.profile[k].data)
            p0, p1 = (prof.shape[0] - shape[0]) // 2, (prof.shape[1] - shape[1]) // 2
            profiles.append(prof[p0: prof.shape[0] - p0, p1: prof.shape[1] - p1].copy())
    out, traces = [], []
    for k, o in enumerate(orders):
        wmap = pastasoss.wavemap(ref, o, pwcpos, shape, subarray)
        upper, lower = atoca.pixel_wave_bounds(wmap)
        tr = pastasoss.exact_trace(ref, o, pwcpos, subarray)
        centre = np.zeros(shape[1])
        centre[tr.x] = tr.wavelength
        centre[~np.isfinite(centre)] = 0.0
        m = ref.orders[o]
        kernel = atoca.ResolutionKernel(wave_kernels, kernels, centre, n_pix)
        out.append(atoca.Order(wmap, upper, lower, profiles[k], atoca.Throughput(m.throughput_wave, m.throughput),
                               kernel))
        traces.append(tr)
    return out, traces


def typical_integration(mean: np.ndarray, mederr: np.ndarray, nints: int) -> np.ndarray:
    """jwst's representative integration: the mean plus seeded noise of the median error's scale."""
    rng = np.random.default_rng(seed=SEED)
    out = mean.copy()
    with np.errstate(invalid="ignore"):
        out += rng.normal(0, mederr * np.sqrt((nints - 1) / nints))
    return out


def integration_masks(data, error, all_dnu, refmask, box_weights):
    """jwst's per-integration masks: (bad pixels, per-order outside-box-or-reference masks)."""
    bad = ~(np.isfinite(data) & np.isfinite(error))
    with np.errstate(invalid="ignore"):
        scimask = all_dnu | bad | ~(error > 0)
    ref = refmask & ~bad
    return scimask, [~(w > 0) | ref for w in box_weights]


def plan(mean, mederr, nints, all_dnu, all_bad, refmask, box_weights, inputs, traces, separation_cutoff, subarray,
         threshold=1e-2, n_os=2, rtol=1e-4, max_grid_size=20000, tikfac=None, dense_inverse=False) -> AtocaPlan:
    """Everything fixed for the exposure (see the module docstring)."""
    data = typical_integration(mean, mederr, nints)
    scimask, trace_masks = integration_masks(data, mederr, all_dnu, refmask, box_weights)
    global_box = np.all(trace_masks, axis=0)
    o1, o2 = inputs[0], inputs[1]

    grid_est = atoca.oversample(atoca.column_wavelength_grid(o1.wavemap, o1.profile), 1)
    est_engine = atoca.Engine([atoca.Order(o1.wavemap, o1.upper, o1.lower, o1.profile, o1.throughput, None)],
                              grid_est, [(o2.profile >= ESTIMATE_CONTAMINATION) | trace_masks[0]], global_mask=scimask)
    spectrum = atoca.least_squares(est_engine.design(mederr), est_engine.data_vector(data, mederr))
    ok = np.isfinite(spectrum)
    estimate = UnivariateSpline(grid_est[ok], spectrum[ok], k=3, s=0, ext=0)

    grid = decontamination_grid(traces, estimate, separation_cutoff[0], rtol, max_grid_size, n_os)
    log.info("ATOCA wavelength grid %.4f-%.4f um, %d points", grid.min(), grid.max(), grid.size)

    joint = atoca.Engine([o1, o2], grid, trace_masks[:2], global_mask=scimask, threshold=threshold)
    a = joint.design(mederr)
    joint.maps = None    # only design() reads them: released early (peak memory)
    dmat = atoca.derivative_matrix(grid)
    tik = atoca.Tikhonov(a, joint.data_vector(data, mederr), dmat)   # A^T A, D^T D: computed once
    if tikfac is None:
        tikfac = atoca.search_factor(tik, atoca.guess_factor(joint, estimate), JOINT_LOG_RANGE)
    log.info("ATOCA Tikhonov factor (orders 1+2): %.4e", tikfac)
    normal_matrix = tik.ata + tikfac ** 2 * tik.dtd
    del tik
    projection = (a.T @ sparse.diags(1.0 / mederr.ravel()[joint.pixels].astype(np.float64))).tocsr()
    if dense_inverse:
        normal, inverse, design = None, np.linalg.inv(normal_matrix.toarray()), a
        mederr_pixels = mederr.ravel()[joint.pixels]
    else:
        normal, inverse, design, mederr_pixels = atoca.Factorized(normal_matrix), None, None, None
    del a, normal_matrix
    spectrum = _joint_spectrum(normal, inverse, design, mederr_pixels, projection, data.ravel()[joint.pixels])

    model_pixels, model_maps = [], []
    for i, o in enumerate((o1, o2)):
        convolved = joint.kernels[i] @ spectrum
        keep = np.isfinite(convolved)
        a0, b0 = joint.bounds[i]
        sub = atoca.Engine([atoca.Order(o.wavemap, o.upper, o.lower, o.profile, o.throughput, None)],
                           grid[a0:b0][keep], [global_box])
        model_pixels.append(sub.pixels)
        model_maps.append((sub.design() @ joint.kernels[i][keep]).tocsr())

    blue = None
    if subarray != "SUBSTRIP96":
        blue = blue_plan(o2, traces[1], separation_cutoff[1], data, mederr, scimask, trace_masks[1], tikfac,
                         all_dnu, all_bad, refmask, box_weights)
    return AtocaPlan(float(tikfac), grid, joint.pixels, projection, normal, inverse, design, mederr_pixels, tuple(model_pixels), tuple(model_maps),
                     blue, all_dnu, refmask, tuple(box_weights))


def _joint_spectrum(normal, inverse, design, mederr_pixels, projection, values):
    """The joint order 1+2 spectrum of one integration's data vector ``values``: sparse LU solve, or jwst's
    product with the dense inverse (data / median error in float32, as jwst divides them)."""
    if inverse is None:
        return normal.solve(projection @ np.asarray(values, np.float64))
    y = np.asarray(values, np.float32) / mederr_pixels
    return inverse.dot(design.T.dot(y))


def decontamination_grid(traces, estimate, short_limit, rtol, max_grid_size, n_os) -> np.ndarray:
    """jwst's grid: the pixel-edge grids of the orders (order 2 where it overlaps order 1 first, then order 1,
    then order 2's blue end), each refined until the estimate's integral per interval reaches ``rtol``."""
    g1 = atoca.trace_pixel_grid(traces[0].wavelength, n_os)
    g2 = atoca.trace_pixel_grid(traces[1].wavelength, n_os)
    shared = g2 >= g1.min()
    g1 = g1[g1 > g2[shared].min()]
    grids = [g2[shared], g1, g2[~shared]]
    estimates = [estimate, estimate, np.ones_like]
    return atoca.combined_adaptive_grid(grids, estimates, short_limit, g1.max(), rtol, max_grid_size)


def blue_plan(o2, trace2, cutoff, data, mederr, scimask, trace_mask2, guess, all_dnu, all_bad, refmask, box_weights):
    """Order 2's blue end: grid, Tikhonov factor (from the typical integration) and the maps for the
    usual masks of single integrations; None when too few pixels are left (jwst then leaves it NaN)."""
    wave = np.sort(trace2.wavelength[np.isfinite(trace2.wavelength)])
    grid = atoca.oversample(wave[wave < cutoff], BLUE_OVERSAMPLING)
    order = atoca.Order(o2.wavemap, o2.upper, o2.lower, o2.profile, np.ones_like, None)
    dmat = atoca.derivative_matrix(grid)
    try:
        fit = atoca.Engine([order], grid, [trace_mask2 | scimask])
    except atoca.MaskOverlapError:
        log.error("Not enough unmasked pixels to model the blue end of order 2; it stays NaN")
        return None
    tik = atoca.Tikhonov(fit.design(mederr), fit.data_vector(data, mederr), dmat)
    factor = atoca.search_factor(tik, guess, BLUE_LOG_RANGE)
    log.info("ATOCA Tikhonov factor (order 2 blue end): %.4e", factor)
    # the masks of a single integration without bad pixels of its own
    usual_err = np.where(all_bad, np.inf, 1.0)
    scimask_i, masks_i = integration_masks(np.zeros_like(mederr), usual_err, all_dnu, refmask, box_weights)
    fit_mask = masks_i[1] | scimask_i
    fit = atoca.Engine([order], grid, [fit_mask])
    global_box = np.all(masks_i, axis=0)
    rebuild = atoca.Engine([order], grid, [global_box])
    return Blue(order, grid, fit_mask, fit, global_box, rebuild.design(), rebuild.pixels, dmat,
                sparse.csc_matrix(dmat.T.dot(dmat)), factor)


def blue_model(blue: Blue, data, error, scimask, trace_masks) -> np.ndarray:
    """Flat image of order 2's blue-end model of one integration (NaN where not modelled); images 2-D."""
    fit_mask = trace_masks[1] | scimask
    global_box = np.all(trace_masks, axis=0)
    out = np.full(data.size, np.nan)
    try:
        fit = blue.fit if np.array_equal(fit_mask, blue.fit_mask) else atoca.Engine([blue.order], blue.grid, [fit_mask])
    except atoca.MaskOverlapError:
        return out
    tik = atoca.Tikhonov(fit.design(error), fit.data_vector(data, error), blue.derivative, blue.dtd)
    spectrum = tik.solve(blue.factor)
    if np.array_equal(global_box, blue.rebuild_mask):
        rebuild, pixels = blue.rebuild, blue.rebuild_pixels
    else:
        engine = atoca.Engine([blue.order], blue.grid, [global_box])
        rebuild, pixels = engine.design(), engine.pixels
    out[pixels] = rebuild @ spectrum
    return out


def contamination(p: AtocaPlan, data, error) -> np.ndarray:
    """(n, 2, npix): for each integration of the block and each order, the other order's model (NaN where
    none).  ``data``/``error``: (n, npix) in-filled float64.

    The sparse products take the block's integrations as columns of one dense operand (each column gets the
    bits of its own product, so any chunking gives the same bytes); the LU solve and the blue-end fit run
    one integration at a time (a multi-column solve would change the bits)."""
    n, npix = data.shape
    out = np.full((n, 2, npix), np.nan)
    values = np.ascontiguousarray(data[:, p.pixels].T)
    if p.inverse is None:
        rhs = p.projection @ values
        spectra = np.stack([p.normal.solve(np.ascontiguousarray(rhs[:, k])) for k in range(n)], axis=1)
    else:
        spectra = np.stack([_joint_spectrum(None, p.inverse, p.design, p.mederr_pixels, None, values[:, k])
                            for k in range(n)], axis=1)
    out[:, 1, p.model_pixels[0]] = (p.model_maps[0] @ spectra).T
    out[:, 0, p.model_pixels[1]] = (p.model_maps[1] @ spectra).T
    if p.blue is not None:
        shape = p.all_dnu.shape
        for k in range(n):
            d, e = data[k].reshape(shape), error[k].reshape(shape)
            scimask, masks = integration_masks(d, e, p.all_dnu, p.refmask, p.box_weights)
            blue = blue_model(p.blue, d, e, scimask, masks)
            model2 = out[k, 0]
            np.copyto(model2, blue, where=~np.isfinite(model2))
    return out
