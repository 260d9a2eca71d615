"""What every synthetic case shares: deterministic saving, lazily-backed placeholder cubes and
chunk-by-chunk streaming of ``_rateints`` files, and the split of an exposure into segments."""

from __future__ import annotations

import math
import mmap
from pathlib import Path

import asdf
import numpy as np
from stdatamodels import fits_support

from spec2x.products import fitsfile

FILE_DATE = "2024-07-10T00:00:00.000"  # fixed DATE keyword: rebuilt files are byte-identical (cache keys)
CUBES = {"SCI": np.float32, "ERR": np.float32, "DQ": np.uint32, "VAR_POISSON": np.float32,
         "VAR_RNOISE": np.float32}
MODEL_ATTR = {"SCI": "data", "ERR": "err", "DQ": "dq", "VAR_POISSON": "var_poisson", "VAR_RNOISE": "var_rnoise"}


def save(model, path):
    """Validate and save with a fixed DATE, so rebuilt files are byte-identical."""
    model.on_save(str(path))
    model.meta.date = FILE_DATE
    model.validate()
    if Path(path).suffix == ".asdf":
        asdf.AsdfFile(model._instance).write_to(str(path))
    else:
        fits_support.to_fits(model._instance, model._schema).writeto(str(path), overwrite=True)


def lazy_array(shape, dtype):
    """Zero array backed by untouched anonymous memory: stdatamodels builds headers and the ASDF
    tree (shapes) from it without the cube ever being resident."""
    nbytes = max(1, math.prod(shape) * np.dtype(dtype).itemsize)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype, count=math.prod(shape)).reshape(shape)


def write_streamed(path, model, fill, nrows, chunk):
    """Write ``model`` (whose cubes are lazy placeholders) to ``path`` as stdatamodels would, with the
    cube data produced by ``fill(j0, j1)`` (file-local integration range) and written chunk by chunk."""
    model.on_save(str(path))
    model.meta.date = FILE_DATE
    model.validate()
    hdul = fits_support.to_fits(model._instance, model._schema)
    tmp = Path(str(path) + ".part")
    targets = fitsfile.lay_out(str(tmp), hdul, dict.fromkeys(CUBES, nrows))
    for j0 in range(0, nrows, chunk):
        j1 = min(nrows, j0 + chunk)
        for name, arr in fill(j0, j1).items():
            targets[name][j0:j1] = arr
    tmp.replace(path)


def segment_bounds(nints, segments=1):
    """0-based [i0, i1) per segment: equal sizes, the last one smaller (as in JWST segmented data)."""
    per = -(-nints // segments)
    bounds = [(i0, min(nints, i0 + per)) for i0 in range(0, nints, per)]
    if len(bounds) != segments:
        raise ValueError(f"cannot split {nints} integrations into {segments} non-empty segments")
    return bounds
