"""The Python front door: ``calibrate`` builds the lazy graph of an exposure, ``run`` writes its products."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

import spec2x
from spec2x import modes
from spec2x.errors import NotImplementedForMode, Spec2xError
from spec2x.exposure import open_exposure
from spec2x.meta import cal_step_keyword, exposure_keywords, ref_file_keyword, with_keywords
from spec2x.refs import RefSet, ref_keyword_value

REFERENCE_NA = "a required reference file is N/A"


@dataclass(frozen=True)
class Recipe:
    """How to calibrate any block of an exposure's integrations: the steps to run, their references and
    what each step prepared once for the exposure (WCS, flat, conversion maps, extraction plan)."""

    plan: modes.Plan
    refs: dict
    prepared: dict
    params: dict

    def run(self, ds: xr.Dataset, record: bool = True) -> tuple[xr.Dataset, xr.Dataset | None]:
        """(cube, spectra) of ``ds``: lazy for a dask-backed Dataset, computed now for a numpy one;
        ``record=False`` leaves the S_*/R_* keywords out (they come from the lazy result)."""
        return _chain(ds, self.plan, self.refs, self.prepared, self.params, record)

    def block(self, source, start: int, stop: int) -> tuple[xr.Dataset, xr.Dataset | None]:
        """Integrations ``[start, stop)`` read from ``source`` and calibrated now (one chunk task): the
        arrays only, so a fresh worker never loads the datamodel schemas the keywords come from."""
        return self.run(source.read(start, stop), record=False)


@dataclass
class Calibrated:
    """Lazy results of one exposure: the calibrated cube, its extracted spectra, the plan that made them,
    and the recipe that calibrates any block of integrations on its own (what product writers use)."""

    cube: xr.Dataset
    spectra: xr.Dataset | None
    plan: modes.Plan
    recipe: Recipe


def _refset(refs) -> RefSet:
    if isinstance(refs, RefSet):
        return refs
    return RefSet(explicit={k.lower(): str(v) for k, v in (refs or {}).items()})


def calibrate(exposure, refs=None, skip=(), chunk_ints: int | None = None, members: dict | None = None,
              params: dict | None = None) -> Calibrated:
    """Calibrate an exposure lazily, as jwst's Spec2Pipeline would.

    ``exposure`` is a path, a list of segment paths, an ASN path, or a Dataset from ``open_exposure``;
    ``refs`` maps reftype to path (or ``"N/A"``) or is a ``RefSet``; ``skip`` names steps to leave out;
    ``params`` = {step: {name: value}} sets step parameters (each step's ``PARAMETERS`` lists its own,
    with jwst's defaults).  Nothing is computed: slice the returned Datasets and ``.compute()`` what you need, or ``run`` to
    write products.
    """
    ds = exposure if isinstance(exposure, xr.Dataset) else open_exposure(exposure, chunk_ints=chunk_ints)
    keywords = exposure_keywords(ds)
    source = (ds.attrs.get("paths") or [ds.attrs.get("filename", "exposure")])[0]
    plan = modes.plan(keywords, members=members, skip=tuple(skip), source=source)
    missing = [s for s in plan.run if s not in plan.mode.implemented]
    if missing:
        raise NotImplementedForMode(f"{source}: step(s) {', '.join(missing)} not implemented yet for "
                                    f"EXP_TYPE={keywords.get('EXP_TYPE')} ({plan.mode.name})")
    refset = _refset(refs)
    chosen = {step: _resolve(refset, plan, step, keywords) for step in plan.run}
    if "assign_wcs" in plan.run and chosen["assign_wcs"] is None:  # jwst stops when it has no WCS
        raise Spec2xError(f"{source}: assign_wcs has an N/A reference; nothing can be calibrated without a WCS")
    ran = [s for s in plan.run if chosen[s] is not None]
    for step in plan.run:
        if chosen[step] is None:
            plan.skipped[step] = REFERENCE_NA
    unwritten = [s for s in ran if importlib.util.find_spec(f"spec2x.steps.{s}") is None]
    if unwritten:
        raise NotImplementedForMode(f"{source}: step {unwritten[0]} with a reference file is not implemented yet "
                                    f"for {plan.mode.name} (give {unwritten[0]}'s reference as N/A to skip it)")
    plan = modes.Plan(plan.mode, plan.tso, tuple(ran), plan.skipped)
    params = step_parameters(params or {}, source)

    prepared = {}
    cube, spectra = _chain(ds, plan, chosen, prepared, params)
    return Calibrated(cube, spectra, plan, Recipe(plan, chosen, prepared, params))


def without_absent_references(plan: modes.Plan, refs, keywords: dict) -> modes.Plan:
    """``plan`` with the optional steps (those jwst skips without a reference, e.g. SOSS bkg_subtract)
    whose reference is absent or N/A moved to the skipped steps, as a run would do (``spec2x plan``)."""
    refset = _refset(refs)
    skipped, run = dict(plan.skipped), []
    for step in plan.run:
        required = plan.mode.implemented.get(step, ((), ()))[0] if step in plan.mode.optional_steps else ()
        absent = [r for r in required if refset.resolve(step, r, keywords, required=False) is None]
        if absent:
            skipped[step] = f"{REFERENCE_NA} ({absent[0]}): jwst skips the step"
        else:
            run.append(step)
    return modes.Plan(plan.mode, plan.tso, tuple(run), skipped)


def step_parameters(given: dict, source: str = "") -> dict:
    """{step: {name: value}} with every step's defaults filled in; an unknown step or parameter is a
    user error that lists the valid ones."""
    out = {}
    for step, values in given.items():
        if step not in modes.ALL_STEPS:
            raise Spec2xError(f"{source}: unknown step {step!r}; steps are: {', '.join(modes.ALL_STEPS)}")
        known = step_defaults(step)
        unknown = sorted(set(values) - set(known))
        if unknown:
            valid = ", ".join(sorted(known)) or "none"
            raise Spec2xError(f"{source}: step {step} has no parameter {unknown[0]!r} (its parameters: {valid})")
        out[step] = {**known, **values}
    return out


def step_defaults(step: str) -> dict:
    """The parameters a step supports, with jwst's defaults ({} for a step without any or not yet written)."""
    try:
        module = importlib.import_module(f"spec2x.steps.{step}")
    except ModuleNotFoundError:
        return {}
    return dict(getattr(module, "PARAMETERS", {}))


def _chain(ds: xr.Dataset, plan: modes.Plan, refs: dict, prepared: dict, params: dict, record: bool = True):
    """Run the plan's steps on ``ds``; each step's per-exposure state is taken from ``prepared``, or
    prepared now (from the data as it stands before that step) and stored there."""
    cube, spectra = _prepare(ds, plan), None
    for step in plan.mode.steps:
        target = cube if spectra is None else spectra
        if step in plan.run:
            module = importlib.import_module(f"spec2x.steps.{step}")
            if step not in prepared:
                prepared[step] = module.prepare(target, refs[step], **params.get(step, {}))
            out = module.apply(target, prepared[step])
            if record:
                out = _record(out, plan.mode, step, refs[step])
        elif record and plan.skipped.get(step) == REFERENCE_NA:  # jwst ran it, found N/A, recorded the refs
            out = _record(target, plan.mode, step, {}, with_status=False)
        else:
            continue
        if step == "extract_1d" or spectra is not None:  # steps after extraction act on the spectra
            spectra = out
        else:
            cube = out
    if not record:
        return cube, spectra
    cube = _record_skipped(cube, plan, plan.mode.jwst_path)
    if spectra is not None:
        spectra = _record_skipped(spectra, plan, plan.mode.spectra_path())
    return cube, spectra


def _resolve(refset: RefSet, plan: modes.Plan, step: str, keywords: dict) -> dict | None:
    """reftype -> path (None = N/A) for one step; None when a required reference is N/A."""
    required, optional = plan.mode.implemented[step]
    chosen = {}
    for reftype in required:
        path = refset.resolve(step, reftype, keywords, required=step not in plan.mode.optional_steps)
        if path is None:
            return None
        chosen[reftype] = path
    for reftype in optional:
        chosen[reftype] = refset.resolve(step, reftype, keywords, required=False)
    return chosen


def _prepare(ds: xr.Dataset, plan: modes.Plan) -> xr.Dataset:
    """Pipeline-level keywords, and the SlitModel geometry jwst gives cubes it treats as one slit."""
    primary = {"CAL_VER": spec2x.__version__, "CAL_VCS": "spec2x", "ASNPOOL": "singleton", "ASNTABLE": "singleton",
               "CRDS_VER": "N/A", "CRDS_CTX": "N/A"}
    sci = {}
    if plan.mode.cal_model == "SlitModel" and "extract_2d" not in plan.run:
        get = exposure_keywords(ds).get
        sci = {"SLTSTRT1": get("SUBSTRT1"), "SLTSIZE1": get("SUBSIZE1"),
               "SLTSTRT2": get("SUBSTRT2"), "SLTSIZE2": get("SUBSIZE2")}
    extra = {}
    bunit = ds.attrs.get("sci", {}).get("BUNIT")
    if "err" not in ds.attrs and bunit is not None:  # the input ERR is in the units of SCI
        extra["err"] = {"BUNIT": bunit}
    return with_keywords(ds, primary=primary, sci=sci, **extra)


def _record(ds: xr.Dataset, mode: modes.Mode, step: str, refs: dict, with_status: bool = True) -> xr.Dataset:
    """An R_xxxxx for every reftype jwst's step asks for in this mode (N/A when unused), and, with
    ``with_status``, S_xxxxx = COMPLETE unless the step recorded its own (a step with nothing to do says SKIPPED)."""
    primary = {}
    for reftype in mode.recorded_reftypes(step):
        keyword, path = ref_file_keyword(reftype), (refs or {}).get(reftype)
        if keyword:
            primary[keyword] = ref_keyword_value(path) if path else "N/A"
    status = cal_step_keyword(step) if with_status else None
    if status:
        primary[status] = ds.attrs["primary"].get(status, "COMPLETE")
    return with_keywords(ds, primary=primary)


def _record_skipped(ds: xr.Dataset, plan: modes.Plan, path: tuple) -> xr.Dataset:
    primary = {cal_step_keyword(s): "SKIPPED" for s in path
               if s not in plan.run and cal_step_keyword(s) and cal_step_keyword(s) not in ds.attrs["primary"]}
    return with_keywords(ds, primary=primary)


def run(inputs, outdir, refs=None, skip=(), chunk_ints=None, fmt="fits", overwrite=False, resume=False,
        params=None):
    """Calibrate an exposure and write its products into ``outdir``; returns (Calibrated, [paths])."""
    from spec2x import products

    result = calibrate(inputs, refs=refs, skip=skip, chunk_ints=chunk_ints, params=params)
    paths = products.write(result, Path(outdir), fmt=fmt, overwrite=overwrite, resume=resume)
    return result, paths
