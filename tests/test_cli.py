"""The command line: products, plan, demo, and one clear line for each user mistake."""

import shutil

import pytest
from astropy.io import fits

from parity import ref_args, run_cli


def _final_products(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_run_writes_products_and_summary(lrs_synthetic, tmp_path, capsys):
    code, out, err = run_cli(["run", str(lrs_synthetic.rateints), "-o", str(tmp_path), *ref_args(lrs_synthetic.refs)],
                          capsys)
    assert code == 0
    assert _leftovers(tmp_path) == [
        "jw09999001001_02101_00001-seg001_mirimage_calints.fits",
        "jw09999001001_02101_00001-seg001_mirimage_x1dints.fits"]
    assert "calints.fits" in out and "integrations/s" in err


def test_existing_products_are_kept_without_overwrite(lrs_synthetic, tmp_path, capsys):
    args = ["run", str(lrs_synthetic.rateints), "-o", str(tmp_path), *ref_args(lrs_synthetic.refs)]
    assert run_cli(args, capsys)[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    code, _, err = run_cli(args, capsys)
    assert code != 0 and "already exists (use --overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert run_cli([*args, "--overwrite"], capsys)[0] == 0


def test_plan_prints_the_steps(lrs_synthetic, capsys):
    code, out, _ = run_cli(["plan", str(lrs_synthetic.rateints)], capsys)
    assert code == 0
    assert "1. assign_wcs" in out and "5. extract_1d" in out and "pixel_replace: off by default" in out


def _not_fits(tmp_path, case):
    path = tmp_path / "x_rateints.fits"
    path.write_text("this is not FITS\n" * 100)
    return path, "not a readable FITS file"


def _truncated(tmp_path, case):
    path = tmp_path / "t_rateints.fits"
    data = case.rateints.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "truncated"


def _shapes_disagree(tmp_path, case):
    path = tmp_path / "s_rateints.fits"
    with fits.open(case.rateints) as hdul:
        hdul["ERR"].data = hdul["ERR"].data[:, :10, :]
        hdul.writeto(path)
    return path, "extension shapes disagree"


def _unsupported_exp_type(tmp_path, case):
    path = tmp_path / "u_rateints.fits"
    shutil.copy(case.rateints, path)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["EXP_TYPE"] = "MIR_IMAGE"
    return path, "EXP_TYPE=MIR_IMAGE is not a stage-2 spectroscopic mode"


@pytest.mark.parametrize("make_bad", (_not_fits, _truncated, _shapes_disagree, _unsupported_exp_type))
def test_bad_input_is_one_clear_line_and_no_product(lrs_synthetic, tmp_path, capsys, make_bad):
    bad, problem = make_bad(tmp_path, lrs_synthetic)
    out = tmp_path / "out"
    code, _, err = run_cli(["run", str(bad), "-o", str(out), *ref_args(lrs_synthetic.refs)], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert str(bad) in lines[0] and problem in lines[0]
    assert _final_products(out) == []


def test_missing_reference_names_step_and_reftype(lrs_synthetic, tmp_path, capsys):
    refs = {k: v for k, v in lrs_synthetic.refs.items() if k != "flat"}
    code, _, err = run_cli(["run", str(lrs_synthetic.rateints), "-o", str(tmp_path / "o"), *ref_args(refs)], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "flat_field: reference 'flat'" in err
    assert _leftovers(tmp_path / "o") == []


def test_reference_for_another_instrument(lrs_synthetic, tmp_path, capsys):
    flat = tmp_path / "nircam_flat.fits"
    shutil.copy(lrs_synthetic.refs["flat"], flat)
    with fits.open(flat, mode="update") as hdul:
        hdul[0].header["INSTRUME"] = "NIRCAM"
    refs = {**lrs_synthetic.refs, "flat": flat}
    code, _, err = run_cli(["run", str(lrs_synthetic.rateints), "-o", str(tmp_path / "o"), *ref_args(refs)], capsys)
    assert code != 0 and str(flat) in err and "INSTRUME=NIRCAM" in err


def test_unwritable_output_dir(lrs_synthetic, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = blocker / "out"
    code, _, err = run_cli(["run", str(lrs_synthetic.rateints), "-o", str(out), *ref_args(lrs_synthetic.refs)], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1 and str(out) in err
    assert not out.exists()


def test_failure_mid_write_leaves_nothing(lrs_synthetic, tmp_path, monkeypatch):
    """A crash while computing removes the temporary files and leaves no product at a final name."""
    import spec2x
    from spec2x.steps import extract_1d

    real = extract_1d.apply

    def broken(ds, prepared):
        if not hasattr(ds["sci"].data, "dask") and 5 in ds["integration"].values:  # the chunk holding int 5
            raise RuntimeError("boom")
        return real(ds, prepared)

    monkeypatch.setattr(extract_1d, "apply", broken)
    with pytest.raises(RuntimeError, match="boom"):
        spec2x.run(lrs_synthetic.rateints, tmp_path, refs=lrs_synthetic.refs, chunk_ints=3)
    assert _leftovers(tmp_path) == []


def test_demo_runs(tmp_path, capsys):
    code, out, _ = run_cli(["demo", "-o", str(tmp_path), "--nints", "5"], capsys)
    assert code == 0
    assert (tmp_path / "products").is_dir() and len(_final_products(tmp_path / "products")) == 2
