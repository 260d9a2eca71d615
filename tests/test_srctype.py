"""srctype: the decision table, closed form and against jwst 3.0.0's set_source_type."""

from __future__ import annotations

import pytest

from spec2x.errors import NotImplementedForMode, Spec2xError
from spec2x.exposure import open_exposure
from spec2x.steps import srctype

LRS = {"EXP_TYPE": "MIR_LRS-SLITLESS", "NINTS": 100}

# (keywords, user source_type, expected SRCTYPE)
TABLE = [
    ({**LRS, "TSOVISIT": True}, None, "POINT"),                                   # the synthetic case
    ({**LRS, "TSOVISIT": True, "SRCTYAPT": "EXTENDED"}, None, "POINT"),           # TSO beats APT
    ({**LRS, "TSOVISIT": True, "BKGDTARG": True}, None, "EXTENDED"),              # background beats TSO
    ({**LRS, "TSOVISIT": True}, "extended", "EXTENDED"),                          # user beats all
    ({**LRS, "TSOVISIT": True, "NINTS": 1}, None, "POINT"),                       # not TSO -> default
    ({**LRS, "TSOVISIT": False, "SRCTYAPT": "EXTENDED"}, None, "EXTENDED"),
    ({**LRS, "TSOVISIT": False, "SRCTYPE": "EXTENDED"}, None, "EXTENDED"),       # old files: SRCTYPE
    ({**LRS, "TSOVISIT": False, "SRCTYAPT": "UNKNOWN", "PATTTYPE": "NONE"}, None, "POINT"),
    ({"EXP_TYPE": "MIR_MRS", "NINTS": 3}, None, "EXTENDED"),
    ({"EXP_TYPE": "MIR_MRS", "NINTS": 3, "DITHOPFR": "POINT-SOURCE"}, None, "POINT"),
    ({"EXP_TYPE": "MIR_MRS", "NINTS": 3, "PATTTYPE": "2-POINT-NOD"}, None, "EXTENDED"),  # MRS reads DITHOPFR
    ({"EXP_TYPE": "NRS_IFU", "NINTS": 1, "PATTTYPE": "4-POINT-NOD"}, None, "POINT"),
    ({"EXP_TYPE": "NRS_IFU", "NINTS": 1, "PATTTYPE": "CYCLING"}, None, "EXTENDED"),
    ({"EXP_TYPE": "MIR_LRS-FIXEDSLIT", "NINTS": 1, "PATTTYPE": "ALONG-SLIT-NOD"}, None, "POINT"),
    ({"EXP_TYPE": "NRS_BRIGHTOBJ", "NINTS": 50}, None, "POINT"),                 # TSO by EXP_TYPE
    ({"EXP_TYPE": "NRC_TSIMAGE", "NINTS": 50}, None, "POINT"),                   # other TSO mode
    ({"EXP_TYPE": "NRC_IMAGE", "NINTS": 50}, None, "UNKNOWN"),
]


@pytest.mark.parametrize("kw, user, expected", TABLE)
def test_decision_table(kw, user, expected):
    assert srctype.decide(kw, user)[0] == expected


def test_unsupported():
    with pytest.raises(NotImplementedForMode):
        srctype.decide({"EXP_TYPE": "NRS_MSASPEC"})
    with pytest.raises(Spec2xError):
        srctype.decide({"EXP_TYPE": "NIS_SOSS", "NINTS": 5}, "POINT")
    with pytest.raises(Spec2xError):
        srctype.decide({})


def _model(kw):
    """A jwst datamodel carrying the keywords of one TABLE row."""
    from stdatamodels.jwst import datamodels

    m = datamodels.CubeModel()
    attrs = {"EXP_TYPE": "exposure.type", "NINTS": "exposure.nints", "TSOVISIT": "visit.tsovisit",
             "BKGDTARG": "observation.bkgdtarg", "SRCTYAPT": "target.source_type_apt",
             "SRCTYPE": "target.source_type", "PATTTYPE": "dither.primary_type", "DITHOPFR": "dither.optimized_for"}
    for key, value in kw.items():
        node, name = attrs[key].split(".")
        setattr(getattr(m.meta, node), name, value)
    return m


@pytest.mark.parity
@pytest.mark.parametrize("kw, user, expected", TABLE)
def test_matches_jwst(kw, user, expected):
    pytest.importorskip("jwst")
    from jwst.srctype.srctype import set_source_type

    model = set_source_type(_model(kw), user)
    assert model.meta.target.source_type == srctype.decide(kw, user)[0] == expected


def test_run_on_exposure(tmp_path):
    from spec2x.synthetic import make_miri_lrs_slitless

    info = make_miri_lrs_slitless(tmp_path, nints=2, seed=1)
    ds = open_exposure(str(info["rateints"][0]))
    out = srctype.run(ds, {})
    assert out.attrs["sci"]["SRCTYPE"] == "POINT"
    assert "SRCTYAPT" not in out.attrs["primary"]       # neither SRCTYAPT nor SRCTYPE in the input
    assert "SRCTYPE" not in ds.attrs["sci"]             # input untouched

    old = srctype.run(out, {})                          # an input SRCTYPE is copied to SRCTYAPT, as jwst does
    assert old.attrs["primary"]["SRCTYAPT"] == "POINT"
