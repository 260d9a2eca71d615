"""Where the graph runs (threads, processes, a local or remote dask.distributed cluster) and how
progress is shown (integrations done / total, rate, ETA)."""

from __future__ import annotations

import contextlib
import sys

import dask
from dask.callbacks import Callback
from tqdm import tqdm

from spec2x.errors import Spec2xError
from spec2x.products.chunks import TASK_PREFIX


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
    """A tqdm bar over integrations, advanced as each chunk task finishes writing."""

    def __init__(self, total: int, enabled: bool = True):
        super().__init__()
        self.bar = tqdm(total=total, unit="int", desc="spec2x", disable=not enabled, smoothing=0.1)

    def _posttask(self, key, result, dsk, state, id):
        if str(key).startswith(TASK_PREFIX):
            self.bar.update(result)

    def _finish(self, dsk, state, errored):
        self.bar.close()


def runner(client, show: bool, total: int):
    """A ``run(tasks)`` for ``products.write``: a progress bar locally, dask's own on a cluster."""

    def run(tasks):
        if client is None:
            with IntegrationProgress(total, show):
                dask.compute(*tasks)
            return
        futures = client.compute(tasks)
        if show:
            from distributed import progress

            progress(futures)
        client.gather(futures)

    return run
