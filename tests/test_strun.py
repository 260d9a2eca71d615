"""jwst's strun spellings on ``spec2x run``: the same products as spec2x's own spelling, and one clear
line for an unknown step, reference type or parameter."""

import numpy as np
import pytest
from astropy.io import fits

from spec2x import cli, strun
from spec2x.errors import Spec2xError

STEP_OF_REFTYPE = {"specwcs": "assign_wcs", "distortion": "assign_wcs", "flat": "flat_field", "photom": "photom",
                   "area": "photom", "extract1d": "extract_1d", "apcorr": "extract_1d"}


def _run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _same_products(a_dir, b_dir):
    """Every product in ``a_dir`` equals its namesake in ``b_dir`` (headers and data; DATE aside)."""
    names = sorted(p.name for p in a_dir.iterdir())
    assert names == sorted(p.name for p in b_dir.iterdir()) and len(names) == 2
    for name in names:
        with fits.open(a_dir / name) as a, fits.open(b_dir / name) as b:
            date = a[0].header["DATE"].encode()
            other_date = b[0].header["DATE"].encode()
            assert [h.name for h in a] == [h.name for h in b]
            for x, y in zip(a, b):
                assert [c.image for c in x.header.cards if c.keyword != "DATE"] == \
                       [c.image for c in y.header.cards if c.keyword != "DATE"], (name, x.name)
                ours, theirs = np.ascontiguousarray(x.data).tobytes(), np.ascontiguousarray(y.data).tobytes()
                if x.name == "ASDF":
                    ours, theirs = ours.replace(date, b"-" * len(date)), theirs.replace(other_date, b"-" * len(date))
                assert ours == theirs, (name, x.name)


def test_strun_command_line_gives_the_spec2x_products(lrs_synthetic, tmp_path, capsys):
    """skip + override_* + --output_dir (and strun's leading pipeline name) == --skip + --ref + -o."""
    refs = lrs_synthetic.refs
    jwst_style = ["run", "calwebb_spec2", lrs_synthetic.rateints, "--output_dir", tmp_path / "strun",
                  "--steps.flat_field.skip=true", "--steps.photom.skip", "false"]
    for reftype, path in refs.items():
        jwst_style.append(f"--steps.{STEP_OF_REFTYPE[reftype]}.override_{reftype}={path}")
    ours = ["run", lrs_synthetic.rateints, "-o", tmp_path / "spec2x", "--skip", "flat_field",
            *[arg for k, v in refs.items() for arg in ("--ref", f"{k}={v}")]]
    assert _run(jwst_style, capsys)[0] == 0
    assert _run(ours, capsys)[0] == 0
    _same_products(tmp_path / "strun", tmp_path / "spec2x")
    with fits.open(next((tmp_path / "strun").glob("*_calints.fits"))) as hdul:
        assert hdul[0].header["S_FLAT"] == "SKIPPED" and hdul[0].header["S_PHOTOM"] == "COMPLETE"


def test_step_parameter_reaches_the_step(lrs_synthetic, tmp_path, capsys):
    argv = ["run", lrs_synthetic.rateints, "--output_dir=" + str(tmp_path), "--steps.srctype.source_type=extended",
            *[arg for k, v in lrs_synthetic.refs.items() for arg in ("--ref", f"{k}={v}")]]
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    with fits.open(next(tmp_path.glob("*_calints.fits"))) as hdul:
        assert hdul["SCI"].header["SRCTYPE"] == "EXTENDED"


@pytest.mark.parametrize("option, message", (
    ("--steps.flat_fielding.skip=true", "unknown step 'flat_fielding'; steps are: assign_wcs, badpix_selfcal"),
    ("--steps.srctype.sourcetype=POINT", "step srctype has no parameter 'sourcetype' (valid: skip, source_type)"),
    ("--steps.flat_field.override_flats=f.fits", "step flat_field has no reference type 'flats' "
                                                 "(its types: flat, fflat, sflat, dflat)"),
    ("--steps.flat_field.skip=maybe", "expected true or false"),
    ("--steps.pixel_replace.skip=false", "jwst leaves pixel_replace off by default and spec2x does not have it"),
    ("--steps.flat_field=true", "expected --steps.STEP.NAME=VALUE"),
))
def test_strun_mistakes_are_one_line(lrs_synthetic, tmp_path, capsys, option, message):
    code, _, err = _run(["run", lrs_synthetic.rateints, "-o", tmp_path / "o", option], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_steps_options_belong_to_run(lrs_synthetic, capsys):
    code, _, err = _run(["plan", lrs_synthetic.rateints, "--steps.flat_field.skip=true"], capsys)
    assert code == 2 and "--steps.* options belong to spec2x run" in err


def test_split_takes_values_after_equals_or_as_next_argument():
    rest, options = strun.split(["run", "a.fits", "--steps.x.skip", "true", "-o", "out", "--steps.y.n=-1"])
    assert rest == ["run", "a.fits", "-o", "out"]
    assert options == [("--steps.x.skip", "true"), ("--steps.y.n", "-1")]
    with pytest.raises(Spec2xError, match="needs a value"):
        strun.split(["--steps.x.skip", "--overwrite"])


@pytest.mark.parametrize("value, default, expected", (
    ("true", False, True), ("False", True, False), ("7", 3, 7), ("2.5", 1.0, 2.5), ("None", 3, None),
    ("POINT", None, "POINT"), ("[1, 2]", None, [1, 2]), ("text", "x", "text"), ("true", None, True),
))
def test_values_take_the_type_of_the_default(value, default, expected):
    assert strun.convert("--steps.s.p", value, default) == expected
