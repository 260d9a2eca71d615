"""What every synthetic case shares: the header every synthetic reference file carries, deterministic
saving, lazily-backed placeholder cubes and chunk-by-chunk streaming of ``_rateints`` files (their
INT_TIMES and timing keywords), the split of an exposure into segments, and the case's ``case.json``."""

from __future__ import annotations

import json
import math
import mmap
import re
from pathlib import Path

import asdf
import numpy as np
from stdatamodels import fits_support
from stdatamodels.jwst import datamodels

from spec2x.products import fitsfile

FILE_DATE = "2024-07-10T00:00:00.000"  # fixed DATE keyword: rebuilt files are byte-identical (cache keys)
CUBES = {"SCI": np.float32, "ERR": np.float32, "DQ": np.uint32, "VAR_POISSON": np.float32,
         "VAR_RNOISE": np.float32}
MODEL_ATTR = {"SCI": "data", "ERR": "err", "DQ": "dq", "VAR_POISSON": "var_poisson", "VAR_RNOISE": "var_rnoise"}
PEDIGREE = {"pedigree": "DUMMY", "useafter": "2022-01-01T00:00:00", "author": "spec2x.synthetic",
            "description": "Synthetic reference file (spec2x)"}


def ref_header(model, reftype, instrument, detector):
    """Set what every synthetic reference says of itself (type, pedigree, author, telescope, instrument,
    detector), in this order (it is the order of the saved tree); returns ``model.meta`` for the rest."""
    meta = model.meta
    meta.reftype, meta.pedigree, meta.useafter = reftype, PEDIGREE["pedigree"], PEDIGREE["useafter"]
    meta.author, meta.description = PEDIGREE["author"], PEDIGREE["description"]
    meta.telescope = "JWST"
    meta.instrument.name, meta.instrument.detector = instrument, detector
    return meta


def write_extract1d(path, instrument, exp_type, apertures, indent=2):
    """An EXTRACT1D reference (JSON, as CRDS serves it) with the synthetic pedigree and ``apertures``."""
    ref = {"reftype": "EXTRACT1D", "instrument": instrument, "telescope": "JWST", "exp_type": exp_type, **PEDIGREE,
           "apertures": apertures}
    Path(path).write_text(json.dumps(ref, indent=indent) + "\n")


def _stamp(model, path):
    """Prepare ``model`` for saving at ``path`` with the fixed DATE, and validate it."""
    model.on_save(str(path))
    model.meta.date = FILE_DATE
    model.validate()


def save(model, path):
    """Validate and save with a fixed DATE, so rebuilt files are byte-identical."""
    _stamp(model, path)
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
    _stamp(model, path)
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


def segment_stem(name, segnum, segments):
    """File stem of segment ``segnum`` of ``segments``: ``name`` itself for one segment, else with its
    ``-segNNN`` (replaced where ``name`` has one, appended where not)."""
    if segments == 1:
        return name
    if re.search(r"-seg\d{3}", name):
        return re.sub(r"-seg\d{3}", f"-seg{segnum:03d}", name)
    return f"{name}-seg{segnum:03d}"


def write_rateints(path, shape, set_meta, int_times, fill, chunk=None):
    """Stream a ``_rateints`` cube of ``shape`` (integrations, y, x) to ``path``: ``set_meta(model)`` sets its
    keywords, ``int_times(dtype)`` gives its INT_TIMES rows, ``fill(j0, j1)`` its cubes for file-local
    integrations [j0, j1), ``chunk`` at a time (default ~4 MB per cube; it does not change the content)."""
    m = datamodels.CubeModel(**{MODEL_ATTR[k]: lazy_array(shape, dt) for k, dt in CUBES.items()})
    set_meta(m)
    m.int_times = int_times(m.get_dtype("int_times"))
    write_streamed(path, m, fill, shape[0], chunk or max(1, (4 << 20) // (shape[1] * shape[2] * 4)))
    m.close()


def int_times_table(dtype, first, start, mid, end, to_bjd):
    """INT_TIMES rows for integrations ``first``+1... with UTC MJDs ``start``/``mid``/``end`` (arrays of
    the same length) and their TDB BJDs ``to_bjd(mjd)``."""
    it = np.zeros(len(start), dtype=dtype)
    it["integration_number"] = np.arange(first + 1, first + len(start) + 1)
    for edge, t in (("start", start), ("mid", mid), ("end", end)):
        it[f"int_{edge}_MJD_UTC"] = t
        it[f"int_{edge}_BJD_TDB"] = to_bjd(t)
    return it


def set_tso_timing(ex, scene, ngroups, nresets_at_start, frame_time):
    """Exposure timing keywords of ``scene.nints`` integrations (``scene``: tint, effinttm, tcycle and
    per-integration start/end MJDs), one reset between integrations."""
    n = scene.nints
    ex.ngroups, ex.nframes, ex.groupgap = ngroups, 1, 0
    ex.nresets_at_start, ex.nresets_between_ints = nresets_at_start, 1
    ex.frame_time = ex.group_time = frame_time
    ex.integration_time = scene.tint
    ex.effective_exposure_time = scene.effinttm * n
    ex.exposure_time = scene.tint * n
    ex.duration = scene.tcycle * n
    ex.start_time, ex.end_time = float(scene.start[0]), float(scene.end[-1])
    ex.mid_time = 0.5 * (ex.start_time + ex.end_time)


def write_case_json(outdir, info):
    """``outdir/case.json``: ``info`` with the rateints and reference paths relative to ``outdir``."""
    case = {k: ([p.name for p in v] if k == "rateints" else
                {t: f"refs/{p.name}" for t, p in v.items()} if k == "refs" else v) for k, v in info.items()}
    (Path(outdir) / "case.json").write_text(json.dumps(case, indent=2) + "\n")
