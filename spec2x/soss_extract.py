"""extract_1d for NIRISS SOSS (NIS_SOSS): box extraction of every spectral order, as jwst 3.0.0 does with
``soss_atoca=False`` (``soss_bad_pix="masking"``, no background subtraction).

Once per exposure (``prepare``):

* traces y(x), lambda(x) of each order at the exposure's PWCPOS from the PASTASOSS reference
  (``spec2x.pastasoss``), and box apertures of width ``soss_width`` about them (fractional weights at
  the edges; SUBSTRIP96 extracts order 2 over the whole frame, as jwst does);
* the exposure-wide statistics jwst's extraction uses: pixels DO_NOT_USE in every integration, the
  reference pixels of the first integration, and the in-fill table of pixels that are not finite in
  some integration (their per-integration value: a running median in time, 9 integrations wide, of
  the series whose gaps hold the median over all integrations; their error: 10x the median error).
  These need the whole cube, so ``prepare`` reads it twice, chunk by chunk (memory stays flat):
  once for the masks, once to gather the time series of the listed pixels, known only then.  The first
  read keeps its leading chunks (up to ``KEEP_BYTES``), so the second reads only the rest: a short
  exposure is read once.

Per chunk of integrations (``apply``): one numba call (``kernels.soss_box``).  The spectra Dataset has
an ``order`` dimension (one EXTRACT1D extension each); orders shorter than the longest are NaN-padded and
``n_alongdisp`` holds their length.

With ATOCA (jwst's default ``soss_atoca=True``) ``prepare`` also fits jwst's linear model of the
overlapping orders on the mean integration (``spec2x.soss_atoca``: the sum of the integrations comes from
the first read, the median error over time from the kept cube or, when it was not all kept, from a read
of its own spilled to a temporary file and reduced in bands of rows), and each chunk subtracts the other order's model before the box sums
(``kernels.atoca``).  Its keywords (TIKFACTR, OVERSAMP, THRESHLD) are recorded as jwst records them.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr
from scipy import ndimage
from stdatamodels.jwst import datamodels

from kernels import atoca as katoca
from kernels import soss_box
from spec2x import allocator, pastasoss
from spec2x import soss_atoca as decontamination
from spec2x.dq import PIXEL
from spec2x.errors import NotImplementedForMode, RefError
from spec2x.meta import exposure_keywords

SUBARRAYS = ("SUBSTRIP256", "SUBSTRIP96")
TIME_WINDOW = 9          # integrations in jwst's running median of in-filled pixels
ERROR_INFLATION = 10.0   # in-filled pixels get this times the median error
RECORDED_N_OS, RECORDED_THRESHOLD = 2, 0.01   # jwst records its ATOCA defaults (OVERSAMP, THRESHLD) in box mode too
COLUMNS = ("flux", "flux_error", "npixels")
ZERO_COLUMNS = ("flux_var_poisson", "flux_var_rnoise", "flux_var_flat", "surf_bright", "sb_error", "sb_var_poisson",
                "sb_var_rnoise", "sb_var_flat", "dq", "background", "bkgd_error", "bkgd_var_poisson",
                "bkgd_var_rnoise", "bkgd_var_flat")


@dataclass(frozen=True)
class SossPlan:
    """Everything fixed for the exposure."""

    orders: tuple
    lengths: np.ndarray       # columns extracted per order (the order's cutoff)
    wavelength: np.ndarray    # (norders, nmax) NaN-padded
    weights: np.ndarray       # (norders, ny, nx)
    lo: np.ndarray            # (norders, nx) first row with weight
    hi: np.ndarray            # (norders, nx) one past the last row with weight
    static_mask: np.ndarray   # (ny, nx) bool
    fill_pix: np.ndarray      # (npix,) flat pixel indices
    fill_data: np.ndarray     # (nints, npix) float32
    fill_err: np.ndarray      # (nints, npix) float64
    integration_numbers: np.ndarray   # exposure-wide INT numbers, row order of the fill tables
    primary: dict
    atoca: decontamination.AtocaPlan | None = None


def box_weights(ytrace: np.ndarray, width: float, shape: tuple) -> np.ndarray:
    """Box aperture of ``width`` rows centred on ``ytrace`` (one value per column from 0): 1 inside,
    the covered fraction at both ends, 0 elsewhere and beyond the trace's columns."""
    rows = np.arange(shape[0], dtype=np.float64)[:, None]
    c = ytrace[None, :]
    half = width / 2
    w = ((rows <= c - 0.5 + half) & (c + 0.5 - half <= rows)).astype(np.float64)
    upper = (c - 0.5 + half < rows) & (rows < c + 0.5 + half)
    w = np.where(upper, c + half - (rows - 0.5), w)
    lower = (rows < c + 0.5 - half) & (c - 0.5 - half < rows)
    w = np.where(lower, rows + 0.5 - (c - half), w)
    out = np.zeros(shape)
    out[:, : ytrace.size] = w
    return out


def _weight_rows(weights: np.ndarray):
    """Per order and column, the [lo, hi) row range holding the non-zero weights."""
    nz = weights > 0
    any_ = nz.any(axis=1)
    lo = np.where(any_, nz.argmax(axis=1), 0)
    hi = np.where(any_, weights.shape[1] - nz[:, ::-1, :].argmax(axis=1), 0)
    return lo.astype(np.int64), hi.astype(np.int64)


def _check_specprofile(path: str, shape: tuple, norders: int):
    """jwst crops the profiles' padding to the frame: each profile must be the frame plus its padding."""
    try:
        model = datamodels.SpecProfileModel(path)
    except (OSError, ValueError) as exc:
        raise RefError("extract_1d", "specprofile", f"{path}: not a SPECPROFILE file ({exc})") from None
    with model:
        if len(model.profile) < norders:
            raise RefError("extract_1d", "specprofile", f"{path}: profile has {len(model.profile)} orders, "
                           f"the exposure needs {norders}")
        for k, prof in enumerate(model.profile[:norders]):
            pad = int(prof.padding or 0)
            got = tuple(np.shape(prof.data))
            if (got[0] - 2 * pad, got[1] - 2 * pad) != tuple(shape):
                raise RefError("extract_1d", "specprofile", f"{path}: profile[{k}].data is {got[0]}x{got[1]} with "
                               f"padding {pad}, not the {shape[0]}x{shape[1]} frame of the exposure's subarray")


def _check_speckernel(path: str):
    try:
        datamodels.SpecKernelModel(path).close()
    except (OSError, ValueError) as exc:
        raise RefError("extract_1d", "speckernel", f"{path}: not a SPECKERNEL file ({exc})") from None


UNSUPPORTED = {"soss_wave_grid_in": None, "soss_wave_grid_out": None, "soss_estimate": None, "soss_modelname": None}


def prepare(ds: xr.Dataset, refs: dict, soss_atoca=True, soss_width=40.0, soss_bad_pix="masking",
            soss_order_3=True, soss_threshold=1e-2, soss_n_os=2, soss_rtol=1e-4, soss_max_grid_size=20000,
            soss_tikfac=None, soss_dense_inverse=False, **unsupported) -> SossPlan:
    """The per-exposure extraction plan (reads the cube at most twice for the exposure-wide statistics,
    three times with ATOCA)."""
    for name, value in unsupported.items():
        if name not in UNSUPPORTED:
            raise TypeError(f"unknown parameter {name}")
        if value is not None:
            raise NotImplementedForMode(f"extract_1d: {name}={value!r} is not implemented for NIRISS SOSS "
                                        "(only jwst's default, None)")
    kw = exposure_keywords(ds)
    source = (ds.attrs.get("paths") or [ds.attrs.get("filename", "exposure")])[0]
    if soss_bad_pix != "masking" and not soss_atoca:
        raise NotImplementedForMode(f"extract_1d: soss_bad_pix={soss_bad_pix!r} needs the ATOCA trace model; "
                                    "only 'masking' is implemented")
    if str(kw.get("FILTER", "")).upper() != "CLEAR":
        raise NotImplementedForMode(f"extract_1d: FILTER={kw.get('FILTER')}: jwst 3.0.0 extracts SOSS spectra "
                                    "for CLEAR only (it skips the step otherwise)")
    subarray = str(kw.get("SUBARRAY", "")).upper()
    if subarray not in SUBARRAYS:
        raise NotImplementedForMode(f"extract_1d: SUBARRAY={subarray}: jwst 3.0.0 extracts SOSS spectra for "
                                    f"{' and '.join(SUBARRAYS)} only (it skips the step otherwise)")
    ref = pastasoss.read_pastasoss(refs["pastasoss"])
    pwcpos = pastasoss.check_pwcpos(ref, kw.get("PWCPOS"), source)
    wanted = (1, 2, 3) if soss_order_3 and subarray != "SUBSTRIP96" else (1, 2)
    orders = tuple(o for o in wanted if o in ref.orders)
    shape = (ds.sizes["y"], ds.sizes["x"])
    _check_specprofile(refs["specprofile"], shape, len(orders))
    _check_speckernel(refs["speckernel"])
    if soss_atoca and soss_bad_pix != "masking":
        raise NotImplementedForMode(f"extract_1d: soss_bad_pix={soss_bad_pix!r} is not implemented; only 'masking'")
    if soss_atoca and len(orders) > 2:
        raise NotImplementedForMode("extract_1d: ATOCA with an order-3 trace in the PASTASOSS reference is not "
                                    "implemented (give soss_order_3=False)")

    traces = [pastasoss.trace(ref, o, pwcpos, subarray) for o in orders]
    weights = np.stack([box_weights(t.y, soss_width, shape) for t in traces])
    if subarray == "SUBSTRIP96":
        weights[orders.index(2)] = 1.0
    lengths = np.array([t.x.size for t in traces])
    wavelength = np.full((len(orders), lengths.max()), np.nan)
    for k, t in enumerate(traces):
        wavelength[k, : t.x.size] = t.wavelength
    lo, hi = _weight_rows(weights)
    masks, fill_pix, fill_data, fill_err, sums = exposure_statistics(ds, with_total=soss_atoca)
    static = masks.all_dnu | masks.all_bad | masks.refmask
    primary = {"SOSSWDTH": float(soss_width), "OVERSAMP": int(soss_n_os), "THRESHLD": float(soss_threshold)}
    numbers = np.asarray(ds["integration_number"].values)
    plan = None
    if soss_atoca:
        mean, mederr = atoca_statistics(masks, fill_pix, fill_data, sums)
        all_dnu, all_bad, refmask = masks.all_dnu, masks.all_bad, masks.refmask
        inputs, order_traces = decontamination.order_inputs(ref, refs, orders, pwcpos, subarray, shape)
        plan = decontamination.plan(mean, mederr, ds.sizes["integration"], all_dnu, all_bad, refmask, list(weights),
                               inputs, order_traces, ref.separation_cutoff, subarray, threshold=soss_threshold,
                               n_os=soss_n_os, rtol=soss_rtol, max_grid_size=soss_max_grid_size, tikfac=soss_tikfac,
                               dense_inverse=soss_dense_inverse)
        primary["TIKFACTR"] = plan.tikfac
    return SossPlan(orders, lengths, wavelength, weights, lo, hi, static, fill_pix, fill_data, fill_err,
                    numbers, primary, plan)


def atoca_statistics(masks: "ExposureMasks", fill_pix, fill_data, sums):
    """(mean in-filled integration (float32, summed in integration order as numpy does), median error
    (float32, inf where bad in every integration or a reference pixel)).  ``sums`` = (float32 running sum
    of the integrations, median error over time) from ``exposure_statistics``' first pass; the
    in-filled pixels' sums are redone here from the in-fill table (rows in integration order)."""
    raw_total, mederr = sums
    ny, nx = raw_total.shape
    mederr = np.asarray(mederr, np.float32)
    mederr[masks.all_bad | masks.refmask] = np.inf
    total = raw_total.copy().reshape(-1)
    filled = np.zeros(fill_pix.size, np.float32)
    for row in fill_data:
        filled += row
    total[fill_pix] = filled
    mean = (total.reshape(ny, nx) / np.intp(fill_data.shape[0])).astype(np.float32)
    return mean, mederr


def median_from_spill(spill, nints: int, ny: int, nx: int) -> np.ndarray:
    """``np.nanmedian`` over the integrations of the float32 (nints, ny, nx) cube written to the file
    ``spill``, to the bit, reading it back in bands of rows over all integrations (at most
    ``MEDIAN_BAND_BYTES`` each: memory flat in nints; ``kernels.soss_box.nanmedian_time``)."""
    row_bytes = nx * np.dtype(np.float32).itemsize
    rows = int(min(ny, max(1, MEDIAN_BAND_BYTES // (nints * row_bytes))))
    out = np.empty((ny, nx), np.float32)
    for y0 in range(0, ny, rows):
        band = np.empty((nints, min(rows, ny - y0), nx), np.float32)
        for k in range(nints):
            spill.seek((k * ny + y0) * row_bytes)
            spill.readinto(band[k])
        out[y0:y0 + band.shape[1]] = soss_box.nanmedian_time(band)
    return out


@dataclass(frozen=True)
class ExposureMasks:
    """(ny, nx) masks over all integrations: DO_NOT_USE in every one, not finite (value or error) in every
    one, reference pixel in the first one."""

    all_dnu: np.ndarray
    all_bad: np.ndarray
    refmask: np.ndarray


MEDIAN_BAND_BYTES = 64 * 2**20   # a band of rows over all integrations for the median error over time
PASS_BATCH = 4   # integration chunks per dask call of a statistics pass (the scheduler's threads share them)
KEEP_BYTES = 96 * 2**20   # SCI + ERR of the first chunks kept from the first pass (24 SUBSTRIP256 integrations:
#                           ~+100 MB of peak memory): the second pass reads only the rest


def _cubes(ds: xr.Dataset, names) -> list:
    """The (integration, y, x) dask cubes ``names`` of ``ds``, chunked alike, whole frames per chunk."""
    cubes = []
    for name in names:
        a = ds[name].transpose("integration", "y", "x").data
        a = a if isinstance(a, da.Array) else da.from_array(a, chunks=(8, -1, -1))
        cubes.append(a.rechunk((cubes[0].chunks[0] if cubes else a.chunks[0], -1, -1)))
    return cubes


def chunk_pass(ds: xr.Dataset, names, reduce, *args):
    """``reduce(*blocks, *args)`` of every integration chunk of the cubes ``names``, in integration order:
    one read of each chunk (the lazy chain computed on the current dask scheduler, a few chunks per call),
    ``reduce`` running where the chunk is, so only its result travels and memory stays flat."""
    blocks = zip(*(c.to_delayed(optimize_graph=False).ravel() for c in _cubes(ds, names)))
    tasks = [dask.delayed(reduce, pure=True)(*b, *args) for b in blocks]
    for i in range(0, len(tasks), PASS_BATCH):
        yield from dask.compute(*tasks[i: i + PASS_BATCH])


def _kept_integrations(ds: xr.Dataset) -> int:
    """How many leading integrations (whole chunks) the first pass keeps in memory for the second."""
    chunks = _cubes(ds, ("sci",))[0].chunks[0]
    frame = 8 * ds.sizes["y"] * ds.sizes["x"]   # SCI and ERR, float32
    ends = np.cumsum(chunks)
    return int(ends[ends * frame <= KEEP_BYTES].max(initial=0))


def _mask_block(sci, err, dq, keep_sci, keep_err):
    """One chunk's part of the exposure masks: (not finite in some, in every integration; DO_NOT_USE in
    every integration; DQ of the first) and SCI and ERR themselves where asked (else None)."""
    bad = ~(np.isfinite(sci) & np.isfinite(err))
    dnu = (dq & np.uint32(PIXEL["DO_NOT_USE"])) != 0
    return bad.any(axis=0), bad.all(axis=0), dnu.all(axis=0), dq[0], sci if keep_sci else None, \
        err if keep_err else None


def _pixel_series(sci, err, flat_pixels):
    """SCI and ERR of one chunk at ``flat_pixels`` (flat indices), (n, npix) each."""
    n = sci.shape[0]
    return sci.reshape(n, -1)[:, flat_pixels], err.reshape(n, -1)[:, flat_pixels]


def exposure_statistics(ds: xr.Dataset, with_total: bool = False):
    """(ExposureMasks, in-fill pixel indices, in-fill values, in-fill errors, ATOCA's sums or None) over
    all integrations; ATOCA's sums (``with_total``): the float32 sum of the integrations in order, and
    the median error over time (from the kept cube, or from ERR spilled to a temporary file by this
    same read when the cube is not all kept).

    Two reads of the cube: the first gives the masks (and the sums), the second the time series of the
    in-fill pixels, known only then.  The first keeps its leading chunks in memory (``KEEP_BYTES``), so
    the second reads only the others (none for short exposures).

    In-fill pixels: not finite (value or error) in some integration.  The box extraction leaves out the
    static mask (any of the masks); ATOCA uses them separately.
    """
    allocator.tune()   # the passes allocate chunk-sized arrays afresh, as the chunk tasks do
    nints, ny, nx = (ds.sizes[d] for d in ("integration", "y", "x"))
    kept = _kept_integrations(ds)
    head, tail = ds.isel(integration=slice(0, kept)), ds.isel(integration=slice(kept, None))
    any_bad, all_bad, all_dnu = np.zeros((ny, nx), bool), np.ones((ny, nx), bool), np.ones((ny, nx), bool)
    first_dq, total, frames, n_kept = None, np.zeros((ny, nx), np.float32) if with_total else None, [], 0
    spill = tempfile.TemporaryFile() if with_total and kept < nints else None   # ERR, for the median
    names = ("sci", "err", "dq")
    first_pass = itertools.chain(chunk_pass(head, names, _mask_block, True, True) if kept else (),
                                 chunk_pass(tail, names, _mask_block, with_total, spill is not None)
                                 if kept < nints else ())
    for some, every, dnu, dq0, sci, err in first_pass:
        any_bad |= some
        all_bad &= every
        all_dnu &= dnu
        first_dq = dq0 if first_dq is None else first_dq
        if n_kept < kept:   # the head's chunks come first
            frames.append((sci, err))
            n_kept += len(sci)
        if spill is not None:
            spill.write(np.ascontiguousarray(err, np.float32))
        for frame in sci if with_total else ():
            total += frame
    refmask = (first_dq & np.uint32(PIXEL["REFERENCE_PIXEL"])) != 0
    ys, xs = np.nonzero(any_bad)
    flat = (ys * nx + xs).astype(np.int64)
    data, error = np.zeros((nints, 0), np.float32), np.zeros((nints, 0), np.float32)
    mederr = None
    if spill is not None:
        with spill:
            mederr = median_from_spill(spill, nints, ny, nx)
    elif with_total:
        mederr = soss_box.nanmedian_time(np.concatenate([err for _, err in frames]))
    if flat.size:
        parts = [_pixel_series(sci, err, flat) for sci, err in frames]
        frames.clear()
        if kept < nints:
            parts.extend(chunk_pass(tail, ("sci", "err"), _pixel_series, flat))
        data, error = (np.concatenate([p[k] for p in parts]) for k in (0, 1))
    fill_data, fill_err = infill(data.astype(np.float32), error.astype(np.float32), refmask[ys, xs])
    frames.clear()
    sums = (total, mederr) if with_total else None
    return ExposureMasks(all_dnu, all_bad, refmask), flat, fill_data, fill_err, sums


def infill(data: np.ndarray, error: np.ndarray, refmask: np.ndarray):
    """jwst's in-fill of (nints, npix) series: values not finite -> running median in time (window
    ``TIME_WINDOW``, reflected at the ends) of the series with gaps set to the all-integration median;
    errors of pixels bad in an integration -> 10x the median error (inf for reference pixels and
    pixels bad everywhere)."""
    import warnings

    nints = data.shape[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        med_err = np.nanmedian(error, axis=0)
        med_data = np.nanmedian(data, axis=0)
    all_bad = (np.isfinite(error) & np.isfinite(data)).sum(axis=0) == 0
    med_err[all_bad | refmask] = np.inf
    med_data[all_bad] = 0
    gaps = ~np.isfinite(data)
    filled = np.where(gaps, med_data[None, :], data)
    running = ndimage.median_filter(filled, min(nints, TIME_WINDOW), axes=(0,))
    values = np.where(gaps, running, data).astype(np.float32)
    err64 = error.astype(np.float64)
    bad = gaps | ~np.isfinite(err64)
    err64 = np.where(bad, np.broadcast_to(med_err * np.float32(ERROR_INFLATION), err64.shape), err64)
    return values, err64


def apply(ds: xr.Dataset, plan: SossPlan) -> xr.Dataset:
    """Spectra of ``ds`` over (order, integration, spectral): lazy for dask cubes, computed for numpy."""
    sci, err = (ds[n].transpose("integration", "y", "x").data for n in ("sci", "err"))
    numbers = np.asarray(ds["integration_number"].values)
    rows = np.searchsorted(plan.integration_numbers, numbers)
    norders, nx = len(plan.orders), ds.sizes["x"]
    if isinstance(sci, da.Array):
        sci = sci.rechunk((sci.chunks[0], -1, -1))
        err = err.rechunk(sci.chunks)
        row_chunks = da.from_array(rows, chunks=(sci.chunks[0],))
        flat = da.map_blocks(_extract_block, sci, err, row_chunks[:, None, None], dask.delayed(plan, pure=True),
                             dtype=np.float64, chunks=(sci.chunks[0], (norders * len(COLUMNS),), (nx,)))
        block = flat.reshape((flat.shape[0], norders, len(COLUMNS), nx))
    else:
        block = _extract_block(sci, err, rows[:, None, None], plan).reshape((-1, norders, len(COLUMNS), nx))
    nmax = plan.wavelength.shape[1]
    dims = ("order", "integration", "spectral")
    data_vars = {"wavelength": (("order", "spectral"), plan.wavelength, {"units": "um"})}
    for c, name in enumerate(COLUMNS):
        column = block[:, :, c, :nmax].transpose(1, 0, 2) if isinstance(block, da.Array) else \
            np.ascontiguousarray(block[:, :, c, :nmax].transpose(1, 0, 2))
        data_vars[name] = (dims, column, {"units": "DN/s"} if name != "npixels" else {})
    flux = data_vars["flux"][1]
    lib = da if isinstance(flux, da.Array) else np
    for name in ZERO_COLUMNS:   # columns jwst's SOSS extraction leaves at zero
        zeros = lib.zeros_like(flux, dtype=np.uint32 if name == "dq" else np.float64)
        data_vars[name] = (dims, zeros, {"units": "DN/s"} if name == "background" else {})
    coords = {name: c for name, c in ds.coords.items() if c.dims == ("integration",)}
    coords.update(sporder=("order", np.array(plan.orders, np.int32)),
                  n_alongdisp=("order", plan.lengths.astype(np.int64)))
    attrs = {k: v for k, v in ds.attrs.items() if k != "wcs"}
    attrs["primary"] = {**attrs.get("primary", {}), **plan.primary}
    attrs.update(extract1d={}, spec_meta={})
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _extract_block(sci, err, rows, plan: SossPlan):
    """(n, norders * 3, nx) for one chunk of integrations (order-major, then flux, error, npixels)."""
    if plan.atoca is not None:
        data, error = katoca.fill_block(np.ascontiguousarray(sci, np.float32), np.ascontiguousarray(err, np.float32),
                                        np.asarray(rows).reshape(-1).astype(np.int64), plan.fill_pix, plan.fill_data,
                                        plan.fill_err)
        others = decontamination.contamination(plan.atoca, data, error)
        out = katoca.decontaminated_box(data, error, others, plan.static_mask, plan.weights, plan.lo, plan.hi)
        return out.reshape((out.shape[0], -1, out.shape[-1]))
    out = soss_box.box_extract(np.ascontiguousarray(sci, np.float32), np.ascontiguousarray(err, np.float32),
                               np.asarray(rows).reshape(-1).astype(np.int64), plan.fill_pix, plan.fill_data,
                               plan.fill_err, plan.static_mask, plan.weights, plan.lo, plan.hi)
    return out.reshape((out.shape[0], -1, out.shape[-1]))

