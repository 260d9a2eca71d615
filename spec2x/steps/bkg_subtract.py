"""bkg_subtract for NIRISS SOSS: subtract the best of the BKG reference's background templates, scaled
to the exposure, as jwst 3.0.0 does when a BKG reference is given (``SossBkgModel``).

Each template has a step in level between columns 685 and 725 (found per row as the steepest rise of the
template smoothed by a 3-px Gaussian); left and right of it get their own scale.  The fit uses pixels
of the whole exposure (all integrations pooled): finite, not DO_NOT_USE or REFERENCE_PIXEL, fainter than
the ``soss_source_percentile`` of those pixels, and, on the right, at columns <= 950.  Per side the
scale is the median of data/template over the ratios strictly between their ``soss_bkg_percentile``
percentiles; the template with the least sum of the two sides' RMS residuals wins.  The scaled
template is then subtracted from SCI of every integration (ERR, DQ and variances are unchanged).
A reference of 256 rows is cut to rows 10-105 for SUBSTRIP96; any other shape mismatch, or a fit with
no usable pixels, leaves the data alone with S_BKDSUB=SKIPPED.

The scales are exposure-wide statistics, so ``prepare`` reads the cube in passes of chunks (kept in
memory between passes when the cube is small): percentiles and medians are exact, as numpy's
(``spec2x.quantiles``); the fitted pixels of each block are gathered by one numba kernel
(``kernels.soss_bkg``).  ``apply`` is one float64 expression per pixel, lazy per chunk.  Background
exposures from an association (the other modes' bkg_subtract) are not implemented.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr
from astropy.io import fits
from scipy import ndimage

from kernels import soss_bkg
from spec2x import allocator, quantiles
from spec2x.dq import PIXEL
from spec2x.errors import NotImplementedForMode, RefError, Spec2xError
from spec2x.meta import keyword, with_keywords

log = logging.getLogger(__name__)

PARAMETERS = {"soss_source_percentile": 35.0, "soss_bkg_percentile": None}
DEFAULT_BKG_PERCENTILE = (25.0, 50.0)
STEP_COLUMNS = (685, 725)    # where the template's level step is looked for
FIT_LAST_COLUMN = 950        # right-side pixels beyond this column are not fitted (source light)
SUBSTRIP96_FIRST_ROW = 10    # SUBSTRIP96 within a 256-row template
SMOOTHING = 3.0
CACHE_BYTES = 128 * 2**20    # cubes (SCI + DQ) up to this size are read once for all passes (peak ~3x)
BATCH = 4                    # chunks computed per dask call of a pass (the scheduler's threads share them)
FLAGS = np.uint32(PIXEL["DO_NOT_USE"] | PIXEL["REFERENCE_PIXEL"])   # pixels never fitted


@dataclass(frozen=True)
class SossBackground:
    """The chosen template and its two scales (left, right of its step)."""

    template: np.ndarray     # (ny, nx) float32
    right: np.ndarray        # (ny, nx) bool: right of the step
    scales: tuple            # (left, right), float64
    index: int


def run(ds: xr.Dataset, refs: dict, **params) -> xr.Dataset:
    return apply(ds, prepare(ds, refs, **params))


def prepare(ds: xr.Dataset, refs: dict, soss_source_percentile=35.0, soss_bkg_percentile=None):
    """The scaled template for this exposure, or None when jwst would skip the subtraction."""
    exp_type = str(keyword(ds, "EXP_TYPE", "")).upper()
    if exp_type != "NIS_SOSS":
        raise NotImplementedForMode(f"bkg_subtract: background subtraction for EXP_TYPE={exp_type} is not implemented")
    bounds = _percentiles("soss_bkg_percentile", DEFAULT_BKG_PERCENTILE if soss_bkg_percentile is None
                          else soss_bkg_percentile, 2)
    source_percentile = _percentiles("soss_source_percentile", [soss_source_percentile], 1)[0]
    templates = read_templates(refs["bkg"], ds.sizes["y"], ds.sizes["x"])
    if templates is None:
        return None
    allocator.tune()   # the passes allocate chunk-sized arrays afresh, as the chunk tasks do
    cube = _Cube(ds)
    threshold = source_threshold(cube, source_percentile)
    fit = best_template(cube, templates, threshold, bounds)
    if fit is None:
        log.warning("bkg_subtract: template matching failed; background not subtracted")
    return fit


def _percentiles(name: str, values, count: int) -> tuple:
    """``count`` floats in [0, 100] from a step parameter; a clear error otherwise."""
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != count or not all(0 <= v <= 100 for v in out):
        raise Spec2xError(f"bkg_subtract: {name}={values!r}: give {count} percentile(s) between 0 and 100")
    return out


def read_templates(path: str, ny: int, nx: int) -> np.ndarray | None:
    """The (n, ny, nx) float32 templates for a frame of ``ny`` rows, or None (jwst skips) when they don't fit."""
    try:
        with fits.open(path) as hdul:
            data = np.asarray(hdul["SCI"].data, dtype=np.float32)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise RefError("bkg_subtract", "bkg", f"{path}: not a SOSS BKG reference with a SCI extension ({exc})") from None
    if data.ndim != 3:
        raise RefError("bkg_subtract", "bkg", f"{path}: SCI must be (templates, rows, columns), not {data.shape}")
    if data.shape[1] == 256 and ny == 96:
        data = data[:, SUBSTRIP96_FIRST_ROW:SUBSTRIP96_FIRST_ROW + 96]
    elif data.shape[1] != ny:
        log.warning("bkg_subtract: %s has %d rows, the exposure %d: background not subtracted", path,
                    data.shape[1], ny)
        return None
    if data.shape[2] != nx:
        raise RefError("bkg_subtract", "bkg", f"{path}: SCI has {data.shape[2]} columns, the exposure {nx}")
    return np.ascontiguousarray(data)


def step_columns(template: np.ndarray) -> np.ndarray:
    """Per row, the column where the smoothed template rises most within ``STEP_COLUMNS``."""
    smooth = ndimage.gaussian_filter(template, SMOOTHING)
    rise = np.gradient(smooth, axis=1)[:, STEP_COLUMNS[0]:STEP_COLUMNS[1]]
    return np.argmax(rise, axis=1) + STEP_COLUMNS[0]


def sides(template: np.ndarray, for_fit: bool) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) masks of the template's two levels; for fitting, right stops at ``FIT_LAST_COLUMN``."""
    columns = np.arange(template.shape[1])[None, :]
    right = columns >= step_columns(template)[:, None]
    left = ~right
    if for_fit:
        right = right & (columns <= FIT_LAST_COLUMN)
    return left, right


class _Cube:
    """(sci, dq) blocks of integrations, read again on every pass (kept after the first when small)."""

    def __init__(self, ds: xr.Dataset):
        sci, dq = (ds[n].transpose("integration", "y", "x").data for n in ("sci", "dq"))
        if not isinstance(sci, da.Array):
            sci, dq = da.from_array(sci, chunks=(8, -1, -1)), da.from_array(dq, chunks=(8, -1, -1))
        sci = sci.rechunk((sci.chunks[0], -1, -1))   # whole frames: one block per chunk of integrations
        self.sci, self.dq = sci, dq.rechunk(sci.chunks)
        self.cached = [] if sci.nbytes + dq.nbytes <= CACHE_BYTES else None
        self._complete = False

    def blocks(self):
        if self._complete:
            yield from self.cached
            return
        # the chunks themselves (no slicing: dask would copy each result once more), a few per call
        pairs = list(zip(*(c.to_delayed(optimize_graph=False).ravel() for c in (self.sci, self.dq))))
        for i in range(0, len(pairs), BATCH):
            for sci, dq in dask.compute(*pairs[i: i + BATCH]):
                block = (np.asarray(sci, np.float32), np.asarray(dq, np.uint32))
                if self.cached is not None:
                    self.cached.append(block)
                yield block
        self._complete = self.cached is not None


def _flagged(dq: np.ndarray) -> np.ndarray:
    return (dq & FLAGS) != 0


def source_threshold(cube: _Cube, percentile: float) -> np.float32:
    """The ``percentile`` of the finite, unflagged pixels of all integrations (as jwst: float32)."""
    def source():
        for sci, dq in cube.blocks():
            yield [sci[np.isfinite(sci) & ~_flagged(dq)]]

    counts, values = quantiles.order_statistics(source, [lambda n: quantiles.percentile_ranks(n, percentile)[:2]])
    if counts[0] == 0:
        return np.float32(np.nan)
    lo, hi, gamma = quantiles.percentile_ranks(counts[0], percentile)
    return quantiles.percentile(values[0][lo], values[0][hi], gamma, weak=True)


class _FitSets:
    """Per block of integrations, the (data, template, ratio) values of each (template, side)'s fitted
    pixels (``kernels.soss_bkg.fit_pixels``); kept after the first pass when the cube is small."""

    def __init__(self, cube: _Cube, templates: np.ndarray, threshold):
        masks = [sides(t, for_fit=True) for t in templates]
        self.side = np.stack([np.where(right, 1, np.where(left, 0, -1)) for left, right in masks]).astype(np.int8)
        self.cube, self.templates, self.threshold = cube, templates, np.float32(threshold)
        self.cached = [] if cube.cached is not None else None
        self._complete = False

    def blocks(self):
        if self._complete:
            yield from self.cached
            return
        for sci, dq in self.cube.blocks():
            data, model, ratio, offsets = soss_bkg.fit_pixels(sci, dq, FLAGS, self.threshold, self.templates,
                                                              self.side)
            item = [(data[a:b], model[a:b], ratio[a:b]) for a, b in itertools.pairwise(offsets)]
            if self.cached is not None:
                self.cached.append(item)
            yield item
        if self.cached is not None:
            self._complete = True
            self.cube.cached = None   # the sets are all later passes need

    def ratios(self):
        for item in self.blocks():
            yield [ratio for _, _, ratio in item]


def best_template(cube: _Cube, templates: np.ndarray, threshold, percentiles: tuple) -> SossBackground | None:
    """The template (and its two scales) with the least summed RMS residual, as jwst chooses it."""
    sets = _FitSets(cube, templates, threshold)
    nsets = 2 * len(templates)

    def bounds_ranks(n):
        return [i for q in percentiles for i in quantiles.percentile_ranks(n, q)[:2]] if n else []

    counts, values = quantiles.order_statistics(sets.ratios, [bounds_ranks] * nsets)
    limits = []
    for n, found in zip(counts, values):
        if not n:
            limits.append(None)
            continue
        pair = []
        for q in percentiles:
            lo, hi, gamma = quantiles.percentile_ranks(n, q)
            pair.append(quantiles.percentile(found[lo], found[hi], gamma, weak=False))
        limits.append(tuple(pair))

    def inside():
        for ratios in sets.ratios():
            yield [r[(r > lim[0]) & (r < lim[1])] if lim is not None else r[:0] for r, lim in zip(ratios, limits)]

    kept, middles = quantiles.order_statistics(inside, [lambda n: quantiles.median_ranks(n) if n else []] * nsets)
    scales = np.full(nsets, np.nan)
    for s, (n, found) in enumerate(zip(kept, middles)):
        if n:
            lo, hi = quantiles.median_ranks(n)
            scales[s] = np.float64(quantiles.median(found[lo], found[hi], n % 2 == 1))
    rms = _rms(sets, scales) if len(templates) > 1 else np.zeros(nsets)
    rms[np.isnan(scales)] = np.inf
    totals = rms.reshape(-1, 2).sum(axis=1)
    if not np.isfinite(totals).any():
        return None
    best = int(np.argmin(totals))
    return SossBackground(templates[best], sides(templates[best], for_fit=False)[1],
                          (float(scales[2 * best]), float(scales[2 * best + 1])), best)


def _rms(sets: _FitSets, scales: np.ndarray) -> np.ndarray:
    """RMS of data - scale x template over each (template, side)'s fitted pixels."""
    total, count = np.zeros(scales.size), np.zeros(scales.size)
    for item in sets.blocks():
        for s, (data, model, _) in enumerate(item):
            if np.isfinite(scales[s]):
                total[s] += np.sum(np.square(data - model * scales[s]))
                count[s] += data.size
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(total / count)


def apply(ds: xr.Dataset, fit: SossBackground | None) -> xr.Dataset:
    """SCI minus the scaled template (lazily per chunk); S_BKDSUB=SKIPPED when there is nothing to subtract."""
    if fit is None:
        return with_keywords(ds, primary={"S_BKDSUB": "SKIPPED"})
    sci = ds["sci"]
    data = sci.data
    if isinstance(data, da.Array):
        data = data.rechunk((data.chunks[0], -1, -1))   # whole frames: the template covers one
        out = da.map_blocks(subtract, data, dask.delayed(fit, pure=True), dtype=np.float32)
    else:
        out = subtract(np.asarray(data), fit)
    return ds.assign(sci=(sci.dims, out, sci.attrs))


def subtract(sci: np.ndarray, fit: SossBackground) -> np.ndarray:
    """jwst's arithmetic: the left then the right part of template x scale, each in float64 and
    stored back in float32."""
    left = (fit.template * ~fit.right).astype(np.float64)    # template x mask: NaN stays NaN, as jwst
    right = (fit.template * fit.right).astype(np.float64)
    out = (sci.astype(np.float64) - left * fit.scales[0]).astype(np.float32)
    return (out.astype(np.float64) - right * fit.scales[1]).astype(np.float32)
