"""Reference selection keywords, --refs-dir indexing and N/A."""

import json

import pytest

from spec2x.errors import RefError
from spec2x.refs import RefSet, mismatch, ref_keyword_value

EXPOSURE = {"INSTRUME": "MIRI", "DETECTOR": "MIRIMAGE", "EXP_TYPE": "MIR_LRS-SLITLESS", "FILTER": "P750L",
            "SUBARRAY": "SLITLESSPRISM"}


@pytest.mark.parametrize("header, problem", [
    ({"INSTRUME": "MIRI", "DETECTOR": "MIRIMAGE", "FILTER": "P750L"}, None),
    ({"INSTRUME": "NIRCAM"}, "INSTRUME=NIRCAM"),
    ({"INSTRUME": "MIRI", "P_EXP_TY": "MIR_IMAGE|MIR_LRS-FIXEDSLIT|"}, "P_EXP_TY"),
    ({"INSTRUME": "MIRI", "P_EXP_TY": "MIR_IMAGE|MIR_LRS-SLITLESS|"}, None),
    ({"INSTRUME": "MIRI", "EXP_TYPE": "MIR_IMAGE"}, None),  # CRDS serves imager area files to LRS
    ({"INSTRUME": "MIRI", "SUBARRAY": "FULL"}, None),
    ({"INSTRUME": "MIRI", "SUBARRAY": "BRIGHTSKY"}, "SUBARRAY=BRIGHTSKY"),
    ({"INSTRUME": "MIRI", "FILTER": "F770W"}, "FILTER=F770W"),
])
def test_selection_keywords(header, problem):
    found = mismatch(header, EXPOSURE)
    assert (found is None) if problem is None else (problem in found)


def _json_ref(path, reftype="EXTRACT1D", instrument="MIRI"):
    path.write_text(json.dumps({"reftype": reftype, "instrument": instrument, "apertures": []}))
    return path


def test_refs_dir_finds_by_reftype(tmp_path):
    good = _json_ref(tmp_path / "a.json")
    _json_ref(tmp_path / "b.json", instrument="NIRSPEC")
    refs = RefSet(search_dirs=[str(tmp_path)])
    assert refs.resolve("extract_1d", "extract1d", EXPOSURE) == str(good)


def test_explicit_ref_of_other_instrument_names_file_and_keyword(tmp_path):
    bad = _json_ref(tmp_path / "x.json", instrument="NIRCAM")
    refs = RefSet(explicit={"extract1d": str(bad)})
    with pytest.raises(RefError, match=r"extract_1d: reference 'extract1d': .*x.json: INSTRUME=NIRCAM"):
        refs.resolve("extract_1d", "extract1d", EXPOSURE)


def test_wrong_reftype_is_an_error(tmp_path):
    ref = _json_ref(tmp_path / "x.json", reftype="APCORR")
    with pytest.raises(RefError, match="REFTYPE=APCORR, not EXTRACT1D"):
        RefSet(explicit={"extract1d": str(ref)}).resolve("extract_1d", "extract1d", EXPOSURE)


def test_not_applicable_and_missing():
    refs = RefSet(explicit={"apcorr": "N/A"})
    assert refs.resolve("extract_1d", "apcorr", EXPOSURE) is None
    assert refs.resolve("extract_1d", "psf", EXPOSURE, required=False) is None
    with pytest.raises(RefError, match="flat_field: reference 'flat': no flat reference file"):
        refs.resolve("flat_field", "flat", EXPOSURE)


def test_ref_keyword_value_names_crds_files_as_jwst_does(monkeypatch, tmp_path):
    f = tmp_path / "cache" / "references" / "jwst" / "miri" / "jwst_miri_specwcs_0006.fits"
    monkeypatch.delenv("CRDS_PATH", raising=False)
    assert ref_keyword_value(str(f)) == str(f)
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "cache"))
    assert ref_keyword_value(str(f)) == "crds://jwst_miri_specwcs_0006.fits"
