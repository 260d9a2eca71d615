"""Compute and write products one integration chunk at a time, with a journal of finished chunks.

Each chunk is one task: it reads its integrations, runs the exposure's recipe on them in memory
(every step's per-exposure state was prepared once, by ``calibrate``), writes its block of every
product at its place, then records the chunk in the journal.  The graph is one task per chunk plus
one shared writer, whatever the number of integrations.  Writes are idempotent (same bytes at the same
offsets), so a chunk that ran twice, after a worker died say, leaves the same file, and a run killed
at any point can resume from the chunks its journal lists.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np

from spec2x import allocator

TASK_PREFIX = "spec2x-chunk"


@dataclass(frozen=True)
class Journal:
    """Finished chunks of one run, as empty files ``done/<chunk>`` in a folder beside the products."""

    folder: Path

    def start(self, fingerprint: dict):
        shutil.rmtree(self.folder, ignore_errors=True)
        (self.folder / "done").mkdir(parents=True)
        (self.folder / "run.json").write_text(json.dumps(fingerprint, indent=1, sort_keys=True))

    def fingerprint(self) -> dict | None:
        try:
            return json.loads((self.folder / "run.json").read_text())
        except (OSError, ValueError):
            return None

    def done(self) -> set[int]:
        folder = self.folder / "done"
        return {int(p.name) for p in folder.iterdir()} if folder.is_dir() else set()

    def mark(self, chunk: int):
        (self.folder / "done" / str(chunk)).touch()

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def fingerprint(result, fmt: str, chunks: tuple) -> dict:
    """What must be the same for a resumed run to produce the same bytes."""
    files = [(str(Path(p).resolve()), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in result.cube.attrs["paths"]]
    refs = sorted((k, str(v)) for k, v in result.cube.attrs["primary"].items() if k.startswith("R_"))
    steps = list(result.plan.run)
    params = sorted((step, sorted(values.items())) for step, values in result.recipe.params.items())
    digest = hashlib.sha256(json.dumps([files, refs, steps, params, fmt, list(chunks)], default=str).encode()).hexdigest()
    return {"inputs": [f[0] for f in files], "format": fmt, "chunks": len(chunks), "digest": digest}


@dataclass(frozen=True)
class ChunkWriter:
    """Calibrates one block of integrations with the exposure's recipe and writes it into every
    product: ``outputs`` holds (pick(cube, spectra) -> {name: block}, {name: target}) per product."""

    recipe: object
    source: object
    outputs: tuple
    journal: Journal | None

    def __call__(self, chunk: int, start: int, stop: int) -> int:
        allocator.tune()  # on every worker process, once
        cube, spectra = self.recipe.block(self.source, start, stop)
        for pick, targets in self.outputs:
            for name, block in pick(cube, spectra).items():
                targets[name][start:stop] = block
        if self.journal is not None:
            self.journal.mark(chunk)
        return stop - start


def tasks(writer: ChunkWriter, chunks: tuple, skip=frozenset()) -> list:
    """One delayed task per chunk of integrations not in ``skip``, each returning how many integrations
    it wrote.  The writer is one node of the graph, shipped once to each worker."""
    bounds = np.cumsum((0, *chunks))
    token = dask.base.tokenize(writer.source.attrs["paths"], chunks, id(writer))
    shared = dask.delayed(writer, name=f"spec2x-writer-{token}")  # named: hashing the recipe takes seconds
    return [shared(i, int(bounds[i]), int(bounds[i + 1]), dask_key_name=f"{TASK_PREFIX}-{token}-{i}")
            for i in range(len(bounds) - 1) if i not in skip]


def compute(task_list, client=None):
    """Compute the chunk tasks on the current dask scheduler, or on a dask.distributed client."""
    if client is None:
        dask.compute(*task_list)
    else:
        client.gather(client.compute(task_list))

