"""Numba kernels of the NIRISS SOSS background-template fit (jwst 3.0.0 ``subtract_soss_bkg``).

``fit_pixels`` gathers, for one block of integrations, the pixels each (template, side) fits: usable
(not DO_NOT_USE/REFERENCE_PIXEL, and not a finite value at or above the source threshold), in the side's
mask, with a finite float32 ratio data / template.  ``key_histogram`` counts radix keys of float32 values
(``spec2x.quantiles``) without building the key array.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def fit_pixels(sci, dq, flags, threshold, templates, side):
    """(data, model, ratio, offsets): float32 values of every set, concatenated set after set; set
    ``2 t + s`` (template t, side s: 0 left, 1 right) is ``[offsets[k], offsets[k + 1])``.

    ``sci`` (n, ny, nx) float32, ``dq`` (n, ny, nx) uint32, ``templates`` (T, ny, nx) float32, ``side``
    (T, ny, nx) int8: 0 left, 1 right (fitted part), -1 not fitted.
    """
    n, ny, nx = sci.shape
    ntemplates = templates.shape[0]
    counts = np.zeros(2 * ntemplates + 1, np.int64)
    for pass_ in range(2):
        if pass_ == 1:
            for k in range(2 * ntemplates):
                counts[k + 1] += counts[k]
            total = counts[2 * ntemplates]
            data = np.empty(total, np.float32)
            model = np.empty(total, np.float32)
            ratio = np.empty(total, np.float32)
            filled = counts[:-1].copy()
        for i in range(n):
            for y in range(ny):
                for x in range(nx):
                    d = sci[i, y, x]
                    if dq[i, y, x] & flags:
                        continue
                    if np.isfinite(d) and d >= threshold:
                        continue
                    for t in range(ntemplates):
                        s = side[t, y, x]
                        if s < 0:
                            continue
                        m = templates[t, y, x]
                        r = d / m
                        if not np.isfinite(r):
                            continue
                        k = 2 * t + s
                        if pass_ == 0:
                            counts[k + 1] += 1
                        else:
                            j = filled[k]
                            data[j], model[j], ratio[j] = d, m, r
                            filled[k] = j + 1
    return data, model, ratio, counts


@numba.njit(cache=True, nogil=True)
def key_histogram(values, high_bins, low_counts, high_counts):
    """Add the radix keys of float32 ``values`` to ``high_counts`` (upper 16 bits, 65536 bins) and, for
    each upper-bits bin listed in ``high_bins``, their lower 16 bits to its row of ``low_counts``."""
    bits = values.view(np.uint32)
    nbins = high_bins.size
    for j in range(bits.size):
        b = bits[j]
        key = ~b if b & np.uint32(0x80000000) else b | np.uint32(0x80000000)
        top = key >> np.uint32(16)
        high_counts[top] += 1
        for k in range(nbins):
            if high_bins[k] == top:
                low_counts[k, key & np.uint32(0xFFFF)] += 1
