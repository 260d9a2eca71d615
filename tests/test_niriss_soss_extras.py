"""NIRISS SOSS beyond the default case: background templates (BKG reference), F277W and FULL exposures
(which jwst 3.0.0 calibrates but does not extract), and multi-order zarr products; each against jwst
run offline on the same files (box extraction), or against spec2x's own FITS products."""

import numpy as np
import pytest
import xarray as xr
import zarr
from astropy.io import fits
from parity import assert_close_where_finite

import spec2x
from spec2x import cli, modes, quantiles
from spec2x.backend import Spec2xBackend
from spec2x.errors import RefError
from spec2x.products.export import export
from spec2x.steps import bkg_subtract
from spec2x.synthetic import make_niriss_soss

SEED = 2
BOX = {"extract_1d": {"soss_atoca": False}}
CUBE_EXTENSIONS = ("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")


def _by_kind(paths):
    return {p.name.split("_")[-1].split(".")[0]: p for p in paths}


def _step_keywords(header):
    return {k: header[k] for k in header if k.startswith(("S_", "R_"))}


# ---------------------------------------------------------------------------------------------- background
@pytest.fixture(scope="module")
def bkg_case(tmp_path_factory, jwst_oracle):
    """4 integrations on a background of template 1 (of 3) scaled 0.9 / 1.2; spec2x and jwst products."""
    case = make_niriss_soss(tmp_path_factory.mktemp("soss_bkg"), nints=4, seed=SEED, background=True)
    result, paths = spec2x.run(case["rateints"][0], tmp_path_factory.mktemp("soss_bkg_out"), refs=case["refs"],
                               chunk_ints=2, params=BOX)
    case["plan"] = result.plan
    return case, _by_kind(paths), jwst_oracle(case["rateints"][0], case["refs"], steps=BOX)


@pytest.mark.parametrize("ext", CUBE_EXTENSIONS)
def test_bkg_calints_equal_jwst(bkg_case, ext):
    _, ours, theirs = bkg_case
    with fits.open(ours["calints"]) as a, fits.open(theirs["calints"]) as b:
        assert_close_where_finite(a[ext].data, b[ext].data, 1e-5, ext)


def test_bkg_dq_identical_and_step_recorded(bkg_case):
    _, ours, theirs = bkg_case
    with fits.open(ours["calints"]) as a, fits.open(theirs["calints"]) as b:
        np.testing.assert_array_equal(a["DQ"].data, b["DQ"].data)
        assert a[0].header["S_BKDSUB"] == b[0].header["S_BKDSUB"] == "COMPLETE"
        assert a[0].header["R_BKG"].split("/")[-1] == b[0].header["R_BKG"].split("/")[-1] == "bkg.fits"


def test_bkg_really_subtracted(bkg_case):
    """Far from the traces (rows 200+, left of the step) the calibrated background is near zero, where
    the input holds ~0.9 x the template (about 0.9 DN/s)."""
    case, ours, _ = bkg_case
    with fits.open(case["rateints"][0]) as raw, fits.open(ours["calints"]) as cal:
        before = np.nanmedian(raw["SCI"].data[:, 200:250, 100:600])
        after = np.nanmedian(cal["SCI"].data[:, 200:250, 100:600])
    assert before > 0.8 and abs(after) < 0.1 * before


@pytest.mark.parametrize("order", (1, 2))
@pytest.mark.parametrize("column", ("FLUX", "FLUX_ERROR", "WAVELENGTH", "NPIXELS"))
def test_bkg_x1dints_equal_jwst(bkg_case, order, column):
    _, ours, theirs = bkg_case
    with fits.open(ours["x1dints"]) as a, fits.open(theirs["x1dints"]) as b:
        assert_close_where_finite(a["EXTRACT1D", order].data[column], b["EXTRACT1D", order].data[column], 1e-5,
                                  f"order {order} {column}")


def test_bkg_plan_runs_with_a_reference_and_skips_without(bkg_case):
    case, _, _ = bkg_case
    assert "bkg_subtract" in case["plan"].run
    without = spec2x.calibrate(case["rateints"][0], refs={**case["refs"], "bkg": "N/A"}, params=BOX)
    assert "bkg_subtract" not in without.plan.run
    assert without.cube.attrs["primary"]["S_BKDSUB"] == "SKIPPED"


def test_bkg_substrip96_cuts_the_templates_as_jwst(tmp_path_factory, jwst_oracle):
    """SUBSTRIP96 uses rows 10-105 of the 256-row templates."""
    case = make_niriss_soss(tmp_path_factory.mktemp("soss96_bkg"), nints=2, seed=SEED, subarray="SUBSTRIP96",
                            background=True)
    _, paths = spec2x.run(case["rateints"][0], tmp_path_factory.mktemp("soss96_bkg_out"), refs=case["refs"],
                          chunk_ints=1, params=BOX)
    ours, theirs = _by_kind(paths), jwst_oracle(case["rateints"][0], case["refs"], steps=BOX)
    with fits.open(ours["calints"]) as a, fits.open(theirs["calints"]) as b:
        assert a[0].header["S_BKDSUB"] == b[0].header["S_BKDSUB"] == "COMPLETE"
        assert_close_where_finite(a["SCI"].data, b["SCI"].data, 1e-5, "SCI")
        np.testing.assert_array_equal(a["DQ"].data, b["DQ"].data)
    with fits.open(ours["x1dints"]) as a, fits.open(theirs["x1dints"]) as b:
        for order in (1, 2):
            assert_close_where_finite(a["EXTRACT1D", order].data["FLUX"], b["EXTRACT1D", order].data["FLUX"], 1e-5,
                                      f"order {order} FLUX")


def test_plan_command_shows_bkg_subtract_only_with_a_reference(bkg_case, capsys):
    case, _, _ = bkg_case
    rateints = str(case["rateints"][0])
    assert cli.main(["plan", rateints]) == 0
    assert "bkg_subtract: a required reference file is N/A (bkg)" in capsys.readouterr().out
    assert cli.main(["plan", rateints, "--ref", f"bkg={case['refs']['bkg']}"]) == 0
    assert "   2. bkg_subtract\n" in capsys.readouterr().out


def test_bkg_reference_without_template_cube_is_a_clear_error(bkg_case, tmp_path):
    case, _, _ = bkg_case
    path = tmp_path / "bkg_2d.fits"
    with fits.open(case["refs"]["bkg"]) as hdul:
        hdul["SCI"].data = hdul["SCI"].data[0]
        hdul.writeto(path)
    with pytest.raises(RefError, match=r"bkg_2d.fits: SCI must be \(templates, rows, columns\)"):
        spec2x.calibrate(case["rateints"][0], refs={**case["refs"], "bkg": str(path)}, params=BOX)


def test_template_step_is_found_per_row():
    from spec2x.synthetic.niriss_soss import BKG_STEP, background_templates

    template = background_templates()[0]
    columns = bkg_subtract.step_columns(template)
    expected = BKG_STEP[0] + np.round(BKG_STEP[1] * np.arange(256) / 255)
    # a smoothed step rises most on its first or last column before the jump (a tie of two columns)
    assert np.all((columns == expected) | (columns == expected - 1))


@pytest.mark.parametrize("n", (1, 2, 7, 1000, 4097))
def test_streamed_percentiles_equal_numpy(n):
    """Radix selection over 3 parts gives numpy's nanpercentile (scalar and list q) and nanmedian exactly."""
    rng = np.random.default_rng(n)
    values = np.round(rng.standard_normal(n) * 10, 1).astype(np.float32)  # ties included
    parts = np.array_split(values, 3)
    source = lambda: ([p] for p in parts)
    for q, weak in ((35.0, True), (25.0, False), (50.0, False)):
        counts, found = quantiles.order_statistics(source, [lambda m, q=q: quantiles.percentile_ranks(m, q)[:2]])
        lo, hi, gamma = quantiles.percentile_ranks(counts[0], q)
        got = quantiles.percentile(found[0][lo], found[0][hi], gamma, weak)
        expected = np.nanpercentile(values, q) if weak else np.nanpercentile(values, [q])[0]
        assert got == expected and np.asarray(got).dtype == np.asarray(expected).dtype
    counts, found = quantiles.order_statistics(source, [quantiles.median_ranks])
    lo, hi = quantiles.median_ranks(n)
    got = quantiles.median(found[0][lo], found[0][hi], n % 2 == 1)
    assert got == np.nanmedian(values) and got.dtype == np.float32


# ---------------------------------------------------------------------------------------------- F277W, FULL
@pytest.fixture(scope="module", params=("F277W", "FULL"))
def unextracted(request, tmp_path_factory, jwst_oracle):
    """F277W (SUBSTRIP256) and FULL (CLEAR, with a 256-row BKG reference) exposures of 2 integrations."""
    kwargs = {"filt": "F277W"} if request.param == "F277W" else {"subarray": "FULL", "background": True}
    case = make_niriss_soss(tmp_path_factory.mktemp(f"soss_{request.param}"), nints=2, seed=SEED, **kwargs)
    result, paths = spec2x.run(case["rateints"][0], tmp_path_factory.mktemp(f"soss_{request.param}_out"),
                               refs=case["refs"], chunk_ints=1, params=BOX)
    return request.param, result, _by_kind(paths), jwst_oracle(case["rateints"][0], case["refs"], steps=BOX)


def test_unextracted_modes_write_calints_only_as_jwst(unextracted):
    _, result, ours, theirs = unextracted
    assert sorted(ours) == sorted(theirs) == ["calints"]
    assert result.spectra is None
    assert {"extract_1d", "photom"} <= set(result.plan.skipped)
    assert "jwst 3.0.0 skips it" in result.plan.skipped["extract_1d"]


def test_unextracted_calints_equal_jwst(unextracted):
    name, _, ours, theirs = unextracted
    with fits.open(ours["calints"]) as a, fits.open(theirs["calints"]) as b:
        assert [(h.name, h.ver) for h in a] == [(h.name, h.ver) for h in b]
        for ext in CUBE_EXTENSIONS:
            assert_close_where_finite(a[ext].data, b[ext].data, 1e-5, f"{name} {ext}")
        np.testing.assert_array_equal(a["DQ"].data, b["DQ"].data)
        status = {k: v for k, v in _step_keywords(b[0].header).items() if k.startswith("S_")}
        assert {k: a[0].header.get(k) for k in status} == status
        if name == "FULL":  # a 256-row template library does not fit a full frame: jwst skips the step
            assert a["SCI"].data.shape[1:] == (2048, 2048)
            assert a[0].header["S_BKDSUB"] == "SKIPPED"


@pytest.mark.parametrize("keywords, runs", [
    ({"FILTER": "CLEAR", "SUBARRAY": "SUBSTRIP96"}, True),
    ({"FILTER": "CLEAR", "SUBARRAY": "SUB204STRIPE_SOSS"}, True),
    ({"FILTER": "F277W", "SUBARRAY": "SUBSTRIP256"}, False),
    ({"FILTER": "CLEAR", "SUBARRAY": "FULL"}, False),
])
def test_soss_extraction_follows_jwst_filter_and_subarray_rules(keywords, runs):
    plan = modes.plan({"EXP_TYPE": "NIS_SOSS", "NINTS": 3, **keywords})
    assert ("extract_1d" in plan.run) is runs and ("photom" in plan.run) is runs


# ---------------------------------------------------------------------------------------------- zarr, 2 orders
@pytest.fixture(scope="module")
def soss_zarr(bkg_case, tmp_path_factory):
    """The background case written as zarr stores (same chunks as its FITS run), and their export."""
    case, fits_products, _ = bkg_case
    _, stores = spec2x.run(case["rateints"][0], tmp_path_factory.mktemp("soss_zarr"), refs=case["refs"],
                           chunk_ints=2, params=BOX, fmt="zarr")
    exported = export(sorted(stores), tmp_path_factory.mktemp("soss_exported"))
    return fits_products, _by_kind(stores), _by_kind(exported)


def _undated(hdulist) -> bytes:
    date = hdulist[0].header["DATE"].encode()
    return np.ascontiguousarray(hdulist["ASDF"].data).tobytes().replace(date, b"-" * len(date))


def test_zarr_store_has_one_group_per_order(soss_zarr):
    _, stores, _ = soss_zarr
    root = zarr.open_group(str(stores["x1dints"]), mode="r")
    assert [root[node].attrs["header"]["SPORDER"] for node in ("EXTRACT1D", "EXTRACT1D_2")] == [1, 2]
    assert root["EXTRACT1D/FLUX"].shape == (4, 2048) and root["EXTRACT1D_2/FLUX"].shape == (4, 1783)


@pytest.mark.parametrize("kind", ("calints", "x1dints"))
def test_zarr_export_equals_the_direct_fits_run(soss_zarr, kind):
    direct, _, exported = soss_zarr
    assert exported[kind].stat().st_size == direct[kind].stat().st_size
    with fits.open(exported[kind]) as a, fits.open(direct[kind]) as b:
        assert [(h.name, h.ver) for h in a] == [(h.name, h.ver) for h in b]
        for x, y in zip(a, b):
            cards = [c.image for c in x.header.cards if c.keyword != "DATE"]
            assert cards == [c.image for c in y.header.cards if c.keyword != "DATE"], x.name
            if x.name == "ASDF":
                assert _undated(a) == _undated(b)
            elif x.data is not None:
                assert np.ascontiguousarray(x.data).tobytes() == np.ascontiguousarray(y.data).tobytes(), (x.name, x.ver)


@pytest.mark.parametrize("spectrum, length", ((1, 2048), (2, 1783)))
def test_zarr_spectra_open_with_xarray_as_the_fits_ones(soss_zarr, spectrum, length):
    direct, stores, _ = soss_zarr
    store = xr.open_dataset(stores["x1dints"], engine=Spec2xBackend, spectrum=spectrum)
    table = xr.open_dataset(direct["x1dints"], engine=Spec2xBackend, spectrum=spectrum)
    assert store.sizes["spectral"] == length and store.attrs["spectra"] == 2
    assert store.attrs["extract1d"]["SPORDER"] == spectrum
    assert sorted(store.variables) == sorted(table.variables)
    for name in table.variables:
        np.testing.assert_array_equal(store[name].values, table[name].values, err_msg=name)


@pytest.mark.parametrize("params", ({"soss_bkg_percentile": [25.0]}, {"soss_bkg_percentile": "low"},
                                    {"soss_source_percentile": 135.0}))
def test_bad_bkg_percentiles_are_clear_errors(bkg_case, params):
    case, _, _ = bkg_case
    with pytest.raises(spec2x.errors.Spec2xError, match="bkg_subtract: soss_.*_percentile="):
        spec2x.calibrate(case["rateints"][0], refs=case["refs"], params={**BOX, "bkg_subtract": params})


def test_fit_pixels_kernel_matches_the_masks():
    """The kernel's sets are the numpy selection: usable pixels in each side's mask with a finite ratio."""
    from kernels import soss_bkg

    rng = np.random.default_rng(5)
    sci = rng.normal(1.0, 0.5, (3, 6, 9)).astype(np.float32)
    sci[0, 1, 2] = np.nan
    dq = np.where(rng.random(sci.shape) < 0.1, bkg_subtract.FLAGS, 0).astype(np.uint32)
    templates = rng.uniform(0.5, 1.5, (2, 6, 9)).astype(np.float32)
    templates[1, 2, 3] = 0.0
    side = rng.integers(-1, 2, (2, 6, 9)).astype(np.int8)
    threshold = np.float32(1.2)
    data, model, ratio, offsets = soss_bkg.fit_pixels(sci, dq, bkg_subtract.FLAGS, threshold, templates, side)
    usable = ~((np.isfinite(sci) & (sci >= threshold)) | ((dq & bkg_subtract.FLAGS) != 0))
    for t in range(2):
        for s in range(2):
            pick = usable & (side[t] == s)[None]
            expected = sci[pick] / np.broadcast_to(templates[t], sci.shape)[pick]
            expected = expected[np.isfinite(expected)]
            k = 2 * t + s
            got = ratio[offsets[k]:offsets[k + 1]]
            np.testing.assert_array_equal(np.sort(got), np.sort(expected))
            np.testing.assert_array_equal(data[offsets[k]:offsets[k + 1]] / model[offsets[k]:offsets[k + 1]], got)
