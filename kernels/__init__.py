"""Pure numba kernels on numpy arrays: no xarray, dask or I/O here."""
