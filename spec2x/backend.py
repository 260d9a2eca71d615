"""The xarray backend entry point, so stage-2 products open with the tools Jupyter users already use:

    xr.open_dataset("jw..._calints.fits", engine="spec2x")             # lazy, named dims, units
    xr.open_mfdataset(["...-seg001_x1dints.fits", "...-seg002_x1dints.fits"], engine="spec2x")

xarray imports every installed backend whenever it lists engines, so this module stays light: the
reading itself is in ``spec2x.reader``, imported on the first open.
"""

from __future__ import annotations

import os
from pathlib import Path

from xarray.backends import BackendEntrypoint

PRODUCT_SUFFIXES = ("rateints", "rate", "calints", "cal", "x1dints", "x1d")


def product_kind(path) -> str | None:
    """``calints`` for ``..._calints.fits`` or ``..._calints.zarr``; None for other names."""
    stem = Path(str(path).rstrip("/")).name
    for ext in (".fits", ".zarr"):
        stem = stem.removesuffix(ext)
    kind = stem.rsplit("_", 1)[-1]
    return kind if kind in PRODUCT_SUFFIXES and "_" in stem else None


class Spec2xBackend(BackendEntrypoint):
    """``xr.open_dataset(path, engine="spec2x")`` for ``_rateints``/``_calints``/``_x1dints`` FITS files
    (and their ``_rate``/``_cal``/``_x1d`` forms) and spec2x zarr stores; see ``spec2x.reader``."""

    description = "JWST stage-2 products (_rateints, _calints, _x1dints FITS; spec2x zarr stores), lazily"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "spectrum")

    def open_dataset(self, filename_or_obj, *, drop_variables=None, spectrum: int = 1):
        from spec2x.errors import Spec2xError
        from spec2x.reader import open_product

        if not isinstance(filename_or_obj, (str, os.PathLike)):
            raise Spec2xError(f"engine='spec2x' opens a file or store path, not {type(filename_or_obj).__name__}")
        return open_product(filename_or_obj, drop_variables=drop_variables, spectrum=spectrum)

    def guess_can_open(self, filename_or_obj) -> bool:
        return isinstance(filename_or_obj, (str, os.PathLike)) and product_kind(filename_or_obj) is not None
