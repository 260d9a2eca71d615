"""Helpers shared by the end-to-end tests: spec2x products compared with jwst's (values, layout and
keywords) and with each other (data digests), and the command line run in-process."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

X1D_COLUMNS = ("WAVELENGTH", "FLUX", "FLUX_ERROR", "FLUX_VAR_POISSON", "FLUX_VAR_RNOISE", "FLUX_VAR_FLAT",
               "SURF_BRIGHT", "SB_ERROR", "SB_VAR_POISSON", "SB_VAR_RNOISE", "SB_VAR_FLAT", "BACKGROUND",
               "BKGD_ERROR", "BKGD_VAR_POISSON", "BKGD_VAR_RNOISE", "BKGD_VAR_FLAT",
               "MJD-BEG", "MJD-AVG", "MJD-END", "TDB-BEG", "TDB-MID", "TDB-END")
X1D_INTEGER_COLUMNS = ("DQ", "NPIXELS", "INT_NUM", "N_ALONGDISP", "SEGMENT")
# written by both pipelines but naming the run, not the data
IGNORED_KEYWORDS = {"DATE", "CAL_VER", "CAL_VCS", "CRDS_VER", "CRDS_CTX", "FILENAME", "CHECKSUM", "DATASUM",
                    "COMMENT", "HISTORY", ""}


@dataclass
class ParityCase:
    """A synthetic exposure (first ``_rateints`` file, references, the maker's ``info``) with jwst's
    products and spec2x's for it: {"calints": path, "x1dints": path} each."""

    rateints: Path
    refs: dict
    info: dict
    jwst: dict = field(default_factory=dict)
    ours: dict = field(default_factory=dict)


def parity_case(info: dict, jwst_oracle, out, chunk_ints: int) -> ParityCase:
    """Run jwst (the session's cached oracle) and spec2x (into ``out``, ``chunk_ints`` integrations per
    chunk) once on the case a ``spec2x.synthetic`` maker returned."""
    import spec2x

    rateints, refs = info["rateints"][0], {k: str(v) for k, v in info["refs"].items()}
    jwst = jwst_oracle(rateints, refs)
    _, paths = spec2x.run(rateints, out, refs=refs, chunk_ints=chunk_ints)
    return ParityCase(rateints, refs, info, jwst, by_product(paths))


def assert_close_where_finite(ours, theirs, rtol, what, min_finite: float | None = None):
    """Same shape, same NaN pattern, values within ``rtol`` where finite; with ``min_finite``, more than
    that fraction of the elements must be finite (so the comparison is not empty)."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, what
    assert np.array_equal(np.isfinite(ours), np.isfinite(theirs)), f"{what}: NaN pattern differs"
    finite = np.isfinite(theirs)
    if min_finite is not None:
        assert finite.sum() > min_finite * finite.size, f"{what}: too few finite values to compare"
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=rtol, atol=0, err_msg=what)


def assert_same_layout_and_keywords(ours_path, jwst_path):
    """The same extensions in the same order, and every keyword jwst writes (but ``IGNORED_KEYWORDS``)
    with its value: reference keywords (R_*) by file name, floats to 1e-9 relative."""
    with fits.open(ours_path) as a, fits.open(jwst_path) as b:
        assert [(h.name, h.ver) for h in a] == [(h.name, h.ver) for h in b]
        for ours_hdu, jwst_hdu in zip(a, b):
            if ours_hdu.name == "ASDF":
                continue
            missing = set(jwst_hdu.header) - set(ours_hdu.header)
            assert not missing, f"{ours_hdu.name}: keywords missing {sorted(missing)}"
            for key in set(jwst_hdu.header) - IGNORED_KEYWORDS:
                theirs, ours = jwst_hdu.header[key], ours_hdu.header[key]
                if key.startswith("R_"):
                    assert str(ours).split("/")[-1] == str(theirs).split("/")[-1], key
                elif isinstance(theirs, float):
                    assert ours == pytest.approx(theirs, rel=1e-9), (ours_hdu.name, key)
                else:
                    assert ours == theirs, (ours_hdu.name, key)


def by_product(paths) -> dict:
    """{"calints": path, "x1dints": path} from the paths ``spec2x.run`` returns."""
    return {p.name.split("_")[-1].removesuffix(".fits"): p for p in paths}


def data_digest(paths) -> str:
    """Hash of every data array and table of the FITS products (headers carry the date)."""
    h = hashlib.sha256()
    for path in sorted(paths):
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.name != "ASDF" and hdu.data is not None:
                    h.update(np.ascontiguousarray(hdu.data).tobytes())
    return h.hexdigest()


def ref_args(refs: dict) -> list[str]:
    """``--ref TYPE=PATH`` for each reference, as the command line takes them."""
    return [arg for k, v in refs.items() for arg in ("--ref", f"{k}={v}")]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """``spec2x ARGV`` in this process: (exit code, stdout, stderr)."""
    from spec2x import cli

    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
