"""Header keywords carried in ``Dataset.attrs``: read one, or return a Dataset with some set."""

from __future__ import annotations

from functools import lru_cache

import xarray as xr


def keyword(ds: xr.Dataset, name: str, default=None):
    """A keyword from the SCI header, else the PRIMARY header, else ``default``."""
    for header in ("sci", "primary"):
        value = ds.attrs.get(header, {}).get(name)
        if value is not None:
            return value
    return default


def exposure_keywords(ds: xr.Dataset) -> dict:
    """PRIMARY and SCI keywords merged (SCI wins), as reference selection and mode lookup use them."""
    return {**ds.attrs.get("primary", {}), **ds.attrs.get("sci", {})}


def with_keywords(ds: xr.Dataset, primary: dict | None = None, sci: dict | None = None, **attrs) -> xr.Dataset:
    """A shallow copy of ``ds`` whose PRIMARY/SCI keyword dicts are updated (originals untouched)."""
    new = dict(ds.attrs)
    new["primary"] = {**ds.attrs.get("primary", {}), **(primary or {})}
    new["sci"] = {**ds.attrs.get("sci", {}), **(sci or {})}
    new.update(attrs)
    out = ds.copy(deep=False)
    out.attrs = new
    return out


@lru_cache(maxsize=1)
def _core_meta_schema() -> dict:
    from stdatamodels.jwst import datamodels

    return datamodels.JwstDataModel().schema["properties"]["meta"]["properties"]


# Steps whose status attribute is not named as the step.
_CAL_STEP_ATTRIBUTE = {"imprint_subtract": "imprint", "master_background_mos": "master_background",
                       "resample_spec": "resample"}


def cal_step_keyword(step: str) -> str | None:
    """The FITS keyword (S_xxxxx) jwst records a step's status in."""
    node = _core_meta_schema()["cal_step"]["properties"].get(_CAL_STEP_ATTRIBUTE.get(step, step))
    return node.get("fits_keyword") if node else None


def ref_file_keyword(reftype: str) -> str | None:
    """The FITS keyword (R_xxxxx) jwst records a reference file's name in."""
    node = _core_meta_schema()["ref_file"]["properties"].get(reftype)
    return node["properties"]["name"].get("fits_keyword") if node else None
