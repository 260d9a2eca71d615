"""jwst's ``strun`` spellings on ``spec2x run``, so command lines carry over:

    --steps.STEP.skip=true               ->  --skip STEP
    --steps.STEP.override_REFTYPE=PATH   ->  --ref REFTYPE=PATH
    --steps.STEP.PARAM=VALUE             ->  calibrate(params={STEP: {PARAM: VALUE}})
    --output_dir DIR                     ->  -o DIR (an argparse alias in ``spec2x.cli``)
    strun calwebb_spec2 FILE ...         ->  spec2x run FILE ... (a leading pipeline name is dropped)

Values may follow ``=`` or come as the next argument, as strun allows.  An unknown step, reference type
or parameter is a one-line error listing the valid ones; parameters are whatever each step module's
``PARAMETERS`` declares, with values converted to the type of the default.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from spec2x import modes
from spec2x.errors import Spec2xError

PREFIX = "--steps."
PIPELINE_NAMES = ("calwebb_spec2", "jwst.pipeline.Spec2Pipeline", "Spec2Pipeline")
TRUE, FALSE = ("true", "yes", "1", "t", "y"), ("false", "no", "0", "f", "n")


@dataclass
class StepOptions:
    """What the ``--steps.*`` options of one command line ask for."""

    skip: list = field(default_factory=list)
    refs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


def split(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(the other arguments, [(option, value), ...] of the ``--steps.*`` options) of ``argv``."""
    rest, options, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith(PREFIX):
            rest.append(arg)
        elif "=" in arg:
            options.append(tuple(arg.split("=", 1)))
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            options.append((arg, argv[i + 1]))
            i += 1
        else:
            raise Spec2xError(f"{arg}: needs a value ({arg}=VALUE)")
        i += 1
    return rest, options


def inputs(paths: list[str]) -> list[str]:
    """The input files of ``strun calwebb_spec2 FILE...``: a leading pipeline name is dropped."""
    if len(paths) > 1 and paths[0] in PIPELINE_NAMES and not Path(paths[0]).exists():
        return paths[1:]
    return paths


def step_options(options: list[tuple[str, str]]) -> StepOptions:
    """Skips, references and parameters from ``(--steps.STEP.NAME, VALUE)`` pairs."""
    from spec2x.pipeline import step_defaults

    out = StepOptions()
    for option, value in options:
        step, name = _step_and_name(option)
        if name == "skip":
            if _boolean(option, value):
                out.skip.append(step)
            elif step in modes.OFF_BY_DEFAULT:
                raise Spec2xError(f"{option}={value}: jwst leaves {step} off by default and spec2x does not have it")
        elif name.startswith("override_"):
            reftype = name.removeprefix("override_")
            known = modes.STEP_REFTYPES.get(step, ())
            if reftype not in known:
                raise Spec2xError(f"{option}: step {step} has no reference type {reftype!r} "
                                  f"(its types: {', '.join(known) or 'none'})")
            _set_once(out.refs, reftype, value, option)
        else:
            defaults = step_defaults(step)
            if name not in defaults:
                valid = ", ".join(["skip", *(f"override_{t}" for t in modes.STEP_REFTYPES.get(step, ())),
                                   *sorted(defaults)])
                raise Spec2xError(f"{option}: step {step} has no parameter {name!r} (valid: {valid})")
            out.params.setdefault(step, {})[name] = convert(option, value, defaults[name])
    return out


def _step_and_name(option: str) -> tuple[str, str]:
    parts = option.removeprefix(PREFIX).split(".")
    if len(parts) != 2 or not all(parts):
        raise Spec2xError(f"{option}: expected --steps.STEP.NAME=VALUE")
    step, name = parts
    if step not in modes.ALL_STEPS:
        raise Spec2xError(f"{option}: unknown step {step!r}; steps are: {', '.join(modes.ALL_STEPS)}")
    return step, name


def _set_once(refs: dict, reftype: str, path: str, option: str):
    if refs.get(reftype, path) != path:
        raise Spec2xError(f"{option}: reference type {reftype} is given twice ({refs[reftype]}, {path})")
    refs[reftype] = path


def _boolean(option: str, value: str) -> bool:
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise Spec2xError(f"{option}={value}: expected true or false")


def convert(option: str, value: str, default):
    """``value`` as the type of the parameter's ``default`` (None: a Python literal, else the text)."""
    text = value.strip()
    if text.lower() in ("none", "null"):
        return None
    if isinstance(default, bool):
        return _boolean(option, text)
    if isinstance(default, (int, float)):
        try:
            return type(default)(text)
        except ValueError:
            raise Spec2xError(f"{option}={value}: expected a {type(default).__name__}") from None
    if isinstance(default, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False}.get(text.lower(), text)
