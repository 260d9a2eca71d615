"""Where the graph runs (threads, processes, a local or remote dask.distributed cluster) and how
progress is shown (integrations done / total, rate, ETA)."""

from __future__ import annotations

import contextlib
import sys

import dask
import dask.array as da
from dask.callbacks import Callback
from tqdm import tqdm

from spec2x.errors import Spec2xError


@contextlib.contextmanager
def scheduler(spec: str | None):
    """Run the enclosed computations on ``threads``, ``processes``, ``local:N`` or ``tcp://HOST:PORT``."""
    spec = spec or "threads"
    if spec in ("threads", "processes", "sync", "synchronous"):
        with dask.config.set(scheduler=spec):
            yield None
        return
    from distributed import Client, LocalCluster

    if spec.startswith("local:"):
        try:
            workers = int(spec.split(":", 1)[1])
        except ValueError:
            raise Spec2xError(f"--scheduler {spec}: expected local:N with N a number of workers") from None
        with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
            yield client
        return
    if spec.startswith("tcp://"):
        try:
            client = Client(spec, timeout="10s")
        except OSError as exc:
            raise Spec2xError(f"--scheduler {spec}: cannot reach the scheduler ({exc})") from None
        with client:
            yield client
        return
    raise Spec2xError(f"--scheduler {spec}: expected threads, processes, local:N or tcp://HOST:PORT")


class IntegrationProgress(Callback):
    """A tqdm bar over integrations, advanced when every stored array has written a chunk."""

    def __init__(self, sources, total: int, enabled: bool = True):
        super().__init__()
        self.chunks = sources[0].chunks[0]
        self.needed = len(sources)
        self.done = {}
        self.bar = tqdm(total=total, unit="int", desc="spec2x", disable=not enabled, smoothing=0.1)

    def _posttask(self, key, result, dsk, state, id):
        if isinstance(key, tuple) and str(key[0]).startswith("store-map") and len(key) > 1:
            i = key[1]
            self.done[i] = self.done.get(i, 0) + 1
            if self.done[i] == self.needed:
                self.bar.update(self.chunks[i])

    def _finish(self, dsk, state, errored):
        self.bar.close()


def storer(client, show: bool, total: int):
    """A ``store(sources, targets)`` for ``products.write`` that draws a progress bar when ``show``."""

    def store(sources, targets):
        if client is None:
            with IntegrationProgress(sources, total, show):
                da.store(sources, targets, lock=False)
            return
        future = client.compute(da.store(sources, targets, lock=False, compute=False))
        if show:
            from distributed import progress

            progress(future)
        future.result()

    return store
