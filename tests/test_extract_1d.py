"""extract_1d: closed-form kernel checks, laziness and chunking, and parity with jwst 3.0.0."""

import copy
import json
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from kernels import extract1d as k1d
from spec2x.steps import extract_1d

PIXAR = 2.8916e-13
CUBES = ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")
COLUMNS = ("WAVELENGTH",) + tuple(c.upper() for c in k1d.COLUMNS)


def _no_compute(*args, **kwargs):
    raise AssertionError("extract_1d.run computed something")


# ------------------------------------------------------------------ small synthetic inputs


def tiny_dataset(sci, var=1.0, dq=None, nints=2, wavelength=None, chunk=1, keywords=None):
    """A lazy photom-calibrated exposure of one repeated (ny, nx) frame, dispersion along y."""
    sci = np.broadcast_to(np.asarray(sci, np.float32), (nints,) + np.shape(sci)[-2:]).copy()
    shape, dims = sci.shape, ("integration", "y", "x")
    ones = np.ones(shape, np.float32)
    arrays = {"sci": sci, "err": ones, "var_poisson": ones * var, "var_rnoise": ones * var,
              "var_flat": ones * var, "dq": np.zeros(shape, np.uint32) if dq is None else dq}
    data = {k: (dims, da.from_array(v, chunks=(chunk, -1, -1))) for k, v in arrays.items()}
    if wavelength is None:
        wavelength = np.broadcast_to(np.linspace(5.0, 10.0, shape[1])[:, None], shape[1:])
    primary = {"INSTRUME": "MIRI", "DETECTOR": "MIRIMAGE", "EXP_TYPE": "MIR_LRS-SLITLESS",
               "SUBARRAY": "SLITLESSPRISM", "S_PHOTOM": "COMPLETE"}
    sci_kw = {"SRCTYPE": "POINT", "DISPAXIS": 2, "PIXAR_SR": PIXAR, "PA_APER": 150.0, **(keywords or {})}
    coords = {"integration": np.arange(nints), "wavelength": (("y", "x"), np.asarray(wavelength, float))}
    return xr.Dataset(data, coords=coords, attrs={"primary": primary, "sci": sci_kw})


def write_ref(path, **aperture):
    """An EXTRACT1D JSON reference with one MIR_LRS-SLITLESS aperture."""
    aper = {"id": "MIR_LRS-SLITLESS", "region_type": "target", **aperture}
    path.write_text(json.dumps({"reftype": "EXTRACT1D", "apertures": [aper]}))
    return str(path)


def write_apcorr(path, sizes=(4, 8, 16), waves=(4.0, 8.0, 12.0), value=None, sizeunit="pixels"):
    """An APCORR table with one SLITLESSPRISM row (``value`` constant, else size+wavelength)."""
    nw, ns = len(waves), len(sizes)
    wl = np.zeros((1, 10), np.float32)
    wl[0, :nw] = waves
    sz = np.zeros((1, 6), np.uint8)
    sz[0, :ns] = sizes
    corr = np.zeros((1, 10, 6), np.float32)
    corr[0, :nw, :ns] = value if value is not None else 1 + 0.01 * np.add.outer(np.array(waves), sizes)
    cols = [fits.Column("subarray", "17A", array=["SLITLESSPRISM"]),
            fits.Column("wavelength", "10E", array=wl), fits.Column("nelem_wl", "I", array=[nw]),
            fits.Column("size", "6B", array=sz), fits.Column("nelem_size", "I", array=[ns]),
            fits.Column("apcorr", "60E", dim="(6,10)", array=corr)]
    table = fits.BinTableHDU.from_columns(cols, name="APCORR")
    table.header["SIZEUNIT"] = sizeunit
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return str(path)


def spectra(ds, ref, apcorr=None):
    with dask.config.set(scheduler="sync"):
        return extract_1d.run(ds, {"extract1d": ref, "apcorr": apcorr, "psf": None}).compute()


# ------------------------------------------------------------------ closed-form checks


def test_flat_image_over_12_pixel_box(tmp_path):
    out = spectra(tiny_dataset(np.ones((20, 30)), var=0.5), write_ref(tmp_path / "e.json", xstart=10, xstop=21))
    assert out.sizes == {"integration": 2, "spectral": 20}
    np.testing.assert_allclose(out.flux, 12 * PIXAR * 1e6, rtol=1e-14)
    np.testing.assert_array_equal(out.npixels, 12.0)
    np.testing.assert_allclose(out.surf_bright, 1.0, rtol=1e-14)
    np.testing.assert_allclose(out.flux_var_poisson, 12 * 0.5 * PIXAR**2 * 1e12, rtol=1e-14)
    np.testing.assert_allclose(out.sb_var_rnoise, 12 * 0.5 / 144, rtol=1e-14)
    np.testing.assert_allclose(out.flux_error, np.sqrt(3 * 12 * 0.5) * PIXAR * 1e6, rtol=1e-14)
    np.testing.assert_array_equal(out.background, 0.0)
    np.testing.assert_array_equal(out.dq, 0)
    assert out.dq.dtype == np.uint32 and out.flux.dtype == np.float64
    np.testing.assert_allclose(out.wavelength, np.linspace(5.0, 10.0, 20), rtol=1e-7)
    assert out.attrs["extract1d"]["EXTRXSTR"] == 11 and out.attrs["extract1d"]["EXTRXSTP"] == 22
    assert out.attrs["spec_meta"]["extraction_xstart"] == 11
    assert out.flux.attrs["units"] == "Jy" and out.sb_var_flat.attrs["units"] == "MJy^2 / sr^2"


def test_fractional_aperture_edges(tmp_path):
    x = np.arange(30, dtype=float)
    out = spectra(tiny_dataset(np.broadcast_to(x, (20, 30))), write_ref(tmp_path / "e.json", xstart=9.7, xstop=21.2))
    weights = np.zeros(30)
    weights[10:22] = 1.0
    weights[9], weights[22] = 0.3, 0.2
    np.testing.assert_allclose(out.npixels, weights.sum(), rtol=1e-14)
    np.testing.assert_allclose(out.surf_bright, (weights * x).sum() / weights.sum(), rtol=1e-13)
    np.testing.assert_allclose(out.flux_var_flat, (weights**2).sum() * PIXAR**2 * 1e12, rtol=1e-13)


def test_constant_background_is_removed(tmp_path):
    image = np.full((20, 30), 5.0)
    image[:, 10:22] += 2.0
    ref = write_ref(tmp_path / "e.json", xstart=10, xstop=21, bkg_coeff=[[1.5], [5.5], [24.5], [27.5]])
    out = spectra(tiny_dataset(image), ref)
    n_bkg, npix = 4 + 3, 12  # columns 2-5 and 25-27
    np.testing.assert_allclose(out.background, 5.0, rtol=1e-14)
    np.testing.assert_allclose(out.surf_bright, 2.0, rtol=1e-13)
    # Each background pixel enters the aperture sum with weight npix / n_bkg.
    np.testing.assert_allclose(out.bkgd_var_rnoise, 1.0 / n_bkg, rtol=1e-13)
    np.testing.assert_allclose(out.sb_var_rnoise, (npix + npix**2 / n_bkg) / npix**2, rtol=1e-13)


def test_linear_background_with_order_1(tmp_path):
    x = np.arange(30, dtype=float)
    image = np.broadcast_to(3.0 + 0.25 * x, (20, 30)).copy()
    image[:, 10:22] += 1.0
    ref = write_ref(tmp_path / "e.json", xstart=10, xstop=21, bkg_coeff=[[1.5], [5.5], [24.5], [27.5]], bkg_order=1)
    out = spectra(tiny_dataset(image), ref)
    np.testing.assert_allclose(out.surf_bright, 1.0, rtol=1e-12)
    np.testing.assert_allclose(out.background, 3.0 + 0.25 * x[10:22].mean(), rtol=1e-12)


def test_bad_pixels_and_empty_rows(tmp_path):
    image = np.ones((20, 30))
    image[4, 12] = np.nan
    dq = np.zeros((2, 20, 30), np.uint32)
    dq[:, 6, 15] = 1          # DO_NOT_USE with a finite value
    dq[1, 8, 10:22] = 1       # whole aperture row unusable in integration 1
    out = spectra(tiny_dataset(image, dq=dq), write_ref(tmp_path / "e.json", xstart=10, xstop=21))
    assert out.npixels[0, 4] == 11 and out.npixels[0, 6] == 11
    np.testing.assert_allclose(out.surf_bright[0, 4], 1.0)
    assert np.isnan(out.flux[1, 8]) and out.dq[1, 8] == 1 and out.npixels[1, 8] == 0
    assert not np.isnan(out.flux[0, 8]) and out.dq[0, 8] == 0


def test_aperture_correction_scales_source_columns(tmp_path):
    ds, ref = tiny_dataset(np.ones((20, 30))), write_ref(tmp_path / "e.json", xstart=10, xstop=21)
    plain = spectra(ds, ref)
    corr = spectra(ds, ref, write_apcorr(tmp_path / "a.fits", value=2.0))
    for name in ("flux", "flux_error", "surf_bright", "sb_error"):
        np.testing.assert_allclose(corr[name], 2 * plain[name], rtol=1e-14)
    for name in ("flux_var_poisson", "flux_var_rnoise", "flux_var_flat", "sb_var_poisson", "sb_var_flat"):
        np.testing.assert_allclose(corr[name], 4 * plain[name], rtol=1e-14)
    for name in ("background", "bkgd_error", "npixels"):
        np.testing.assert_array_equal(corr[name], plain[name])


def test_horizontal_dispersion_is_the_transpose(tmp_path):
    rng = np.random.default_rng(4)
    image, wl = rng.normal(10, 1, (20, 30)), np.broadcast_to(np.linspace(5, 10, 20)[:, None], (20, 30))
    vertical = spectra(tiny_dataset(image, wavelength=wl),
                       write_ref(tmp_path / "v.json", xstart=9.6, xstop=21, bkg_coeff=[[1.5], [5.5], [24.5], [27.5]]))
    horizontal = spectra(tiny_dataset(image.T, wavelength=wl.T, keywords={"DISPAXIS": 1}),
                         write_ref(tmp_path / "h.json", ystart=9.6, ystop=21, bkg_coeff=[[1.5], [5.5], [24.5], [27.5]]))
    for name in vertical.data_vars:
        np.testing.assert_allclose(horizontal[name], vertical[name], rtol=1e-13, err_msg=name)
    h, v = horizontal.attrs["extract1d"], vertical.attrs["extract1d"]
    assert (h["EXTRYSTR"], h["EXTRYSTP"], h["EXTRXSTR"]) == (v["EXTRXSTR"], v["EXTRXSTP"], v["EXTRYSTR"])


def test_bilinear_equals_rectbivariatespline():
    from scipy.interpolate import RectBivariateSpline

    rng = np.random.default_rng(1)
    xs = np.array([4.0, 6, 8, 10, 12, 14, 16, 20])
    ys = np.linspace(3.5, 15, 30)
    table = 1 + rng.random((xs.size, ys.size))
    spline = RectBivariateSpline(xs, ys, table, kx=1, ky=1)
    for x, y in zip(rng.uniform(0, 25, 500), rng.uniform(2, 17, 500)):
        np.testing.assert_allclose(k1d.bilinear(xs, ys, table, x, y), spline(x, y).item(), rtol=1e-12)
    for x, y in ((4.0, 3.5), (20.0, 15.0), (12.0, 9.0)):
        np.testing.assert_allclose(k1d.bilinear(xs, ys, table, x, y), spline(x, y).item(), rtol=1e-12)


def test_smoothing_equals_astropy_convolve():
    from astropy.convolution import convolve

    rng = np.random.default_rng(2)
    frame = rng.random((1, 40, 6)).astype(np.float32)
    frame[0, 10:13, 2] = np.nan
    frame[0, 0, 3] = np.nan
    frame[0, 20:30, 4] = np.nan  # longer than the kernel: stays NaN
    ones, dq = np.ones_like(frame), np.zeros(frame.shape, np.uint32)
    for width in (3, 5):
        out = np.zeros((40, 6), np.float32)
        k1d._smooth(frame, ones, dq, ones, ones, ones, 0, np.ones(6, np.bool_), width // 2, out)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expect = convolve(frame[0].T, np.ones((1, width)) / width, boundary="extend").T
        np.testing.assert_array_equal(np.isnan(out), np.isnan(expect))
        np.testing.assert_allclose(out, expect, rtol=2e-7, equal_nan=True)


# ------------------------------------------------------------------ laziness and chunking


def test_lazy_and_chunking_invariant(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.normal(10, 1, (7, 20, 30))
    image[2, 5, 12] = np.nan
    ref = write_ref(tmp_path / "e.json", xstart=9.5, xstop=21, bkg_coeff=[[1.5], [5.5], [24.5], [27.5]],
                    smoothing_length=3)
    results = []
    for chunk in (1, 3, 7):
        ds = tiny_dataset(image, nints=7, chunk=chunk)
        with dask.config.set(scheduler=_no_compute):
            out = extract_1d.run(ds, {"extract1d": ref, "apcorr": write_apcorr(tmp_path / f"a{chunk}.fits"),
                                      "psf": None})
        assert isinstance(out.flux.data, da.Array) and out.flux.data.chunks[0] == ds.sci.data.chunks[0]
        n_chunks = len(ds.sci.data.chunks[0])
        assert len(out.flux.data.__dask_graph__()) <= 12 * n_chunks + 2
        with dask.config.set(scheduler="threads"):
            results.append(out.compute())
    for other in results[1:]:
        for name in results[0].data_vars:
            np.testing.assert_array_equal(other[name].values, results[0][name].values, err_msg=name)


def test_integration_coordinates_carried():
    ds = tiny_dataset(np.ones((20, 30)), nints=3)
    ds = ds.assign_coords(integration_number=("integration", np.arange(5, 8)),
                          mjd_mid=("integration", [1.0, 2.0, 3.0]))
    out = spectra(ds, None)
    np.testing.assert_array_equal(out.integration_number, [5, 6, 7])
    np.testing.assert_array_equal(out.mjd_mid, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out.npixels, 30.0)  # no reference: the whole frame


# ------------------------------------------------------------------ parity with jwst 3.0.0


def _header_dict(header):
    skip = {"", "COMMENT", "HISTORY", "SIMPLE", "BITPIX", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT"}
    return {k: v for k, v in header.items() if k not in skip and not k.startswith("NAXIS")}


def dataset_from_calints(path, chunk=4):
    """The Dataset extract_1d receives, built from jwst's calints (arrays, keywords, WCS, times)."""
    from stdatamodels.jwst import datamodels

    with fits.open(path) as hdul:
        dims = ("integration", "y", "x")
        data = {n.lower(): (dims, da.from_array(np.asarray(hdul[n].data), chunks=(chunk, -1, -1))) for n in CUBES}
        nints = hdul["SCI"].data.shape[0]
        times = hdul["INT_TIMES"].data[:nints]
        coords = {"integration": np.arange(nints),
                  "wavelength": (("y", "x"), np.asarray(hdul["WAVELENGTH"].data, np.float64)),
                  "integration_number": ("integration", np.asarray(times["integration_number"])),
                  "mjd_mid": ("integration", np.asarray(times["int_mid_MJD_UTC"]))}
        attrs = {"primary": _header_dict(hdul[0].header), "sci": _header_dict(hdul["SCI"].header)}
    with datamodels.open(str(path)) as model:
        attrs["wcs"] = model.meta.wcs
    return xr.Dataset(data, coords=coords, attrs=attrs)


def assert_columns_match(out, table, rtol=1e-10):
    """Every x1dints column: rel ``rtol`` where finite, identical NaN/inf pattern, exact DQ/NPIXELS."""
    for name in COLUMNS:
        ref = np.asarray(table[name])
        ours = np.broadcast_to(out[name.lower()].values, ref.shape)
        if name in ("DQ", "NPIXELS"):
            np.testing.assert_array_equal(ours, ref, err_msg=name)
            continue
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=name)
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(ours[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)], err_msg=name)
        np.testing.assert_allclose(ours[finite], ref[finite], rtol=rtol, atol=0, err_msg=name)


@pytest.mark.parity
def test_parity_with_jwst_pipeline(lrs_case):
    calints, x1dints = lrs_case.jwst["calints"], lrs_case.jwst["x1dints"]
    refs = {"extract1d": lrs_case.refs["extract1d"], "apcorr": lrs_case.refs["apcorr"], "psf": None}
    ds = dataset_from_calints(calints)
    with dask.config.set(scheduler=_no_compute):
        out = extract_1d.run(ds, refs)
    out = out.compute(scheduler="threads")
    with fits.open(x1dints) as hdul:
        table = hdul["EXTRACT1D"].data
        assert_columns_match(out, table)
        assert (table["NPIXELS"] == 11).any() and (table["NPIXELS"] == 12).any()
        np.testing.assert_array_equal(out.integration_number, table["INT_NUM"])
        header = hdul["EXTRACT1D"].header
        expected = {k: header[k] for k in extract_1d.SPEC_META}
        assert out.attrs["extract1d"].keys() == expected.keys()
        for key, value in expected.items():
            if isinstance(value, float):
                np.testing.assert_allclose(out.attrs["extract1d"][key], value, rtol=1e-12, err_msg=key)
            else:
                assert out.attrs["extract1d"][key] == value, key
        assert "R_APCORR" not in hdul[0].header  # jwst has no keyword for it


def _modified_calints(src, dst):
    """The first 4 integrations of jwst's calints, with awkward pixels added to integration 2."""
    with fits.open(src) as hdul:
        for name in CUBES:
            hdul[name].data = hdul[name].data[:4]   # fewer integrations: jwst's loop is slow
        sci, err, dq = hdul["SCI"].data, hdul["ERR"].data, hdul["DQ"].data
        i = 2
        sci[i, 150, 15:25] = np.nan
        sci[i, 150, 51:61] = np.nan            # no background pixel left
        sci[i, 290, 15:25] = np.nan
        sci[i, 290, 51:60] = np.nan            # one background pixel left
        dq[i, 200, 30:46] |= 1                 # whole aperture DO_NOT_USE, values finite
        dq[i, 250, 35] |= 1
        err[i, 260, 20] = np.nan               # NaN in ERR only
        hdul["VAR_RNOISE"].data[i, 275, 18] = np.inf
        hdul["VAR_FLAT"].data[i, 270, 38] = np.inf
        sci[i, 285, 40] = np.inf
        hdul.writeto(dst)
    return dst


VARIANTS = {
    "default": ({}, True),
    "fractional_poly2_smooth5": ({"xstart": 31.7, "xstop": 43.2, "bkg_order": 2, "smoothing_length": 5}, True),
    "median_polynomial_limits": ({"bkg_fit": "median", "src_coeff": [[31.0, 0.004], [42.5, 0.004]],
                                  "bkg_coeff": [[14.5, 0.01], [24.3], [50.5], [60.5, -0.002]]}, True),
    "median_smooth4": ({"bkg_fit": "median", "smoothing_length": 4}, True),
    "width_poly1_no_apcorr": ({"extract_width": 7.5, "bkg_order": 1}, False),
    "wavelength_limits_no_bkg": ({"independent_var": "wavelength", "src_coeff": [[30.0, 0.1], [42.0, 0.1]],
                                  "bkg_coeff": None}, True),
    "no_reference": (None, True),
}


@pytest.fixture(scope="module")
def awkward_calints(lrs_case, tmp_path_factory):
    return _modified_calints(lrs_case.jwst["calints"], tmp_path_factory.mktemp("e1d") / "mod_calints.fits")


@pytest.mark.parity
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_parity_with_jwst_variants(lrs_case, awkward_calints, tmp_path, variant):
    """Reference and data variations against jwst's own extraction (run_extract1d, step defaults)."""
    from jwst.extract_1d import extract
    from stdatamodels.jwst import datamodels

    change, use_apcorr = VARIANTS[variant]
    if change is None:
        ref = None
    else:
        tree = json.loads(Path(lrs_case.refs["extract1d"]).read_text())
        aper = copy.deepcopy(tree["apertures"][0])
        aper.update(change)
        tree["apertures"] = [{k: v for k, v in aper.items() if v is not None}]
        ref = tmp_path / "extract1d.json"
        ref.write_text(json.dumps(tree))
        ref = str(ref)
    apcorr = lrs_case.refs["apcorr"] if use_apcorr else None
    with datamodels.open(str(awkward_calints)) as model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = extract.run_extract1d(model, ref or "N/A", apcorr or "N/A", "N/A", "box", None, None, None, 50,
                                       None, None, 0.0, True, True, False, False, False)[0]
        table = result.spec[0].spec_table
        out = spectra(dataset_from_calints(awkward_calints), ref, apcorr)
        assert_columns_match(out, table)


@pytest.mark.parametrize("mode", [k1d.MODE_NONE, k1d.MODE_POLY])
def test_row_wise_kernel_is_bit_identical(mode):
    """box_extract_rows (horizontal dispersion, one cross row at a time) gives box_extract's bytes: a
    tilted aperture with fractional edge weights, background rows on both sides, NaNs, DO_NOT_USE
    pixels, a whole bad column, and spectral elements left out."""
    rng = np.random.default_rng(7)
    nint, ny, nx = 3, 24, 300
    sci = rng.normal(10.0, 3.0, (nint, ny, nx)).astype(np.float32)
    var = [rng.uniform(0.1, 2.0, (nint, ny, nx)).astype(np.float32) for _ in range(4)]
    dq = np.where(rng.random((nint, ny, nx)) < 0.02, np.uint32(1), np.uint32(0)).astype(np.uint32)
    sci[rng.random(sci.shape) < 0.01] = np.nan
    var[2][rng.random(sci.shape) < 0.01] = np.nan
    sci[:, :, 57] = np.nan
    centre = 11.0 + 0.01 * np.arange(nx)            # spectral index x -> aperture centre row
    y = np.arange(ny)[None, :]
    prof = np.clip(3.5 - np.abs(y - centre[:, None]), 0.0, 1.0)     # (spectral, cross), fractional edges
    bg = ((y < 5) | (y > 18)) & np.ones((nx, 1), bool)
    ap_cols, ap_n = extract_1d._column_lists(prof != 0)
    bg_cols, bg_n = extract_1d._column_lists(bg if mode == k1d.MODE_POLY else np.zeros_like(bg))
    ycoef = np.ones((ny, 1))
    bkg_mat = np.sum(ycoef[np.newaxis] * prof[:, :, np.newaxis], axis=1)
    rows = np.array([s for s in range(nx) if s % 17 != 3], np.int64)
    cubes = [np.swapaxes(a, 1, 2) for a in (sci, var[0], dq, var[1], var[2], var[3])]
    args = (rows, prof, ap_cols, ap_n, bg_cols, bg_n, ycoef, bkg_mat, mode)
    expected = k1d.box_extract(*cubes, *args, 0)
    got = k1d.box_extract_rows(*cubes, *args)
    assert np.isnan(expected[:, 0]).any() and np.isfinite(expected[:, 0]).sum() > 0.9 * expected[:, 0].size
    assert got.tobytes() == expected.tobytes()
