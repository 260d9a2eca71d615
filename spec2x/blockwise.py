"""Run a per-pixel numba kernel over the (integration, y, x) cubes of a Dataset, lazily or now."""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

CUBE_DIMS = ("integration", "y", "x")


def apply_kernel(kernel, ds: xr.Dataset, inputs: list, outputs: dict, constants: tuple = ()) -> xr.Dataset:
    """``ds`` with the cubes named in ``outputs`` (name -> dtype, in the kernel's return order) set from
    ``kernel(*constants, *cubes)``.  ``inputs`` are variable names, DataArrays or Variables.  One kernel call per
    integration chunk for dask-backed cubes (a lazy graph of O(chunks) tasks), one call now for numpy ones.
    Works on the bare Variables and assigns all outputs at once: DataArray coordinate alignment, once
    per output, cost more than the kernel on small chunks.
    """
    cubes = [_cube(ds[v] if isinstance(v, str) else v) for v in inputs]
    results = xr.apply_ufunc(functools.partial(_call, kernel, *constants), *cubes, dask="parallelized",
                             output_core_dims=[[]] * len(outputs), output_dtypes=list(outputs.values()))
    return ds.assign(dict(zip(outputs, results)))


def variable_or_zeros(ds: xr.Dataset, name: str):
    """``ds[name]``, or zeros shaped like SCI when the exposure has no such variable (made only then: a
    zero cube per chunk costs as much to fill as a kernel pass over it)."""
    return ds[name] if name in ds else xr.zeros_like(ds["sci"].variable)


def _cube(array) -> xr.Variable:
    variable = getattr(array, "variable", array)
    return variable if variable.dims == CUBE_DIMS else variable.transpose(*CUBE_DIMS)


def native(value):
    """``value`` with its arrays in the machine's byte order (FITS data are big-endian; numba takes native
    arrays only).  Scalars stay scalars: as 0-d arrays numba would reload them at every pixel."""
    if not isinstance(value, np.ndarray):
        return value
    return value if value.dtype.isnative else value.astype(value.dtype.newbyteorder("="))


def _call(kernel, *args):
    return kernel(*map(native, args))
