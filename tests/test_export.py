"""``spec2x export``: FITS products from zarr stores equal the FITS products written directly."""

import shutil

import numpy as np
import pytest
import zarr
from astropy.io import fits
from stdatamodels.jwst import datamodels

import spec2x
from spec2x import cli
from spec2x.errors import Spec2xError
from spec2x.products import fitsfile, zarr_store
from spec2x.products.export import export


@pytest.fixture(scope="module")
def runs(lrs_synthetic, tmp_path_factory):
    """The products of one exposure written as FITS and as zarr stores (chunks of 4 integrations)."""
    out = tmp_path_factory.mktemp("export_runs")
    _, fits_paths = spec2x.run(lrs_synthetic.rateints, out / "fits", refs=lrs_synthetic.refs, chunk_ints=4)
    _, stores = spec2x.run(lrs_synthetic.rateints, out / "zarr", refs=lrs_synthetic.refs, chunk_ints=4, fmt="zarr")
    return {"fits": sorted(fits_paths), "zarr": sorted(stores)}


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    return sorted(export(runs["zarr"], tmp_path_factory.mktemp("exported")))


def _undated(hdulist) -> bytes:
    """The ASDF extension's bytes with the product's date blanked (the metadata tree carries it)."""
    date = hdulist[0].header["DATE"].encode()
    return np.ascontiguousarray(hdulist["ASDF"].data).tobytes().replace(date, b"-" * len(date))


def test_export_equals_the_direct_fits_run(runs, exported):
    assert [p.name for p in exported] == [p.name for p in runs["fits"]]
    for ours, direct in zip(exported, runs["fits"]):
        assert ours.stat().st_size == direct.stat().st_size
        with fits.open(ours) as a, fits.open(direct) as b:
            assert [h.name for h in a] == [h.name for h in b]
            for x, y in zip(a, b):
                cards = [c.image for c in x.header.cards if c.keyword != "DATE"]
                assert cards == [c.image for c in y.header.cards if c.keyword != "DATE"], x.name
                if x.name == "ASDF":  # asdf lists its extensions in set order: same process, same order
                    assert _undated(a) == _undated(b)
                elif x.data is not None:
                    assert np.ascontiguousarray(x.data).tobytes() == np.ascontiguousarray(y.data).tobytes(), x.name


def test_exported_products_open_as_jwst_models(exported):
    calints, x1dints = exported
    with datamodels.open(calints) as cal:
        assert type(cal).__name__ == "SlitModel" and cal.meta.wcs is not None
        assert cal.meta.filename == calints.name
        assert cal.data.shape[0] == len(cal.int_times) == 11
        cal.validate()
    with datamodels.open(x1dints) as x1d:
        assert type(x1d).__name__ == "TSOMultiSpecModel"
        assert x1d.spec[0].meta.wcs is not None
        assert x1d.spec[0].spec_table.shape[0] == len(x1d.int_times) == 11
        x1d.validate()


@pytest.mark.parametrize("block_ints", (1, 3))
def test_copy_is_block_by_block_and_gives_the_same_bytes(runs, exported, tmp_path, monkeypatch, block_ints):
    blocks = []
    setitem = fitsfile.RegionTarget.__setitem__

    def record(self, key, block):
        blocks.append(len(block))
        setitem(self, key, block)

    monkeypatch.setattr(fitsfile.RegionTarget, "__setitem__", record)
    paths = export(runs["zarr"], tmp_path, block_ints=block_ints)
    assert max(blocks) == block_ints and sum(blocks) == 11 * (6 + 1)  # 6 cube extensions, 1 table
    for ours, default in zip(sorted(paths), exported):
        assert ours.read_bytes() == default.read_bytes()


def test_export_refuses_to_overwrite(runs, tmp_path, capsys):
    (first,) = export(runs["zarr"][:1], tmp_path)
    before = first.read_bytes()
    with pytest.raises(Spec2xError, match="already exists"):
        export(runs["zarr"][:1], tmp_path)
    assert cli.main(["export", str(runs["zarr"][0]), "-o", str(tmp_path)]) == cli.EXIT_USER_ERROR
    assert "--overwrite" in capsys.readouterr().err
    assert first.read_bytes() == before
    assert cli.main(["export", str(runs["zarr"][0]), "-o", str(tmp_path), "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == str(first)
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]


def _unfinished(store, tmp_path):
    copy = tmp_path / store.name
    shutil.copytree(store, copy)
    root = zarr.open_group(str(copy), mode="r+")
    del root.attrs[zarr_store.FINISHED]
    return copy


@pytest.mark.parametrize("kind", ("missing", "fits file", "plain folder", "unfinished store"))
def test_a_path_that_is_not_a_finished_store_is_one_line_exit_2(runs, tmp_path, capsys, kind):
    path = {"missing": lambda: tmp_path / "nothing.zarr",
            "fits file": lambda: runs["fits"][0],
            "plain folder": lambda: (tmp_path / "folder.zarr").mkdir() or tmp_path / "folder.zarr",
            "unfinished store": lambda: _unfinished(runs["zarr"][0], tmp_path)}[kind]()
    out = tmp_path / "out"
    assert cli.main(["export", str(runs["zarr"][1]), str(path), "-o", str(out)]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"spec2x: error: {path}: ")
    assert not out.exists() or not list(out.iterdir())  # every store is checked before anything is written


def test_a_failed_export_leaves_nothing(runs, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fitsfile, "pack_rows", broken)
    with pytest.raises(Spec2xError, match="No space left"):
        export(runs["zarr"], tmp_path, block_ints=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [runs["fits"][0].name]  # calints came first
