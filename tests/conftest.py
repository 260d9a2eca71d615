"""Shared fixtures: a synthetic MIRI LRS slitless case and the offline jwst oracle run on it.

``SPEC2X_JWST_CACHE=DIR`` keeps jwst runs between pytest sessions (keyed by input/ref bytes,
parameters and jwst version); by default they live in the session's tmp dir.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from oracle import cached_run_jwst

from spec2x.synthetic import make_miri_lrs_slitless

LRS_NINTS, LRS_SEED = 11, 3


@dataclass
class LrsCase:
    """A synthetic case on disk (and, for ``lrs_case``, jwst's products for it)."""

    dir: Path
    rateints: Path
    refs: dict
    info: dict
    jwst: dict = field(default_factory=dict)


@pytest.fixture(scope="session")
def lrs_synthetic(tmp_path_factory) -> LrsCase:
    """Synthetic MIRI LRS slitless exposure (nints=11, seed=3) and its 7 refs; no jwst."""
    d = tmp_path_factory.mktemp("lrs_case")
    info = make_miri_lrs_slitless(d, nints=LRS_NINTS, seed=LRS_SEED)
    return LrsCase(dir=d, rateints=info["rateints"][0], refs=info["refs"], info=info)


@pytest.fixture(scope="session")
def jwst_cache(tmp_path_factory) -> Path:
    env = os.environ.get("SPEC2X_JWST_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("jwst_cache")


@pytest.fixture(scope="session")
def jwst_oracle(jwst_cache):
    """``run(rateints, refs, steps=None, skip=()) -> {"calints": Path, "x1dints": Path}``, cached."""
    if importlib.util.find_spec("jwst") is None:
        pytest.skip("jwst is not installed (pip install -e .[test])")
    return functools.partial(cached_run_jwst, cache_dir=jwst_cache)


@pytest.fixture(scope="session")
def lrs_case(lrs_synthetic, jwst_oracle) -> LrsCase:
    """``lrs_synthetic`` plus jwst 3.0.0 Spec2Pipeline products (default parameters), run once."""
    c = lrs_synthetic
    return LrsCase(dir=c.dir, rateints=c.rateints, refs=c.refs, info=c.info,
                   jwst=jwst_oracle(c.rateints, c.refs))
