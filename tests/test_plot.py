"""Quick-look plots: ``spec2x plot`` writes PNGs of the expected size that are not blank, and the panels
show the numbers the products hold."""

import shutil

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from astropy.io import fits  # noqa: E402
from PIL import Image  # noqa: E402

import spec2x  # noqa: E402
from spec2x import cli, plot  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(lrs_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("plot_run")
    spec2x.run(lrs_synthetic.rateints, out, refs=lrs_synthetic.refs, chunk_ints=4)
    return out


def _x1dints(folder):
    return next(folder.glob("*_x1dints.fits"))


def _plot(argv, capsys):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_picture(path, size):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == size
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 20, "blank figure"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200, "too few colours for data panels"


def test_plot_command_writes_all_four_panels(run_dir, tmp_path, capsys):
    """Given the x1dints alone, the calints beside it comes along for the frame panel."""
    out = tmp_path / "fig.png"
    code, stdout, err = _plot(["plot", _x1dints(run_dir), "-o", out, "--dpi", "50"], capsys)
    assert code == 0, err
    assert stdout.strip() == str(out)
    _assert_picture(out, (650, 420))  # 2 x 2 panels of 6.5 x 4.2 inches at 50 dpi


@pytest.mark.parametrize("panel", plot.PANELS)
def test_each_panel_alone(run_dir, tmp_path, capsys, panel):
    out = tmp_path / f"{panel}.png"
    code, _, err = _plot(["plot", run_dir, "-o", out, "--panels", panel, "--dpi", "40", "--integration", "3"], capsys)
    assert code == 0, err
    _assert_picture(out, (260, 168))


def test_plot_user_errors_are_one_line(run_dir, tmp_path, capsys):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(_x1dints(run_dir), alone)
    cases = [(["plot", alone, "-o", tmp_path / "a.png", "--panels", "frame"], "panel 'frame' needs a _calints"),
             (["plot", run_dir, "-o", tmp_path / "b.png", "--panels", "white,wavelet"], "panel 'wavelet': panels are"),
             (["plot", tmp_path / "x.fits", "-o", tmp_path / "c.png"], "not a _rateints/_calints/_x1dints product"),
             (["plot", run_dir, "-o", tmp_path / "d.png", "--panels", "frame", "--integration", "11"],
              "integration 11: the product has 11")]
    for argv, message in cases:
        code, _, err = _plot(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not list(tmp_path.glob("*.png"))


def test_white_light_is_the_summed_flux_over_its_median(run_dir):
    spectra = spec2x.open_products(run_dir)["x1dints"]
    ax = plot.white_light(spectra)
    with fits.open(_x1dints(run_dir)) as hdul:
        table = hdul["EXTRACT1D"].data
        white = np.nansum(table["FLUX"], axis=1)
        hours = (table["TDB-MID"] - table["TDB-MID"][0]) * 24
    np.testing.assert_allclose(ax.lines[0].get_ydata(), white / np.median(white), rtol=1e-12)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), hours, rtol=1e-12)
    plt.close(ax.figure)


def test_light_curve_map_bins_integrations_and_wavelengths(run_dir):
    spectra = spec2x.open_products(run_dir)["x1dints"]
    ax = plot.light_curve_map(spectra, max_rows=4, channels=10)
    mesh = np.asarray(ax.collections[0].get_array()).reshape(3, 10)  # 11 integrations: 3 bins of 3, 2 left out
    flux = spectra["flux"].values[:9].reshape(3, 3, -1).mean(axis=1)
    wl = spectra["wavelength"].values[0]
    first = np.argsort(wl)[: int(np.ceil(wl.size / 10))]
    curve = np.nanmean(flux[:, first], axis=1)
    np.testing.assert_allclose(mesh[:, 0], curve / np.median(curve), rtol=1e-12)
    plt.close(ax.figure)


def test_aperture_from_the_extraction_keywords(run_dir):
    spectra = spec2x.open_products(run_dir)["x1dints"]
    # EXTRXSTR..EXTRXSTP = 33..44, EXTRYSTR..EXTRYSTP = 11..391 (1-based, inclusive) -> 0-based pixel edges
    assert plot.aperture(spectra) == (31.5, 9.5, 12.0, 381.0)
    assert plot.aperture(None) is None
