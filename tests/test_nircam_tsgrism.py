"""NIRCam grism time series (NRC_TSGRISM) end to end: parity with jwst 3.0.0 on two subarrays, the
cut-out and wavelength geometry in closed form, and one clear line for each bad input."""

from __future__ import annotations

import shutil

import dask
import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

import spec2x
from parity import (X1D_COLUMNS, X1D_INTEGER_COLUMNS, ParityCase, assert_close_where_finite,
                    assert_same_layout_and_keywords, data_digest, parity_case, ref_args, run_cli)
from spec2x.errors import Spec2xError
from spec2x.steps import extract_2d
from spec2x.synthetic import make_nircam_tsgrism

CUBE_EXTENSIONS = ("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT", "WAVELENGTH")
# (subarray, filter, seed): the default SUBGRISM64 (cut-out = whole subarray) and SUBGRISM128, where the
# default 64-row cut-out drops half the rows.
CASES = {"sub64": ("SUBGRISM64", "F444W", 2), "sub128": ("SUBGRISM128", "F322W2", 3)}
NINTS = 5


@pytest.fixture(scope="session", params=sorted(CASES))
def nrc_case(request, tmp_path_factory, jwst_oracle) -> ParityCase:
    """A synthetic case, jwst 3.0.0's products for it (cached) and spec2x's (chunks of 2 integrations)."""
    subarray, filt, seed = CASES[request.param]
    d = tmp_path_factory.mktemp(f"nrc_{request.param}")
    info = make_nircam_tsgrism(d / "in", nints=NINTS, seed=seed, subarray=subarray, filter=filt)
    return parity_case(info, jwst_oracle, d / "out", chunk_ints=2)


@pytest.fixture(scope="session")
def nrc_inputs(tmp_path_factory) -> ParityCase:
    """A small SUBGRISM64 case (2 integrations), no jwst: for input checks and the command line."""
    info = make_nircam_tsgrism(tmp_path_factory.mktemp("nrc_inputs"), nints=2, seed=1)
    return ParityCase(info["rateints"][0], info["refs"], info)


# ------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("ext", CUBE_EXTENSIONS)
def test_calints_equal_jwst(nrc_case, ext):
    with fits.open(nrc_case.ours["calints"]) as a, fits.open(nrc_case.jwst["calints"]) as b:
        assert_close_where_finite(a[ext].data, b[ext].data, 1e-5, ext, min_finite=0.5)


def test_calints_dq_and_times_identical(nrc_case):
    with fits.open(nrc_case.ours["calints"]) as a, fits.open(nrc_case.jwst["calints"]) as b:
        np.testing.assert_array_equal(a["DQ"].data, b["DQ"].data)
        np.testing.assert_array_equal(a["INT_TIMES"].data, b["INT_TIMES"].data)
        assert (a["DQ"].data & 1).any()   # flat, dead, saturated and no-response pixels are flagged


@pytest.mark.parametrize("column", X1D_COLUMNS)
def test_x1dints_columns_equal_jwst(nrc_case, column):
    with fits.open(nrc_case.ours["x1dints"]) as a, fits.open(nrc_case.jwst["x1dints"]) as b:
        assert_close_where_finite(a["EXTRACT1D"].data[column], b["EXTRACT1D"].data[column], 1e-4, column, min_finite=0.5)


@pytest.mark.parametrize("column", X1D_INTEGER_COLUMNS)
def test_x1dints_integer_columns_identical(nrc_case, column):
    with fits.open(nrc_case.ours["x1dints"]) as a, fits.open(nrc_case.jwst["x1dints"]) as b:
        np.testing.assert_array_equal(a["EXTRACT1D"].data[column], b["EXTRACT1D"].data[column])


@pytest.mark.parametrize("product", ("calints", "x1dints"))
def test_products_have_jwst_layout_and_keywords(nrc_case, product):
    assert_same_layout_and_keywords(nrc_case.ours[product], nrc_case.jwst[product])


def test_gwcs_in_calints_evaluates_as_jwst(nrc_case):
    """The cut-out gwcs round-trips through the ASDF extension and gives jwst's sky and wavelength."""
    with datamodels.open(nrc_case.ours["calints"]) as a, datamodels.open(nrc_case.jwst["calints"]) as b:
        assert type(a).__name__ == "SlitModel"
        a.validate()
        assert a.meta.wcs.available_frames == b.meta.wcs.available_frames
        x, y = np.array([10.0, 500.0, 900.0, 1400.0, 2000.0]), np.array([3.0, 20.0, 34.0, 40.0, 60.0])
        np.testing.assert_allclose(np.array(a.meta.wcs(x, y)), np.array(b.meta.wcs(x, y)), rtol=1e-12)


def test_wavelength_follows_the_trace(nrc_case):
    """Closed form: legacy grism polynomials make lambda depend on the column only, with the source at
    XREF_SCI taken as a 0-based column (jwst's convention)."""
    info = nrc_case.info
    tr = info["trace"]
    x = np.arange(2048.0)
    truth = tr["lam0"] + tr["dlam"] * (x - info["xref_sci"] - tr["dx0"]) / tr["dx1"]
    with fits.open(nrc_case.ours["calints"]) as hdul:
        wave = hdul["WAVELENGTH"].data
        assert wave.shape == (64, 2048) and hdul["SCI"].header["SLTSIZE2"] == 64
        np.testing.assert_allclose(wave, np.broadcast_to(truth, wave.shape), rtol=1e-6)


def test_white_light_transit_is_recovered(nrc_case):
    """Invariant: the in-band white-light flux in mid-transit is ~1% below the first integration."""
    with fits.open(nrc_case.ours["x1dints"]) as hdul:
        tab = hdul["EXTRACT1D"].data
        band = np.isfinite(tab["FLUX"]).all(axis=0)
        white = np.nansum(tab["FLUX"][:, band], axis=1)
    depth = 1 - white[NINTS // 2] / white[0]
    assert 0.005 < depth < 0.015


# ------------------------------------------------------------------------------------------- machinery
def test_chunking_never_changes_bytes(nrc_case, tmp_path):
    _, paths = spec2x.run(nrc_case.rateints, tmp_path, refs=nrc_case.refs, chunk_ints=1000)
    assert data_digest(paths) == data_digest(nrc_case.ours.values())


def test_calibrate_is_lazy(nrc_case):
    def forbid(*args, **kwargs):
        raise AssertionError("calibrate computed something")

    with dask.config.set(scheduler=forbid):
        result = spec2x.calibrate(nrc_case.rateints, refs=nrc_case.refs, chunk_ints=2)
    assert result.plan.run == ("assign_wcs", "flat_field", "extract_2d", "srctype", "photom", "extract_1d")
    assert result.cube.sizes["y"] == 64 and result.spectra.flux.dims == ("integration", "spectral")


@pytest.mark.parametrize("height, ysize, rows", [(64, 64, (0, 64)), (64, 128, (0, 64)), (64, 256, (0, 64)),
                                                 (128, 128, (0, 128)), (300, 256, (0, 256)), (40, 64, (0, 40)),
                                                 (1, 64, (0, 35))])
def test_tso_cutout_rows(height, ysize, rows):
    """jwst's rule: the cut-out starts at row 0 (source on row 34) and is ``height`` rows tall."""
    cut = extract_2d.tso_rows(height, ysize)
    assert (cut.start, len(range(*cut.indices(ysize)))) == rows


def test_tso_cutout_height_parameter(nrc_case):
    result = spec2x.calibrate(nrc_case.rateints, refs=nrc_case.refs,
                              params={"extract_2d": {"tsgrism_extract_height": 48}})
    assert result.cube.sizes["y"] == 48 and result.cube.attrs["sci"]["SLTSIZE2"] == 48
    with pytest.raises(Spec2xError, match="tsgrism_extract_height=-4"):
        spec2x.calibrate(nrc_case.rateints, refs=nrc_case.refs, params={"extract_2d": {"tsgrism_extract_height": -4}})


# ------------------------------------------------------------------------------------------- command line
def test_plan_lists_the_mode_as_supported(nrc_inputs, capsys):
    code, out, _ = run_cli(["plan", nrc_inputs.rateints], capsys)
    assert code == 0
    assert "mode: NIRCam grism TSO (time series)" in out
    steps = ["assign_wcs", "flat_field", "extract_2d", "srctype", "photom", "extract_1d"]
    assert all(f"{i}. {s}\n" in out + "\n" for i, s in enumerate(steps, 1))
    assert "not implemented" not in out


def _without_source_position(tmp_path, case):
    path = tmp_path / "nopos_rateints.fits"
    shutil.copy(case.rateints, path)
    with fits.open(path, mode="update") as hdul:
        for hdu in hdul[:2]:
            hdu.header.remove("XREF_SCI", ignore_missing=True)
    return path, case.refs, (str(path), "XREF_SCI")


def _primary_keyword(key, value):
    """A maker of the exposure with ``key = value`` in its primary header."""

    def make(tmp_path, case):
        path = tmp_path / f"{key.lower()}_rateints.fits"
        shutil.copy(case.rateints, path)
        with fits.open(path, mode="update") as hdul:
            hdul[0].header[key] = value
        return path, case.refs, (str(path), f"{key}={value}")

    return make


_unsupported_filter, _unsupported_pupil = _primary_keyword("FILTER", "F210M"), _primary_keyword("PUPIL", "GRISMC")


def _miri_flat(tmp_path, case):
    from spec2x.synthetic.miri_lrs_slitless import make_flat

    flat = tmp_path / "miri_flat.fits"
    make_flat(flat, seed=1)
    return case.rateints, {**case.refs, "flat": flat}, (str(flat), "INSTRUME")


def _wavelengthrange_without_filter(tmp_path, case):
    """A wavelengthrange file that has no row for the exposure's filter (jwst fails on a bare pop())."""
    with datamodels.open(case.refs["wavelengthrange"]) as ref:
        ref.extract_orders = [["F356W", [1]]]
        path = tmp_path / "wavelengthrange.asdf"
        ref.save(path)
    return case.rateints, {**case.refs, "wavelengthrange": path}, (str(path), "FILTER=")


@pytest.mark.parametrize("make_bad", (_without_source_position, _unsupported_filter, _unsupported_pupil, _miri_flat,
                                      _wavelengthrange_without_filter),
                         ids=("no_xref_sci", "filter", "pupil", "miri_flat", "wavelengthrange"))
def test_bad_input_is_one_line_and_nothing_written(nrc_inputs, tmp_path, capsys, make_bad):
    path, refs, expected = make_bad(tmp_path, nrc_inputs)
    out = tmp_path / "out"
    code, _, err = run_cli(["run", path, "-o", out, *ref_args(refs)], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    for text in expected:
        assert text in err
    assert not out.exists() or not any(out.iterdir())


def test_demo_case_is_registered_and_named(nrc_case):
    """``spec2x demo --mode nircam`` makes this maker's case (the command itself: tests/test_cli.py); its
    products carry the default exposure name."""
    from spec2x.synthetic import DEMOS

    assert DEMOS["nircam"][:2] == ("nircam_tsgrism", "make_nircam_tsgrism")
    assert sorted(p.name for p in nrc_case.ours.values()) == [
        "jw09999001001_03101_00001-seg001_nrcalong_calints.fits",
        "jw09999001001_03101_00001-seg001_nrcalong_x1dints.fits"]


def test_segments_equal_the_single_file(nrc_inputs, tmp_path):
    """The same exposure split into -segNNN files calibrates to the same cube and spectra."""
    info = make_nircam_tsgrism(tmp_path, nints=nrc_inputs.info["nints"], seed=nrc_inputs.info["seed"], segments=2)
    split = spec2x.calibrate(info["rateints"], refs=info["refs"], chunk_ints=1)
    single = spec2x.calibrate(nrc_inputs.rateints, refs=nrc_inputs.refs, chunk_ints=2)
    assert len(info["rateints"]) == 2
    np.testing.assert_array_equal(split.spectra.flux.values, single.spectra.flux.values)
    np.testing.assert_array_equal(split.cube.sci.values, single.cube.sci.values)


@pytest.mark.parametrize("velosys, offsets", [(None, None), (-12345.6, (0.4, -0.25))])
def test_grism_wcs_matches_jwst_load_wcs(nrc_inputs, tmp_path, velosys, offsets):
    """assign_wcs alone against jwst's load_wcs, including the barycentric correction (VELOSYS) and a
    FILTEROFFSET shift, which the pipeline cases do not exercise."""
    pytest.importorskip("jwst")
    import asdf
    from jwst.assign_wcs.assign_wcs import load_wcs

    from spec2x.exposure import open_exposure
    from spec2x.steps import assign_wcs

    path = tmp_path / "v_rateints.fits"
    shutil.copy(nrc_inputs.rateints, path)
    if velosys is not None:
        with fits.open(path, mode="update") as hdul:
            hdul["SCI"].header["VELOSYS"] = velosys
    refs = {"specwcs": str(nrc_inputs.refs["specwcs"]), "distortion": str(nrc_inputs.refs["distortion"]),
            "filteroffset": None}
    if offsets is not None:
        refs["filteroffset"] = str(tmp_path / "filteroffset.asdf")
        rows = [{"filter": "F444W", "pupil": "GRISMR", "column_offset": offsets[0], "row_offset": offsets[1]},
                {"filter": "F322W2", "pupil": "GRISMR", "column_offset": 9.0, "row_offset": 9.0}]
        asdf.AsdfFile({"filters": rows}).write_to(refs["filteroffset"])
    ours = assign_wcs.prepare(open_exposure(path), refs).wcs
    with datamodels.open(path) as model:
        theirs = load_wcs(model, dict(refs)).meta.wcs
    x, y = np.array([10.0, 500.0, 900.0, 1400.0, 2000.0]), np.array([3.0, 20.0, 34.0, 40.0, 60.0])
    order = np.ones_like(x)
    np.testing.assert_allclose(np.array(ours(x, y, order)), np.array(theirs(x, y, order)), rtol=1e-12)
    back_ours = ours.get_transform("v2v3", "direct_image")(96.7, -556.3, 4.0, 1)
    back_theirs = theirs.get_transform("v2v3", "direct_image")(96.7, -556.3, 4.0, 1)
    np.testing.assert_allclose(back_ours, back_theirs, rtol=1e-12)
    if velosys is not None:  # the correction is there: lambda differs from the uncorrected trace
        tr = nrc_inputs.info["trace"]
        plain = tr["lam0"] + tr["dlam"] * (x - nrc_inputs.info["xref_sci"] - tr["dx0"]) / tr["dx1"]
        assert not np.allclose(np.array(ours(x, y, order))[2], plain, rtol=1e-6)
