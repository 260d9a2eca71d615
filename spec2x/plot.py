"""Quick-look pictures of time-series products: white-light curve, spectroscopic light-curve map
(integration x wavelength), median spectrum with errors, and a calibrated frame with the extraction
aperture drawn.  ``spec2x plot PRODUCT -o fig.png`` draws them from the command line.

Each panel takes the Datasets ``spec2x.open_products`` / ``xr.open_dataset(..., engine="spec2x")``
return (or ``spec2x.calibrate``'s ``result.spectra``/``result.cube``) and computes only what it shows,
chunk by chunk: sums and medians over the spectra, one frame of the cube.  matplotlib is an optional
dependency (``pip install spec2x[plot]``), imported on first use.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from spec2x.errors import Spec2xError

PANELS = ("white", "map", "spectrum", "frame")
SPECTRA_KINDS = ("x1dints", "x1d")
CUBE_KINDS = ("calints", "cal", "rateints", "rate")
TIME_COORDS = (("bjd_mid", "BJD (TDB)"), ("mjd_mid", "MJD (UTC)"))
MAP_ROWS = 400  # the light-curve map averages integrations in bins to at most this many rows
MAP_CHANNELS = 40  # ... and wavelengths in this many channels


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise Spec2xError("plots need matplotlib: pip install 'spec2x[plot]'") from None
    return plt


def _axes(ax):
    return ax if ax is not None else _pyplot().subplots(figsize=(7, 4))[1]


def _time(spectra: xr.Dataset) -> tuple[np.ndarray, str]:
    """Mid-integration times (days from the first) and their label; integration numbers without INT_TIMES."""
    for coord, label in TIME_COORDS:
        if coord in spectra.coords:
            t = np.asarray(spectra[coord].values, np.float64)
            if np.isfinite(t).all():
                return (t - t[0]) * 24.0, f"hours since {label} {t[0]:.5f}"
    return np.asarray(spectra["integration"].values), "integration"


def _wavelength(spectra: xr.Dataset) -> np.ndarray:
    """One wavelength per spectral element (the median over integrations where they are per row)."""
    wl = spectra["wavelength"]
    if "integration" in wl.dims:
        wl = wl.isel(integration=slice(0, min(16, spectra.sizes["integration"]))).median("integration")
    return np.asarray(wl.values, np.float64)


def _robust_limits(values: np.ndarray, low=1.0, high=99.0):
    finite = values[np.isfinite(values)]
    return (float(np.percentile(finite, low)), float(np.percentile(finite, high))) if finite.size else (0.0, 1.0)


def white_light(spectra: xr.Dataset, ax=None):
    """The white-light curve: flux summed over wavelength per integration, relative to its median."""
    ax = _axes(ax)
    flux = spectra["flux"]
    white = np.asarray(flux.where(np.isfinite(flux)).sum("spectral").values, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        white = white / np.nanmedian(white)
    t, label = _time(spectra)
    ax.plot(t, white, ".", ms=3, color="k")
    ax.set_xlabel(label)
    ax.set_ylabel("relative white-light flux")
    ax.set_title("white-light curve")
    return ax


def light_curve_map(spectra: xr.Dataset, ax=None, max_rows: int = MAP_ROWS, channels: int = MAP_CHANNELS):
    """Spectroscopic light curves: flux in ``channels`` wavelength bins (mean over the elements of each),
    relative to each bin's median over time, with integrations averaged in bins to at most ``max_rows`` rows."""
    ax = _axes(ax)
    flux = spectra["flux"]
    factor = max(1, math.ceil(spectra.sizes["integration"] / max_rows))
    wl = _wavelength(spectra)
    order = np.argsort(np.where(np.isfinite(wl), wl, np.inf))[: int(np.isfinite(wl).sum())]
    groups = [g for g in np.array_split(order, min(channels, order.size)) if g.size]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        binned = flux.coarsen(integration=factor, boundary="trim").mean() if factor > 1 else flux
        rows = np.asarray(binned.transpose("integration", "spectral").values, np.float64)
        curves = np.stack([np.nanmean(rows[:, g], axis=1) for g in groups], axis=1)
        relative = curves / np.nanmedian(curves, axis=0)
    t, label = _time(spectra)
    t = t[: rows.shape[0] * factor].reshape(rows.shape[0], factor).mean(axis=1)
    centers = np.array([wl[g].mean() for g in groups])
    low, high = _robust_limits(relative, 2.0, 98.0)
    mesh = ax.pcolormesh(centers, t, relative, shading="nearest", cmap="RdBu_r", vmin=low, vmax=high)
    ax.figure.colorbar(mesh, ax=ax, label="flux / median")
    ax.set_xlabel(f"wavelength [um] ({len(groups)} channels)")
    ax.set_ylabel(label + (f", {factor} integrations per row" if factor > 1 else ""))
    ax.set_title("spectroscopic light curves")
    return ax


def median_spectrum(spectra: xr.Dataset, ax=None):
    """The median spectrum over integrations, with the median 1-sigma error of one integration as a band."""
    ax = _axes(ax)
    if "integration" in spectra["flux"].dims:
        part = spectra[["flux", "flux_error"]]
        if part["flux"].chunks is not None:  # a median needs whole columns: chunk along wavelength instead
            part = part.chunk({"integration": -1, "spectral": "auto"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            flux = np.asarray(part["flux"].median("integration").values, np.float64)
            error = np.asarray(part["flux_error"].median("integration").values, np.float64)
    else:
        flux = np.asarray(spectra["flux"].values, np.float64)
        error = np.asarray(spectra["flux_error"].values, np.float64)
    wl = _wavelength(spectra)
    order = np.argsort(wl)
    unit = spectra["flux"].attrs.get("units", "")
    ax.fill_between(wl[order], (flux - error)[order], (flux + error)[order], color="C0", alpha=0.3,
                    label="±1σ of one integration (median)")
    ax.plot(wl[order], flux[order], color="C0", lw=1, label="median over integrations")
    ax.set_xlabel("wavelength [um]")
    ax.set_ylabel(f"flux [{unit}]" if unit else "flux")
    ax.set_title("median spectrum")
    ax.legend(loc="best", fontsize="small")
    return ax


def aperture(spectra: xr.Dataset | None) -> tuple[float, float, float, float] | None:
    """The extraction box (x0, y0, width, height) in 0-based pixel edges, from the EXTRXSTR/EXTRXSTP/
    EXTRYSTR/EXTRYSTP keywords (1-based, inclusive) of a spectral product, or None."""
    if spectra is None:
        return None
    header = spectra.attrs.get("extract1d") or {}
    meta = spectra.attrs.get("spec_meta") or {}
    names = (("EXTRXSTR", "extraction_xstart"), ("EXTRXSTP", "extraction_xstop"),
             ("EXTRYSTR", "extraction_ystart"), ("EXTRYSTP", "extraction_ystop"))
    values = [header.get(key, meta.get(attr)) for key, attr in names]
    if any(v is None for v in values):
        return None
    x0, x1, y0, y1 = (float(v) for v in values)
    return x0 - 1.5, y0 - 1.5, x1 - x0 + 1, y1 - y0 + 1


def frame(cube: xr.Dataset, spectra: xr.Dataset | None = None, integration: int = 0, ax=None):
    """One calibrated frame (``integration``, 0-based position) with the extraction aperture of
    ``spectra`` drawn on it."""
    ax = _axes(ax)
    sci = cube["sci"]
    if "integration" in sci.dims:
        if not 0 <= integration < cube.sizes["integration"]:
            raise Spec2xError(f"integration {integration}: the product has {cube.sizes['integration']} (0-based)")
        sci = sci.isel(integration=integration)
    image = np.asarray(sci.transpose("y", "x").values, np.float64)
    low, high = _robust_limits(image)
    shown = ax.imshow(image, origin="lower", cmap="magma", vmin=low, vmax=high, interpolation="nearest",
                      aspect="auto" if image.shape[0] > 3 * image.shape[1] else "equal")
    unit = sci.attrs.get("units", "")
    ax.figure.colorbar(shown, ax=ax, label=f"SCI [{unit}]" if unit else "SCI")
    box = aperture(spectra)
    if box is not None:
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle(box[:2], box[2], box[3], fill=False, edgecolor="cyan", lw=1.2,
                               label="extraction aperture"))
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    ax.set_title(f"calibrated frame, integration {integration}")
    return ax


def products_of(paths) -> dict[str, xr.Dataset]:
    """{kind: Dataset} from product files, stores or run folders; the products beside a given file (its
    name but for the ``_calints``/``_x1dints`` suffix) come along."""
    from spec2x.backend import Spec2xBackend, product_kind
    from spec2x.reader import open_products

    found: dict[str, xr.Dataset] = {}
    for given in (Path(p) for p in paths):
        if given.is_dir() and product_kind(given) is None:
            for kind, ds in open_products(given).items():
                found.setdefault(kind, ds)
            continue
        kind = product_kind(given)
        if kind is None or not given.exists():
            raise Spec2xError(f"{given}: not a _rateints/_calints/_x1dints product or a folder of them")
        root = given.name[: given.name.rindex(f"_{kind}")]
        beside = [p for p in sorted(given.parent.glob(f"{root}_*{given.suffix}")) if product_kind(p) not in (None, kind)]
        for path in (given, *beside):
            found.setdefault(product_kind(path), xr.open_dataset(path, engine=Spec2xBackend, chunks={}))
    return found


def _first(products: dict, kinds) -> xr.Dataset | None:
    return next((products[k] for k in kinds if k in products), None)


def quicklook(products, panels=None, integration: int = 0, figsize=None):
    """A figure with the quick-look panels the products allow (``PANELS``: white, map, spectrum from the
    spectra; frame from the calibrated cube).  ``products``: {kind: Dataset} as ``spec2x.open_products``
    gives, or paths of products or run folders."""
    if not isinstance(products, dict):
        products = products_of([products] if isinstance(products, (str, Path)) else products)
    spectra, cube = _first(products, SPECTRA_KINDS), _first(products, CUBE_KINDS)
    available = [p for p in PANELS if (cube if p == "frame" else spectra) is not None]
    if spectra is not None and "integration" not in spectra["flux"].dims:  # one spectrum: no light curves
        available = [p for p in available if p not in ("white", "map")]
    wanted = list(panels or available)
    unknown = [p for p in wanted if p not in PANELS]
    if unknown:
        raise Spec2xError(f"panel {unknown[0]!r}: panels are {', '.join(PANELS)}")
    missing = [p for p in wanted if p not in available]
    if missing:
        need = "a _calints/_rateints product" if missing[0] == "frame" else "a time series of spectra (_x1dints)"
        raise Spec2xError(f"panel {missing[0]!r} needs {need}; given: {', '.join(sorted(products)) or 'nothing'}")
    if not wanted:
        raise Spec2xError("nothing to plot: give a _calints or _x1dints product")
    cols = 1 if len(wanted) == 1 else 2
    rows = math.ceil(len(wanted) / cols)
    fig, axes = _pyplot().subplots(rows, cols, figsize=figsize or (6.5 * cols, 4.2 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, wanted):
        if panel == "frame":
            frame(cube, spectra, integration, ax=ax)
        else:
            {"white": white_light, "map": light_curve_map, "spectrum": median_spectrum}[panel](spectra, ax=ax)
    for ax in list(axes.flat)[len(wanted):]:
        ax.set_visible(False)
    first = spectra if spectra is not None else cube
    fig.suptitle(f"{first.attrs.get('filename', '')}  {first.attrs.get('EXP_TYPE', '')}", fontsize="medium")
    fig.tight_layout()
    return fig


def save(products, path, panels=None, integration: int = 0, dpi: int = 110) -> Path:
    """Draw ``quicklook`` into an image file (PNG, PDF, SVG: by its suffix)."""
    fig = quicklook(products, panels=panels, integration=integration)
    path = Path(path)
    try:
        fig.savefig(path, dpi=dpi)
    except OSError as exc:
        raise Spec2xError(f"{path}: cannot write the figure ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise Spec2xError(f"{path}: {exc}") from None
    finally:
        _pyplot().close(fig)
    return path
