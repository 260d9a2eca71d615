"""Header keywords carried in ``Dataset.attrs``: read one, or return a Dataset with some set."""

from __future__ import annotations

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
