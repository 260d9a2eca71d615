"""Run a per-pixel numba kernel over the (integration, y, x) cubes of a Dataset, lazily or now."""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

CUBE_DIMS = ("integration", "y", "x")


def apply_kernel(kernel, ds: xr.Dataset, inputs: list, outputs: dict, constants: tuple = ()) -> xr.Dataset:
    """``ds`` with the cubes named in ``outputs`` (name -> dtype, in the kernel's return order) set from
    ``kernel(*constants, *cubes)``.  ``inputs`` are variable names or DataArrays.  One kernel call per
    integration chunk for dask-backed cubes (a lazy graph of O(chunks) tasks), one call now for numpy ones.
    """
    cubes = [(ds[v] if isinstance(v, str) else v).transpose(*CUBE_DIMS) for v in inputs]
    results = xr.apply_ufunc(functools.partial(_call, kernel, *map(native, constants)), *cubes, dask="parallelized",
                             output_core_dims=[[]] * len(outputs), output_dtypes=list(outputs.values()))
    return ds.assign(dict(zip(outputs, results)))  # one merge, not one per output (per-chunk overhead)


def native(array: np.ndarray) -> np.ndarray:
    """``array`` in the machine's byte order (FITS data are big-endian; numba takes native arrays only)."""
    array = np.asarray(array)
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _call(kernel, *args):
    return kernel(*map(native, args))
