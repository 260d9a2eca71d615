"""``spec2x run | plan | export | demo | plot``: a thin shell over the Python API.

``spec2x run`` also takes jwst's ``strun`` spellings (``--steps.STEP.skip=true``,
``--steps.STEP.override_REFTYPE=PATH``, ``--steps.STEP.PARAM=VALUE``, ``--output_dir``; see ``spec2x.strun``).
User mistakes (bad input, missing reference, unsupported mode, unwritable output) exit with status 2
and one line naming the file and the problem; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from spec2x import strun
from spec2x.errors import Spec2xError
from spec2x.synthetic import DEMOS, demo_case

EXIT_USER_ERROR = 2


def _parse_refs(values) -> dict:
    refs = {}
    for item in values or ():
        if "=" not in item:
            raise Spec2xError(f"--ref {item}: expected REFTYPE=PATH (or REFTYPE=N/A)")
        reftype, path = item.split("=", 1)
        refs[reftype.strip().lower()] = path.strip()
    return refs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spec2x", description="JWST stage-2 spectroscopy, out of core.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="calibrate exposures and write their products")
    run.add_argument("inputs", nargs="+", help="_rate/_rateints files, the -segNNN files of one exposure, or an ASN")
    run.add_argument("-o", "--output-dir", "--output_dir", required=True, type=Path)
    run.add_argument("--ref", action="append", metavar="REFTYPE=PATH", help="reference file (repeatable; N/A skips)")
    run.add_argument("--refs-dir", action="append", default=[], type=Path, help="folder of reference files")
    run.add_argument("--skip", action="append", default=[], metavar="STEP", help="leave a step out (repeatable)")
    run.add_argument("--chunk-ints", type=int, default=None, help="integrations per chunk")
    run.add_argument("--scheduler", default="threads", help="threads | processes | local:N | tcp://HOST:PORT")
    run.add_argument("--format", choices=("fits", "zarr"), default="fits")
    run.add_argument("--overwrite", action="store_true", help="replace existing products")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run from its finished chunks")
    run.add_argument("--save-bsub", "--save_bsub", action="store_true", help="also write _bsub/_bsubints (background modes)")
    run.add_argument("--save-wfss-esec", "--save_wfss_esec", action="store_true", help="also write WFSS _esec images")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.epilog = ("jwst strun spellings are accepted too: --steps.STEP.skip=true, "
                  "--steps.STEP.override_REFTYPE=PATH, --steps.STEP.PARAM=VALUE, --output_dir DIR")

    plan = sub.add_parser("plan", help="print the steps that will run for an exposure")
    plan.add_argument("inputs", nargs="+")
    plan.add_argument("--ref", action="append", metavar="REFTYPE=PATH",
                      help="reference file (repeatable): steps that need an optional one (SOSS bkg) run only with it")
    plan.add_argument("--refs-dir", action="append", default=[], type=Path, help="folder of reference files")

    export = sub.add_parser("export", help="write FITS products from finished spec2x zarr stores")
    export.add_argument("stores", nargs="+", type=Path, help="_calints.zarr/_x1dints.zarr stores")
    export.add_argument("-o", "--output-dir", required=True, type=Path)
    export.add_argument("--overwrite", action="store_true", help="replace existing products")

    demo = sub.add_parser("demo", help="make a built-in synthetic exposure with its reference files and run it")
    demo.add_argument("-o", "--output-dir", type=Path, default=Path("spec2x-demo"))
    demo.add_argument("--mode", choices=sorted(DEMOS), default="lrs", help="which TSO mode (default: lrs)")
    demo.add_argument("--nints", type=int, default=None, help="number of integrations (default: the mode's)")
    plot = sub.add_parser("plot", help="quick-look figure: white-light curve, light-curve map, median spectrum, "
                                        "a calibrated frame with the extraction aperture")
    plot.add_argument("products", nargs="+", type=Path,
                      help="_x1dints/_calints files or zarr stores (the products beside them come along), or a run's folder")
    plot.add_argument("-o", "--output", required=True, type=Path, help="image file: .png, .pdf or .svg")
    plot.add_argument("--panels", default=None, help="comma-separated: white,map,spectrum,frame (default: all "
                                                     "the products allow)")
    plot.add_argument("--integration", type=int, default=0, help="integration of the frame panel (0-based)")
    plot.add_argument("--dpi", type=int, default=110)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="spec2x: %(levelname)s: %(message)s")
    try:
        argv, step_args = strun.split(argv)
        args = _parser().parse_args(argv)
        if step_args and args.command != "run":
            raise Spec2xError(f"{step_args[0][0]}: --steps.* options belong to spec2x run")
        args.step_args = step_args
        return {"run": _run, "plan": _plan, "export": _export, "demo": _demo, "plot": _plot}[args.command](args)
    except Spec2xError as exc:
        print(f"spec2x: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("spec2x: interrupted; no product was left at a final name", file=sys.stderr)
        return 130


def _inputs(values):
    return values[0] if len(values) == 1 else values


def _run(args) -> int:
    from spec2x import pipeline, scheduling
    from spec2x.refs import RefSet

    if args.chunk_ints is not None and args.chunk_ints < 1:
        raise Spec2xError(f"--chunk-ints {args.chunk_ints}: must be at least 1")
    args.inputs = strun.inputs(args.inputs)
    scheduling.check(args.scheduler)  # a bad or unreachable --scheduler fails before any work
    if scheduling.is_remote(args.scheduler):  # workers elsewhere open these paths from their own folders
        args.inputs = [str(Path(p).absolute()) for p in args.inputs]
        args.output_dir = args.output_dir.absolute()
    steps = strun.step_options(args.step_args)
    explicit = _parse_refs(args.ref)
    for reftype, path in steps.refs.items():
        if explicit.get(reftype, path) != path:
            raise Spec2xError(f"reference type {reftype} is given twice ({explicit[reftype]}, {path})")
        explicit[reftype] = path
    refs = RefSet(explicit=explicit, search_dirs=[str(d) for d in args.refs_dir])
    for folder in args.refs_dir:
        if not folder.is_dir():
            raise Spec2xError(f"{folder}: --refs-dir is not a folder")
    started = time.perf_counter()
    result = pipeline.calibrate(_inputs(args.inputs), refs=refs, skip=[*args.skip, *steps.skip],
                                chunk_ints=args.chunk_ints, params=steps.params)
    nints = result.cube.sizes["integration"]
    from spec2x import products

    with scheduling.scheduler(args.scheduler) as client:
        run = scheduling.runner(client, show=not args.quiet and sys.stderr.isatty(), total=nints)
        paths = products.write(result, args.output_dir, fmt=args.format, overwrite=args.overwrite,
                               resume=args.resume, run=run)
    wall = time.perf_counter() - started
    for path in paths:
        print(path)
    print(f"spec2x: {nints} integrations in {wall:.1f} s ({nints / wall:.1f} integrations/s)", file=sys.stderr)
    return 0


def _plan(args) -> int:
    from spec2x.exposure import open_exposure
    from spec2x.meta import exposure_keywords
    from spec2x.modes import plan
    from spec2x.pipeline import without_absent_references
    from spec2x.refs import RefSet

    ds = open_exposure(_inputs(args.inputs))
    keywords = exposure_keywords(ds)
    refs = RefSet(explicit=_parse_refs(args.ref), search_dirs=[str(d) for d in args.refs_dir])
    print(without_absent_references(plan(keywords, source=ds.attrs["filename"]), refs, keywords).describe())
    return 0


def _export(args) -> int:
    from spec2x.products.export import export

    for path in export(args.stores, args.output_dir, overwrite=args.overwrite):
        print(path)
    return 0


def _plot(args) -> int:
    try:
        import matplotlib
    except ImportError:
        raise Spec2xError("spec2x plot needs matplotlib: pip install 'spec2x[plot]'") from None
    matplotlib.use("Agg")  # the figure is only written: no display needed
    from spec2x import plot

    panels = [p.strip() for p in args.panels.split(",") if p.strip()] if args.panels else None
    print(plot.save(args.products, args.output, panels=panels, integration=args.integration, dpi=args.dpi))
    return 0


def _demo(args) -> int:
    case = demo_case(args.output_dir / "input", args.mode, args.nints)
    refs = [f"{k}={v}" for k, v in case["refs"].items()]
    print(f"demo exposure: {case['rateints'][0]} ({case['nints']} integrations)")
    argv = ["run", *map(str, case["rateints"]), "-o", str(args.output_dir / "products"), "--overwrite"]
    for ref in refs:
        argv += ["--ref", ref]
    for step, values in case.get("params", {}).items():  # e.g. SOSS: the box extraction
        argv += [f"--steps.{step}.{name}={value}" for name, value in values.items()]
    return main(argv)


if __name__ == "__main__":
    sys.exit(main())
