"""Coverage of the rebuilt global timescale's interval and error rates of "converged" (issue 22).

    python benchmarks/bench_intervals.py [--replicates 200] [--workers 2] [--cases 0,1,2]
        [--no-converged] [--out FILE]

Every replicate is a fresh trajectory of 16 independent atoms x 8,000 frames (one-hot
memberships, one target set per atom), analysed as the API does it with the default
bootstrap (500 resamples, block rule of gdyn.koopman.uncertainty):

* **rebuild**: the toy-like 2-state chain (relaxation 42 frames, 9 % minor state, lag 10
  frames), ``KoopmanModel.estimate(..., ci={"method": "bootstrap", "seed": r})`` and the
  paper comparison's :func:`gdyn.compare.headlines.rebuilt_global_interval` on its replicate
  K; the truth is the rebuild of the chain's exact ``T^10`` (519.4 frames). Counted: the
  intervals that cover it (nominal 95 %), and for comparison the old box of the two
  intervals (t1 and the minor population) built from the same model.
* **converged**: ``implied_timescales(p, 1.0, [1, 2, 5, 10, 20, 40], ci=...)`` and the
  slowest process's ``converged`` flag at each lag (converged needs a later lag that
  resolves the process and agrees: the last lag, 40, is never converged). On exact Markov chains (the 2-state one
  and a 4-state one) the implied timescale does not depend on the lag, so "not converged"
  is a false alarm; on the lumped 3 -> 2 chain of tests/_markov_chains.py it rises with
  the lag (exact values printed), so "converged" at a lag where it still rises is a miss.

Prints markdown tables and writes JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _markov_chains import LUMPED_T, lumped_chain, markov_chain, simulate, stationary
from bench_ck_calibration import wilson  # the Wilson interval of a rate, written once

from gdyn.compare.headlines import (
    global_timescale_from_local,
    local_koopman_matrix,
    rebuilt_global_interval,
)
from gdyn.koopman import KoopmanModel, implied_timescales
from gdyn.koopman.eigen import timescales_from_eigenvalues

ATOMS, FRAMES, LAG = 16, 8000, 10
LAGS = [1.0, 2.0, 5.0, 10.0, 20.0, 40.0]
T1, PI_MINOR = 42.0, 0.09
_LAM = math.exp(-1.0 / T1)
TOY_T = np.array([[1 - PI_MINOR * (1 - _LAM), PI_MINOR * (1 - _LAM)],
                  [(1 - PI_MINOR) * (1 - _LAM), 1 - (1 - PI_MINOR) * (1 - _LAM)]])  # fmt: skip
CASES = ["toy-like 2-state Markov", "4-state Markov", "lumped 3->2"]


def rebuild_truth() -> float:
    return global_timescale_from_local(np.linalg.matrix_power(TOY_T, LAG), float(LAG))


def lumped_timescales() -> list[float]:
    """Exact slowest implied timescale of the lumped chain's macro states at each lag."""
    pi = stationary(LUMPED_T)
    chi = np.array([[1, 0], [1, 0], [0, 1]], dtype=float)
    c00 = chi.T @ np.diag(pi) @ chi
    out = []
    for lag in LAGS:
        c01 = chi.T @ np.diag(pi) @ np.linalg.matrix_power(LUMPED_T, int(lag)) @ chi
        lam = np.sort(np.linalg.eigvals(np.linalg.solve(c00, c01)).real)[0]
        out.append(float(timescales_from_eigenvalues(np.array([lam]), lag)[0]))
    return out


def data(case: int, r: int) -> np.ndarray:
    seed = 50_000 + 1000 * case + r
    if case == 0:
        return np.eye(2)[simulate(TOY_T, FRAMES, ATOMS, np.random.default_rng(seed))]
    if case == 1:
        return markov_chain(4, FRAMES, ATOMS, seed)
    return lumped_chain(FRAMES, ATOMS, seed)


def one(args: tuple[int, int, bool]) -> dict:
    case, r, with_its = args
    p = data(case, r)
    ci = {"method": "bootstrap", "seed": r}
    out: dict = {"case": case, "r": r}
    if with_its:
        its = implied_timescales(p, 1.0, LAGS, ci=ci, selection=None)
        out |= {"converged": its.flags.converged[:, 0].tolist(),
                "t1": its.timescales_ps[:, 0].tolist()}  # fmt: skip
    if case == 0:
        km = KoopmanModel.estimate(p, float(LAG), 1.0, ci=ci, selection=None)
        truth = rebuild_truth()
        lo, hi = rebuilt_global_interval(km.group_matrices, float(LAG), {"method": "bootstrap"})
        pops = km.populations_frame()
        t_lo, t_hi = (float(x[0]) for x in km.interval(
            np.array([timescales_from_eigenvalues(s.eigenvalues[1:], LAG)[:1]
                      for s in km.group_spectra]), log_scale=True))  # fmt: skip
        p_lo, p_hi = float(pops["ci_low"][1]), float(pops["ci_high"][1])

        def rebuilt(t: float, minor: float) -> float:
            k = local_koopman_matrix(t, [1 - minor, minor], float(LAG))
            return global_timescale_from_local(k, float(LAG))

        box = (rebuilt(t_lo, p_hi), rebuilt(t_hi, p_lo))
        out |= {"cover": bool(lo <= truth <= hi), "width": hi - lo,
                "box_cover": bool(box[0] <= truth <= box[1]), "box_width": box[1] - box[0]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cases", type=str, default="0,1,2")
    ap.add_argument("--no-converged", action="store_true",
                    help="the rebuild's coverage only (no implied timescales: ~10x faster)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    cases = [int(x) for x in a.cases.split(",")]
    t0 = time.time()
    with ProcessPoolExecutor(a.workers) as ex:
        jobs = [(c, r, not a.no_converged) for c in cases for r in range(a.replicates)]
        rows = list(ex.map(one, jobs, chunksize=4))
    wall = time.time() - t0
    n = a.replicates
    result: dict = {"replicates": n, "wall_s": wall, "lags": LAGS}
    if 0 in cases:
        reb = [x for x in rows if x["case"] == 0]
        k, kb = sum(x["cover"] for x in reb), sum(x["box_cover"] for x in reb)
        result["rebuild"] = {
            "truth": rebuild_truth(), "cover": k, "box_cover": kb,
            "median_width": float(np.median([x["width"] for x in reb])),
            "median_box_width": float(np.median([x["box_width"] for x in reb])),
        }  # fmt: skip
        lo, hi = wilson(k, n)
        blo, bhi = wilson(kb, n)
        r_ = result["rebuild"]
        print(f"rebuilt global timescale (truth {r_['truth']:.1f} frames), {n} replicates:")
        print("| interval | covers truth | rate | 95% CI | median width |")
        print("|---|---|---|---|---|")
        print(f"| engine (rebuild on each replicate) | {k}/{n} | {k / n:.3f} | "
              f"[{lo:.3f}, {hi:.3f}] | {r_['median_width']:.0f} |")
        print(f"| old box of two CIs | {kb}/{n} | {kb / n:.3f} | [{blo:.3f}, {bhi:.3f}] | "
              f"{r_['median_box_width']:.0f} |")
    result["lumped_exact_t1"] = lumped_timescales()
    if a.no_converged:
        cases = []
    print("\nslowest process called converged, by lag (frames):")
    print("| case | " + " | ".join(f"{lag:g}" for lag in LAGS) + " |")
    print("|---|" + "---|" * len(LAGS))
    for c in cases:
        conv = np.array([x["converged"] for x in rows if x["case"] == c])
        t1 = np.array([x["t1"] for x in rows if x["case"] == c])
        result[CASES[c]] = {"converged": conv.sum(axis=0).tolist(),
                            "median_t1": np.median(t1, axis=0).tolist()}  # fmt: skip
        print(f"| {CASES[c]} | " + " | ".join(f"{k}/{n}" for k in conv.sum(axis=0)) + " |")
        print("| (median t1) | " + " | ".join(f"{v:.0f}" for v in np.median(t1, axis=0)) + " |")
    print("| lumped exact t1 | " + " | ".join(f"{v:.0f}" for v in result["lumped_exact_t1"])
          + " |")
    print(f"wall {wall:.0f} s, {a.workers} workers")
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
