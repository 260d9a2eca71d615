"""``spec2x export``: FITS products from finished spec2x zarr stores, block by block.

A store keeps the FITS layout of its product (see ``zarr_store``), so export is the FITS writer's
own path with the zarr arrays as sources: lay the template out with ``fitsfile.lay_out``, copy each
streamed array into its reserved region a block of integrations at a time (EXTRACT1D columns are
packed into table rows as the writer packs them), then rename.  The result equals the FITS product
``spec2x run --format fits`` writes for the same input, its DATE aside.
"""

from __future__ import annotations

import io
from pathlib import Path

import zarr
from astropy.io import fits

from spec2x.errors import Spec2xError
from spec2x.products import Output, output_folder, zarr_store
from spec2x.products import fitsfile as fits_io

BLOCK_BYTES = 16 * 2**20  # about this much of the product per block copied


def export(stores, outdir, overwrite: bool = False, block_ints: int | None = None) -> list[Path]:
    """Write the FITS product of each zarr store in ``stores`` into ``outdir``; returns the paths.

    Every store is checked before anything is written.  ``block_ints``: integrations per copied
    block (default: about ``BLOCK_BYTES``, a whole number of the store's chunks).
    """
    if block_ints is not None and block_ints < 1:
        raise Spec2xError(f"block of {block_ints} integrations: must be at least 1")
    roots = [open_store(s) for s in stores]
    outdir = output_folder(outdir)
    finals = [outdir / Path(s).with_suffix(".fits").name for s in stores]
    for store, final in zip(stores, finals):
        if finals.count(final) > 1:
            raise Spec2xError(f"{store}: another store given exports to the same name {final.name}")
        if final.exists() and not overwrite:
            raise Spec2xError(f"{final}: already exists (use --overwrite to replace it)")
    return [export_store(root, final, block_ints) for root, final in zip(roots, finals)]


def open_store(path) -> zarr.Group:
    """The root group of a finished spec2x store; one-line user error for anything else."""
    path = Path(path)
    if not path.exists():
        raise Spec2xError(f"{path}: no such zarr store")
    try:
        root = zarr.open_group(str(path), mode="r")
    except (ValueError, OSError):  # zarr's errors for "not a group" (and unreadable metadata) are both
        raise Spec2xError(f"{path}: not a zarr store") from None
    if zarr_store.TEMPLATE not in root or zarr_store.STREAMED not in root.attrs:
        raise Spec2xError(f"{path}: not a spec2x zarr store with a FITS layout (written by spec2x before "
                          "export existed, or by something else)")
    if not root.attrs.get(zarr_store.FINISHED):
        raise Spec2xError(f"{path}: not a finished spec2x store (an interrupted run?)")
    for ext, length in root.attrs[zarr_store.STREAMED].items():
        if ext not in root:
            raise Spec2xError(f"{path}: {ext} is missing from the store")
        if _lengths(root[ext]) != {length}:
            raise Spec2xError(f"{path}: {ext} does not hold the {length} integrations its layout says")
    return root


def _arrays(node) -> list:
    """The arrays of one streamed extension: itself, or its table columns."""
    return [a for _, a in node.arrays()] if isinstance(node, zarr.Group) else [node]


def _lengths(node) -> set:
    return {a.shape[0] for a in _arrays(node)}


def template(root) -> fits.HDUList:
    """The FITS layout HDUList kept in a store."""
    return fits.open(io.BytesIO(root[zarr_store.TEMPLATE][...].tobytes()))


def export_store(root, final: Path, block_ints: int | None = None) -> Path:
    """Write the FITS product of one store at ``final`` (through a temporary name)."""
    out = Output(final, final.parent / f".{final.name}.partial")
    streamed = root.attrs[zarr_store.STREAMED]
    try:
        with template(root) as hdulist:
            targets = fits_io.lay_out(str(out.temporary), hdulist, streamed)
            hdus = {fits_io.extension_key(h): h for h in hdulist if h.name in streamed}
            readers = {key: _reader(root[zarr_store.node_name(key)], hdus[key]) for key in targets}
        nints = max(streamed.values())
        step = block_ints or _block_ints(root, targets)
        for start in range(0, nints, step):
            rows = slice(start, min(start + step, nints))
            for ext, target in targets.items():
                target[rows] = readers[ext](rows)
        out.commit()
    except BaseException as exc:
        out.discard()
        if isinstance(exc, OSError):
            raise Spec2xError(f"{final}: export failed ({exc.strerror or exc})") from None
        raise
    return final


def _reader(node, hdu):
    """``read(slice)`` -> the block of one streamed extension as its RegionTarget takes it."""
    if not isinstance(node, zarr.Group):
        return lambda rows: node[rows]
    dtype, zeros = fits_io.table_row_dtype(hdu)
    return lambda rows: fits_io.pack_rows({n: node[n][rows] for n in dtype.names}, dtype, zeros)


def _block_ints(root, targets: dict) -> int:
    """Integrations per block: about ``BLOCK_BYTES``, rounded down to whole store chunks."""
    chunk = max(a.chunks[0] for key in targets for a in _arrays(root[zarr_store.node_name(key)]))
    per_int = sum(t.row_bytes for t in targets.values())
    return max(1, BLOCK_BYTES // per_int // chunk) * chunk
