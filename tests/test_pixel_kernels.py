"""kernels.pixel: the fused flat_field / photom arithmetic equals jwst's numpy order bit for bit,
NaN / DO_NOT_USE matching included (reference: the same operations on whole numpy arrays)."""

import numpy as np
import pytest
import xarray as xr

from kernels import pixel
from spec2x.dq import DO_NOT_USE, match_nans_and_flags

DIMS = ("integration", "y", "x")


def _block(seed, n=3, ny=5, nx=7):
    rng = np.random.default_rng(seed)
    cube = lambda scale: (rng.random((n, ny, nx)) * scale).astype(np.float32)  # noqa: E731
    sci, vp, vr, vf = cube(100.0), cube(2.0), cube(0.5), cube(0.1)
    sci[0, 1, 2] = np.nan
    vr[1, 2, 3] = np.nan
    dq = rng.integers(0, 8, (n, ny, nx)).astype(np.uint32)  # some DO_NOT_USE (bit 0)
    return sci, np.sqrt(vp + vr), dq, vp, vr, vf


def _matched(**cubes):
    ds = xr.Dataset({k: (DIMS, v) for k, v in cubes.items()})
    return match_nans_and_flags(ds)


def _same(got, want):
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint32) if got.dtype == np.float32 else got,
                                  want.view(np.uint32) if want.dtype == np.float32 else want)


def test_divide_by_flat_matches_numpy_order():
    sci, _, dq, vp, vr, _ = _block(1)
    rng = np.random.default_rng(2)
    flat = (0.5 + rng.random(sci.shape[1:])).astype(np.float32)
    flat_err = (0.01 * rng.random(sci.shape[1:])).astype(np.float32)
    flat_dq = np.zeros(sci.shape[1:], np.uint32)
    flat_dq[3, 4] = DO_NOT_USE
    got = pixel.divide_by_flat(flat, flat * flat, flat_err, flat_err ** 2, flat_dq, False, sci, vp, vr, dq)
    s = sci / flat
    v_flat = s ** 2 / (flat * flat) * flat_err ** 2
    v_p, v_r = vp / (flat * flat), vr / (flat * flat)
    want = _matched(sci=s, err=np.sqrt(v_p + v_r + v_flat), var_poisson=v_p, var_rnoise=v_r, var_flat=v_flat,
                    dq=dq | flat_dq)
    for k, name in enumerate(("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat")):
        _same(got[k], want[name].values)
    assert np.isnan(got[0][:, 3, 4]).all() and (got[2][:, 3, 4] & DO_NOT_USE).all()
    nirspec = pixel.divide_by_flat(flat, flat * flat, flat_err, flat_err ** 2, flat_dq, True, sci, vp, vr, dq)
    _same(nirspec[5], _matched(sci=s, var_flat=(s / flat * flat_err) ** 2, dq=dq | flat_dq)["var_flat"].values)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("present", [(True, True, True), (True, True, False)])
def test_scale_by_conversion_matches_numpy_order(dtype, present):
    sci, err, dq, vp, vr, vf = _block(3)
    rng = np.random.default_rng(4)
    factor = (10.0 * rng.random(sci.shape[1:])).astype(dtype)
    flags = np.zeros(sci.shape[1:], np.uint32)
    flags[0, :] = DO_NOT_USE
    variances = {"var_poisson": vp, "var_rnoise": vr, "var_flat": vf}
    got = pixel.scale_by_conversion(factor, factor * factor, flags, np.array(present), sci, err, dq,
                                    vp, vr, vf if present[2] else np.zeros_like(vf))
    cubes = {"sci": (sci * factor).astype(np.float32), "err": (err * factor).astype(np.float32), "dq": dq | flags}
    cubes.update({k: (v * (factor * factor)).astype(np.float32) for (k, v), kept in zip(variances.items(), present)
                  if kept})
    want = _matched(**cubes)
    for k, name in enumerate(("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat")):
        if name in want:
            _same(got[k], want[name].values)
    assert np.isnan(got[0][:, 0, :]).all()


def test_divide_by_flat_divides_as_numpy_where_the_squared_flat_underflows():
    """A tiny flat value whose square underflows to 0 in float32 follows numpy's IEEE division (inf, then
    NaN where inf meets a zero flat error), not an exception."""
    sci, _, dq, vp, vr, _ = _block(5)
    flat = np.ones(sci.shape[1:], np.float32)
    flat[2, 2] = 1e-30
    flat_err = np.full_like(flat, 0.01)
    flat_err[2, 2] = 0.0
    zeros = np.zeros_like(dq[0])
    got = pixel.divide_by_flat(flat, flat * flat, flat_err, flat_err ** 2, zeros, False, sci, vp, vr, dq)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        s = sci / flat
        v_flat = s ** 2 / (flat * flat) * flat_err ** 2
        v_p, v_r = vp / (flat * flat), vr / (flat * flat)
        want = _matched(sci=s, err=np.sqrt(v_p + v_r + v_flat), var_poisson=v_p, var_rnoise=v_r,
                        var_flat=v_flat, dq=dq)
    for k, name in enumerate(("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat")):
        _same(got[k], want[name].values)
    assert np.isnan(got[0][:, 2, 2]).all() and np.isfinite(got[0][:, 1, 1]).any()
