"""Calibrate an exposure on a SLURM cluster with dask-jobqueue (an example; not a spec2x dependency).

    pip install dask-jobqueue
    python benchmarks/hpc/dask_jobqueue_slurm.py /scratch/me/jw..._rateints.fits -o /scratch/me/products \
        --refs-dir /scratch/me/crds_refs --queue normal --account myproj --jobs 8

Run it where jobs can be submitted (a login node, or a small job of its own): this process holds the
dask scheduler.  Each SLURM job starts ``--cores`` one-thread dask workers; they read their chunks of
the exposure and write their blocks of the products themselves, so the inputs, references, output
folder and this Python environment must be on storage every node mounts at the same path.  A worker
or job that dies has its chunks computed again elsewhere; if the whole run is lost (this process,
or the allocation's walltime), the same command with ``--resume`` continues from the finished chunks.

The command line can use the same cluster instead: start it (``cluster.scale``) in a notebook or a
script, then ``spec2x run ... --scheduler <cluster.scheduler_address>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", help="_rateints file(s) of one exposure, or its ASN")
    parser.add_argument("-o", "--output-dir", required=True, type=Path)
    parser.add_argument("--refs-dir", required=True, type=Path, help="folder of reference files")
    parser.add_argument("--chunk-ints", type=int, default=None)
    parser.add_argument("--format", choices=("fits", "zarr"), default="fits")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--jobs", type=int, default=4, help="SLURM jobs (the maximum with --adapt)")
    parser.add_argument("--adapt", action="store_true", help="grow and shrink between 1 and --jobs with the load")
    parser.add_argument("--cores", type=int, default=16, help="cores per job, one worker process each")
    parser.add_argument("--memory", default="64GB", help="memory per job, shared by its workers")
    parser.add_argument("--walltime", default="02:00:00")
    parser.add_argument("--queue", default=None)
    parser.add_argument("--account", default=None)
    args = parser.parse_args(argv)

    from dask_jobqueue import SLURMCluster
    from distributed import Client

    import spec2x
    from spec2x import products, scheduling
    from spec2x.refs import RefSet

    cluster = SLURMCluster(
        queue=args.queue, account=args.account, walltime=args.walltime,
        cores=args.cores, processes=args.cores, memory=args.memory,  # one thread per worker process
        local_directory="$TMPDIR", log_directory="dask-logs",       # spill space on the node; job logs here
    )
    if args.adapt:
        cluster.adapt(minimum_jobs=1, maximum_jobs=args.jobs)
    else:
        cluster.scale(jobs=args.jobs)

    inputs = [str(Path(p).resolve()) for p in args.inputs]  # the workers see the same absolute paths
    result = spec2x.calibrate(inputs[0] if len(inputs) == 1 else inputs,
                              refs=RefSet(search_dirs=[str(args.refs_dir.resolve())]), chunk_ints=args.chunk_ints)
    nints = result.cube.sizes["integration"]
    with cluster, Client(cluster) as client:
        print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
        run = scheduling.runner(client, show=sys.stderr.isatty(), total=nints)
        paths = products.write(result, args.output_dir.resolve(), fmt=args.format, resume=args.resume, run=run)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
