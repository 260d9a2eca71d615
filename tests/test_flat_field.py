"""flat_field: closed-form checks on tiny arrays, laziness, and parity with jwst 3.0.0 FlatFieldStep."""

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

from spec2x.dq import PIXEL, match_nans_and_flags
from spec2x.errors import RefError
from spec2x.steps import flat_field

DNU, NOFLAT = PIXEL["DO_NOT_USE"], PIXEL["NO_FLAT_FIELD"]
CUBES = ("sci", "err", "var_poisson", "var_rnoise", "var_flat")


def _no_compute(*args, **kwargs):
    raise AssertionError("the step computed a dask graph")


def tiny_dataset(nints=2, ny=3, nx=4, sci=4.0, vp=0.16, vr=0.09, substrt=(1, 1)):
    """A small lazy exposure with uniform values and the subarray keywords flat_field reads."""
    shape = (nints, ny, nx)
    full = lambda v, dt=np.float32: da.from_array(np.full(shape, v, dtype=dt), chunks=(1, ny, nx))  # noqa: E731
    dims = ("integration", "y", "x")
    data = {"sci": full(sci), "err": full(np.sqrt(np.float32(vp) + np.float32(vr))), "dq": full(0, np.uint32),
            "var_poisson": full(vp), "var_rnoise": full(vr)}
    primary = {"INSTRUME": "MIRI", "DETECTOR": "MIRIMAGE", "EXP_TYPE": "MIR_LRS-SLITLESS",
               "SUBSTRT1": substrt[0], "SUBSTRT2": substrt[1], "SUBSIZE1": nx, "SUBSIZE2": ny}
    return xr.Dataset({k: (dims, v) for k, v in data.items()}, coords={"integration": np.arange(nints)},
                      attrs={"primary": primary, "sci": {"BUNIT": "DN/s"}})


def write_flat(path, data, err=None, dq=None, substrt=(1, 1), keywords=True):
    """A FLAT reference file with SCI/DQ/ERR and (optionally) its subarray keywords."""
    hdr = fits.Header({"REFTYPE": "FLAT", "INSTRUME": "MIRI", "DETECTOR": "MIRIMAGE"})
    if keywords:
        hdr.update(SUBSTRT1=substrt[0], SUBSTRT2=substrt[1], SUBSIZE1=data.shape[1], SUBSIZE2=data.shape[0])
    hdus = [fits.PrimaryHDU(header=hdr), fits.ImageHDU(np.asarray(data, np.float32), name="SCI")]
    if dq is not None:
        hdus.append(fits.ImageHDU(np.asarray(dq, np.uint32), name="DQ"))
    if err is not None:
        hdus.append(fits.ImageHDU(np.asarray(err, np.float32), name="ERR"))
    fits.HDUList(hdus).writeto(path)
    return str(path)


def refs_for(flat):
    return {"flat": flat, "fflat": None, "sflat": None, "dflat": None}


def test_flat_of_two_halves_and_quarters(tmp_path):
    flat = write_flat(tmp_path / "flat.fits", np.full((3, 4), 2.0), err=np.zeros((3, 4)))
    out = flat_field.run(tiny_dataset(), refs_for(flat)).compute()
    assert np.allclose(out.sci, 2.0) and out.sci.dtype == np.float32
    assert np.allclose(out.var_poisson, 0.04) and np.allclose(out.var_rnoise, 0.0225)
    assert np.allclose(out.var_flat, 0.0) and out.var_flat.dtype == np.float32
    assert np.allclose(out.err, 0.25)  # sqrt(0.16 + 0.09) / 2
    assert (out.dq == 0).all()


def test_var_flat_and_bad_flat_pixels(tmp_path):
    data = np.full((3, 4), 2.0)
    data[0, 0], data[0, 1] = np.nan, 0.0
    dq = np.zeros((3, 4), np.uint32)
    dq[0, 2] = NOFLAT
    dq[0, 3] = PIXEL["HOT"]
    flat = write_flat(tmp_path / "flat.fits", data, err=np.full((3, 4), 0.1), dq=dq)
    out = flat_field.run(tiny_dataset(), refs_for(flat)).compute()
    # good pixels: sci 4/2 = 2, var_flat = 2**2 / 4 * 0.01
    assert np.allclose(out.var_flat[:, 1:, :], 0.01, rtol=1e-6)
    assert np.allclose(out.err[:, 1:, :], np.sqrt(0.04 + 0.0225 + 0.01), rtol=1e-6)
    bad = DNU | NOFLAT
    assert (out.dq[:, 0, 0] == bad).all() and (out.dq[:, 0, 1] == bad).all() and (out.dq[:, 0, 2] == bad).all()
    assert (out.dq[:, 0, 3] == PIXEL["HOT"]).all()  # other flat flags are OR-ed in, data still divided
    for name in CUBES:
        assert np.isnan(out[name][:, 0, :3]).all()
        assert np.isfinite(out[name][:, 0, 3]).all() and np.isfinite(out[name][:, 1:, :]).all()


def test_nan_and_do_not_use_are_matched():
    ds = tiny_dataset()
    sci = np.full((2, 3, 4), 1.0, np.float32)
    sci[0, 1, 1] = np.nan
    dq = np.zeros((2, 3, 4), np.uint32)
    dq[1, 2, 2] = DNU
    ds["sci"] = (ds.sci.dims, da.from_array(sci))
    ds["dq"] = (ds.dq.dims, da.from_array(dq))
    out = match_nans_and_flags(ds).compute()
    assert out.dq[0, 1, 1] == DNU and np.isnan(out.err[0, 1, 1]) and np.isnan(out.var_rnoise[0, 1, 1])
    assert np.isnan(out.sci[1, 2, 2]) and np.isnan(out.var_poisson[1, 2, 2])
    assert int(np.isnan(out.sci).sum()) == 2 and int((out.dq != 0).sum()) == 2
    assert all(out[v].dtype == np.float32 for v in ("sci", "err", "var_poisson", "var_rnoise"))


def test_subarray_cut_from_larger_reference(tmp_path):
    big = np.arange(1, 101, dtype=np.float32).reshape(10, 10)
    flat = write_flat(tmp_path / "flat.fits", big, err=np.zeros((10, 10)))
    ds = tiny_dataset(sci=1.0, substrt=(3, 4))  # x from column 3, y from row 4 (1-based)
    out = flat_field.run(ds, refs_for(flat)).compute()
    assert np.allclose(out.sci[0], 1.0 / big[3:6, 2:6])


def test_full_frame_miri_reference_without_keywords(tmp_path):
    full = np.ones((1024, 1032), np.float32)
    full[528:531, 0:4] = 4.0
    flat = write_flat(tmp_path / "flat.fits", full, keywords=False)
    out = flat_field.run(tiny_dataset(sci=1.0, substrt=(1, 529)), refs_for(flat)).compute()
    assert np.allclose(out.sci, 0.25)


def test_reference_not_covering_subarray_is_an_error(tmp_path):
    flat = write_flat(tmp_path / "flat.fits", np.ones((5, 5)))
    with pytest.raises(RefError):
        flat_field.run(tiny_dataset(substrt=(3, 3)), refs_for(flat))


@pytest.mark.parametrize("case", ["na", "small"])
def test_skipped(tmp_path, case):
    ds = tiny_dataset()
    flat = None if case == "na" else write_flat(tmp_path / "flat.fits", np.ones((2, 2)))
    out = flat_field.run(ds, refs_for(flat))
    assert out.attrs["primary"]["S_FLAT"] == "SKIPPED"
    assert "var_flat" not in out and out.sci.data is ds.sci.data


def test_lazy(tmp_path):
    flat = write_flat(tmp_path / "flat.fits", np.full((3, 4), 2.0), err=np.zeros((3, 4)))
    ds = tiny_dataset()
    with dask.config.set(scheduler=_no_compute):
        out = flat_field.run(ds, refs_for(flat))
    assert all(isinstance(out[v].data, da.Array) for v in (*CUBES, "dq"))
    assert ds.attrs["primary"].get("S_FLAT") is None  # input keywords untouched


# ---------------------------------------------------------------- parity with jwst 3.0.0


def _jwst_srctype_model(workdir):
    """Synthetic rateints -> jwst AssignWcs -> SlitModel (as Spec2Pipeline converts TA types) -> SrcType."""
    pytest.importorskip("jwst")
    from stpipe import crds_client

    crds_client.get_context_used = lambda observatory: "offline"
    from jwst.assign_wcs import AssignWcsStep
    from jwst.srctype.srctype_step import SourceTypeStep
    from stdatamodels.jwst import datamodels

    from spec2x.synthetic import make_miri_lrs_slitless

    info = make_miri_lrs_slitless(workdir, nints=4, seed=3)
    refs = {k: str(v) for k, v in info["refs"].items()}
    wcs_refs = {f"override_{t}": refs.get(t, "N/A") if t in ("distortion", "specwcs") else "N/A"
                for t in AssignWcsStep.reference_file_types}
    cube = AssignWcsStep.call(datamodels.open(str(info["rateints"][0])), **wcs_refs)
    slit = datamodels.SlitModel(cube)
    for attr in ("xstart", "ystart", "xsize", "ysize"):
        setattr(slit, attr, getattr(cube.meta.subarray, attr))
    return SourceTypeStep.call(slit), refs


def dataset_from_model(model, path):
    """The spec2x Dataset of a jwst model: keywords/coords via open_exposure, arrays from the model."""
    from spec2x.exposure import open_exposure

    model.save(path)
    ds = open_exposure(path)
    dims = ("integration", "y", "x")
    for var, attr in (("sci", "data"), ("err", "err"), ("dq", "dq"), ("var_poisson", "var_poisson"),
                      ("var_rnoise", "var_rnoise"), ("var_flat", "var_flat")):
        if model.hasattr(attr):
            ds[var] = (dims, da.from_array(np.array(getattr(model, attr)), chunks=(2, -1, -1)))
    if model.hasattr("wavelength"):
        ds = ds.assign_coords(wavelength=(("y", "x"), np.asarray(model.wavelength, np.float64)))
    return ds


def assert_parity(out, model):
    """spec2x cubes equal jwst's: rel 1e-5 where finite, same NaN pattern, identical DQ."""
    for var, attr in (("sci", "data"), ("err", "err"), ("var_poisson", "var_poisson"),
                      ("var_rnoise", "var_rnoise"), ("var_flat", "var_flat")):
        ours, theirs = out[var].values, np.asarray(getattr(model, attr))
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=var)
        good = np.isfinite(theirs)
        np.testing.assert_allclose(ours[good], theirs[good], rtol=1e-5, atol=0, err_msg=var)
    np.testing.assert_array_equal(out.dq.values, np.asarray(model.dq))


@pytest.mark.parity
def test_parity_with_jwst(tmp_path):
    srctype, refs = _jwst_srctype_model(tmp_path / "case")
    ds = dataset_from_model(srctype, str(tmp_path / "srctype.fits"))
    from jwst.flatfield import FlatFieldStep

    expected = FlatFieldStep.call(srctype, override_flat=refs["flat"], override_fflat="N/A",
                                  override_sflat="N/A", override_dflat="N/A")
    with dask.config.set(scheduler=_no_compute):
        out = flat_field.run(ds, refs_for(refs["flat"]))
    with dask.config.set(scheduler="threads"):
        assert_parity(out, expected)
    assert (out.dq.values & NOFLAT).any() and np.isnan(out.sci.values).any()
