#!/usr/bin/env python
"""How accurately do spec2x (sparse LU) and jwst (dense inverse) solve ATOCA's joint order 1+2 system?

    python benchmarks/atoca_accuracy.py --workdir /tmp/atoca-accuracy

Builds the synthetic NIRISS SOSS SUBSTRIP256 case, takes spec2x's ATOCA plan for it (the normal matrix
A^T A + t^2 D^T D with jwst's Tikhonov factor t, and the projection A^T / error), forms the right-hand side
of the first integration, and solves it three ways: spec2x's sparse LU; jwst 3.0.0's method (the product
with ``np.linalg.inv`` of the dense matrix, what ``precompute_detector_model`` does); the sparse LU
solution refined by five steps of iterative refinement (the reference).  Prints the relative residual
|M x - b| / |b| of each and their distance from the refined solution; appends a row to results.jsonl.
Costs about 5 min of CPU and 4 GB (the dense inverse).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/spec2x-atoca-accuracy"))
    a = ap.parse_args()

    import spec2x
    from spec2x.synthetic import make_niriss_soss

    case = make_niriss_soss(a.workdir / "case", nints=3, seed=1)
    calibrated = spec2x.calibrate(case["rateints"][0], refs=case["refs"])
    plan = calibrated.recipe.prepared["extract_1d"].atoca
    matrix = plan.normal.matrix
    sci = np.asarray(calibrated.cube.sci[0].values, np.float64).ravel()[plan.pixels]
    rhs = plan.projection @ np.where(np.isfinite(sci), sci, 0.0)

    x_lu = plan.normal.solve(rhs)
    t0 = time.process_time()
    x_inv = np.linalg.inv(matrix.toarray()) @ rhs
    inverse_cpu = time.process_time() - t0
    x_ref = x_lu.copy()
    for _ in range(5):
        x_ref += plan.normal.solve(rhs - matrix @ x_ref)

    def residual(x):
        return float(np.linalg.norm(matrix @ x - rhs) / np.linalg.norm(rhs))

    def distance(x):
        return float(np.linalg.norm(x - x_ref) / np.linalg.norm(x_ref))

    row = {"date": str(date.today()), "bench": "atoca_accuracy", "n": int(matrix.shape[0]), "nnz": int(matrix.nnz),
           "tikfac": plan.tikfac, "residual_sparse_lu": residual(x_lu), "residual_dense_inverse": residual(x_inv),
           "residual_refined": residual(x_ref), "distance_sparse_lu": distance(x_lu),
           "distance_dense_inverse": distance(x_inv), "dense_inverse_cpu_s": round(inverse_cpu, 1)}
    print(json.dumps(row), flush=True)
    with open(HERE / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
