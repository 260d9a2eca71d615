"""Where the graph runs (threads, processes, a local or remote dask.distributed cluster) and how
progress is shown (integrations done / total, rate, ETA).

On a cluster the chunk tasks carry file paths and offsets, never the exposure's data: each worker
reads its chunk of the inputs and writes its blocks of the products itself, so the inputs and the
output folder must be on storage every worker sees at the same path.  A chunk whose worker dies is
computed again on another one (writes are idempotent), so a lost worker does not fail the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import importlib.util
import logging
import socket
import sys
import uuid
from pathlib import Path

import dask
from dask.callbacks import Callback
from tqdm import tqdm

from spec2x.errors import Interrupted, Spec2xError
from spec2x.products.chunks import TASK_PREFIX

LOCAL_SCHEDULERS = ("threads", "processes", "sync", "synchronous")
REMOTE_SCHEMES = ("tcp://", "tls://")
CONNECT_TIMEOUT = 10.0  # seconds to reach a remote scheduler and register with it


def is_remote(spec: str | None) -> bool:
    """True for a scheduler address (``tcp://``/``tls://``): its workers may run in other folders."""
    return bool(spec) and spec.strip().startswith(REMOTE_SCHEMES)


def check(spec: str | None) -> str:
    """``spec`` normalised, or a Spec2xError (one line) for a malformed one or a scheduler address
    that cannot be reached, before any work is done."""
    spec = (spec or "threads").strip()
    if spec in LOCAL_SCHEDULERS:
        return spec
    if spec.startswith("local:"):
        _local_workers(spec)
        return spec
    if is_remote(spec):
        _probe(spec)
        return spec
    raise Spec2xError(f"--scheduler {spec}: expected threads, processes, local:N or tcp://HOST:PORT")


def _local_workers(spec: str) -> int:
    try:
        workers = int(spec.split(":", 1)[1])
    except ValueError:
        workers = 0
    if workers < 1:
        raise Spec2xError(f"--scheduler {spec}: expected local:N with N a number of workers (at least 1)")
    return workers


@contextlib.contextmanager
def scheduler(spec: str | None):
    """Run the enclosed computations on ``threads``, ``processes``, ``local:N`` or ``tcp://HOST:PORT``.

    Yields the ``distributed.Client`` (None for threads/processes).  ``local:N`` starts a LocalCluster
    of N one-thread worker processes; a ``tcp://`` address that cannot be reached is a Spec2xError
    within seconds.  The dashboard link goes to stderr.
    """
    spec = check(spec)
    if spec in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=_local_get(spec)):
            yield None
        return
    from distributed import Client, LocalCluster

    if spec.startswith("local:"):
        with _quiet_distributed() as quiet, \
                LocalCluster(n_workers=_local_workers(spec), threads_per_worker=1, processes=True,
                             dashboard_address=":0") as cluster:
            with Client(cluster) as client:
                _announce_dashboard(client)
                with _quiet_teardown(quiet):
                    yield client
        return
    with _quiet_distributed() as quiet:
        client = connect(spec)
        with client:
            _announce_dashboard(client)
            with _quiet_teardown(quiet):
                yield client


def _probe(address: str, timeout: float = 5.0):
    """A Spec2xError unless a dask scheduler answers at ``address`` within ``timeout`` seconds:
    distributed itself retries a refused connection until its timeout, and waits for ever on a port
    where something else listens."""
    from distributed.comm import parse_address, parse_host_port

    try:
        _, location = parse_address(address)
        host, port = parse_host_port(location, 8786)
    except (ValueError, TypeError) as exc:
        raise Spec2xError(f"--scheduler {address}: expected tcp://HOST:PORT ({exc})") from None
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise Spec2xError(f"--scheduler {address}: cannot reach a dask scheduler there ({reason})") from None
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own event loop, even inside Jupyter's
        try:
            kind = pool.submit(asyncio.run, _server_type(address, timeout)).result()
            detail = f"a dask {kind} answered"
        except (asyncio.TimeoutError, TimeoutError):
            kind, detail = None, f"no dask answer within {timeout:g} s"
        except (OSError, TypeError, ValueError) as exc:  # TypeError: tls:// without TLS configuration
            kind, detail = None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if kind != "Scheduler":
        raise Spec2xError(f"--scheduler {address}: not a dask scheduler there ({detail})")


async def _server_type(address: str, timeout: float) -> str:
    """The ``type`` a dask server at ``address`` says it is (``Scheduler``, ``Worker``, ...)."""
    from distributed.comm import connect
    from distributed.security import Security

    comm = await asyncio.wait_for(connect(address, timeout=timeout,
                                          **Security().get_connection_args("client")), timeout)
    try:
        await asyncio.wait_for(comm.write({"op": "identity"}), timeout)
        reply = await asyncio.wait_for(comm.read(), timeout)
    finally:
        comm.abort()
    return str(reply.get("type")) if isinstance(reply, dict) else type(reply).__name__


def connect(address: str, timeout: float = CONNECT_TIMEOUT):
    """A ``distributed.Client`` of the scheduler at ``address``; a Spec2xError (one line) when there
    is none, within seconds (a closed port fails at once)."""
    from distributed import Client

    _probe(address, min(timeout, 5.0))
    try:
        return Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise Spec2xError(f"--scheduler {address}: no dask scheduler answered there ({exc})") from None


@contextlib.contextmanager
def _quiet_distributed():
    """distributed logs every start and stop at INFO: keep warnings and errors only.  Yields a
    function that raises the threshold further; every level is restored on exit."""
    names = {"distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))}
    loggers = [logging.getLogger(name) for name in sorted(names)]
    levels = [logger.level for logger in loggers]

    def at_least(level):
        for logger in loggers:
            if logger.getEffectiveLevel() < level:
                logger.setLevel(level)

    at_least(logging.WARNING)
    try:
        yield at_least
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _quiet_teardown(quiet):
    """Closing a cluster logs workers killed for being slow to stop, and closing a client whose
    scheduler is gone logs tracebacks: after the run (or its one-line error) they would only be noise."""
    try:
        yield
    except BaseException:
        quiet(logging.CRITICAL)
        raise
    finally:
        quiet(logging.ERROR)


def _local_get(spec: str):
    """dask's ``get`` function of a local scheduler.  Given by name, dask imports dask.distributed (≈ 1 s)
    to look for a Client first; given as a function, it just runs it."""
    if spec == "processes":
        import dask.multiprocessing

        return dask.multiprocessing.get
    if spec == "threads":
        import dask.threaded

        return dask.threaded.get
    import dask.local

    return dask.local.get_sync


def _announce_dashboard(client):
    link = client.dashboard_link
    if not link:
        return
    note = "" if importlib.util.find_spec("bokeh") else " (install bokeh to see it)"
    print(f"dask dashboard: {link}{note}", file=sys.stderr, flush=True)


class IntegrationProgress(Callback):
    """Advances a tqdm bar over integrations as each chunk task finishes (local schedulers)."""

    def __init__(self, bar: tqdm, keys=frozenset()):
        super().__init__()
        self.bar, self.keys = bar, frozenset(keys)

    def _posttask(self, key, result, dsk, state, id):
        if key in self.keys or str(key).startswith(TASK_PREFIX):
            self.bar.update(result)


def _integrations(tasks) -> int | None:
    """Integrations the chunk tasks will write (each calls ``writer(chunk, start, stop)``), if readable."""
    total = 0
    try:
        for task in tasks:
            args = task.__dask_graph__()[task.key].args
            total += int(args[2]) - int(args[1])
    except Exception:  # another dask's task representation: the bar just starts at 0
        return None
    return total


def runner(client, show: bool, total: int, workers=None):
    """A ``run(tasks)`` for ``products.write``: computes the chunk tasks with a bar over integrations
    (on stderr), on the current dask scheduler (``client`` None) or on a dask.distributed cluster
    (only on the worker addresses ``workers``, when given: how ``benchmarks/sweep.py`` varies them)."""

    def run(tasks):
        todo = _integrations(tasks)
        done = total - todo if todo is not None and todo <= total else 0
        with tqdm(total=total, initial=done, unit="int", desc="spec2x", disable=not show, smoothing=0.1,
                  file=sys.stderr) as bar:
            if client is None:
                with IntegrationProgress(bar, [t.key for t in tasks]):
                    dask.compute(*tasks)
            else:
                _run_on_cluster(client, tasks, bar, workers)

    return run


def _run_on_cluster(client, tasks, bar, workers=None):
    """Submit every chunk task, advance the bar as chunks finish, stop the rest on any failure.

    A worker that dies takes its running chunk with it; the scheduler runs it again elsewhere
    (up to ``distributed.scheduler.allowed-failures`` deaths per task)."""
    from distributed import as_completed
    from distributed.client import CancelledError
    from distributed.comm import CommClosedError
    from distributed.scheduler import KilledWorker

    check_workers(client)
    futures = _submit(client, tasks, workers)
    try:
        for future in as_completed(futures):
            bar.update(future.result())
    except KilledWorker:
        client.cancel(futures)
        deaths = dask.config.get("distributed.scheduler.allowed-failures") + 1
        raise Spec2xError(f"dask workers died {deaths} time{'s' * (deaths != 1)} while computing one chunk "
                          "(out of memory? try a smaller --chunk-ints or more memory per worker)") from None
    except CommClosedError as exc:
        raise Interrupted(f"lost the connection to the dask scheduler ({exc})") from None
    except CancelledError:
        raise Interrupted("the dask cluster cancelled the run before it finished (did the scheduler stop?)") from None
    except BaseException:
        client.cancel(futures)
        raise


def code_fingerprint() -> str:
    """spec2x's version and a digest of its source (package and kernels): workers must run the same code
    as the client, or chunks would be calibrated differently (or fail to unpickle)."""
    import spec2x
    import kernels

    digest = hashlib.sha256()
    for package in (spec2x, kernels):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return f"{spec2x.__version__}+{digest.hexdigest()[:12]}"


def _worker_fingerprint() -> str:
    try:
        return code_fingerprint()
    except ImportError as exc:
        return f"none ({exc})"


def check_workers(client):
    """A user error naming the workers whose spec2x differs from the client's (checked before any work)."""
    ours = code_fingerprint()
    theirs = client.run(_worker_fingerprint)
    other = sorted(address for address, value in theirs.items() if value != ours)
    if other:
        raise Spec2xError(f"dask workers {', '.join(other)} run spec2x {theirs[other[0]]}, this client "
                          f"{ours}: install the same spec2x on the workers")


def _submit(client, tasks, workers=None) -> list:
    """Futures of the chunk tasks.  ``chunks.tasks`` calls one writer (the exposure's recipe: prepared
    reference arrays, about 1.5 MB for MIRI LRS) on each chunk; submitted as it is, every task would
    carry its own copy of the writer to its worker.  The writer goes to the cluster once instead, as a
    task of its own (recomputed if the worker holding it dies), and each chunk task refers to it."""
    calls = _writer_calls(tasks)
    if calls is None:
        return client.compute(list(tasks), workers=workers)
    writer, args = calls
    shared = client.submit(_identity, writer, key=f"spec2x-writer-{uuid.uuid4().hex}", pure=False, workers=workers)
    return client.map(_call, [shared] * len(args), *zip(*args), key=[t.key for t in tasks], pure=False,
                      workers=workers)


def _writer_calls(tasks):
    """``(writer, [(chunk, start, stop), ...])`` when every task calls the same writer on a chunk, else None."""
    writer, args = None, []
    try:
        for task in tasks:
            spec = task.__dask_graph__()[task.key]
            call = tuple(spec.args)
            if spec.kwargs or len(call) != 3 or not all(isinstance(a, int) for a in call):
                return None
            if writer is None:
                writer = spec.func
            if spec.func is not writer:
                return None
            args.append(call)
    except Exception:  # another dask's task representation: submit the graph as it is
        return None
    return (writer, args) if args else None


def _identity(value):
    return value


def _call(writer, chunk: int, start: int, stop: int) -> int:
    return writer(chunk, start, stop)
