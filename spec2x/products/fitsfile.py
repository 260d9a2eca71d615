"""FITS products laid out once, then filled chunk by chunk.

jwst writes a product with ``DataModel.save``, which needs every array in memory.  spec2x lets
stdatamodels build the *layout* (headers, keywords, small extensions, the ASDF extension with the
gwcs and the metadata tree) from a model whose streamed arrays hold a single integration, then
declares the full length of those extensions in their headers, reserves their bytes, and writes
each block of integrations at its offset as the graph computes it.  The result is byte-for-byte the
FITS file layout astropy would write, without the cube ever being in memory.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from asdf import treeutil
from stdatamodels import fits_support

BLOCK = 2880


@dataclass(frozen=True)
class RegionTarget:
    """A ``dask.array.store`` target writing blocks along axis 0 into one reserved file region.

    ``kind`` says how a block is encoded: ``"float32"``/``"float64"`` (big-endian), ``"uint32"`` (the
    FITS BZERO=2**31 convention) or ``"rows"`` (already-packed uint8 table rows).
    """

    path: str
    offset: int
    row_bytes: int
    kind: str

    def __setitem__(self, key, block):
        start = (key[0] if isinstance(key, tuple) else key).start or 0
        payload = encode(np.asarray(block), self.kind)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, payload, self.offset + start * self.row_bytes)
        finally:
            os.close(fd)


def encode(block: np.ndarray, kind: str) -> np.ndarray:
    """A block as FITS stores it (a C-contiguous array whose buffer is the bytes to write), made with
    one conversion copy: the caller's block is never modified."""
    if kind == "rows":
        return np.ascontiguousarray(block, dtype=np.uint8)
    if kind == "uint32":
        out = np.bitwise_xor(block, np.uint32(2**31), dtype=np.uint32, casting="unsafe")
        return out.byteswap(inplace=True).view(">u4")
    return np.asarray(block).astype(">" + np.dtype(kind).str[1:], order="C")


def model_hdulist(model, streamed: dict) -> fits.HDUList:
    """HDUList of ``model`` (built by stdatamodels) with the streamed extensions' true lengths
    recorded in the ASDF tree.  ``streamed`` maps EXTNAME to the full length of axis 0."""
    model.on_save(model.meta.filename)
    validate_metadata(model)
    hdulist = fits.HDUList([fits.PrimaryHDU()])
    tree = fits_support._normalize_arrays(model._instance)
    tree = fits_support._save_from_schema(hdulist, tree, model._schema)
    tree = fits_support._save_extra_fits(hdulist, tree)
    fits_support._save_history(hdulist, tree)

    def full_length(node):
        if isinstance(node, dict) and str(node.get("source", "")).startswith("fits:"):
            name = node["source"][5:].split(",")[0]
            if name in streamed:
                node["shape"] = [streamed[name], *node["shape"][1:]]
        return node

    tree = treeutil.walk_and_modify(tree, full_length)
    hdulist.append(fits_support._create_asdf_hdu(tree))
    return hdulist


def validate_metadata(model):
    """Validate ``model`` against its datamodel schema (warnings for invalid values, as jwst's save), all
    but its gwcs: validating converts the gwcs to its tagged tree, which for a NIRSpec WCS costs as much
    as writing it (0.35 s), and asdf validates that tree against the gwcs schemas when it writes the
    ASDF extension anyway."""
    meta = model._instance.get("meta", {})
    wcs = meta.get("wcs")
    if wcs is not None:
        meta["wcs"] = None  # None is "absent" to stdatamodels; the key keeps its place in the tree
    try:
        model.validate()
    finally:
        if wcs is not None:
            meta["wcs"] = wcs


def _hdu_bytes(hdu, first: bool) -> bytes:
    """The bytes astropy writes for one HDU (an extension is written behind an empty primary)."""
    if first:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Card is too long")  # long R_* paths, as jwst
            fits.HDUList([hdu]).writeto(buf)
        return buf.getvalue()
    return _two_hdu_bytes(hdu)[BLOCK:]


def _two_hdu_bytes(hdu) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Card is too long")
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()


def _padded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def lay_out(path: str, hdulist: fits.HDUList, streamed: dict, reuse: bool = False) -> dict:
    """Write ``hdulist`` to ``path`` with the extensions in ``streamed`` (EXTNAME -> length of axis 0)
    declared at full length and their data left as reserved space.  Only the first row of a
    streamed extension's data is looked at, so it may be a one-integration template or a lazy
    placeholder of full length.

    Returns ``extension_key`` -> RegionTarget for the streamed extensions.  With ``reuse`` the file at
    ``path`` (laid out by an earlier, interrupted run) is kept and only its offsets are read.
    """
    if reuse:
        return existing_targets(path, streamed)
    targets = {}
    with open(path, "wb") as f:
        for i, hdu in enumerate(hdulist):
            if i == 0 or hdu.name not in streamed:
                f.write(_hdu_bytes(hdu, i == 0))
                continue
            probe = type(hdu)(data=hdu.data[:1], header=hdu.header.copy(), name=hdu.name)
            header = fits.open(io.BytesIO(_two_hdu_bytes(probe)))[1].header.copy()
            header[f"NAXIS{header['NAXIS']}"] = streamed[hdu.name]
            f.write(header.tostring().encode("ascii"))
            key = extension_key(hdu)
            targets[key] = _target(path, header, f.tell())
            row_bytes = targets[key].row_bytes
            f.seek(_padded(streamed[hdu.name] * row_bytes), os.SEEK_CUR)
        f.truncate(f.tell())
    return targets


def _target(path: str, header: fits.Header, offset: int) -> RegionTarget:
    if header["XTENSION"] == "BINTABLE":
        return RegionTarget(path, offset, header["NAXIS1"], "rows")
    row_bytes = abs(header["BITPIX"]) // 8 * int(np.prod([header[f"NAXIS{k}"] for k in range(1, header["NAXIS"])]))
    kind = "uint32" if header.get("BZERO") == 2**31 else {-32: "float32", -64: "float64"}[header["BITPIX"]]
    return RegionTarget(path, offset, row_bytes, kind)


def existing_targets(path: str, streamed: dict) -> dict:
    """RegionTargets of the streamed extensions of a file laid out earlier by ``lay_out``."""
    with fits.open(path, lazy_load_hdus=False) as hdul:
        return {extension_key(hdu): _target(path, hdu.header, hdul.fileinfo(i)["datLoc"])
                for i, hdu in enumerate(hdul) if hdu.name in streamed}


def extension_key(hdu) -> str:
    """EXTNAME, with ``,EXTVER`` for every extension of that name after the first (``EXTRACT1D,2``)."""
    ver = hdu.header.get("EXTVER", 1)
    return hdu.name if ver in (None, 1) else f"{hdu.name},{ver}"


def table_row_dtype(hdu: fits.BinTableHDU) -> tuple[np.dtype, dict]:
    """On-disk record dtype of a table HDU and the TZERO offset of each column that has one."""
    with fits.open(io.BytesIO(_two_hdu_bytes(hdu))) as hdul:
        table = hdul[1]
        dtype = table.data.dtype
        zeros = {c.name: int(c.bzero) for c in table.columns if c.bzero not in (None, 0, "")}
    return dtype, zeros


def pack_rows(columns: dict, dtype: np.dtype, zeros: dict) -> np.ndarray:
    """Pack column blocks (each with leading axis = rows) into FITS table rows (uint8, row-major)."""
    n = len(next(iter(columns.values())))
    rows = np.zeros(n, dtype=dtype)
    for name in dtype.names:
        value = np.asarray(columns[name])
        if name in zeros:
            value = (value.astype(np.int64) - zeros[name]).astype(dtype[name].base)
        rows[name] = value
    return rows.view(np.uint8).reshape(n, dtype.itemsize)
