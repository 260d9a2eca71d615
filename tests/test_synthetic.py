"""spec2x.synthetic: determinism, segmenting, chunking, stdatamodels validity and flat memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from spec2x import synthetic
from spec2x.synthetic import common, miri_lrs_slitless  # noqa: F401  (submodules used as synthetic.X)
from spec2x.synthetic import make_miri_lrs_slitless, segment_bounds

CUBES = ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE")
PX = dqflags.pixel


def read(path):
    """Cubes (as stored values), INT_TIMES and the PRIMARY header of one file."""
    with fits.open(path) as hdul:
        out = {n: np.array(hdul[n].data) for n in CUBES}
        out["INT_TIMES"] = np.array(hdul["INT_TIMES"].data)
        out["header"] = hdul[0].header.copy()
    return out


def test_deterministic(tmp_path):
    a = make_miri_lrs_slitless(tmp_path / "a", nints=5, seed=7)
    b = make_miri_lrs_slitless(tmp_path / "b", nints=5, seed=7)
    c = make_miri_lrs_slitless(tmp_path / "c", nints=5, seed=8)
    ra, rb, rc = (read(x["rateints"][0]) for x in (a, b, c))
    for n in CUBES:
        assert ra[n].tobytes() == rb[n].tobytes(), n
    assert not np.array_equal(ra["SCI"], rc["SCI"], equal_nan=True)
    # whole files, refs included, are byte-identical (fixed DATE): cache keys are stable
    assert a["rateints"][0].read_bytes() == b["rateints"][0].read_bytes()
    for t in a["refs"]:
        assert a["refs"][t].read_bytes() == b["refs"][t].read_bytes(), t


def test_chunk_size_does_not_matter(tmp_path):
    files = [make_miri_lrs_slitless(tmp_path / str(k), nints=7, seed=2, chunk=k)["rateints"][0]
             for k in (1, 3, None)]
    assert files[0].read_bytes() == files[1].read_bytes() == files[2].read_bytes()


def test_segments_equal_single_file_split(tmp_path, lrs_synthetic):
    nints, seed = lrs_synthetic.info["nints"], lrs_synthetic.info["seed"]
    whole = read(lrs_synthetic.rateints)
    seg = make_miri_lrs_slitless(tmp_path, nints=nints, seed=seed, segments=3)
    assert seg["bounds"] == [(0, 4), (4, 8), (8, 11)]
    assert [p.name for p in seg["rateints"]] == [
        f"jw09999001001_02101_00001-seg00{k}_mirimage_rateints.fits" for k in (1, 2, 3)]
    for k, (path, (i0, i1)) in enumerate(zip(seg["rateints"], seg["bounds"]), 1):
        part = read(path)
        for n in CUBES:
            assert part[n].tobytes() == whole[n][i0:i1].tobytes(), (k, n)
        assert part["INT_TIMES"].tobytes() == whole["INT_TIMES"][i0:i1].tobytes()
        h = part["header"]
        assert (h["NINTS"], h["INTSTART"], h["INTEND"]) == (nints, i0 + 1, i1)
        assert (h["EXSEGNUM"], h["EXSEGTOT"]) == (k, 3)
        assert h["EXPSTART"] == whole["header"]["EXPSTART"]


def test_segment_bounds():
    assert segment_bounds(10, 1) == [(0, 10)]
    assert segment_bounds(10, 4) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    with pytest.raises(ValueError):
        segment_bounds(10, 6)


def test_valid_cube_model(lrs_synthetic):
    n = lrs_synthetic.info["nints"]
    with datamodels.open(lrs_synthetic.rateints) as m:
        assert type(m) is datamodels.CubeModel
        m.validate()
        assert m.data.shape == m.err.shape == m.dq.shape == m.var_poisson.shape == (n, 416, 72)
        assert m.data.dtype.kind == "f" and m.data.itemsize == 4 and m.dq.dtype == np.uint32
        mt = m.meta
        assert (mt.telescope, mt.instrument.name, mt.instrument.detector, mt.instrument.filter) == (
            "JWST", "MIRI", "MIRIMAGE", "P750L")
        assert mt.exposure.type == "MIR_LRS-SLITLESS" and mt.visit.tsovisit is True
        assert (mt.exposure.nints, mt.exposure.integration_start, mt.exposure.integration_end) == (n, 1, n)
        assert (mt.exposure.ngroups, mt.exposure.nframes, mt.exposure.readpatt) == (40, 1, "FASTR1")
        assert (mt.subarray.name, mt.subarray.xstart, mt.subarray.ystart, mt.subarray.xsize,
                mt.subarray.ysize) == ("SLITLESSPRISM", 1, 529, 72, 416)
        assert mt.wcsinfo.dispersion_direction == 2 and mt.wcsinfo.velosys == pytest.approx(-12345.6)
        assert mt.wcsinfo.v2_ref == pytest.approx(-378.600113)
        assert mt.exposure.integration_time == pytest.approx(40 * 0.15904)
        it = m.int_times
        assert len(it) == n and list(it["integration_number"]) == list(range(1, n + 1))
        assert np.all(np.diff(it["int_mid_MJD_UTC"]) > 0)
        np.testing.assert_allclose(it["int_mid_BJD_TDB"] - it["int_mid_MJD_UTC"], 0.0037)
        assert it["int_start_MJD_UTC"][0] == pytest.approx(mt.exposure.start_time)
        # defects: reference columns, static bad pixels, jumps, saturation, unflagged NaNs
        dq, sci = m.dq, m.data
        assert np.all(dq[:, :, :4] & PX["REFERENCE_PIXEL"]) and np.all(np.isnan(sci[:, :, :4]))
        assert np.all(dq[:, 100, 36] & PX["DO_NOT_USE"])
        assert (dq & PX["JUMP_DET"]).astype(bool).sum() >= n
        assert dq[2, 330, 37] & PX["SATURATED"] and np.isnan(sci[2, 330, 37])
        assert np.sum(np.isnan(sci) & (dq == 0)) >= 1
        good = ~np.isnan(sci)
        np.testing.assert_allclose(m.err[good] ** 2, (m.var_poisson + m.var_rnoise)[good], rtol=1e-5)
        assert np.all(np.isnan(m.err[~good]))


def test_streamed_file_equals_stdatamodels_save(lrs_synthetic, tmp_path):
    """Re-saving the opened model with stdatamodels gives the same bytes: headers, ASDF tree (shapes,
    FITS hash) and data are exactly what stdatamodels itself would write."""
    out = tmp_path / lrs_synthetic.rateints.name
    with datamodels.open(lrs_synthetic.rateints) as m:
        synthetic.common.save(m, out)
    assert out.read_bytes() == lrs_synthetic.rateints.read_bytes()


def test_case_json_and_refs(lrs_synthetic):
    case = json.loads((lrs_synthetic.dir / "case.json").read_text())
    assert case["rateints"] == [lrs_synthetic.rateints.name]
    assert set(case["refs"]) == set(synthetic.miri_lrs_slitless.REF_FILES)
    for reftype, path in lrs_synthetic.refs.items():
        assert path.exists()
        if path.suffix != ".json":
            with datamodels.open(path) as r:
                r.validate()
                assert r.meta.reftype.lower() == reftype


def test_demo_case(tmp_path):
    info = synthetic.demo_case(tmp_path)
    assert info["nints"] == 20 and len(info["rateints"]) == 1 and info["rateints"][0].exists()


MEMORY_PROBE = textwrap.dedent("""
    import json, resource, sys
    from spec2x.synthetic import make_miri_lrs_slitless
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info = make_miri_lrs_slitless(sys.argv[1], nints=int(sys.argv[2]), seed=1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rss_growth": (rss - base) * 1024, "file": info["rateints"][0].stat().st_size}))
""")


def test_peak_memory_is_flat(tmp_path):
    """Peak RSS growth while making 2000 integrations (1.2 GB of cubes) stays ~50 MB."""
    nints = 2000
    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path), str(nints)],
                          capture_output=True, text=True, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    cubes = 5 * nints * 416 * 72 * 4
    assert r["file"] > cubes
    assert r["rss_growth"] < min(cubes / 8, 150e6), r


@pytest.mark.parity
def test_jwst_oracle_runs_on_synthetic_case(lrs_case):
    n = lrs_case.info["nints"]
    with fits.open(lrs_case.jwst["calints"]) as cal:
        assert cal[0].header["DATAMODL"] == "SlitModel" and cal["SCI"].data.shape == (n, 416, 72)
        assert cal[0].header["S_PHOTOM"] == "COMPLETE"
    with fits.open(lrs_case.jwst["x1dints"]) as x1d:
        tab = x1d["EXTRACT1D"].data
        assert len(tab) == n and list(tab["INT_NUM"]) == list(range(1, n + 1))
        assert np.isfinite(tab["FLUX"]).mean() > 0.9
