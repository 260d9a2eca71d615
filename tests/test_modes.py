"""The step table: order, skips and mode selection from header keywords."""

import pytest

from spec2x import modes
from spec2x.errors import Spec2xError

LRS = {"EXP_TYPE": "MIR_LRS-SLITLESS", "TSOVISIT": True, "NINTS": 10}


def test_lrs_slitless_runs_jwst_steps_in_order():
    plan = modes.plan(LRS)
    assert plan.run == ("assign_wcs", "srctype", "flat_field", "photom", "extract_1d")
    assert plan.tso
    assert plan.skipped["pixel_replace"].startswith("off by default")
    assert set(plan.run) | set(plan.skipped) == set(modes.ALL_STEPS)


def test_user_skip_is_reported():
    plan = modes.plan(LRS, skip=("flat_field",))
    assert "flat_field" not in plan.run
    assert plan.skipped["flat_field"] == "skipped by the user"


def test_unknown_step_lists_valid_ones():
    with pytest.raises(Spec2xError, match="valid steps: assign_wcs"):
        modes.plan(LRS, skip=("flat_fielding",))


@pytest.mark.parametrize("exp_type, first_after_wcs", [
    ("NRC_TSGRISM", "flat_field"), ("NIS_WFSS", "flat_field"), ("NRS_BRIGHTOBJ", "extract_2d"),
    ("NRS_FIXEDSLIT", "extract_2d"), ("MIR_MRS", "srctype"),
])
def test_grism_modes_flat_field_before_extract_2d(exp_type, first_after_wcs):
    plan = modes.plan({"EXP_TYPE": exp_type})
    assert plan.run[1] == first_after_wcs


def test_soss_photom_follows_extraction():
    run = modes.plan({"EXP_TYPE": "NIS_SOSS", "TSOVISIT": True}).run
    assert run.index("photom") == run.index("extract_1d") + 1


def test_background_needs_members():
    keywords = {"EXP_TYPE": "NRS_FIXEDSLIT"}
    assert "bkg_subtract" not in modes.plan(keywords).run
    assert "bkg_subtract" in modes.plan(keywords, members={"background": ["b.fits"]}).run


@pytest.mark.parametrize("opmode, lamp, product", [
    ("FIXEDSLIT", "LINE1", "x1d"), ("IFU", "FLAT3", None), ("MSASPEC", "LINE2", "x1d"),
])
def test_lamp_modes_follow_opmode_and_lamp(opmode, lamp, product):
    plan = modes.plan({"EXP_TYPE": "NRS_LAMP", "OPMODE": opmode, "LAMP": lamp})
    assert "photom" not in plan.run and "srctype" not in plan.run
    assert ("extract_1d" in plan.run) == (product == "x1d")


def test_unsupported_exp_type_is_a_clear_error():
    with pytest.raises(Spec2xError, match="EXP_TYPE=MIR_IMAGE is not a stage-2 spectroscopic mode"):
        modes.plan({"EXP_TYPE": "MIR_IMAGE"}, source="x.fits")


def test_every_exp_type_of_the_spec_has_a_row():
    for exp_type in ("NRS_FIXEDSLIT", "NRS_MSASPEC", "NRS_IFU", "NRS_BRIGHTOBJ", "MIR_LRS-FIXEDSLIT",
                     "MIR_LRS-SLITLESS", "MIR_MRS", "NIS_SOSS", "NIS_WFSS", "NRC_WFSS", "NRC_TSGRISM"):
        assert modes.find_mode({"EXP_TYPE": exp_type}).exp_types == (exp_type,)
