"""Compute and write products one integration chunk at a time, with a journal of finished chunks.

Each chunk is one task: it computes that chunk's block of every product array (the cube and the
spectra share their upstream graph, so each chunk is calibrated once), writes every block at its
place, then records the chunk in the journal.  Writes are idempotent (same bytes at the same
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
    digest = hashlib.sha256(json.dumps([files, refs, steps, fmt, list(chunks)]).encode()).hexdigest()
    return {"inputs": [f[0] for f in files], "format": fmt, "chunks": len(chunks), "digest": digest}


def _aligned(sources):
    """Sources rechunked to the first one's chunks along ``integration`` and one block across."""
    chunks = sources[0].chunks[0]
    return [s.rechunk((chunks, *s.shape[1:])) if (s.chunks[0] != chunks or s.numblocks[1:] != (1,) * (s.ndim - 1))
            else s for s in sources]


def tasks(sources, targets, journal: Journal | None, skip=frozenset()) -> list:
    """One delayed task per chunk not in ``skip``; each returns the number of integrations it wrote."""
    sources = _aligned(sources)
    bounds = np.cumsum((0, *sources[0].chunks[0]))
    blocks = [s.to_delayed().ravel() for s in sources]
    token = dask.base.tokenize(*sources)
    return [dask.delayed(write_chunk, pure=False, name=f"{TASK_PREFIX}-{token}-{i}")(
                i, int(bounds[i]), int(bounds[i + 1]), targets, journal, *[b[i] for b in blocks])
            for i in range(len(bounds) - 1) if i not in skip]


def write_chunk(chunk: int, start: int, stop: int, targets, journal, *blocks) -> int:
    """Write one chunk's blocks to their targets, then mark the chunk finished."""
    for target, block in zip(targets, blocks):
        target[start:stop] = block
    if journal is not None:
        journal.mark(chunk)
    return stop - start


def compute(task_list, client=None):
    """Compute the chunk tasks on the current dask scheduler, or on a dask.distributed client."""
    if client is None:
        dask.compute(*task_list)
    else:
        client.gather(client.compute(task_list))

