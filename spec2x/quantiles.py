"""Exact percentiles and medians of data too large for memory, as numpy computes them.

jwst takes ``np.nanpercentile``/``np.nanmedian`` of arrays gathered from a whole exposure.  spec2x gets
the same values by radix selection over passes of the data: float32 values map to unsigned keys
ordered as the floats are; one pass counts the keys' upper 16 bits, a second pass counts the lower 16
bits of the values in the bins holding the wanted ranks (``kernels.soss_bkg.key_histogram``), which gives those order statistics exactly.
Memory holds two 65536-bin histograms per set, whatever the number of values.  numpy's linear
interpolation between neighbouring order statistics is then reproduced bit for bit (``percentile``).

A *source* is a callable returning an iterable of passes' items: each item a list holding one 1-D
float32 array per set (the same sets, in the same order, on every call).
"""

from __future__ import annotations

import math

import numpy as np

from kernels import soss_bkg

BINS = 1 << 16


def _from_key(key: int) -> np.float32:
    bits = np.uint32(key ^ 0x80000000) if key & 0x80000000 else np.uint32(~np.uint32(key))
    return bits.view(np.float32)


def order_statistics(source, ranks: list) -> tuple[list, list]:
    """(counts, values): the number of values of each set, and ``values[s][r]`` = the ``r``-th smallest
    (0-based) value of set ``s`` for every rank in ``ranks[s]`` (a callable ``n -> ranks`` or a list)."""
    nsets = len(ranks)
    high = [np.zeros(BINS, np.int64) for _ in range(nsets)]
    no_bins, no_low = np.zeros(0, np.uint32), np.zeros((0, BINS), np.int64)
    for item in source():
        for s, values in enumerate(item):
            soss_bkg.key_histogram(np.ascontiguousarray(values, np.float32), no_bins, no_low, high[s])
    counts = [int(h.sum()) for h in high]
    wanted = [sorted(set(r(n) if callable(r) else r)) for r, n in zip(ranks, counts)]
    cumulative = [np.cumsum(h) for h in high]
    where = []                      # per set: rank -> (upper-bits bin, rank within the bin)
    for c, w in zip(cumulative, wanted):
        bins = {r: int(np.searchsorted(c, r, side="right")) for r in w}
        where.append({r: (b, r - (int(c[b - 1]) if b else 0)) for r, b in bins.items()})
    bins = [np.array(sorted({b for b, _ in found.values()}), np.uint32) for found in where]
    low = [np.zeros((b.size, BINS), np.int64) for b in bins]
    if any(b.size for b in bins):
        scratch = np.zeros(BINS, np.int64)
        for item in source():
            for s, values in enumerate(item):
                if bins[s].size:
                    soss_bkg.key_histogram(np.ascontiguousarray(values, np.float32), bins[s], low[s], scratch)
    values = []
    for s, found in enumerate(where):
        row = {int(b): k for k, b in enumerate(bins[s])}
        values.append({r: _from_key((b << 16) | int(np.searchsorted(np.cumsum(low[s][row[b]]), within, side="right")))
                       for r, (b, within) in found.items()})
    return counts, values


def percentile_ranks(n: int, q: float) -> tuple[int, int, float]:
    """numpy's 'linear' method: (previous index, next index, gamma) for percentile ``q`` of ``n`` values."""
    quantile = np.true_divide(q, 100)
    virtual = n * quantile + (1 - quantile) - 1
    previous = math.floor(virtual)
    gamma = float(virtual - previous)
    below, above = min(max(previous, 0), n - 1), min(max(previous + 1, 0), n - 1)
    return below, above, gamma


def percentile(lo: np.float32, hi: np.float32, gamma: float, weak: bool):
    """numpy's interpolation between neighbours ``lo``/``hi``: float32 when the percentile was given as a
    Python float (``weak``), float64 when given in a list."""
    a, b = np.float32(lo), np.float32(hi)
    t = gamma if weak else np.float64(gamma)
    diff = b - a
    if gamma >= 0.5:
        return b - diff * (1 - t)
    return a + diff * t


def median(lo: np.float32, hi: np.float32, odd: bool) -> np.float32:
    """np.median of float32 values from its two middle order statistics (the same one when ``odd``)."""
    if odd:
        return np.float32(lo)
    return np.float32((np.float32(lo) + np.float32(hi)) / np.float32(2))


def median_ranks(n: int) -> tuple[int, int]:
    return (n - 1) // 2, n // 2
