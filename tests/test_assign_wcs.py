"""assign_wcs (MIR_LRS-SLITLESS): closed-form checks of the wavelength map and parity with jwst 3.0.0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import spec2x
from spec2x.errors import NotImplementedForMode, Spec2xError
from spec2x.exposure import open_exposure
from spec2x.meta import with_keywords
from spec2x.steps import assign_wcs

REAL = Path("/work/shared/realdata/miricoord_git")
REAL_REFS = {"distortion": REAL / "crds_flt9_jwst_miri_imager_distortion_flt9.asdf",
             "specwcs": REAL / "crds_flt2_jwst_miri_specwcs_0006.fits"}
PIXELS = (np.array([4.0, 10.0, 37.5, 40.0, 60.0, 71.0, 3.0, 37.2, 20.0]),
          np.array([9.0, 100.0, 300.0, 200.3, 390.0, 391.0, 50.0, 5.0, 395.0]))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A 2-integration synthetic exposure with its reference files: (rateints path, {reftype: path})."""
    from spec2x.synthetic import make_miri_lrs_slitless

    info = make_miri_lrs_slitless(tmp_path_factory.mktemp("lrs"), nints=2, seed=1)
    return str(info["rateints"][0]), {t: str(p) for t, p in info["refs"].items()}


def _refs(refs):
    return {t: str(refs[t]) for t in ("distortion", "specwcs")}


def jwst_assign_wcs(path, refs):
    """jwst's load_wcs (what AssignWcsStep calls) on a datamodel of the same file, no CRDS involved."""
    pytest.importorskip("jwst")
    from jwst.assign_wcs.assign_wcs import load_wcs
    from stdatamodels.jwst import datamodels

    return load_wcs(datamodels.open(path), {**{t: None for t in ("filteroffset", "regions")}, **_refs(refs)})


@pytest.fixture(scope="module")
def ours(case):
    path, refs = case
    return assign_wcs.run(open_exposure(path), _refs(refs))


# ----------------------------------------------------------------------------- closed form
def test_wavelength_map_closed_form():
    """A straight table gives the line back, only inside the box, scaled by the barycentric factor."""
    y = np.arange(390.0, 9.0, -2.0)                      # decreasing, as in the WAVETABLE
    lam = 4.0 + (390.0 - y) * 0.025
    bbox = ((3.5, 71.5), (8.5, 391.5))
    plain = assign_wcs.wavelength_map((416, 72), y, lam, bbox)
    rows = np.arange(416.0)
    truth = 4.0 + (390.0 - rows) * 0.025
    inside = (rows >= 10) & (rows <= 390)
    np.testing.assert_allclose(plain[inside, 10], truth[inside], rtol=1e-7)
    assert np.isnan(plain[~inside]).all()                # outside the table rows (and the box)
    assert np.isnan(plain[:, :4]).all() and np.isfinite(plain[inside, 4:]).all()
    assert (plain[inside, 4:] == plain[inside, 4:5]).all()   # wavelength depends on y only
    assert plain.dtype == np.float64 and np.array_equal(plain, plain.astype(np.float32), equal_nan=True)

    moving = assign_wcs.wavelength_map((416, 72), y, lam, bbox, velosys=-12345.6)
    factor = 1 / (1 - 12345.6 / 299792458.0)
    np.testing.assert_allclose(moving[inside, 10], truth[inside] * factor, rtol=1e-7)


def test_dva_and_sky_pieces():
    assert assign_wcs.dva_correction(None, 1.0, 2.0).n_inputs == 2
    dva = assign_wcs.dva_correction(1.001, -378.6, -344.75)
    np.testing.assert_allclose(dva(-378.6, -344.75), (-378.6, -344.75), atol=1e-9)   # fixed point
    sky = assign_wcs.v2v3_to_sky(-378.6, -344.75, 145.0, 260.0, 65.0)
    np.testing.assert_allclose(sky(-378.6, -344.75), (260.0, 65.0), atol=1e-9)


# ----------------------------------------------------------------------------- the step
def test_run_keywords_and_laziness(case, ours):
    path, refs = case
    s = ours.attrs["sci"]
    assert s["SPECSYS"] == "BARYCENT" and s["DISPAXIS"] == 2 and s["VELOSYS"] == pytest.approx(-12345.6)
    assert "S_REGION" not in s                           # footprint corners are NaN: jwst leaves it
    assert ours.wavelength.dims == ("y", "x") and ours.wavelength.dtype == np.float64
    assert type(ours.sci.data).__module__.startswith("dask")
    wcs = ours.attrs["wcs"]
    assert wcs.available_frames == ["detector", "alpha_beta", "v2v3", "v2v3vacorr", "world"]
    assert wcs.bounding_box.bounding_box(order="F") == ((3.5, 71.5), (8.5, 391.5))


def test_run_rejects_other_modes_and_missing_refs(case):
    path, refs = case
    ds = open_exposure(path)
    with pytest.raises(NotImplementedForMode):
        assign_wcs.run(with_keywords(ds, primary={"EXP_TYPE": "MIR_MRS"}), _refs(refs))
    with pytest.raises(Spec2xError, match="assign_wcs has an N/A reference"):
        spec2x.calibrate(path, refs={**refs, "specwcs": "N/A"})


def test_wavelength_is_the_wcs_on_the_pixel_grid(ours):
    grid = np.indices(ours.wavelength.shape, dtype=np.float64)
    lam = assign_wcs.wcs_world(ours.attrs["wcs"], grid[1], grid[0])[2]
    np.testing.assert_array_equal(ours.wavelength.values, lam.astype(np.float32).astype(np.float64))


# ----------------------------------------------------------------------------- parity with jwst
@pytest.mark.parity
def test_wavelength_map_matches_jwst(case, ours):
    model = jwst_assign_wcs(*case)
    theirs = np.asarray(model.wavelength)
    assert theirs.dtype == np.float32                    # what calints' WAVELENGTH holds
    mine = ours.wavelength.values
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
    ok = np.isfinite(theirs)
    assert ok.sum() == 381 * 68
    np.testing.assert_allclose(mine[ok], theirs[ok], rtol=1e-7, atol=0)
    assert model.meta.wcsinfo.specsys == ours.attrs["sci"]["SPECSYS"]
    assert model.meta.wcsinfo.dispersion_direction == ours.attrs["sci"]["DISPAXIS"]
    assert model.meta.wcsinfo.s_region is None


@pytest.mark.parity
def test_world_coordinates_match_jwst(case, ours):
    theirs = jwst_assign_wcs(*case).meta.wcs
    mine = ours.attrs["wcs"]
    a, b = assign_wcs.wcs_world(mine, *PIXELS), theirs(*PIXELS)
    for got, want in zip(a, b):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert np.isfinite(a[0][1:5]).all()
    # inverse, and every intermediate frame
    np.testing.assert_allclose(mine.backward_transform(260.0, 65.0, 7.0),
                               theirs.backward_transform(260.0, 65.0, 7.0), rtol=1e-12)
    for frame in ("alpha_beta", "v2v3", "v2v3vacorr"):
        got = mine.get_transform("detector", frame)(*PIXELS)
        want = theirs.get_transform("detector", frame)(*PIXELS)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert mine.bounding_box.bounding_box(order="F") == theirs.bounding_box.bounding_box(order="F")


@pytest.mark.parity
@pytest.mark.skipif(not all(p.is_file() for p in REAL_REFS.values()), reason="real MIRI refs not available")
def test_real_inflight_refs(case):
    """The in-flight SLITLESSPRISM specwcs + imager distortion: same WCS as jwst, monotonic trace."""
    path, _ = case
    refs = {t: str(p) for t, p in REAL_REFS.items()}
    ds = assign_wcs.run(open_exposure(path), refs)
    lam = ds.wavelength.values
    col = lam[:, 37]
    good = np.isfinite(col)
    assert good.sum() > 350
    assert np.all(np.diff(col[good]) < 0)               # blue at the bottom rows of the table -> red at the top
    assert 3.5 < np.nanmin(lam) < 4.0 and 13.5 < np.nanmax(lam) < 14.5

    model = jwst_assign_wcs(path, refs)
    np.testing.assert_array_equal(np.isnan(lam), np.isnan(model.wavelength))
    np.testing.assert_allclose(lam, model.wavelength, rtol=1e-7, equal_nan=True)
    np.testing.assert_allclose(assign_wcs.wcs_world(ds.attrs["wcs"], *PIXELS), model.meta.wcs(*PIXELS),
                               rtol=1e-12, atol=1e-12, equal_nan=True)
