"""Stage-2 products as lazily read ``xarray.Dataset`` objects (what ``engine="spec2x"`` and
``spec2x.open_products`` return).

``_rateints``/``_rate``, ``_calints``/``_cal`` and ``_x1dints``/``_x1d`` FITS files (spec2x's or jwst's)
and spec2x zarr stores open without reading data: only headers and the small INT_TIMES table are read;
every cube and spectral column is read by file offset (FITS) or by chunk (zarr) when indexed.

* Cubes: ``sci``, ``err``, ``dq``, ``var_*`` over ``(integration, y, x)`` (``(y, x)`` for ``_rate``/``_cal``),
  ``wavelength``/``area`` coordinates over ``(y, x)``.
* Spectra: every EXTRACT1D column, lower-cased, over ``(integration, spectral)`` (``(spectral,)`` for a
  ``_x1d``), ``wavelength`` and ``integration_number`` coordinates.
* ``integration`` is the 0-based integration of the whole exposure (INTSTART - 1 onwards), so the
  segments of one exposure combine in order (``open_mfdataset(..., combine="by_coords")``); INT_TIMES
  gives ``mjd_start/mid/end`` and ``bjd_start/mid/end`` coordinates; units come from BUNIT/TUNITn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from astropy import units as u
from astropy.io import fits
from xarray.backends import BackendArray
from xarray.core import indexing

from spec2x.backend import Spec2xBackend, product_kind
from spec2x.errors import InputError, Spec2xError
from spec2x.exposure import _header_dict, _image_hdu_array, default_chunk, time_coords
from spec2x.products import TIME_COLUMNS as TABLE_TIME_COLUMNS

COORDINATE_IMAGES = {"WAVELENGTH": "wavelength", "AREA": "area"}
TIME_NAMES = {"mjd_start": "start of integration, MJD (UTC)", "mjd_mid": "mid-integration, MJD (UTC)",
              "mjd_end": "end of integration, MJD (UTC)", "bjd_start": "start of integration, BJD (TDB)",
              "bjd_mid": "mid-integration, BJD (TDB)", "bjd_end": "end of integration, BJD (TDB)"}
SUMMARY_KEYWORDS = ("INSTRUME", "DETECTOR", "EXP_TYPE", "FILTER", "SUBARRAY", "TARGPROP", "NINTS", "INTSTART",
                    "INTEND", "DATAMODL")
_STRUCTURAL = ("TTYPE", "TFORM", "TUNIT", "TDIM", "TZERO", "TSCAL", "TNULL", "TFIELDS", "EXTNAME", "EXTVER")


# ---------------------------------------------------------------- lazily read arrays
@dataclass(frozen=True)
class TableColumn:
    """Array-like view of one column of an uncompressed FITS binary table, read by file offset on each
    ``__getitem__`` (axis 0 = rows); TZERO (the unsigned-integer convention) is applied on read."""

    path: str
    offset: int
    nrows: int
    row_dtype: np.dtype
    name: str
    tzero: int = 0

    @property
    def shape(self):
        return (self.nrows, *self.row_dtype[self.name].shape)

    @property
    def dtype(self):
        base = self.row_dtype[self.name].base
        if self.tzero == 2**31 and base.kind == "i" and base.itemsize == 4:
            return np.dtype(np.uint32)
        return base.newbyteorder("=")

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        rows = np.memmap(self.path, dtype=self.row_dtype, mode="r", offset=self.offset, shape=(self.nrows,))
        picked = rows[key[0]][self.name]
        picked = picked[key[1:]] if isinstance(key[0], (int, np.integer)) else picked[(slice(None), *key[1:])]
        values = np.asarray(picked).astype(self.row_dtype[self.name].base.newbyteorder("="))
        if self.tzero:
            values = (values.astype(np.int64) + self.tzero).astype(self.dtype)
        return values


class LazyArray(BackendArray):
    """What xarray indexes lazily: any array-like read on ``__getitem__`` (a ``FitsArray``, a
    ``TableColumn``, a zarr array, or a small numpy array)."""

    def __init__(self, source):
        self.source = source
        self.shape = tuple(source.shape)
        self.dtype = np.dtype(source.dtype)

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._read)

    def _read(self, key):
        return np.asarray(self.source[key])


# ---------------------------------------------------------------- where the arrays are
def _row_dtype(path: str, hdu: fits.BinTableHDU) -> np.dtype:
    """The on-disk (big-endian, packed) record dtype of a table HDU, from its header alone."""
    columns = hdu.columns.dtype
    dtype = np.dtype([(name, columns[name].base.newbyteorder(">"), columns[name].shape) for name in columns.names])
    if dtype.itemsize != hdu.header["NAXIS1"]:
        raise InputError(path, f"table {hdu.name} has columns spectra can't be read from (row of "
                               f"{hdu.header['NAXIS1']} bytes, {dtype.itemsize} expected)")
    return dtype


class FitsLayout:
    """A FITS product: its HDUs (headers; small tables read) and lazy readers of its arrays."""

    def __init__(self, path):
        self.path = str(path)
        try:
            hdul = fits.open(self.path, memmap=False, lazy_load_hdus=True)
            hdul.readall()
        except FileNotFoundError:
            raise InputError(self.path, "no such file") from None
        except OSError as exc:
            raise InputError(self.path, f"not a readable FITS file ({exc})") from None
        with hdul:
            self.hdulist = hdul
            self.tables = {h.name: np.array(h.data) for h in hdul if h.name == "INT_TIMES"}
            self._offsets = {i: hdul.fileinfo(i)["datLoc"] for i in range(len(hdul))}
            self._images = {h.name: _image_hdu_array(self.path, hdul, h.name) for h in hdul[1:]
                            if h.is_image and h.header.get("NAXIS", 0) > 0}

    def image(self, index: int):
        return self._images[self.hdulist[index].name]

    def column(self, index: int, name: str):
        hdu = self.hdulist[index]
        position = hdu.columns.names.index(name)
        tzero = hdu.columns[position].bzero
        return TableColumn(self.path, self._offsets[index], hdu.header["NAXIS2"], _row_dtype(self.path, hdu),
                           name, int(tzero) if tzero not in (None, "", 0) else 0)

    def preferred_chunk(self, row_bytes: int) -> int:
        return default_chunk(row_bytes)


class ZarrLayout:
    """A spec2x zarr store: the FITS layout it keeps (headers, small extensions) and its zarr arrays."""

    def __init__(self, path):
        from spec2x.products import zarr_store
        from spec2x.products.export import open_store, template

        self.path = str(path)
        self.root = open_store(path)
        self.streamed = self.root.attrs[zarr_store.STREAMED]
        self.hdulist = template(self.root)
        self.tables = {h.name: np.array(h.data) for h in self.hdulist if h.name == "INT_TIMES"}

    def image(self, index: int):
        hdu = self.hdulist[index]
        return self.root[hdu.name] if hdu.name in self.streamed else _native(hdu.data)

    def column(self, index: int, name: str):
        hdu = self.hdulist[index]
        if hdu.name not in self.streamed:
            return _native(hdu.data[name])
        from spec2x.products import fitsfile, zarr_store

        return self.root[zarr_store.node_name(fitsfile.extension_key(hdu))][name]

    def preferred_chunk(self, row_bytes: int) -> int:
        chunks = [a.chunks[0] for name in self.streamed for a in _zarr_arrays(self.root[name])]
        return max(chunks) if chunks else default_chunk(row_bytes)


def _native(values) -> np.ndarray:
    values = np.asarray(values)
    return values.astype(values.dtype.newbyteorder("="))


def _zarr_arrays(node):
    import zarr

    return [a for _, a in node.arrays()] if isinstance(node, zarr.Group) else [node]


def layout(path):
    """The layout reader of a FITS product or a spec2x zarr store."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".zarr":
        return ZarrLayout(path)
    return FitsLayout(path)


# ---------------------------------------------------------------- Datasets
def _variable(dims, source, attrs=None, chunk=None) -> xr.Variable:
    data = indexing.LazilyIndexedArray(LazyArray(source))
    encoding = {"preferred_chunks": {"integration": chunk}} if chunk and "integration" in dims else {}
    return xr.Variable(dims, data, attrs={k: v for k, v in (attrs or {}).items() if v}, encoding=encoding)


def _squared(unit: str | None) -> str | None:
    """Units of a variance of a quantity in ``unit``."""
    if not unit:
        return None
    try:
        return (u.Unit(unit) ** 2).to_string()
    except ValueError:
        return f"({unit})^2"


def _integration_coords(primary: dict, nints: int, tables: dict) -> dict:
    intstart = int(primary.get("INTSTART") or 1)
    coords = time_coords([tables["INT_TIMES"]] if "INT_TIMES" in tables else [], intstart, nints)
    coords = {name: xr.Variable(*value, attrs={"units": "d", "long_name": TIME_NAMES[name]}
                                if name in TIME_NAMES else {}) for name, value in coords.items()}
    coords["integration"] = np.arange(intstart - 1, intstart - 1 + nints)
    return coords


def _cube_dataset(lay) -> xr.Dataset:
    hdulist = lay.hdulist
    sci_index = hdulist.index_of("SCI")
    sci = lay.image(sci_index)
    frame = tuple(sci.shape[-2:])
    cube = len(sci.shape) == 3
    nints = sci.shape[0] if cube else 1
    chunk = lay.preferred_chunk(int(np.prod(frame)) * sci.dtype.itemsize)
    unit = hdulist[sci_index].header.get("BUNIT")
    data_vars, coords = {}, {}
    for index, hdu in enumerate(hdulist[1:], start=1):
        if not hdu.is_image or hdu.header.get("NAXIS", 0) == 0:
            continue
        source = lay.image(index)
        name = hdu.name.lower()
        if hdu.name in COORDINATE_IMAGES and tuple(source.shape) == frame:
            attrs = {"units": "um", "long_name": "wavelength"} if hdu.name == "WAVELENGTH" else {}
            coords[COORDINATE_IMAGES[hdu.name]] = _variable(("y", "x"), source, attrs)
            continue
        if tuple(source.shape[-2:]) != frame or len(source.shape) != len(sci.shape):
            continue  # not a frame or cube of this exposure (e.g. a reference-sized image)
        dims = ("integration", "y", "x") if cube else ("y", "x")
        bunit = hdu.header.get("BUNIT") or (unit if name == "err" else _squared(unit) if name.startswith("var_")
                                            else None)
        data_vars[name] = _variable(dims, source, {"units": bunit, "extname": hdu.name}, chunk)
    if cube:
        coords.update(_integration_coords(_header_dict(hdulist[0].header), nints, lay.tables))
    return xr.Dataset(data_vars, coords=coords)


def _spectra_dataset(lay, spectrum: int) -> xr.Dataset:
    indices = [i for i, h in enumerate(lay.hdulist) if h.name == "EXTRACT1D"]
    if not 1 <= spectrum <= len(indices):
        raise InputError(lay.path, f"has {len(indices)} EXTRACT1D spectra; spectrum={spectrum} is not one of them")
    index = indices[spectrum - 1]
    hdu = lay.hdulist[index]
    columns = {c.name: lay.column(index, c.name) for c in hdu.columns}
    units = {c.name: c.unit for c in hdu.columns}
    tso = len(columns["FLUX"].shape) == 2
    nrows = columns["FLUX"].shape[0]
    row_bytes = sum(int(np.prod(c.shape[1:])) * np.dtype(c.dtype).itemsize for c in columns.values())
    chunk = lay.preferred_chunk(row_bytes) if tso else None
    coords = _integration_coords(_header_dict(lay.hdulist[0].header), nrows, lay.tables) if tso else {}
    data_vars = {}
    for name, source in columns.items():
        attrs = {"units": units.get(name), "column": name}
        if not tso:
            dims = ("spectral",)
        else:
            dims = ("integration", "spectral")[:len(source.shape)]
        if name == "WAVELENGTH":
            coords["wavelength"] = _variable(dims, source, {**attrs, "long_name": "wavelength"}, chunk)
        elif name == "INT_NUM" and tso:
            coords["integration_number"] = _variable(dims, source, attrs, chunk)
        elif name in TABLE_TIME_COLUMNS and tso:
            coord = TABLE_TIME_COLUMNS[name]
            if coord not in coords:  # INT_TIMES gave it already otherwise
                coords[coord] = _variable(dims, source, {**attrs, "long_name": TIME_NAMES[coord]}, chunk)
        else:
            data_vars[name.lower()] = _variable(dims, source, attrs, chunk)
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs["extract1d"] = {k: v for k, v in hdu.header.items()
                             if k and not k.startswith(_STRUCTURAL) and k not in ("XTENSION", "BITPIX", "PCOUNT",
                                                                                  "GCOUNT") and not k.startswith("NAXIS")}
    ds.attrs["spectra"] = len(indices)
    return ds


def open_product(path, drop_variables=None, spectrum: int = 1) -> xr.Dataset:
    """A stage-2 product (FITS file or spec2x zarr store) as a lazily read ``xarray.Dataset``.

    ``spectrum``: which EXTRACT1D extension of a spectral product (1-based; products with several
    orders or sources have several).
    """
    path = Path(os.fspath(path))
    lay = layout(path)
    names = [h.name for h in lay.hdulist]
    if "EXTRACT1D" in names:
        ds = _spectra_dataset(lay, spectrum)
    elif "SCI" in names:
        ds = _cube_dataset(lay)
    else:
        raise InputError(path, "has neither a SCI nor an EXTRACT1D extension: not a stage-2 product")
    primary = _header_dict(lay.hdulist[0].header)
    summary = {k: primary[k] for k in SUMMARY_KEYWORDS if k in primary}
    ds.attrs = {"filename": path.name, "product": product_kind(path) or "", **summary, **ds.attrs,
                "primary": primary}
    if "SCI" in names:
        ds.attrs["sci"] = _header_dict(lay.hdulist["SCI"].header)
    if drop_variables:
        ds = ds.drop_vars([drop_variables] if isinstance(drop_variables, str) else list(drop_variables),
                          errors="ignore")
    return ds


def open_products(folder, chunks=None, fmt: str | None = None) -> dict[str, xr.Dataset]:
    """The products of one run in ``folder``, opened lazily: {"calints": Dataset, "x1dints": Dataset}
    (``cal``/``x1d`` for single-integration exposures; ``rateints`` if the input is there too).

    ``chunks`` as for ``xr.open_dataset`` (default ``{}``: dask arrays chunked along integrations as
    the files are); ``fmt``: ``"fits"`` or ``"zarr"`` when the folder holds both.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise Spec2xError(f"{folder}: not a folder of products")
    found = {}
    for path in sorted(folder.iterdir()):
        kind = product_kind(path)
        if kind is None or path.name.startswith(".") or (fmt and path.suffix != f".{fmt}"):
            continue
        if kind in found:
            raise Spec2xError(f"{folder}: holds more than one {kind} product ({found[kind].name}, {path.name}); "
                              "open them with xr.open_dataset(path, engine='spec2x')"
                              + ("" if fmt else " or pass fmt='fits' or 'zarr'"))
        found[kind] = path
    if not found:
        raise Spec2xError(f"{folder}: no _calints/_x1dints products (FITS or zarr) in it")
    return {kind: xr.open_dataset(path, engine=Spec2xBackend, chunks={} if chunks is None else chunks)
            for kind, path in found.items()}
