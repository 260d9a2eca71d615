"""NIRSpec BOTS end to end: spec2x products against jwst 3.0.0's (run offline on the same synthetic files)
for two gratings, two subarrays and both detectors, the flat-interpolation kernel, and user mistakes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

import spec2x
from kernels import flat as kflat
from parity import (X1D_COLUMNS, X1D_INTEGER_COLUMNS, ParityCase, assert_close_where_finite,
                    assert_same_layout_and_keywords, data_digest, parity_case, ref_args, run_cli)
from spec2x import cli
from spec2x.errors import RefError
from spec2x.synthetic.nirspec_bots import make_nirspec_bots

CUBE_EXTENSIONS = ("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT", "WAVELENGTH")
# (grating, subarray, detector, seed, nints): SUB512 holds only one end of the G235H spectrum
CASES = {"g395h_nrs1": ("G395H", "SUB2048", "NRS1", 2, 6), "g235h_sub512_nrs2": ("G235H", "SUB512", "NRS2", 3, 5),
         "prism_sub512_nrs1": ("PRISM", "SUB512", "NRS1", 4, 5)}


@pytest.fixture(scope="session", params=sorted(CASES))
def bots(request, tmp_path_factory, jwst_oracle) -> ParityCase:
    """A synthetic BOTS case (full-frame flats: built once per session), jwst's and spec2x's products."""
    grating, subarray, detector, seed, nints = CASES[request.param]
    d = tmp_path_factory.mktemp(f"bots_{request.param}")
    info = make_nirspec_bots(d / "case", nints=nints, seed=seed, grating=grating, subarray=subarray,
                             detector=detector)
    return parity_case(info, jwst_oracle, d / "spec2x", chunk_ints=2)


# ----------------------------------------------------------------------------------- parity with jwst
@pytest.mark.parametrize("ext", CUBE_EXTENSIONS)
def test_calints_equal_jwst(bots, ext):
    with fits.open(bots.ours["calints"]) as a, fits.open(bots.jwst["calints"]) as b:
        assert_close_where_finite(a[ext].data, b[ext].data, 1e-5, ext, min_finite=0.0)


def test_calints_dq_and_cutout_identical(bots):
    with fits.open(bots.ours["calints"]) as a, fits.open(bots.jwst["calints"]) as b:
        np.testing.assert_array_equal(a["DQ"].data, b["DQ"].data)
        np.testing.assert_array_equal(a["INT_TIMES"].data, b["INT_TIMES"].data)
        nan_outside_slit = np.isnan(b["WAVELENGTH"].data)
        assert nan_outside_slit.any() and (~nan_outside_slit).any()   # a real slit edge, not all or nothing
        assert (a["DQ"].data[:, nan_outside_slit] & 1).all()


def test_wavelength_zero_point_correction_applied(bots):
    """Both pipelines apply the WAVECORR offset for the source position (not a skipped step)."""
    with fits.open(bots.ours["calints"]) as a, fits.open(bots.jwst["calints"]) as b:
        assert a[0].header["S_WAVCOR"] == b[0].header["S_WAVCOR"] == "COMPLETE"
        assert a["SCI"].header["SRCXPOS"] != 0.0
    with datamodels.open(bots.ours["calints"]) as a:
        assert "wavecorr_frame" in a.meta.wcs.available_frames
    skipped = spec2x.calibrate(bots.rateints, refs={**bots.refs, "wavecorr": "N/A"})
    with fits.open(bots.ours["calints"]) as a:
        corrected = a["WAVELENGTH"].data.astype(np.float64)
    shift = np.nanmax(np.abs(corrected - skipped.cube.wavelength.values))
    assert 1e-6 < shift < 1e-3   # microns: a few hundredths of a pixel
    assert skipped.cube.attrs["primary"]["S_WAVCOR"] == "SKIPPED"


@pytest.mark.parametrize("column", X1D_COLUMNS)
def test_x1dints_columns_equal_jwst(bots, column):
    with fits.open(bots.ours["x1dints"]) as a, fits.open(bots.jwst["x1dints"]) as b:
        ours, theirs = a["EXTRACT1D"].data[column], b["EXTRACT1D"].data[column]
        if column.startswith("SB_") or column == "SURF_BRIGHT":   # jwst: none for a point source in MJy
            assert not np.any(theirs) and not np.any(ours)
            return
        assert_close_where_finite(ours, theirs, 1e-4, column, min_finite=0.0)


@pytest.mark.parametrize("column", X1D_INTEGER_COLUMNS)
def test_x1dints_integer_columns_identical(bots, column):
    with fits.open(bots.ours["x1dints"]) as a, fits.open(bots.jwst["x1dints"]) as b:
        np.testing.assert_array_equal(a["EXTRACT1D"].data[column], b["EXTRACT1D"].data[column])


@pytest.mark.parametrize("product", ("calints", "x1dints"))
def test_products_have_jwst_layout_and_keywords(bots, product):
    """Same extensions, and every keyword jwst writes with the same value (S_/R_, slit geometry,
    S_REGION, SRCXPOS, PHOTMJSR, PIXAR_SR, WAVSTART, SPORDER, EXTRYSTR, SLIT_RA...)."""
    assert_same_layout_and_keywords(bots.ours[product], bots.jwst[product])


def test_calints_gwcs_equals_jwst(bots):
    """The slit gwcs in the ASDF extension: same world coordinates over the cut-out, and it inverts."""
    with datamodels.open(bots.ours["calints"]) as a, datamodels.open(bots.jwst["calints"]) as b:
        assert type(a).__name__ == "SlitModel" and a.name == "S1600A1"
        a.validate()
        ny, nx = a.data.shape[-2:]
        y, x = np.mgrid[:ny:3, :nx:37].astype(float)
        ours, theirs = a.meta.wcs(x, y), b.meta.wcs(x, y)
        for k in range(3):
            assert_close_where_finite(ours[k], theirs[k], 1e-12, f"world axis {k}", min_finite=0.0)
        assert a.meta.wcs.available_frames == b.meta.wcs.available_frames
        good = np.isfinite(ours[2])
        back = a.meta.wcs.invert(ours[0][good], ours[1][good], ours[2][good])
        jwst_back = b.meta.wcs.invert(ours[0][good], ours[1][good], ours[2][good])
        # PRISM: lambda comes from a 5 nm n(lambda) table forward, exact Snell backward (jwst's model)
        atol = 5e-3 if bots.info["grating"] == "PRISM" else 1e-6
        for k, pixel in enumerate((x[good], y[good])):
            np.testing.assert_allclose(back[k], pixel, atol=atol)
            np.testing.assert_allclose(back[k], jwst_back[k], rtol=0, atol=1e-9)


def test_x1dints_open_as_jwst_model(bots):
    with datamodels.open(bots.ours["x1dints"]) as x1d:
        assert type(x1d).__name__ == "TSOMultiSpecModel"
        assert x1d.spec[0].name == "S1600A1" and x1d.spec[0].spectral_order == -1
        x1d.validate()


# ----------------------------------------------------------------------------------- the flat kernel
def test_interp_equals_numpy():
    rng = np.random.default_rng(0)
    xp = np.cumsum(rng.uniform(0.01, 0.2, 50)).astype(np.float32)
    fp = rng.normal(1, 0.1, 50).astype(np.float32)
    x = np.concatenate([rng.uniform(xp[0] - 0.5, xp[-1] + 0.5, 500), xp, [np.nan]])
    ours = np.array([kflat.interp(v, xp.astype(np.float64), fp) for v in x])
    np.testing.assert_array_equal(ours, np.interp(x, xp, fp, left=np.nan, right=np.nan))


def test_fast_variation_of_a_linear_table_is_its_value_at_the_pixel():
    """Gauss-Legendre quadrature is exact on a line: the pixel average of a + b*lambda is its centre value."""
    wl = np.linspace(2.0, 3.0, 40, dtype=np.float32).reshape(4, 10)
    dwl = np.full_like(wl, 0.025)
    tab_wl = np.linspace(1.0, 4.0, 31, dtype=np.float32)
    values, errors = kflat.fast_variation(wl, dwl, tab_wl, 0.5 + 0.25 * tab_wl, np.full(31, 0.01, np.float32),
                                          kflat.GAUSS_OFFSETS, kflat.GAUSS_WEIGHTS)
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, 0.5 + 0.25 * wl.astype(np.float64), rtol=2e-7)
    np.testing.assert_allclose(errors, 0.01, rtol=1e-6)
    off, _ = kflat.fast_variation(np.full((1, 2), 9.0, np.float32), np.zeros((1, 2), np.float32), tab_wl,
                                  tab_wl, tab_wl, kflat.GAUSS_OFFSETS, kflat.GAUSS_WEIGHTS)
    assert np.isnan(off).all()   # outside the table


def test_interpolate_planes_closed_form():
    """Planes 1, 3 at 1, 3 micron: the flat at lambda is lambda; flags of both neighbours are OR-ed;
    outside the planes' range the pixel is DO_NOT_USE with flat 1."""
    cube = np.stack([np.full((2, 3), 1.0), np.full((2, 3), 3.0)]).astype(np.float32)
    err = np.stack([np.full((2, 3), 0.1), np.full((2, 3), 0.3)]).astype(np.float32)
    dq = np.zeros((2, 2, 3), np.uint32)
    dq[1, 0, 1] = 4
    wl = np.array([[1.5, 2.0, 1.0], [2.75, 0.0, 3.5]], np.float32)
    flat, flags, ferr = kflat.interpolate_planes(cube, dq, err, np.array([1.0, 3.0], np.float32), wl)
    np.testing.assert_allclose(flat, [[1.5, 2.0, 1.0], [2.75, 1.0, 1.0]], rtol=1e-7)
    np.testing.assert_allclose(ferr[0, :2], [0.15, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(flags, [[0, 4, 0], [0, 1, 1]])


# ----------------------------------------------------------------------------------- user mistakes
def test_plan_lists_the_mode(bots, capsys):
    assert cli.main(["plan", str(bots.rateints)]) == 0
    out = capsys.readouterr().out
    assert "NIRSpec BOTS" in out and "2. extract_2d" in out and "(not implemented yet)" not in out


def test_reference_for_another_instrument_is_refused(bots, lrs_synthetic, tmp_path, capsys):
    refs = {**bots.refs, "photom": str(lrs_synthetic.refs["photom"])}
    code, _, err = run_cli(["run", str(bots.rateints), "-o", str(tmp_path / "out"), *ref_args(refs)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "photom.fits" in err and "INSTRUME" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_reference_for_another_mode_is_refused(bots, tmp_path, capsys):
    ifu_flat = tmp_path / "dflat_ifu.fits"
    shutil.copy(bots.refs["dflat"], ifu_flat)
    fits.setval(ifu_flat, "P_EXP_TY", value="NRS_IFU|NRS_MSASPEC|")
    refs = {**bots.refs, "dflat": str(ifu_flat)}
    code, _, err = run_cli(["run", str(bots.rateints), "-o", str(tmp_path / "out"), *ref_args(refs)], capsys)
    assert code == 2 and "dflat_ifu.fits" in err and "P_EXP_TY" in err and "NRS_BRIGHTOBJ" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_unsupported_grating_filter_pair_is_refused(bots, tmp_path, capsys):
    bad = tmp_path / bots.rateints.name
    shutil.copy(bots.rateints, bad)
    fits.setval(bad, "FILTER", value="F070LP")
    code, _, err = run_cli(["run", str(bad), "-o", str(tmp_path / "out"), *ref_args(bots.refs)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "FILTER" in err and "F070LP" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_wavelengthrange_without_the_pair_names_file_and_keywords(bots):
    from spec2x import nirspec_wcs

    kw = {"FILTER": "F070LP", "GRATING": bots.info["grating"]}
    with pytest.raises(RefError, match=r"wavelengthrange.asdf: FILTER=F070LP GRATING=\w+ is not a supported pair"):
        nirspec_wcs.check_pair(bots.refs["wavelengthrange"], kw)


def test_demo_case_is_registered():
    from spec2x.synthetic import DEMOS

    assert DEMOS["bots"][:2] == ("nirspec_bots", "make_nirspec_bots")


def test_case_json_lists_every_reference(bots):
    case = json.loads((bots.rateints.parent / "case.json").read_text())
    assert set(case["refs"]) == set(bots.refs) and case["grating"] == bots.info["grating"]


def test_detector_to_sca_offsets_and_nrs2_flip():
    """Subarray and cut-out offsets shift into full-frame pixels; NRS2 is rotated by 180 degrees."""
    from spec2x.nirspec_wcs import detector_to_sca

    np.testing.assert_allclose(detector_to_sca(1, 1009, "NRS1", offset=(0, 4))(10.0, 2.0), (10.0, 1014.0))
    np.testing.assert_allclose(detector_to_sca(1, 1, "NRS2")(0.0, 0.0), (2047.0, 2047.0))
    np.testing.assert_allclose(detector_to_sca(1025, 1, "NRS2")(3.0, 5.0), (2047.0 - 1027.0, 2042.0))


def test_gwa_rotation_matches_stdatamodels():
    """The compound rotation evaluates jwst's Rotation3DToGWA formulas (z renormalised after each axis)."""
    from stdatamodels.jwst.transforms.models import Rotation3DToGWA

    from spec2x.nirspec_wcs import gwa_rotation

    angles = [0.3, -0.7, 1.1, 0.25]
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-0.2, 0.2, (2, 50))
    z = np.sqrt(1 - x * x - y * y)
    ours, theirs = gwa_rotation(angles)(x, y, z), Rotation3DToGWA(angles, "xyzy")(x, y, z)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(gwa_rotation(angles).inverse(*ours), (x, y, z), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("temperature", (40.0, 80.0))   # Sellmeier glass law; Zemax law (20 K or more above tref)
def test_prism_models_match_stdatamodels(temperature):
    """The prism built from standard models evaluates jwst's Snell (lambda -> angles) and its
    RefractionIndexFromPrism, and the n -> lambda table inverts it to the table's precision."""
    from stdatamodels.jwst.transforms.models import RefractionIndexFromPrism, Snell

    from spec2x.nirspec_wcs import Prism, prism_snell, prism_wavelength

    k, lc, t = (0.57, 0.47, 3.85), (0.0025, 0.01, 1200.0), (-2.7e-5, 1e-8, 0.0, 1e-6, 0.0, 0.2)
    prism = Prism(14.0, k, lc, t, 35.0, 0.0, temperature)
    lam = np.linspace(0.6e-6, 5.3e-6, 9)
    a_in, b_in = np.linspace(-0.02, 0.03, 9), np.linspace(0.01, -0.01, 9)
    z = np.sqrt(1 - a_in ** 2 - b_in ** 2)
    theirs = Snell(14.0, k, lc, t, 35.0, 0.0, temperature, 0.0)(lam, a_in, b_in, z)
    ours = prism_snell(prism)(lam, a_in, b_in, z)
    np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=1e-16)
    n = RefractionIndexFromPrism(14.0)(a_in, b_in, theirs[0])
    np.testing.assert_allclose(prism_wavelength(prism).left(a_in, b_in, theirs[0]), n, rtol=1e-14)
    np.testing.assert_allclose(prism_wavelength(prism)(a_in, b_in, theirs[0]), lam, rtol=2e-5)


def test_aperture_correction_applied_from_the_first_integration(bots):
    """The APCORR correction multiplies flux by the same factor in every integration (jwst tabulates it
    from the first integration's pixel counts), not 1 inside the table, exactly 1 beyond its red end."""
    plain = spec2x.calibrate(bots.rateints, refs={**bots.refs, "apcorr": "N/A"}).spectra
    with fits.open(bots.ours["x1dints"]) as hdul:
        corrected = {k.lower(): hdul["EXTRACT1D"].data[k] for k in ("FLUX", "FLUX_VAR_POISSON", "BACKGROUND")}
    ratio = corrected["flux"] / plain["flux"].values
    wl = plain["wavelength"].values   # apcorr does not move wavelengths (the file's column has one row per integration)
    good = np.isfinite(ratio).all(axis=0)
    np.testing.assert_allclose(ratio[:, good], np.broadcast_to(ratio[0, good], ratio[:, good].shape), rtol=1e-12)
    with fits.open(bots.refs["apcorr"]) as hdul:
        table = hdul["APCORR"].data
        red_end = table["wavelength"][table["grating"] == bots.info["grating"]].max()
    inside, beyond = good & (wl <= red_end), good & (wl > red_end)
    assert inside.any() and (beyond.any() or bots.info["subarray"] == "SUB512")   # SUB512: the blue end only
    assert np.all(ratio[0, inside] > 1.005) and np.all(ratio[0, inside] < 1.2)
    np.testing.assert_array_equal(ratio[0, beyond], 1.0)
    np.testing.assert_allclose(corrected["flux_var_poisson"][:, good] / plain["flux_var_poisson"].values[:, good],
                               ratio[:, good] ** 2, rtol=1e-10)
    np.testing.assert_array_equal(corrected["background"], plain["background"].values)


def test_phase_correction_closed_form():
    """A correction linear in size, wavelength and phase is interpolated exactly; sizes are per wavelength;
    the size axis clamps; outside the wavelengths, or with sizes not increasing, it is 1."""
    from spec2x.steps.extract_1d import phase_correction

    wl = np.array([3.0, 1.0, 2.0], np.float32)                      # unsorted, as a table may be
    size = np.stack([wl * 0 + 2, wl * 0 + 4 + (wl - 1)]).astype(np.float32)   # 2 sizes x 3 wavelengths
    phase = np.array([0.0, 1.0], np.float32)
    corr = (1 + 0.1 * size[:, :, None] + 0.01 * wl[None, :, None] + 0.2 * phase[None, None, :]).astype(np.float32)
    table = {"wavelength": wl, "size": size, "pixphase": phase, "apcorr": corr}
    got = phase_correction(table, np.array([1.5, 2.0, 2.0, 0.5]), np.array([3.0, 2.5, 9.0, 3.0]))
    np.testing.assert_allclose(got[:3], [1 + 0.1 * 3.0 + 0.015 + 0.1, 1 + 0.25 + 0.02 + 0.1, 1 + 0.1 * 5 + 0.02 + 0.1],
                               rtol=1e-6)
    assert got[3] == 1.0
    flat = {**table, "size": np.full_like(size, 2.0)}
    np.testing.assert_array_equal(phase_correction(flat, np.array([1.5]), np.array([3.0])), [1.0])


def test_apcorr_without_the_slit_names_file_and_keywords(bots, tmp_path):
    from spec2x.steps.extract_1d import nirspec_apcorr_table

    kw = {"FILTER": bots.info["filter"], "GRATING": bots.info["grating"]}
    with pytest.raises(RefError, match=r"apcorr.fits: 0 rows for FILTER=\w+ GRATING=\w+ SLIT=S400A1"):
        nirspec_apcorr_table(bots.refs["apcorr"], kw, "S400A1", None, (None, None, 3.0), 1)


def _through_pickle_then_synchronous(dsk, keys, **kwargs):
    """A dask scheduler that sends the graph through cloudpickle, as worker processes receive their tasks,
    and runs the unpickled tasks here one at a time (worker processes themselves: tests/test_distributed.py;
    a fresh BOTS worker costs minutes of start-up on a 2-core box)."""
    import cloudpickle
    import dask

    graph = dsk if isinstance(dsk, Mapping) else dsk.__dask_graph__()
    return dask.get(cloudpickle.loads(cloudpickle.dumps(dict(graph))), keys, **kwargs)


def test_pickled_chunks_never_change_bytes(bots, tmp_path):
    """One integration per chunk, the tasks (WCS, flats, extraction plan) pickled and unpickled as for worker
    processes, gives the bytes of two per chunk in threads."""
    import dask

    with dask.config.set(scheduler=_through_pickle_then_synchronous):
        _, paths = spec2x.run(bots.rateints, tmp_path, refs=bots.refs, chunk_ints=1)
    assert data_digest(paths) == data_digest(bots.ours.values())


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_clean_wavelengths_equals_column_by_column_nanmean(dtype):
    """The vectorised gap filling gives np.nanmean's bits, column by column (numpy's pairwise order), at
    the row counts of real cut-outs and beyond the 128-element block."""
    from spec2x.nirspec_flat import clean_wavelengths, column_sums

    rng = np.random.default_rng(5)
    for rows in (5, 24, 31, 300):
        wl = (rng.uniform(0.6, 5.3, (rows, 400)) * 10 ** rng.uniform(-2, 2, (rows, 400))).astype(dtype)
        wl[rng.uniform(size=wl.shape) < 0.2] = np.nan
        wl[:, :3] = np.nan                                   # leading columns without any wavelength
        wl[0, 10] = -1.0
        np.testing.assert_array_equal(column_sums(np.nan_to_num(wl)),
                                      [np.sum(np.nan_to_num(wl[:, j])) for j in range(wl.shape[1])])
        expected = wl.copy()
        expected[expected <= 0] = np.nan
        for j in range(3, wl.shape[1]):
            column = expected[:, j]
            column[np.isnan(column)] = np.nanmean(column)
        expected[:, :3] = expected[:, 3][:, None]
        np.testing.assert_array_equal(clean_wavelengths(wl), expected)
