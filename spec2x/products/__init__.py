"""Write calibrated products chunk by chunk: ``_calints``/``_cal`` and ``_x1dints``/``_x1d``.

Both products of an exposure are filled by one ``dask.array.store`` call, so each chunk of
integrations is calibrated once and feeds the cube and the spectra together; memory holds a few
chunks, whatever the number of integrations.  Files are written under a temporary name in the
output folder and renamed when complete; nothing is left at a final name after a failure.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
from astropy.coordinates import ICRS
from astropy import units as u
from astropy.io import fits
from astropy.modeling.models import Const1D, Mapping, Tabular1D
from gwcs import coordinate_frames as cf
from gwcs.wcs import WCS
from stdatamodels.jwst import datamodels

from spec2x.errors import Interrupted, Spec2xError
from spec2x.products import chunks
from spec2x.products import fitsfile as fits_io

CUBE_EXTENSIONS = {"sci": "SCI", "err": "ERR", "dq": "DQ", "var_poisson": "VAR_POISSON",
                   "var_rnoise": "VAR_RNOISE", "var_flat": "VAR_FLAT"}
MODEL_ARRAY = {"SCI": "data", "ERR": "err", "DQ": "dq", "VAR_POISSON": "var_poisson",
               "VAR_RNOISE": "var_rnoise", "VAR_FLAT": "var_flat"}
IMAGE_COORDS = {"wavelength": ("WAVELENGTH", "wavelength"), "area": ("AREA", "area")}
# jwst's order of extensions in a calibrated cube product (a CubeModel keeps INT_TIMES after DQ)
EXTENSION_ORDER = ("SCI", "ERR", "DQ", "WAVELENGTH", "AREA", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT", "INT_TIMES")
MODEL_EXTENSION_ORDER = {"CubeModel": ("SCI", "ERR", "DQ", "INT_TIMES", "WAVELENGTH", "AREA", "VAR_POISSON",
                                       "VAR_RNOISE", "VAR_FLAT")}
SPECTRAL_COLUMNS = ("WAVELENGTH", "FLUX", "FLUX_ERROR", "FLUX_VAR_POISSON", "FLUX_VAR_RNOISE", "FLUX_VAR_FLAT",
                    "SURF_BRIGHT", "SB_ERROR", "SB_VAR_POISSON", "SB_VAR_RNOISE", "SB_VAR_FLAT", "DQ",
                    "BACKGROUND", "BKGD_ERROR", "BKGD_VAR_POISSON", "BKGD_VAR_RNOISE", "BKGD_VAR_FLAT", "NPIXELS")
TIME_COLUMNS = {"MJD-BEG": "mjd_start", "MJD-AVG": "mjd_mid", "MJD-END": "mjd_end",
                "TDB-BEG": "bjd_start", "TDB-MID": "bjd_mid", "TDB-END": "bjd_end"}
_SUFFIX = re.compile(r"_(rateints|rate|calints|cal)$")
_SEGMENT = re.compile(r"-seg\d{3}")


def rootname(filename: str, segments: int = 1) -> str:
    """``jw..._mirimage`` from ``jw..._mirimage_rateints.fits``; a multi-segment exposure drops ``-segNNN``."""
    stem = _SUFFIX.sub("", Path(filename).name.removesuffix(".fits"))
    return _SEGMENT.sub("", stem) if segments > 1 else stem


@dataclass
class Output:
    """One product on its way to disk: final and temporary paths, its write targets and their names,
    and ``pick(cube, spectra) -> {target name: block}`` that takes a computed chunk's blocks for it."""

    final: Path
    temporary: Path
    targets: list = field(default_factory=list)
    names: list = field(default_factory=list)
    pick: object = None

    def commit(self):
        if self.final.suffix == ".zarr":
            _zarr_store().mark_finished(self.temporary)
        if self.final.exists():
            _remove(self.final)
        os.replace(self.temporary, self.final)

    def discard(self):
        _remove(self.temporary)


def _zarr_store():
    """The zarr writer, imported for zarr products only (zarr costs ≈ 0.4 s to import)."""
    from spec2x.products import zarr_store

    return zarr_store


def _discard(outputs: dict, journal: chunks.Journal):
    for out in outputs.values():
        out.discard()
    journal.remove()


def _remove(path: Path):
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def plan_outputs(result, outdir: Path, fmt: str, overwrite: bool) -> dict:
    """Final paths of the products of ``result``; refuses to overwrite unless asked."""
    ints = result.cube.sizes["integration"] > 1 or result.cube.attrs.get("ndim_in") == 3
    root = rootname(result.cube.attrs["filename"], len(result.cube.attrs.get("paths", [1])))
    names = {}
    kinds = [("cal", "calints" if ints else "cal")]
    if result.spectra is not None:
        kinds.append(("x1d", "x1dints" if ints else "x1d"))
    for kind, suffix in kinds:
        path = outdir / f"{root}_{suffix}.{'fits' if fmt == 'fits' else 'zarr'}"
        if path.exists() and not overwrite:
            raise Spec2xError(f"{path}: already exists (use --overwrite to replace it)")
        names[kind] = path
    return names


def output_folder(outdir) -> Path:
    """``outdir``, created if missing; a user error if it cannot be created or written."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Spec2xError(f"{outdir}: cannot create output folder ({exc.strerror})") from None
    if not os.access(outdir, os.W_OK):
        raise Spec2xError(f"{outdir}: output folder is not writable")
    return outdir


def write(result, outdir, fmt: str = "fits", overwrite: bool = False, resume: bool = False, run=None) -> list[Path]:
    """Compute ``result`` chunk by chunk into its products in ``outdir``; returns the final paths.

    Products grow under temporary names (``.<name>.partial``) with a journal of finished chunks
    (``.<root>.spec2x-run/``); ``resume`` continues an interrupted run of the same inputs from its
    journal.  ``run(tasks)`` computes the chunk tasks (default: dask's current scheduler;
    ``spec2x.scheduling.runner`` adds a progress bar and dask.distributed).
    """
    outdir = output_folder(outdir)
    finals = plan_outputs(result, outdir, fmt, overwrite)
    outputs = {kind: Output(final, outdir / f".{final.name}.partial") for kind, final in finals.items()}
    journal = chunks.Journal(outdir / f".{next(iter(finals.values())).name.rsplit('_', 1)[0]}.spec2x-run")
    reuse, laid_out = False, False
    try:
        chunking = result.cube["sci"].data.chunks[0]
        fingerprint = chunks.fingerprint(result, fmt, chunking)
        if resume and journal.fingerprint() is not None:
            if journal.fingerprint() != fingerprint:
                raise Spec2xError(f"{journal.folder}: the interrupted run had other inputs, references or "
                                  "chunking; run again without --resume")
            reuse = all(o.temporary.exists() for o in outputs.values())
        if not reuse:
            journal.start(fingerprint)
        for kind, out in outputs.items():
            {"cal": _cube_output, "x1d": _spectra_output}[kind](result, out, fmt, reuse)
        laid_out = True
        writer = chunks.ChunkWriter(result.recipe, result.cube.attrs["source"],
                                    tuple((o.pick, dict(zip(o.names, o.targets))) for o in outputs.values()), journal)
        todo = chunks.tasks(writer, chunking, skip=journal.done() if reuse else frozenset())
        (run or chunks.compute)(todo)
        for out in outputs.values():
            out.commit()
        journal.remove()
    except (KeyboardInterrupt, Interrupted):
        raise  # keep the partial products and the journal: --resume continues from them
    except OSError as exc:
        if laid_out and journal.folder.is_dir() and all(o.temporary.exists() for o in outputs.values()):
            # disk full, say: the finished chunks stay for --resume once the cause is fixed
            raise Interrupted(f"{outdir}: writing products failed ({exc.strerror or exc})") from None
        _discard(outputs, journal)
        raise Spec2xError(f"{outdir}: writing products failed ({exc.strerror or exc})") from None
    except BaseException:
        _discard(outputs, journal)
        raise
    return [o.final for o in outputs.values()]


# ---------------------------------------------------------------- calibrated cube
def _cube_model(cube: xr.Dataset, model_name: str, filename: str):
    """A datamodel holding the cube's metadata and one integration of each streamed array."""
    model = _model_from_keywords(model_name, cube.attrs["primary"], cube.attrs["sci"], cube, cube.attrs.get("err"),
                                 validate_on_assignment=False)
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    for var, ext in CUBE_EXTENSIONS.items():
        if var in cube:
            setattr(model, MODEL_ARRAY[ext], np.zeros((1, ny, nx), cube[var].dtype))
    for coord, (_, attr) in IMAGE_COORDS.items():
        if coord in cube.coords:
            setattr(model, attr, np.asarray(cube[coord].values, dtype=np.float32))
    table = cube.attrs.get("int_times")
    if table is not None:
        model.int_times = table
    if cube.attrs.get("wcs") is not None:
        model.meta.wcs = cube.attrs["wcs"]
    model.meta.filename = filename
    return model


def _model_from_keywords(model_name: str, primary: dict, sci: dict, cube: xr.Dataset, err: dict | None = None,
                         validate_on_assignment: bool = True):
    """Let stdatamodels map header keywords onto the model's metadata, as reading a file would.  Cube
    models skip validating each of their ~1000 assignments: ``fitsfile.model_hdulist`` validates the
    whole tree once.  (Spectra models keep it: without it stdatamodels starts their ``spec`` list with
    an empty entry.)"""
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    hdulist = fits.HDUList([fits.PrimaryHDU(header=_header(primary))])
    if sci:
        hdulist.append(fits.ImageHDU(np.zeros((1, ny, nx), np.float32), header=_header(sci), name="SCI"))
    if err:
        hdulist.append(fits.ImageHDU(np.zeros((1, ny, nx), np.float32), header=_header(err), name="ERR"))
    model = getattr(datamodels, model_name)(hdulist, validate_on_assignment=validate_on_assignment)
    model.meta.model_type = model_name
    return model


def _header(keywords: dict) -> fits.Header:
    header = fits.Header()
    for key, value in keywords.items():
        if value is None or isinstance(value, (list, dict, tuple)):
            continue
        header[key] = value
    return header


def _cube_output(result, out: Output, fmt: str, reuse: bool):
    cube = result.cube
    nints = cube.sizes["integration"]
    model = _cube_model(cube, result.plan.mode.cal_model, out.final.name)
    arrays = {CUBE_EXTENSIONS[v]: cube[v].data for v in CUBE_EXTENSIONS if v in cube}
    streamed = {ext: nints for ext in arrays}
    if fmt == "zarr":
        template = None if reuse else _as_fits(model, lambda m: _cube_hdulist(m, streamed))
        _zarr_store().create_cube(out, model, arrays, cube, reuse, template=template)
    else:
        hdulist = _cube_hdulist(model, streamed)
        targets = fits_io.lay_out(str(out.temporary), hdulist, streamed, reuse)
        out.targets.extend(targets[ext] for ext in arrays)
    out.names = list(arrays)
    out.pick = functools.partial(_pick_cube, variables={ext: var for var, ext in CUBE_EXTENSIONS.items()})


def _pick_cube(cube, spectra, variables):
    return {ext: cube[var].transpose("integration", "y", "x").values for ext, var in variables.items() if var in cube}


def _cube_hdulist(model, streamed: dict) -> fits.HDUList:
    """FITS layout of a calibrated cube product: stdatamodels' HDUList in jwst's extension order."""
    order = MODEL_EXTENSION_ORDER.get(type(model).__name__, EXTENSION_ORDER)
    return _ordered(fits_io.model_hdulist(model, streamed), order)


def _as_fits(model, layout):
    """``layout(model)`` as the FITS product of the same name has it (FILENAME ``.fits``), for the
    template a zarr store keeps for ``spec2x export``."""
    name = model.meta.filename
    model.meta.filename = str(Path(name).with_suffix(".fits"))
    try:
        return layout(model)
    finally:
        model.meta.filename = name


def _ordered(hdulist: fits.HDUList, order: tuple = EXTENSION_ORDER) -> fits.HDUList:
    rank = {name: i for i, name in enumerate(order)}
    body = sorted(hdulist[1:-1], key=lambda h: rank.get(h.name, len(rank)))
    return fits.HDUList([hdulist[0], *body, hdulist[-1]])


# ---------------------------------------------------------------- spectra
def spectral_orders(spectra: xr.Dataset) -> list:
    """The spectra of each EXTRACT1D extension: one per spectral order when the Dataset has an ``order``
    dimension (each cut to its own length ``n_alongdisp``), else the Dataset itself."""
    if "order" not in spectra.dims:
        return [spectra]
    return [spectra.isel(order=k, spectral=slice(0, int(spectra["n_alongdisp"].values[k])))
            for k in range(spectra.sizes["order"])]


def _spectra_model(result, filename: str, orders: list):
    spectra, cube = result.spectra, result.cube
    model = _model_from_keywords(result.plan.mode.x1d_model, spectra.attrs["primary"], {}, cube)
    for part in orders:
        model.spec.append({"spec_table": np.zeros(1, dtype=_spec_dtype(model, part.sizes["spectral"]))})
        spec = model.spec[-1]
        for key, value in spectra.attrs.get("spec_meta", {}).items():
            setattr(spec, key, value)
        if "sporder" in part.coords:
            spec.spectral_order = int(part["sporder"].values)
        wavelength = part["wavelength"]
        if wavelength.ndim == 1 and spec.slit_ra is not None:
            spec.meta = {"wcs": spectral_wcs(spec.slit_ra, spec.slit_dec, np.asarray(wavelength.values, np.float64))}
    if cube.attrs.get("int_times") is not None:
        model.int_times = cube.attrs["int_times"]
    model.meta.filename = filename
    return model


def spectral_wcs(ra: float, dec: float, wavelength: np.ndarray) -> WCS:
    """The 1-D WCS jwst attaches to each extracted spectrum: spectral pixel -> (RA, Dec, wavelength)."""
    pixel_frame = cf.CoordinateFrame(naxes=1, axes_type=("SPATIAL",), axes_order=(0,), unit=(u.pix,),
                                     name="pixel_frame")
    world = cf.CompositeFrame([cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=ICRS()),
                               cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,),
                                                axes_names=("wavelength",))], name="world")
    pixel = np.arange(len(wavelength), dtype=float)
    transform = Mapping((0, 0, 0)) | Const1D(ra) & Const1D(dec) & Tabular1D(
        points=pixel, lookup_table=wavelength, bounds_error=False, fill_value=None)
    transform.name = "pixel_to_world"
    step = np.diff(wavelength)
    if np.all(step > 0) or np.all(step < 0):
        order = slice(None) if step[0] > 0 else slice(None, None, -1)
        transform.inverse = Mapping((2,)) | Tabular1D(points=wavelength[order], lookup_table=pixel[order],
                                                      bounds_error=False)
    return WCS([(pixel_frame, transform), (world, None)])


def _spec_dtype(model, n_wave: int) -> np.dtype:
    """The TSO spec_table record dtype from the model's schema, spectral columns sized ``n_wave``."""
    schema = model.schema["properties"]["spec"]["items"]["properties"]["spec_table"]
    return np.dtype([(c["name"], np.dtype(c["datatype"]), (n_wave,)) if c["name"] in SPECTRAL_COLUMNS
                     else (c["name"], np.dtype(c["datatype"])) for c in schema["datatype"]])


def _spectra_output(result, out: Output, fmt: str, reuse: bool):
    spectra = result.spectra
    nints = spectra.sizes["integration"]
    orders = spectral_orders(spectra)
    model = _spectra_model(result, out.final.name, orders)
    segment = int(result.cube.attrs["primary"].get("EXSEGNUM", 1) or 1)
    streamed = {"EXTRACT1D": nints}
    if fmt == "zarr":
        tables = _spectral_tables(spectra, segment)
        template = None if reuse else _as_fits(model, lambda m: _spectra_hdulist(m, streamed, spectra))
        _zarr_store().create_spectra(out, model, tables, spectra, reuse, template=template)
        out.names = [f"{node}/{column}" for node, columns in tables.items() for column in columns]
        out.pick = functools.partial(_pick_columns, segment=segment)
        return
    hdulist = _spectra_hdulist(model, streamed, spectra)
    targets = fits_io.lay_out(str(out.temporary), hdulist, streamed, reuse)
    tables = [h for h in hdulist if h.name == "EXTRACT1D"]
    layouts = [(fits_io.extension_key(h), *fits_io.table_row_dtype(h)) for h in tables]
    out.targets.extend(targets[key] for key, _, _ in layouts)
    out.names = [key for key, _, _ in layouts]
    out.pick = functools.partial(_pick_rows, segment=segment, layouts=tuple(layouts))


def _pick_columns(cube, spectra, segment):
    return {f"{node}/{column}": block for node, columns in _spectral_tables(spectra, segment).items()
            for column, block in columns.items()}


def _spectral_tables(spectra: xr.Dataset, segment: int) -> dict:
    """{zarr node of each EXTRACT1D extension: its columns}: ``EXTRACT1D``, ``EXTRACT1D_2``, ... per order."""
    return {_zarr_store().node_name("EXTRACT1D" if k == 0 else f"EXTRACT1D,{k + 1}"): _spectral_columns(part, segment)
            for k, part in enumerate(spectral_orders(spectra))}


def _pick_rows(cube, spectra, segment, layouts):
    return {key: fits_io.pack_rows(_spectral_columns(part, segment), dtype, zeros)
            for (key, dtype, zeros), part in zip(layouts, spectral_orders(spectra))}


def _spectra_hdulist(model, streamed: dict, spectra: xr.Dataset) -> fits.HDUList:
    """FITS layout of an extracted-spectra product: stdatamodels' HDUList with the column units."""
    hdulist = fits_io.model_hdulist(model, streamed)
    units = {c: spectra[c.lower()].attrs.get("units") for c in SPECTRAL_COLUMNS} | dict.fromkeys(TIME_COLUMNS, "d")
    for hdu in hdulist:
        if hdu.name != "EXTRACT1D":
            continue
        for column in hdu.columns:
            if units.get(column.name):
                column.unit = units[column.name]
    return hdulist


def _spectral_columns(spectra: xr.Dataset, segment: int) -> dict:
    """Every EXTRACT1D column over integrations (2-D for vectors, 1-D for scalars): numpy for a
    computed block, dask arrays for a lazy Dataset (whose shapes and chunks lay out a product)."""
    flux = spectra["flux"]
    nints, n_wave = spectra.sizes["integration"], spectra.sizes["spectral"]
    lazy = isinstance(flux.data, da.Array)
    columns = {}
    for name in SPECTRAL_COLUMNS:
        var = spectra[name.lower()]
        data = var.data if var.dims == flux.dims else var.transpose(*[d for d in flux.dims if d in var.dims]).data
        columns[name] = data if data.shape == flux.shape else (da if lazy else np).broadcast_to(data, flux.shape)
    columns["INT_NUM"] = spectra["integration_number"].values.astype(np.int32)
    columns["N_ALONGDISP"] = np.full(nints, n_wave, dtype=np.uint32)
    columns["SEGMENT"] = np.full(nints, segment, dtype=np.int32)
    for column, coord in TIME_COLUMNS.items():
        values = spectra[coord].values if coord in spectra.coords else np.full(nints, np.nan)
        columns[column] = values.astype(np.float64)
    if lazy:
        chunks = flux.data.chunks[0]
        columns = {name: (c if c.chunks[0] == chunks else c.rechunk((chunks, *c.shape[1:])))
                   if isinstance(c, da.Array) else da.from_array(c, chunks=(chunks, *c.shape[1:]))
                   for name, c in columns.items()}
    return columns
