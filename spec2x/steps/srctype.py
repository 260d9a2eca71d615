"""srctype: decide whether the target is a POINT or an EXTENDED source, as jwst 3.0.0's srctype does.

For modes observing one pre-defined target the first rule that applies wins:

1. the user's ``source_type`` (where the mode allows one);
2. BKGDTARG=T (a background exposure) -> EXTENDED;
3. a time series (jwst's rule: TSOVISIT=T or a TSO EXP_TYPE, and NINTS >= 2) -> POINT;
4. SRCTYAPT (the APT choice; older files: SRCTYPE) if POINT or EXTENDED;
5. a nodded dither (PATTTYPE, or DITHOPFR for the MRS, contains NOD or POINT-SOURCE) -> POINT;
6. the mode's default.

Other TSO modes get POINT; modes that decide per slit (MOS stellarity, WFSS) are not handled here; anything
else is UNKNOWN.  The result goes to SRCTYPE in the SCI header; S_SRCTYP=COMPLETE in the primary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import xarray as xr

from spec2x.errors import NotImplementedForMode, Spec2xError
from spec2x.meta import exposure_keywords, with_keywords

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class SingleSourceMode:
    """How a one-target mode picks its source type."""

    pattern_keyword: str     # dither keyword searched for NOD / POINT-SOURCE
    default: str             # type when nothing else decides
    user_override: bool = True


SINGLE_SOURCE = {
    "MIR_LRS-FIXEDSLIT": SingleSourceMode("PATTTYPE", "POINT"),
    "MIR_LRS-SLITLESS": SingleSourceMode("PATTTYPE", "POINT"),
    "MIR_MRS": SingleSourceMode("DITHOPFR", "EXTENDED"),
    "NRC_TSGRISM": SingleSourceMode("PATTTYPE", "POINT"),
    "NIS_SOSS": SingleSourceMode("PATTTYPE", "POINT", user_override=False),
    "NRS_FIXEDSLIT": SingleSourceMode("PATTTYPE", "POINT"),
    "NRS_BRIGHTOBJ": SingleSourceMode("PATTTYPE", "POINT"),
    "NRS_IFU": SingleSourceMode("PATTTYPE", "EXTENDED"),
}
PER_SLIT = {"NRS_MSASPEC", "NIS_WFSS", "NRC_WFSS", "MIR_WFSS"}
# jwst.lib.pipe_utils.is_tso's exposure types (jwst.associations.lib.dms_base.TSO_EXP_TYPES)
TSO_EXP_TYPES = {"NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ"}
NOD_MARKERS = ("NOD", "POINT-SOURCE")
USER_TYPES = ("POINT", "EXTENDED")
PARAMETERS = {"source_type": None}  # jwst: a user override of the decision, POINT or EXTENDED


def _true(value) -> bool:
    return value is True or str(value).strip().upper() in ("T", "TRUE")


def is_tso(kw: dict) -> bool:
    """jwst's test: TSOVISIT=T or a TSO EXP_TYPE, but never with fewer than 2 integrations."""
    nints = kw.get("NINTS")
    if nints is not None and int(nints) < 2:
        return False
    return _true(kw.get("TSOVISIT")) or str(kw.get("EXP_TYPE", "")).upper() in TSO_EXP_TYPES


def decide(kw: dict, source_type: str | None = None) -> tuple[str, str]:
    """(SRCTYPE, reason) from the exposure keywords ``kw`` and an optional user choice."""
    exp_type = str(kw.get("EXP_TYPE") or "").upper()
    if not exp_type:
        raise Spec2xError("srctype: EXP_TYPE is missing")
    mode = SINGLE_SOURCE.get(exp_type)
    if mode is not None:
        user_apt = kw.get("SRCTYAPT")
        if user_apt is None:
            user_apt = kw.get("SRCTYPE")
        pattern = kw.get(mode.pattern_keyword)
        if source_type is not None:
            if not mode.user_override:
                raise Spec2xError(f"srctype: a source type cannot be set by the user for {exp_type}")
            return str(source_type).upper(), "set by the user"
        if _true(kw.get("BKGDTARG")):
            return "EXTENDED", "background target"
        if is_tso(kw):
            return "POINT", "time series"
        if user_apt in USER_TYPES:
            return user_apt, "from the APT (SRCTYAPT/SRCTYPE)"
        if pattern is not None and any(m in str(pattern) for m in NOD_MARKERS):
            return "POINT", f"nodded ({mode.pattern_keyword}={pattern})"
        return mode.default, f"default for {exp_type}"
    if exp_type in PER_SLIT:
        raise NotImplementedForMode(f"srctype: per-slit source types for {exp_type} are not implemented")
    if is_tso(kw):
        return "POINT", "time series"
    return "UNKNOWN", f"EXP_TYPE {exp_type} not applicable"


def run(ds: xr.Dataset, refs: dict, source_type: str | None = None) -> xr.Dataset:
    """Record SRCTYPE (SCI header); without SRCTYAPT, jwst copies the input SRCTYPE into it."""
    return apply(ds, prepare(ds, refs, source_type))


def apply(ds: xr.Dataset, keywords: dict) -> xr.Dataset:
    return with_keywords(ds, **keywords)


def prepare(ds: xr.Dataset, refs: dict, source_type: str | None = None) -> dict:
    """The PRIMARY and SCI keywords srctype records for this exposure."""
    kw = exposure_keywords(ds)
    value, why = decide(kw, source_type)
    log.info("srctype: SRCTYPE = %s (%s)", value, why)
    primary = {}
    exp_type = str(kw.get("EXP_TYPE")).upper()
    if exp_type in SINGLE_SOURCE and kw.get("SRCTYAPT") is None:
        log.warning("SRCTYAPT keyword not found in input; using SRCTYPE instead")
        if kw.get("SRCTYPE") is not None:
            primary["SRCTYAPT"] = kw["SRCTYPE"]
    return {"primary": primary, "sci": {"SRCTYPE": value}}
