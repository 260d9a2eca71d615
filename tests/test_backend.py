"""The xarray backend: every product type opens lazily (nothing read at open), with named dims, INT_TIMES
coordinates and units, and holds the values astropy reads from the same files."""

import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

import spec2x
from spec2x import reader
from spec2x.backend import Spec2xBackend, product_kind
from spec2x.errors import Spec2xError
from spec2x.synthetic import make_miri_lrs_slitless

TIME_COORDS = {"int_start_MJD_UTC": "mjd_start", "int_mid_MJD_UTC": "mjd_mid", "int_end_MJD_UTC": "mjd_end",
               "int_start_BJD_TDB": "bjd_start", "int_mid_BJD_TDB": "bjd_mid", "int_end_BJD_TDB": "bjd_end"}
X1D_TIME_COLUMNS = {"MJD-BEG": "mjd_start", "MJD-AVG": "mjd_mid", "MJD-END": "mjd_end",
                    "TDB-BEG": "bjd_start", "TDB-MID": "bjd_mid", "TDB-END": "bjd_end"}


@pytest.fixture(scope="module")
def products(lrs_synthetic, tmp_path_factory):
    """The LRS case's input and its products, as FITS and as zarr stores (chunks of 4 integrations)."""
    out = tmp_path_factory.mktemp("backend_runs")
    _, fits_paths = spec2x.run(lrs_synthetic.rateints, out / "fits", refs=lrs_synthetic.refs, chunk_ints=4)
    _, stores = spec2x.run(lrs_synthetic.rateints, out / "zarr", refs=lrs_synthetic.refs, chunk_ints=4, fmt="zarr")
    found = {"rateints": Path(lrs_synthetic.rateints)}
    for path in [*fits_paths, *stores]:
        found[f"{product_kind(path)}{path.suffix}"] = path
    return found


@pytest.fixture
def reads(monkeypatch):
    """Every array read the backend makes, as (variable source, key)."""
    seen = []
    real = reader.LazyArray._read

    def counted(self, key):
        seen.append((type(self.source).__name__, key))
        return real(self, key)

    monkeypatch.setattr(reader.LazyArray, "_read", counted)
    return seen


def _fits_twin(products, name):
    """The FITS file whose values the product ``name`` must hold (a store holds its FITS product's)."""
    return products[name.replace(".zarr", ".fits")]


@pytest.mark.parametrize("name", ("rateints", "calints.fits", "calints.zarr"))
def test_cube_opens_lazily_with_astropy_values(products, reads, name):
    ds = xr.open_dataset(products[name], engine=Spec2xBackend)
    assert reads == [], "data was read at open"
    with fits.open(_fits_twin(products, name)) as hdul:
        extensions = [h.name for h in hdul if h.is_image and h.data is not None and h.data.ndim == 3]
        assert sorted(ds.data_vars) == sorted(e.lower() for e in extensions)
        for ext in extensions:
            ours = ds[ext.lower()]
            assert ours.dims == ("integration", "y", "x")
            np.testing.assert_array_equal(ours.values, hdul[ext].data, err_msg=ext)
            assert ours.dtype == hdul[ext].data.dtype.newbyteorder("=")
        table = hdul["INT_TIMES"].data
        for column, coord in TIME_COORDS.items():
            np.testing.assert_array_equal(ds[coord].values, table[column])
            assert ds[coord].attrs["units"] == "d"
        np.testing.assert_array_equal(ds["integration_number"].values, table["integration_number"])
        np.testing.assert_array_equal(ds["integration"].values, np.arange(11))
        unit = hdul["SCI"].header["BUNIT"]
        if "WAVELENGTH" in hdul:
            assert ds["wavelength"].dims == ("y", "x") and ds["wavelength"].attrs["units"] == "um"
            np.testing.assert_array_equal(ds["wavelength"].values, hdul["WAVELENGTH"].data)
            np.testing.assert_array_equal(ds["area"].values, hdul["AREA"].data)
    assert ds["sci"].attrs["units"] == ds["err"].attrs["units"] == unit
    assert ds["var_poisson"].attrs["units"] == {"DN/s": "DN2 / s2", "MJy/sr": "MJy2 / sr2"}[unit]
    assert ds.attrs["EXP_TYPE"] == "MIR_LRS-SLITLESS" and ds.attrs["product"] == name.split(".")[0]


@pytest.mark.parametrize("name", ("x1dints.fits", "x1dints.zarr"))
def test_spectra_open_lazily_with_astropy_values(products, reads, name):
    ds = xr.open_dataset(products[name], engine=Spec2xBackend)
    assert reads == [], "data was read at open"
    with fits.open(_fits_twin(products, name)) as hdul:
        table = hdul["EXTRACT1D"].data
        columns = hdul["EXTRACT1D"].columns
        for column in columns:
            if column.name in X1D_TIME_COLUMNS:
                ours = ds[X1D_TIME_COLUMNS[column.name]]
            elif column.name == "INT_NUM":
                ours = ds["integration_number"]
            else:
                ours = ds[column.name.lower()]
            np.testing.assert_array_equal(ours.values, table[column.name], err_msg=column.name)
            assert ours.dims == ("integration", "spectral")[:table[column.name].ndim]
            assert ours.attrs.get("units") == (column.unit or None), column.name
    assert ds["dq"].dtype == np.uint32 and ds["flux"].attrs["units"] == "Jy"
    assert ds.attrs["extract1d"]["EXTRXSTR"] == 33 and ds.attrs["product"] == "x1dints"


@pytest.mark.parametrize("name", ("rateints", "x1dints.fits", "calints.zarr"))
def test_indexing_reads_only_what_is_asked(products, reads, name):
    ds = xr.open_dataset(products[name], engine=Spec2xBackend, cache=False)
    var = "flux" if "x1d" in name else "sci"
    full = ds[var].values
    reads.clear()
    part = ds[var].isel(integration=slice(2, 5)).values
    np.testing.assert_array_equal(part, full[2:5])
    assert len(reads) == 1 and reads[0][1][0] == slice(2, 5, 1)
    np.testing.assert_array_equal(ds[var].isel(integration=7).values, full[7])


def test_chunks_follow_the_files(products):
    fits_cube = xr.open_dataset(products["rateints"], engine=Spec2xBackend, chunks={})
    store = xr.open_dataset(products["calints.zarr"], engine=Spec2xBackend, chunks={})
    assert isinstance(fits_cube["sci"].data, da.Array) and fits_cube["sci"].data.chunks[0] == (11,)
    assert store["sci"].data.chunks[0] == (4, 4, 3)  # the store's chunks
    with pytest.warns(UserWarning, match="separate the stored chunks"):  # xarray's note on preferred chunks
        small = xr.open_dataset(products["rateints"], engine=Spec2xBackend, chunks={"integration": 3})
    assert small["sci"].data.chunks[0] == (3, 3, 3, 2)
    np.testing.assert_array_equal(small["sci"].values, fits_cube["sci"].values)


def test_open_mfdataset_over_segments(tmp_path):
    case = make_miri_lrs_slitless(tmp_path, nints=7, seed=2, segments=3)
    segments = xr.open_mfdataset(case["rateints"][::-1], engine=Spec2xBackend, combine="by_coords")
    whole = spec2x.open_exposure(case["rateints"])
    assert segments.sizes["integration"] == 7
    np.testing.assert_array_equal(segments["integration"].values, np.arange(7))
    for var in ("sci", "dq", "var_rnoise"):
        np.testing.assert_array_equal(segments[var].values, whole[var].values)
    np.testing.assert_array_equal(segments["mjd_mid"].values, whole["mjd_mid"].values)
    np.testing.assert_array_equal(segments["integration_number"].values, np.arange(1, 8))


def test_open_products_of_a_run(products):
    found = spec2x.open_products(products["calints.fits"].parent)
    assert sorted(found) == ["calints", "x1dints"]
    assert isinstance(found["x1dints"]["flux"].data, da.Array)
    with fits.open(products["x1dints.fits"]) as hdul:
        np.testing.assert_array_equal(found["x1dints"]["flux"].values, hdul["EXTRACT1D"].data["FLUX"])
    stores = spec2x.open_products(products["calints.zarr"].parent)
    assert stores["calints"].attrs["filename"].endswith("_calints.zarr")


def test_open_products_user_errors(products, tmp_path):
    with pytest.raises(Spec2xError, match="no _calints/_x1dints products"):
        spec2x.open_products(tmp_path)
    both = tmp_path / "both"
    both.mkdir()
    for name in ("calints.fits", "calints.zarr"):
        (both / products[name].name).symlink_to(products[name])
    with pytest.raises(Spec2xError, match="more than one calints product .* fmt="):
        spec2x.open_products(both)
    assert list(spec2x.open_products(both, fmt="zarr")) == ["calints"]


def test_not_a_product_is_one_clear_error(tmp_path):
    path = tmp_path / "x_calints.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((2, 2)), name="OTHER")]).writeto(path)
    with pytest.raises(Spec2xError, match=f"{path}: has neither a SCI nor an EXTRACT1D"):
        xr.open_dataset(path, engine=Spec2xBackend)


def test_entry_point_is_declared():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["xarray.backends"] == {"spec2x": "spec2x.backend:Spec2xBackend"}
    registered = {e.name: e.value for e in entry_points(group="xarray.backends")}
    if "spec2x" in registered:  # an install of this tree: xarray finds it by name
        assert registered["spec2x"] == "spec2x.backend:Spec2xBackend"
    assert Spec2xBackend().guess_can_open("a/jw01_nrs1_x1dints.fits")
    assert Spec2xBackend().guess_can_open("jw01_mirimage_calints.zarr")
    assert not Spec2xBackend().guess_can_open("image.fits")


def test_a_rate_image_has_no_integration_dimension(tmp_path):
    path = tmp_path / "jw01_nrs1_rate.fits"
    rng = np.random.default_rng(0)
    sci, dq = rng.normal(size=(5, 7)).astype(np.float32), rng.integers(0, 2**32, size=(5, 7), dtype=np.uint32)
    primary = fits.PrimaryHDU()
    primary.header["EXP_TYPE"] = "NRS_FIXEDSLIT"
    fits.HDUList([primary, fits.ImageHDU(sci, name="SCI"), fits.ImageHDU(np.abs(sci), name="ERR"),
                  fits.ImageHDU(dq, name="DQ", uint=True)]).writeto(path)
    ds = xr.open_dataset(path, engine=Spec2xBackend)
    assert ds["sci"].dims == ("y", "x") and "integration" not in ds.dims
    np.testing.assert_array_equal(ds["sci"].values, sci)
    np.testing.assert_array_equal(ds["dq"].values, dq)
    assert ds["dq"].dtype == np.uint32 and ds.attrs["product"] == "rate"
