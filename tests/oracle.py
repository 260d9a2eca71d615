"""Run jwst 3.0.0's Spec2Pipeline fully offline, in a subprocess, as the parity oracle.

* Every reference type of every step (nested ``master_background_mos`` pipeline included) gets an
  ``override_<reftype>``: the given file, or ``"N/A"``.  The pipeline prefetches references for all
  steps before deciding which to skip, so anything less would ask CRDS.
* ``STPIPE_DISABLE_CRDS_STEPPARS`` disables ``pars-*`` lookups (steps use code defaults plus ``steps``).
* ``crds_client.get_context_used`` returns a constant and ``crds_client._get_refpaths`` raises, so
  nothing can reach the network.

A subprocess keeps jwst (and its memory) out of the test process.  ``cached_run_jwst`` reuses a run
keyed by the input bytes, reference bytes, step parameters, skipped steps and jwst version.

    python tests/oracle.py SPEC.json      # the child side (SPEC written by run_jwst)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PRODUCTS = ("calints", "x1dints")
OFFLINE_ENV = {"STPIPE_DISABLE_CRDS_STEPPARS": "True", "CRDS_SERVER_URL": "https://crds-offline.invalid",
               "CRDS_PATH": str(Path(tempfile.gettempdir()) / "crds_cache_offline_unused"),
               "CRDS_CONTEXT": "jwst_offline_synthetic.pmap"}


class JwstFailed(RuntimeError):
    """The jwst subprocess failed or wrote no product."""


def run_jwst(rateints_path, refs: dict, outdir, steps: dict | None = None, skip=(), timeout=3600,
             python=sys.executable) -> dict[str, Path]:
    """Run Spec2Pipeline on one ``_rateints`` file with ``refs`` ({reftype: path}) into ``outdir``.

    ``steps``: extra step parameters, e.g. ``{"extract_1d": {"apply_apcorr": False}}``; ``skip``:
    step names to skip.  Returns {"calints": path, "x1dints": path} (products that were written;
    ``outdir/run.log`` and ``outdir/timing.json`` hold the log and per-step wall times).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    spec = {"input": str(Path(rateints_path).resolve()), "outdir": str(outdir.resolve()),
            "refs": {k: str(Path(v).resolve()) for k, v in refs.items()},
            "steps": steps or {}, "skip": sorted(skip)}
    spec_path = outdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    env = {**os.environ, **OFFLINE_ENV}
    proc = subprocess.run([python, str(Path(__file__).resolve()), str(spec_path)], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    stem = Path(rateints_path).name.removesuffix(".fits").removesuffix("_rateints")
    products = {p: outdir / f"{stem}_{p}.fits" for p in PRODUCTS}
    products = {p: f for p, f in products.items() if f.exists()}
    if proc.returncode != 0 or not products:
        raise JwstFailed(f"jwst Spec2Pipeline failed (rc={proc.returncode}) on {rateints_path}:\n"
                         f"{proc.stderr[-4000:]}")
    return products


def _digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def cache_key(rateints_path, refs: dict, steps=None, skip=()) -> str:
    """Hash of everything that determines the jwst products."""
    from importlib.metadata import version
    key = {"input": _digest(rateints_path), "name": Path(rateints_path).name,
           "refs": {k: _digest(v) for k, v in sorted(refs.items())},
           "steps": steps or {}, "skip": sorted(skip), "jwst": version("jwst")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def cached_run_jwst(rateints_path, refs: dict, cache_dir, steps=None, skip=()) -> dict[str, Path]:
    """``run_jwst`` into ``cache_dir/<key>``, reusing a previous run with the same key.  A file lock
    makes concurrent callers (pytest-xdist) wait for one run instead of starting their own."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(rateints_path, refs, steps, skip)
    final = cache_dir / key
    with open(cache_dir / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "products.json").exists():
            return {k: final / v for k, v in json.loads((final / "products.json").read_text()).items()}
        work = cache_dir / f"{key}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        products = run_jwst(rateints_path, refs, work, steps=steps, skip=skip)
        (work / "products.json").write_text(json.dumps({k: p.name for k, p in products.items()}))
        work.replace(final)
        return {k: final / p.name for k, p in products.items()}


# ---------------------------------------------------------------------------------------------
# Child side: runs inside the subprocess, imports jwst.
# ---------------------------------------------------------------------------------------------
def _patch_crds():
    from stpipe import crds_client

    def no_bestrefs(data_dict, reference_file_types, observatory):
        if not reference_file_types:
            return {}
        raise RuntimeError(f"offline oracle: CRDS lookup requested for {list(reference_file_types)}")

    crds_client._get_refpaths = no_bestrefs
    crds_client.get_context_used = lambda observatory: os.environ["CRDS_CONTEXT"]


def _step_overrides(pipe_cls, refs):
    """override_<reftype> = file or N/A for every step, recursing into nested pipelines."""
    steps = {}
    for name, cls in pipe_cls.step_defs.items():
        if hasattr(cls, "step_defs"):
            steps[name] = {"steps": _step_overrides(cls, refs)}
        else:
            steps[name] = {f"override_{t}": refs.get(t, "N/A") for t in cls.reference_file_types}
    return steps


def _child(spec_path):
    import logging
    import resource
    import time
    from collections import defaultdict

    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["outdir"])
    handler = logging.FileHandler(out / "run.log", mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)

    _patch_crds()
    import jwst
    from jwst.pipeline import Spec2Pipeline
    from stpipe.step import Step

    walls = defaultdict(float)
    orig_run = Step.run

    def timed_run(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return orig_run(self, *args, **kwargs)
        finally:
            walls[self.name or type(self).__name__] += time.perf_counter() - t0

    Step.run = timed_run
    steps = _step_overrides(Spec2Pipeline, spec["refs"])
    for name, params in spec["steps"].items():
        steps.setdefault(name, {}).update(params)
    for name in spec["skip"]:
        steps.setdefault(name, {})["skip"] = True
    t0 = time.perf_counter()
    Spec2Pipeline.call(spec["input"], output_dir=str(out), save_results=True, steps=steps)
    timing = {"jwst": jwst.__version__, "pipeline_wall_s": time.perf_counter() - t0,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "steps_wall_s": dict(walls)}
    (out / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")


if __name__ == "__main__":
    for k, v in OFFLINE_ENV.items():       # before jwst/stpipe/crds are imported
        os.environ.setdefault(k, v)
    _child(sys.argv[1])
