"""Comparison helpers shared by the parity tests (spec2x products against jwst's)."""

from __future__ import annotations

import numpy as np


def assert_close_where_finite(ours, theirs, rtol, what, min_finite: float | None = None):
    """Same shape, same NaN pattern, values within ``rtol`` where finite; with ``min_finite``, more than
    that fraction of the elements must be finite (so the comparison is not empty)."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, what
    assert np.array_equal(np.isfinite(ours), np.isfinite(theirs)), f"{what}: NaN pattern differs"
    finite = np.isfinite(theirs)
    if min_finite is not None:
        assert finite.sum() > min_finite * finite.size, f"{what}: too few finite values to compare"
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=rtol, atol=0, err_msg=what)
