"""Reference-file resolution: ``--ref REFTYPE=PATH``, ``--refs-dir DIR`` and the CRDS client.

Files are the formats CRDS serves (FITS, ASDF, JSON) and are identified by their REFTYPE.  Every file
is checked against the exposure with the selection keywords CRDS uses (INSTRUME, DETECTOR, EXP_TYPE or
P_EXPTYPE, FILTER, SUBARRAY), so a reference meant for another instrument or mode is an error that
names the file and the keyword.  ``"N/A"`` means what it means to jwst: the reference does not apply.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import asdf
from astropy.io import fits

from spec2x.errors import RefError

NOT_APPLICABLE = "N/A"
_WILDCARDS = {"", "ANY", "N/A", "GENERIC", "NONE"}
# (exposure keyword, reference keyword holding the pipe-separated list, plain reference keyword).
# A reference's plain EXP_TYPE is not a selector: CRDS serves e.g. MIR_IMAGE area files to LRS.
_SELECTORS = (("INSTRUME", None, "INSTRUME"), ("DETECTOR", "P_DETECT", "DETECTOR"),
              ("EXP_TYPE", "P_EXP_TY", None), ("FILTER", "P_FILTER", "FILTER"),
              ("GRATING", "P_GRATIN", "GRATING"), ("PUPIL", "P_PUPIL", "PUPIL"),
              ("SUBARRAY", "P_SUBARR", "SUBARRAY"))
_FULL_FRAME = {"FULL", "GENERIC"}


def read_ref_header(path: str) -> dict:
    """The selection keywords of a reference file (upper-case FITS names), whatever its format."""
    p = Path(path)
    try:
        if p.suffix == ".json":
            tree = json.loads(p.read_text())
            names = {"INSTRUMENT": "INSTRUME", "P_EXPTYPE": "P_EXP_TY"}
            return {names.get(k.upper(), k.upper()): v for k, v in tree.items() if not isinstance(v, (list, dict))}
        if p.suffix == ".asdf":
            with asdf.open(p, lazy_load=True, memmap=False) as af:
                return _flatten_asdf_meta(af.tree.get("meta", {}))
        with fits.open(p) as hdul:
            return dict(hdul[0].header)
    except (OSError, ValueError) as exc:
        raise RefError("refs", "?", f"{path}: not a readable reference file ({exc})") from None


def _flatten_asdf_meta(meta: dict) -> dict:
    inst = meta.get("instrument", {}) or {}
    exp = meta.get("exposure", {}) or {}
    sub = meta.get("subarray", {}) or {}
    out = {"REFTYPE": meta.get("reftype"), "INSTRUME": inst.get("name"), "DETECTOR": inst.get("detector"),
           "FILTER": inst.get("filter"), "GRATING": inst.get("grating"), "PUPIL": inst.get("pupil"),
           "EXP_TYPE": exp.get("type"), "P_EXP_TY": exp.get("p_exptype"), "SUBARRAY": sub.get("name"),
           "USEAFTER": meta.get("useafter")}
    return {k: v for k, v in out.items() if v is not None}


def mismatch(ref_header: dict, exposure: dict) -> str | None:
    """The first selection keyword on which a reference disagrees with the exposure, or None."""
    for key, plist, plain in _SELECTORS:
        value = str(exposure.get(key, "")).strip().upper()
        if not value:
            continue
        allowed = ref_header.get(plist) if plist else None
        if allowed:
            options = {v.strip().upper() for v in str(allowed).split("|") if v.strip()}
            if options and not (options & _WILDCARDS) and value not in options:
                return f"{plist}={allowed!s} does not include {key}={value}"
            continue
        ref_value = str(ref_header.get(plain, "")).strip().upper() if plain else ""
        if not ref_value or ref_value in _WILDCARDS:
            continue
        if key == "SUBARRAY" and ref_value in _FULL_FRAME:
            continue
        if ref_value != value:
            return f"{plain}={ref_value} but the exposure has {key}={value}"
    return None


def ref_keyword_value(path: str) -> str:
    """How jwst records a reference path: ``crds://NAME`` for files from the CRDS cache, else the absolute path."""
    crds_path = os.environ.get("CRDS_PATH")
    absolute = os.path.abspath(path)
    if crds_path and Path(absolute).is_relative_to(os.path.abspath(crds_path)):
        return "crds://" + os.path.basename(path)
    return absolute


@dataclass
class RefSet:
    """Reference files chosen for one exposure: reftype -> path or ``"N/A"``.

    ``explicit`` holds ``--ref`` values; ``search_dirs`` holds ``--refs-dir`` folders; the CRDS client is
    asked last when the user has configured it (CRDS_PATH and CRDS_SERVER_URL).
    """

    explicit: dict = field(default_factory=dict)
    search_dirs: list = field(default_factory=list)
    _index: dict | None = None

    def resolve(self, step: str, reftype: str, exposure: dict, required: bool = True) -> str | None:
        """Path of ``reftype`` for ``step`` (None when N/A or absent and not required)."""
        if reftype in self.explicit:
            value = str(self.explicit[reftype])
            if value.upper() == NOT_APPLICABLE:
                return None
            return self._checked(step, reftype, value, exposure)
        for path, header in self._indexed().get(reftype, []):
            if mismatch(header, exposure) is None:
                return path
        path = _from_crds(reftype, exposure, required)
        if path == NOT_APPLICABLE:
            return None
        if path:
            return self._checked(step, reftype, path, exposure)
        if required:
            where = " or ".join(filter(None, ["--ref", "--refs-dir" if self.search_dirs else None, "CRDS"]))
            raise RefError(step, reftype, f"no {reftype} reference file for this exposure (give one with {where} "
                           f"{reftype}=PATH, or {reftype}=N/A to skip)")
        return None

    def _checked(self, step, reftype, path, exposure):
        if not Path(path).is_file():
            raise RefError(step, reftype, f"{path}: no such file")
        header = read_ref_header(path)
        got = str(header.get("REFTYPE", reftype)).lower()
        if got != reftype:
            raise RefError(step, reftype, f"{path}: REFTYPE={got.upper()}, not {reftype.upper()}")
        problem = mismatch(header, exposure)
        if problem:
            raise RefError(step, reftype, f"{path}: {problem}")
        return str(path)

    def _indexed(self) -> dict:
        if self._index is None:
            self._index = {}
            for folder in self.search_dirs:
                for p in sorted(Path(folder).rglob("*")):
                    if p.suffix not in (".fits", ".asdf", ".json") or not p.is_file():
                        continue
                    try:
                        header = read_ref_header(str(p))
                    except RefError:
                        continue
                    if header.get("REFTYPE"):
                        self._index.setdefault(str(header["REFTYPE"]).lower(), []).append((str(p), header))
            for entries in self._index.values():
                entries.sort(key=lambda e: str(e[1].get("USEAFTER", "")), reverse=True)
        return self._index


def _from_crds(reftype: str, exposure: dict, required: bool) -> str | None:
    """Best reference from the user's CRDS set-up: CRDS_SERVER_URL set and CRDS_PATH an existing cache."""
    cache = os.environ.get("CRDS_PATH")
    if not (os.environ.get("CRDS_SERVER_URL") and cache and Path(cache).is_dir()):
        return None
    try:
        import crds
    except ImportError:
        return None
    params = {k: v for k, v in exposure.items() if isinstance(v, (str, int, float))}
    try:
        found = crds.getreferences(params, reftypes=[reftype], observatory="jwst")
    except (Exception, SystemExit) as exc:  # crds reports failures in many ways, SystemExit included
        if required:
            raise RefError("crds", reftype, f"CRDS could not provide it ({exc})") from None
        return None
    value = found.get(reftype)
    if value and value.upper().startswith("NOT FOUND N/A"):
        return NOT_APPLICABLE
    return value
