"""Open countrate exposures lazily as chunked ``xarray.Dataset`` objects.

An exposure is one ``_rate``/``_rateints`` file, the ordered ``-segNNN`` files of one exposure, or the
science member of an ASN.  Only headers and the small INT_TIMES table are read at open time; the cubes
are dask arrays whose tasks hold a file path and an integration range, so graphs stay small and any
worker can read its own chunk.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
from astropy.io import fits

from spec2x.errors import InputError, Spec2xError

CUBE_EXTENSIONS = ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE")
VARIABLE_OF_EXTENSION = {"SCI": "sci", "ERR": "err", "DQ": "dq", "VAR_POISSON": "var_poisson",
                         "VAR_RNOISE": "var_rnoise"}
TARGET_CHUNK_BYTES = 8 * 2**20  # 64 LRS integrations: per-chunk overhead amortised, ~0.7 GB peak
_SEGMENT = re.compile(r"-seg(\d{3})")


@dataclass(frozen=True)
class FitsArray:
    """Array-like view of one uncompressed FITS image HDU, read by offset on each ``__getitem__``.

    Picklable and tiny, so dask graphs carry it instead of data.  BZERO (the unsigned-integer
    convention used for DQ) is applied on read.
    """

    path: str
    offset: int
    shape: tuple
    file_dtype: str
    bzero: int = 0

    @property
    def dtype(self):
        if self.bzero == 2**31 and self.file_dtype == ">i4":
            return np.dtype(np.uint32)
        return np.dtype(self.file_dtype).newbyteorder("=")

    @property
    def ndim(self):
        return len(self.shape)

    def __getitem__(self, key):
        raw = np.memmap(self.path, dtype=self.file_dtype, mode="r", offset=self.offset, shape=self.shape)
        block = np.asarray(raw[key]).astype(np.dtype(self.file_dtype).newbyteorder("="))  # the one copy
        if self.dtype == np.uint32:
            block = block.view(np.uint32)
            block ^= np.uint32(2**31)
        return block

    def prefetch(self, start: int, stop: int):
        """Have the kernel start reading rows ``[start, stop)`` of axis 0 into the page cache now, so
        the task that reads them next does not wait for the disk (no-op where unsupported)."""
        start, stop = max(start, 0), min(stop, self.shape[0] if self.ndim == 3 else 1)
        if stop <= start or not hasattr(os, "posix_fadvise"):
            return
        row = np.dtype(self.file_dtype).itemsize * int(np.prod(self.shape[-2:]))
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, self.offset + start * row, (stop - start) * row, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)


def _image_hdu_array(path: str, hdul: fits.HDUList, name: str) -> FitsArray:
    index = hdul.index_of(name)
    hdu = hdul[index]
    hdr = hdu.header
    if hdr.get("XTENSION", "IMAGE") != "IMAGE" or hdr.get("ZIMAGE"):
        raise InputError(path, f"extension {name} is not an uncompressed image")
    shape = tuple(hdr[f"NAXIS{k}"] for k in range(hdr["NAXIS"], 0, -1))
    bitpix = hdr["BITPIX"]
    file_dtype = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}[bitpix]
    if hdr.get("BSCALE", 1) != 1:
        raise InputError(path, f"extension {name} uses BSCALE, which spec2x does not read")
    info = hdul.fileinfo(index)
    nbytes = int(np.prod(shape)) * np.dtype(file_dtype).itemsize
    if info["datLoc"] + nbytes > Path(path).stat().st_size:
        raise InputError(path, f"file is truncated (extension {name} needs {nbytes} bytes)")
    return FitsArray(path, info["datLoc"], shape, file_dtype, int(hdr.get("BZERO", 0)))


def _header_dict(header: fits.Header) -> dict:
    skip = {"", "COMMENT", "HISTORY", "SIMPLE", "BITPIX", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT",
            "BZERO", "BSCALE"}
    return {k: v for k, v in header.items() if k not in skip and not k.startswith("NAXIS")}


def _read_segment(path: str):
    """Headers, lazy cube arrays and INT_TIMES of one FITS file."""
    try:
        hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
        hdul.readall()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as exc:
        raise InputError(path, f"not a readable FITS file ({exc})") from None
    with hdul:
        names = [h.name for h in hdul]
        if "SCI" not in names:
            raise InputError(path, "has no SCI extension")
        arrays = {n: _image_hdu_array(path, hdul, n) for n in CUBE_EXTENSIONS if n in names}
        missing = [n for n in ("SCI", "ERR", "DQ") if n not in arrays]
        if missing:
            raise InputError(path, f"missing extension(s) {', '.join(missing)}")
        shapes = {n: a.shape for n, a in arrays.items()}
        if len(set(shapes.values())) != 1:
            raise InputError(path, "extension shapes disagree: "
                             + ", ".join(f"{n}{list(s)}" for n, s in shapes.items()))
        int_times = np.array(hdul["INT_TIMES"].data) if "INT_TIMES" in names else None
        return (_header_dict(hdul[0].header), _header_dict(hdul["SCI"].header), arrays, int_times)


def _segment_paths(paths):
    """Expand an ASN to its science member; order segments by INTSTART."""
    paths = [str(p) for p in paths]
    if len(paths) == 1 and paths[0].endswith(".json"):
        return science_members(paths[0])
    return paths


def science_members(asn_path: str) -> list[str]:
    """Science members of the first product of an association file."""
    try:
        asn = json.loads(Path(asn_path).read_text())
        members = asn["products"][0]["members"]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise InputError(asn_path, f"not a readable association ({exc})") from None
    base = Path(asn_path).parent
    sci = [str(base / m["expname"]) for m in members if m.get("exptype", "science") == "science"]
    if not sci:
        raise InputError(asn_path, "association lists no science member")
    return sci


def default_chunk(frame_bytes: int, target: int = TARGET_CHUNK_BYTES) -> int:
    """Integrations per chunk so one chunk of one cube is about ``target`` bytes."""
    return max(1, target // max(frame_bytes, 1))


def open_exposure(source, chunk_ints: int | None = None) -> xr.Dataset:
    """Open an exposure lazily as ``Dataset(sci, err, dq, var_poisson, var_rnoise)`` over
    ``(integration, y, x)``.

    ``source`` is a path, a list of segment paths of one exposure, or an ASN ``.json`` path.
    A 2-D ``_rate`` image becomes one integration.  ``chunk_ints`` integrations per chunk
    (default: about 8 MB of SCI per chunk).
    """
    paths = _segment_paths([source] if isinstance(source, (str, Path)) else list(source))
    if not paths:
        raise Spec2xError("no input exposure given")
    segments = [(p, *_read_segment(p)) for p in paths]
    segments.sort(key=lambda s: (s[1].get("INTSTART") or 1, s[0]))
    primary, sci_hdr = segments[0][1], segments[0][2]
    frame_shape = segments[0][3]["SCI"].shape[-2:]
    _check_segments(segments, frame_shape)

    nints = sum(_nints(s[3]["SCI"]) for s in segments)
    chunk = chunk_ints or default_chunk(int(np.prod(frame_shape)) * 4)
    starts = np.cumsum([0] + [_nints(s[3]["SCI"]) for s in segments])
    readers = tuple((int(start), {VARIABLE_OF_EXTENSION[ext]: _as_3d(a) for ext, a in s[3].items()})
                    for start, s in zip(starts, segments))
    data_vars = {}
    for var in readers[0][1]:
        parts = [da.from_array(arrays[var], chunks=(chunk, -1, -1), name=f"{var}-{arrays[var].path}-{arrays[var].offset}",
                               lock=False, asarray=True, inline_array=True) for _, arrays in readers]
        cube = da.concatenate(parts) if len(parts) > 1 else parts[0]
        if len(parts) > 1:  # segment boundaries would split chunks
            cube = cube.rechunk({0: chunk})
        data_vars[var] = (("integration", "y", "x"), cube)
    coords = {"integration": np.arange(nints)}
    coords.update(time_coords([s[4] for s in segments if s[4] is not None], primary.get("INTSTART") or 1, nints))
    tables = [s[4] for s in segments if s[4] is not None]
    attrs = {"int_times": np.concatenate(tables) if tables else None, "primary": primary, "sci": sci_hdr,
             "filename": Path(paths[0]).name, "paths": [s[0] for s in segments],
             "ndim_in": len(segments[0][3]["SCI"].shape)}
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    ds.attrs["source"] = Source(readers, ds.drop_vars(list(ds.data_vars)), attrs)
    return ds


@dataclass(frozen=True)
class Source:
    """What any task needs to read a block of integrations of an exposure into memory: per-segment
    readers (first integration, {variable: FitsArray}), the coordinates, the header keywords."""

    readers: tuple
    coords: xr.Dataset
    attrs: dict

    def read(self, start: int, stop: int) -> xr.Dataset:
        """Integrations ``[start, stop)`` as a numpy-backed Dataset shaped like ``open_exposure``'s;
        the integrations after them, as many again, are prefetched for the next chunk task."""
        data = {}
        for var in self.readers[0][1]:
            parts = [arrays[var][max(start - first, 0):stop - first] for first, arrays in self.readers
                     if first < stop and first + arrays[var].shape[0] > start]
            data[var] = (("integration", "y", "x"), parts[0] if len(parts) == 1 else np.concatenate(parts))
        self.prefetch(stop, 2 * stop - start)
        coords = self.coords.isel(integration=slice(start, stop))
        return xr.Dataset(data, coords=coords.coords, attrs={**self.attrs, "source": self})

    def prefetch(self, start: int, stop: int):
        """Start reading integrations ``[start, stop)`` of every cube into the page cache."""
        for first, arrays in self.readers:
            for array in arrays.values():
                array.prefetch(start - first, stop - first)


def _nints(arr: FitsArray) -> int:
    return arr.shape[0] if arr.ndim == 3 else 1


def _as_3d(arr: FitsArray) -> FitsArray:
    if arr.ndim == 3:
        return arr
    if arr.ndim != 2:
        raise InputError(arr.path, f"SCI has {arr.ndim} dimensions; expected 2 or 3")
    return FitsArray(arr.path, arr.offset, (1, *arr.shape), arr.file_dtype, arr.bzero)


def _check_segments(segments, frame_shape):
    first = segments[0]
    expect = first[1].get("INTSTART")
    for path, primary, _, arrays, _ in segments:
        if arrays["SCI"].shape[-2:] != frame_shape:
            raise InputError(path, f"frame shape {arrays['SCI'].shape[-2:]} differs from {first[0]} {frame_shape}")
        for key in ("EXP_TYPE", "DETECTOR", "SUBARRAY"):
            if primary.get(key) != first[1].get(key):
                raise InputError(path, f"{key}={primary.get(key)} differs from {first[0]} ({first[1].get(key)})")
        start, end = primary.get("INTSTART"), primary.get("INTEND")
        if expect is not None and start is not None:
            if start != expect:
                raise InputError(path, f"segment starts at INTSTART={start}; expected {expect} (gap or overlap)")
            if end is not None and end - start + 1 != _nints(arrays["SCI"]):
                raise InputError(path, f"INTSTART..INTEND={start}..{end} disagrees with {_nints(arrays['SCI'])} integrations")
            expect = (end or start + _nints(arrays["SCI"]) - 1) + 1


TIME_COLUMNS = {"int_start_MJD_UTC": "mjd_start", "int_mid_MJD_UTC": "mjd_mid", "int_end_MJD_UTC": "mjd_end",
                "int_start_BJD_TDB": "bjd_start", "int_mid_BJD_TDB": "bjd_mid", "int_end_BJD_TDB": "bjd_end"}


def time_coords(tables, intstart: int, nints: int) -> dict:
    """``integration_number`` (from ``intstart``) and the INT_TIMES rows matching it, as coordinates
    along ``integration``; ``tables`` are the INT_TIMES tables of the exposure's files."""
    coords = {"integration_number": ("integration", np.arange(intstart, intstart + nints, dtype=np.int32))}
    if not tables:
        return coords
    table = np.concatenate(tables)
    _, first = np.unique(table["integration_number"], return_index=True)
    table = table[np.sort(first)]
    rows = {int(n): i for i, n in enumerate(table["integration_number"])}
    wanted = coords["integration_number"][1]
    if all(int(n) in rows for n in wanted):
        idx = np.array([rows[int(n)] for n in wanted])
        for col, name in TIME_COLUMNS.items():
            if col in table.dtype.names:
                coords[name] = ("integration", np.asarray(table[col][idx], dtype=np.float64))
    return coords
