"""End to end: spec2x products against jwst 3.0.0's on the same files, and invariants of the machinery."""

import dask
import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

import spec2x
from parity import (X1D_COLUMNS, X1D_INTEGER_COLUMNS, assert_close_where_finite, assert_same_layout_and_keywords,
                    by_product, data_digest)
from spec2x import products

CUBE_EXTENSIONS = ("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT", "WAVELENGTH", "AREA")


@pytest.fixture(scope="module")
def ours(lrs_case, tmp_path_factory):
    out = tmp_path_factory.mktemp("spec2x_out")
    _, paths = spec2x.run(lrs_case.rateints, out, refs=lrs_case.refs, chunk_ints=4)
    return by_product(paths)


@pytest.mark.parametrize("ext", CUBE_EXTENSIONS)
def test_calints_equal_jwst(lrs_case, ours, ext):
    with fits.open(ours["calints"]) as a, fits.open(lrs_case.jwst["calints"]) as b:
        assert_close_where_finite(a[ext].data, b[ext].data, 1e-5, ext)


def test_calints_dq_identical(lrs_case, ours):
    with fits.open(ours["calints"]) as a, fits.open(lrs_case.jwst["calints"]) as b:
        np.testing.assert_array_equal(a["DQ"].data, b["DQ"].data)
        np.testing.assert_array_equal(a["INT_TIMES"].data, b["INT_TIMES"].data)


@pytest.mark.parametrize("column", X1D_COLUMNS)
def test_x1dints_columns_equal_jwst(lrs_case, ours, column):
    with fits.open(ours["x1dints"]) as a, fits.open(lrs_case.jwst["x1dints"]) as b:
        assert_close_where_finite(a["EXTRACT1D"].data[column], b["EXTRACT1D"].data[column], 1e-4, column)


@pytest.mark.parametrize("column", X1D_INTEGER_COLUMNS)
def test_x1dints_integer_columns_identical(lrs_case, ours, column):
    with fits.open(ours["x1dints"]) as a, fits.open(lrs_case.jwst["x1dints"]) as b:
        np.testing.assert_array_equal(a["EXTRACT1D"].data[column], b["EXTRACT1D"].data[column])


@pytest.mark.parametrize("product", ("calints", "x1dints"))
def test_products_have_jwst_layout_and_keywords(lrs_case, ours, product):
    assert_same_layout_and_keywords(ours[product], lrs_case.jwst[product])


def test_products_open_as_jwst_models(ours):
    with datamodels.open(ours["calints"]) as cal:
        assert type(cal).__name__ == "SlitModel" and cal.meta.wcs is not None
        cal.validate()
        assert cal.data.shape[0] == cal.int_times.shape[0]
    with datamodels.open(ours["x1dints"]) as x1d:
        assert type(x1d).__name__ == "TSOMultiSpecModel"
        assert len(x1d.spec) == 1 and x1d.spec[0].spec_table.shape[0] == len(x1d.int_times)
        x1d.validate()


@pytest.fixture(scope="module")
def reference_digest(lrs_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("digest_all")
    _, paths = spec2x.run(lrs_synthetic.rateints, out, refs=lrs_synthetic.refs, chunk_ints=1000)
    return data_digest(paths)


@pytest.mark.parametrize("chunk", (1, 7))
def test_chunking_never_changes_bytes(lrs_synthetic, tmp_path, reference_digest, chunk):
    _, paths = spec2x.run(lrs_synthetic.rateints, tmp_path, refs=lrs_synthetic.refs, chunk_ints=chunk)
    assert data_digest(paths) == reference_digest


@pytest.mark.parametrize("scheduler", ("threads", "synchronous"))   # processes: tests/test_distributed.py
def test_scheduler_never_changes_bytes(lrs_synthetic, tmp_path, reference_digest, scheduler):
    with dask.config.set(scheduler=scheduler):
        _, paths = spec2x.run(lrs_synthetic.rateints, tmp_path, refs=lrs_synthetic.refs, chunk_ints=3)
    assert data_digest(paths) == reference_digest


def test_calibrate_is_lazy(lrs_synthetic):
    def forbid(*args, **kwargs):
        raise AssertionError("calibrate computed something")

    with dask.config.set(scheduler=forbid):
        result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=2)
    assert result.spectra.flux.dims == ("integration", "spectral")
    # graph size grows with the number of chunks, not with the data
    assert len(result.spectra.flux.data.dask) < 40 * result.spectra.flux.data.numblocks[0] + 200


def test_a_few_integrations_compute_alone(lrs_synthetic, ours):
    result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=1)
    some = result.spectra.flux.isel(integration=[2, 5]).compute()
    with fits.open(ours["x1dints"]) as x1d:
        np.testing.assert_array_equal(some.values, x1d["EXTRACT1D"].data["FLUX"][[2, 5]])


def test_zarr_holds_the_same_data(lrs_synthetic, ours, tmp_path):
    import zarr

    _, zarr_paths = spec2x.run(lrs_synthetic.rateints, tmp_path / "z", refs=lrs_synthetic.refs, fmt="zarr")
    cal_zarr = zarr.open_group(str(next(p for p in zarr_paths if "calints" in p.name)), mode="r")
    with fits.open(ours["calints"]) as hdul:
        for ext in ("SCI", "DQ", "VAR_FLAT", "WAVELENGTH"):
            np.testing.assert_array_equal(cal_zarr[ext][...], hdul[ext].data)
        assert cal_zarr["SCI"].attrs["header"]["BUNIT"] == "MJy/sr"
        assert cal_zarr.attrs["header"]["EXP_TYPE"] == "MIR_LRS-SLITLESS"
    x1d_zarr = zarr.open_group(str(next(p for p in zarr_paths if "x1dints" in p.name)), mode="r")
    with fits.open(ours["x1dints"]) as hdul:
        np.testing.assert_array_equal(x1d_zarr["EXTRACT1D/FLUX"][...], hdul["EXTRACT1D"].data["FLUX"])


def test_segments_equal_the_single_file(tmp_path, lrs_synthetic, reference_digest):
    from spec2x.synthetic import make_miri_lrs_slitless

    info = make_miri_lrs_slitless(tmp_path / "seg", nints=lrs_synthetic.info["nints"],
                                  seed=lrs_synthetic.info["seed"], segments=3)
    result = spec2x.calibrate(info["rateints"][::-1], refs=info["refs"], chunk_ints=4)
    assert result.cube.sizes["integration"] == lrs_synthetic.info["nints"]
    single = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, chunk_ints=4)
    np.testing.assert_array_equal(result.spectra.flux.values, single.spectra.flux.values)
    np.testing.assert_array_equal(result.cube.mjd_mid.values, single.cube.mjd_mid.values)
    assert products.rootname(info["rateints"][0], 3).endswith("_mirimage")


def test_spectrum_wcs_matches_jwst(lrs_case, ours):
    with datamodels.open(ours["x1dints"]) as a, datamodels.open(lrs_case.jwst["x1dints"]) as b:
        pixels = np.arange(0, a.spec[0].spec_table["WAVELENGTH"].shape[1], 37.5)
        np.testing.assert_allclose(a.spec[0].meta.wcs(pixels), b.spec[0].meta.wcs(pixels), rtol=1e-12)
        wavelengths = b.spec[0].spec_table["WAVELENGTH"][0][::50]
        np.testing.assert_allclose(a.spec[0].meta.wcs.invert(0, 0, wavelengths),
                                   b.spec[0].meta.wcs.invert(0, 0, wavelengths), rtol=1e-12)


def test_step_parameters_defaults_and_errors():
    from spec2x.errors import Spec2xError
    from spec2x.pipeline import step_parameters

    assert step_parameters({"srctype": {}}) == {"srctype": {"source_type": None}}
    assert step_parameters({"srctype": {"source_type": "EXTENDED"}})["srctype"]["source_type"] == "EXTENDED"
    with pytest.raises(Spec2xError, match="unknown step 'srctyp'.*srctype"):
        step_parameters({"srctyp": {}}, "x.fits")
    with pytest.raises(Spec2xError, match="srctype has no parameter 'kind' .*source_type"):
        step_parameters({"srctype": {"kind": 1}}, "x.fits")


def test_source_type_parameter_reaches_the_step(lrs_synthetic):
    result = spec2x.calibrate(lrs_synthetic.rateints, refs=lrs_synthetic.refs, params={"srctype": {"source_type": "EXTENDED"}})
    assert result.cube.attrs["sci"]["SRCTYPE"] == "EXTENDED"
