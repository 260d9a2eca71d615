"""photom: closed-form checks on tiny arrays, laziness, and parity with jwst 3.0.0 PhotomStep."""

import os

os.environ.setdefault("STPIPE_DISABLE_CRDS_STEPPARS", "True")
os.environ.setdefault("CRDS_SERVER_URL", "https://crds-offline.invalid")
os.environ.setdefault("CRDS_PATH", "/tmp/crds_cache_offline_unused")

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from spec2x.dq import PIXEL
from spec2x.steps import flat_field, photom
from test_flat_field import _jwst_srctype_model, _no_compute, assert_parity, dataset_from_model

DNU = PIXEL["DO_NOT_USE"]
CUBES = ("sci", "err", "var_poisson", "var_rnoise", "var_flat")
PIXAR_SR, PIXAR_A2 = 2.8916e-13, 0.012302


def tiny_dataset(nints=2, ny=3, nx=4, wavelength=None, substrt=(2, 5)):
    """A small lazy flat-fielded exposure (value 1 everywhere) with the keywords photom reads."""
    shape, dims = (nints, ny, nx), ("integration", "y", "x")
    data = {v: (dims, da.from_array(np.ones(shape, np.float32), chunks=(1, ny, nx))) for v in CUBES}
    data["dq"] = (dims, da.zeros(shape, dtype=np.uint32, chunks=(1, ny, nx)))
    primary = {"INSTRUME": "MIRI", "DETECTOR": "MIRIMAGE", "EXP_TYPE": "MIR_LRS-SLITLESS", "FILTER": "P750L",
               "SUBARRAY": "SLITLESSPRISM", "SUBSTRT1": substrt[0], "SUBSTRT2": substrt[1],
               "SUBSIZE1": nx, "SUBSIZE2": ny, "EXPMID": 60500.25}
    coords = {"integration": np.arange(nints)}
    if wavelength is not None:
        coords["wavelength"] = (("y", "x"), wavelength)
    return xr.Dataset(data, coords=coords, attrs={"primary": primary, "sci": {"BUNIT": "DN/s"}})


def write_photom(path, rows, spectral=True, timecoeff_linear=None):
    """PHOTOM table (filter, subarray, photmjsr[, nelem, wavelength, relresponse]) with PIXAR_* keywords."""
    n = 8
    cols = [fits.Column("filter", "12A", array=[r[0] for r in rows]),
            fits.Column("subarray", "17A", array=[r[1] for r in rows]),
            fits.Column("photmjsr", "E", array=[r[2] for r in rows])]
    if spectral:
        waves = np.zeros((len(rows), n), np.float32)
        waves[:, :4] = [3.0, 6.0, 9.0, 12.0]
        resp = np.zeros((len(rows), n), np.float32)
        resp[:, :4] = [1.0, 1.5, 2.0, 2.5]
        cols += [fits.Column("nelem", "I", array=[4] * len(rows)),
                 fits.Column("wavelength", f"{n}E", array=waves), fits.Column("relresponse", f"{n}E", array=resp)]
    hdr = fits.Header({"REFTYPE": "PHOTOM", "PIXAR_SR": PIXAR_SR, "PIXAR_A2": PIXAR_A2})
    hdus = [fits.PrimaryHDU(header=hdr), fits.BinTableHDU.from_columns(cols, name="PHOTOM")]
    if timecoeff_linear is not None:
        t0, loss = timecoeff_linear
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column("filter", "12A", array=[r[0] for r in rows]),
             fits.Column("subarray", "17A", array=[r[1] for r in rows]),
             fits.Column("t0", "E", array=[t0] * len(rows)),
             fits.Column("lossperyear", "E", array=[loss] * len(rows))], name="TIMECOEFF_LINEAR"))
    fits.HDUList(hdus).writeto(path)
    return str(path)


def write_area(path, shape=(12, 10)):
    """Full-frame-like AREA reference whose value encodes the 0-based (y, x) position: 1 + y/100 + x/1e4."""
    y, x = np.indices(shape)
    hdr = fits.Header({"REFTYPE": "AREA", "PIXAR_SR": 3.0e-13, "PIXAR_A2": 0.0128})
    fits.HDUList([fits.PrimaryHDU(header=hdr),
                  fits.ImageHDU((1 + y / 100 + x / 1e4).astype(np.float32), name="SCI")]).writeto(path)
    return str(path)


def test_scalar_conversion_of_twenty(tmp_path):
    ref = write_photom(tmp_path / "photom.fits", [("P750L", "SLITLESSPRISM", 20.0)], spectral=False)
    out = photom.run(tiny_dataset(), {"photom": ref, "area": None}).compute()
    for name in ("sci", "err"):
        assert np.allclose(out[name], 20.0) and out[name].dtype == np.float32
    for name in ("var_poisson", "var_rnoise", "var_flat"):
        assert np.allclose(out[name], 400.0) and out[name].dtype == np.float32
    sci_kw = out.attrs["sci"]
    assert sci_kw["PHOTMJSR"] == 20.0 and sci_kw["BUNIT"] == "MJy/sr" and out.attrs["err"]["BUNIT"] == "MJy/sr"
    assert sci_kw["PHOTUJA2"] == pytest.approx(20.0 * 23.50443053909789, rel=1e-7)
    assert (sci_kw["PIXAR_SR"], sci_kw["PIXAR_A2"]) == (PIXAR_SR, PIXAR_A2)  # no AREA: from the PHOTOM header
    assert "area" not in out.coords


def test_relresponse_interpolated_at_each_wavelength(tmp_path):
    ref = write_photom(tmp_path / "photom.fits", [("P750L", "SLITLESSPRISM", 20.0)])
    wl = np.full((3, 4), 4.5)
    wl[1] = 7.5
    wl[2, 0], wl[2, 1], wl[2, 2] = np.nan, 2.0, 13.0  # no response: NaN wavelength, below, above the table
    out = photom.run(tiny_dataset(wavelength=wl), {"photom": ref, "area": None}).compute()
    assert np.allclose(out.sci[:, 0], 20 * 1.25) and np.allclose(out.sci[:, 1], 20 * 1.75)
    assert np.allclose(out.var_rnoise[:, 1], (20 * 1.75) ** 2)
    assert np.allclose(out.sci[:, 2, 3], 20 * 1.25)
    for name in CUBES:
        assert np.isnan(out[name][:, 2, :3]).all()
    assert (out.dq[:, 2, :3] == DNU).all() and int((out.dq != 0).sum()) == 2 * 3
    np.testing.assert_array_equal(out.wavelength, wl)  # photom leaves the wavelength map alone


def test_area_cut_and_pixar_from_area(tmp_path):
    ref = write_photom(tmp_path / "photom.fits", [("P750L", "SLITLESSPRISM", 20.0)], spectral=False)
    area = write_area(tmp_path / "area.fits")
    out = photom.run(tiny_dataset(substrt=(2, 5)), {"photom": ref, "area": area})
    y, x = np.indices((3, 4))
    expected = (1 + (y + 4) / 100 + (x + 1) / 1e4).astype(np.float32)
    assert out.area.dtype == np.float32 and out.area.dims == ("y", "x")
    np.testing.assert_array_equal(out.area.values, expected)
    assert (out.attrs["sci"]["PIXAR_SR"], out.attrs["sci"]["PIXAR_A2"]) == (3.0e-13, 0.0128)


def test_generic_row_missing_row_and_time_correction(tmp_path):
    generic = write_photom(tmp_path / "g.fits", [("P750L", "GENERIC", 10.0), ("F560W", "SLITLESSPRISM", 5.0)],
                           spectral=False)
    assert np.allclose(photom.run(tiny_dataset(), {"photom": generic, "area": None}).sci, 10.0)
    other = write_photom(tmp_path / "o.fits", [("F560W", "SLITLESSPRISM", 5.0)], spectral=False)
    out = photom.run(tiny_dataset(), {"photom": other, "area": None})
    assert np.allclose(out.sci, 1.0) and "PHOTMJSR" not in out.attrs["sci"]
    timed = write_photom(tmp_path / "t.fits", [("P750L", "SLITLESSPRISM", 20.0)], spectral=False,
                         timecoeff_linear=(60500.25 - 365.0, 0.1))
    out = photom.run(tiny_dataset(), {"photom": timed, "area": None})
    assert np.allclose(out.sci, 20.0 / 0.9, rtol=1e-5)
    assert out.attrs["sci"]["PHOTMJSR"] == pytest.approx(20.0 / 0.9, rel=1e-5)


def test_skipped_without_photom():
    ds = tiny_dataset()
    out = photom.run(ds, {"photom": None, "area": None})
    assert out.attrs["primary"]["S_PHOTOM"] == "SKIPPED" and out.sci.data is ds.sci.data


def test_lazy(tmp_path):
    ref = write_photom(tmp_path / "photom.fits", [("P750L", "SLITLESSPRISM", 20.0)])
    ds = tiny_dataset(wavelength=np.full((3, 4), 5.0))
    with dask.config.set(scheduler=_no_compute):
        out = photom.run(ds, {"photom": ref, "area": write_area(tmp_path / "area.fits")})
    assert all(isinstance(out[v].data, da.Array) for v in (*CUBES, "dq"))
    assert out.sci.dims == ("integration", "y", "x") and out.dq.dims == ("integration", "y", "x")
    assert "PHOTMJSR" not in ds.attrs["sci"]


# ---------------------------------------------------------------- parity with jwst 3.0.0


@pytest.fixture(scope="module")
def jwst_chain(tmp_path_factory):
    """jwst models after srctype, flat_field and photom on a synthetic exposure."""
    work = tmp_path_factory.mktemp("photom_parity")
    srctype, refs = _jwst_srctype_model(work / "case")
    from jwst.flatfield import FlatFieldStep
    from jwst.photom import PhotomStep

    flat = FlatFieldStep.call(srctype, override_flat=refs["flat"], override_fflat="N/A",
                              override_sflat="N/A", override_dflat="N/A")
    ds_srctype = dataset_from_model(srctype, str(work / "srctype.fits"))
    ds_flat = dataset_from_model(flat, str(work / "flat.fits"))
    phot = PhotomStep.call(flat, override_photom=refs["photom"], override_area=refs["area"])
    return {"refs": refs, "srctype": ds_srctype, "flat": ds_flat, "photom": phot}


def _check_keywords(out, model):
    sci = out.attrs["sci"]
    assert sci["PHOTMJSR"] == model.meta.photometry.conversion_megajanskys
    assert sci["PHOTUJA2"] == model.meta.photometry.conversion_microjanskys
    assert sci["PIXAR_SR"] == model.meta.photometry.pixelarea_steradians
    assert sci["PIXAR_A2"] == model.meta.photometry.pixelarea_arcsecsq
    assert sci["BUNIT"] == model.meta.bunit_data and out.attrs["err"]["BUNIT"] == model.meta.bunit_err
    np.testing.assert_array_equal(out.area.values, model.area)
    assert out.area.dtype == np.float32


@pytest.mark.parity
def test_parity_with_jwst(jwst_chain):
    refs = jwst_chain["refs"]
    with dask.config.set(scheduler=_no_compute):
        out = photom.run(jwst_chain["flat"], {"photom": refs["photom"], "area": refs["area"]})
    with dask.config.set(scheduler="threads"):
        assert_parity(out, jwst_chain["photom"])
    _check_keywords(out, jwst_chain["photom"])
    # pixels outside the WCS bounding box have no response: NaN + DO_NOT_USE
    nan_wl = np.isnan(out.wavelength.values)
    assert nan_wl.any() and np.isnan(out.sci.values[:, nan_wl]).all()


@pytest.mark.parity
def test_parity_flat_then_photom(jwst_chain):
    """spec2x flat_field then photom from jwst's srctype output equal jwst's two steps."""
    refs = jwst_chain["refs"]
    with dask.config.set(scheduler=_no_compute):
        flat = flat_field.run(jwst_chain["srctype"], {"flat": refs["flat"], "fflat": None, "sflat": None,
                                                      "dflat": None})
        out = photom.run(flat, {"photom": refs["photom"], "area": refs["area"]})
    with dask.config.set(scheduler="threads"):
        assert_parity(out, jwst_chain["photom"])
