"""wavecorr: the wavelength zero-point correction of a point source off the slit centre (NIRSpec BOTS),
as jwst 3.0.0 does.

The WAVECORR reference gives, for the slit (aperture S1600A1), a zero-point offset in detector pixels
as a function of wavelength (m) and source position across the slit (SRCXPOS, from extract_2d).  Along
the dispersion, the cut-out's mean wavelength and mean dispersion (the WCS evaluated half a pixel either
side) give the corrected wavelength lambda + offset * dispersion; that look-up (when it increases
monotonically) becomes a ``wavecorr_frame`` inserted after ``slit_frame`` in the gwcs, and the
WAVELENGTH map is recomputed through it (float32, as the SlitModel holds it).  Computed once per
exposure; nothing touches the cubes.

SKIPPED, as jwst: WAVECORR N/A, a source that is not POINT, no row for the slit, or a correction that
is not monotonic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import xarray as xr
from astropy import units as u
from astropy.modeling.models import Identity, Tabular1D
from gwcs import coordinate_frames as cf
from gwcs.wcstools import grid_from_bounding_box

from spec2x.errors import RefError
from spec2x.meta import exposure_keywords, with_keywords
from spec2x.nirspec_wcs import shared_steps

log = logging.getLogger(__name__)

SUPPORTED = ("NRS_BRIGHTOBJ",)


@dataclass(frozen=True)
class Corrected:
    """The gwcs with the wavecorr frame and the wavelength map through it."""

    wcs: object
    wavelength: np.ndarray


def run(ds: xr.Dataset, refs: dict) -> xr.Dataset:
    return apply(ds, prepare(ds, refs))


def prepare(ds: xr.Dataset, refs: dict):
    """The corrected WCS and wavelengths, or None when jwst would skip the step."""
    path = (refs or {}).get("wavecorr")
    kw = exposure_keywords(ds)
    if not path or str(kw.get("EXP_TYPE", "")).upper() not in SUPPORTED:
        return None
    if str(kw.get("SRCTYPE", "")).strip().upper() != "POINT":
        log.info("wavecorr: not a point source; skipped")
        return None
    offset = zero_point_model(path, str(kw.get("SLTNAME")))
    if offset is None:
        return None
    wcs = ds.attrs["wcs"]
    lam = np.asarray(ds.coords["wavelength"].values, np.float32) * 1e-6
    table = correction_table(lam, dispersion(wcs), offset, float(kw.get("SRCXPOS") or 0.0))
    if table is None:
        log.warning("wavecorr: the corrected wavelengths are not monotonic; skipped")
        return None
    corrected = with_wavecorr_frame(wcs, table)
    y, x = np.mgrid[: ds.sizes["y"], : ds.sizes["x"]].astype(np.float64)
    wavelength = np.asarray(corrected(x, y)[2], np.float32).astype(np.float64)
    return Corrected(corrected, wavelength)


def apply(ds: xr.Dataset, c: Corrected | None) -> xr.Dataset:
    if c is None:
        return with_keywords(ds, primary={"S_WAVCOR": "SKIPPED"})
    out = with_keywords(ds, wcs=c.wcs)
    return out.assign_coords(wavelength=(("y", "x"), c.wavelength, {"units": "um"}))


def zero_point_model(path: str, slit: str):
    """The reference's zero-point offset model for ``slit`` (extrapolating), or None without one."""
    from stdatamodels.jwst import datamodels

    try:
        with datamodels.WaveCorrModel(path) as ref:
            for aperture in ref.apertures:
                if aperture.aperture_name == slit:
                    model = aperture.zero_point_offset.copy()
                    break
            else:
                log.warning("wavecorr: no zero-point correction for %s in %s", slit, path)
                return None
    except (OSError, ValueError, AttributeError) as exc:
        raise RefError("wavecorr", "wavecorr", f"{path}: not a WAVECORR reference ({exc})") from None
    model.bounds_error = False
    model.fill_value = None
    return model


def dispersion(wcs) -> np.ndarray:
    """Wavelength (m) spanned by each pixel of the bounding box along x."""
    x, y = grid_from_bounding_box(wcs.bounding_box, step=(1, 1))
    # both half-pixel shifts in one evaluation: gwcs assembles the whole transform chain at every call
    both = wcs(np.concatenate([x + 0.5, x - 0.5]), np.concatenate([y, y]))[2]
    right, left = np.split(both, 2)
    return (right - left) * 10**-6


def correction_table(lam, disp, offset, source_xpos):
    """lambda -> corrected lambda along the dispersion (column means), or None if not increasing."""
    lam_mean = np.nanmean(lam, axis=0)
    disp_mean = np.nanmean(disp, axis=0)
    keep = ~(np.isnan(lam_mean) | np.isnan(disp_mean))
    lam_mean, disp_mean = lam_mean[keep], disp_mean[keep]
    corrected = lam_mean + offset(lam_mean, source_xpos) * disp_mean
    if not np.all(np.diff(corrected) > 0):
        return None
    return Tabular1D(points=lam_mean, lookup_table=corrected, bounds_error=False, fill_value=None,
                     name="wave2wavecorr")


def with_wavecorr_frame(wcs, table):
    """``wcs`` with ``wavecorr_frame`` (corrected wavelength) after ``slit_frame`` (a new gwcs on the same
    transforms)."""
    out = shared_steps(wcs)
    spatial = cf.Frame2D(name="slit_spatial", axes_order=(0, 1), unit=("", ""), axes_names=("x_slit", "y_slit"))
    spectral = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))
    out.insert_frame("slit_frame", Identity(2) & table, cf.CompositeFrame([spatial, spectral], name="wavecorr_frame"))
    return out
