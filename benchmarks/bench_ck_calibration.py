"""Error rate and power of the CK verdict on chains whose answer is known (issue 22).

    python benchmarks/bench_ck_calibration.py [--replicates 200] [--workers 2] [--out FILE]

Every replicate is a fresh trajectory of ``atoms`` independent atoms x ``frames`` frames
(one target set per atom), analysed exactly as the API does it::

    km = KoopmanModel.estimate(p, lag, 1.0, ci={"method": "bootstrap", "seed": r}, selection=None)
    km.ck_test(p, steps).passed   # (the script passes the ci to ck_test: same resamples)

with the default bootstrap (500 resamples, block rule of gdyn.koopman.uncertainty) and the
default alpha 0.05. Cases: exact reversible Markov chains of 2-8 states with populations
falling geometrically to ~3 % (one-hot memberships, and soft ones: a fixed affine blend,
weight 0.3, of the states), where every FAIL is a false FAIL; and the lumped 3 -> 2 state
chain of tests/_markov_chains.py, where every PASS is a miss. Prints a markdown table
(FAIL count, rate and its 95 % Wilson interval) and writes it as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _markov_chains import lumped_chain, markov_chain

from gdyn.koopman import KoopmanModel

# (name, kind, n_states, soft weight, atoms, frames, lag frames, CK steps)
CASES = [
    ("markov-2 one-hot", "markov", 2, 0.0, 16, 8000, 10, 6),
    ("markov-3 one-hot", "markov", 3, 0.0, 16, 8000, 10, 6),
    ("markov-4 one-hot", "markov", 4, 0.0, 16, 8000, 10, 6),
    ("markov-6 one-hot", "markov", 6, 0.0, 16, 8000, 10, 6),
    ("markov-8 one-hot", "markov", 8, 0.0, 16, 8000, 10, 6),
    ("markov-2 soft", "markov", 2, 0.3, 16, 8000, 10, 6),
    ("markov-4 soft", "markov", 4, 0.3, 16, 8000, 10, 6),
    ("markov-8 soft", "markov", 8, 0.3, 16, 8000, 10, 6),
    ("lumped 3->2 (power)", "lumped", 2, 0.0, 16, 8000, 10, 6),
]


def one(args: tuple[int, int]) -> tuple[int, int, bool, float]:
    """(case index, replicate, FAIL, p value) of one replicate."""
    c, r = args
    _, kind, n, soft, atoms, frames, lag, steps = CASES[c]
    seed = 1000 * c + r
    if kind == "markov":
        p = markov_chain(n, frames, atoms, seed, soft=soft)
    else:
        p = lumped_chain(frames, atoms, seed)
    # The CK draws its own resamples (ci), so the model needs none here.
    km = KoopmanModel.estimate(p, float(lag), 1.0, selection=None)
    ck = km.ck_test(p, steps, ci={"method": "bootstrap", "seed": r})
    return c, r, not ck.passed, float(ck.verdict.p_value)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a binomial rate."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cases", type=str, default="", help="comma-separated case indices")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    cases = [int(x) for x in a.cases.split(",")] if a.cases else list(range(len(CASES)))
    jobs = [(c, r) for c in cases for r in range(a.replicates)]
    t0 = time.time()
    fails: dict[int, int] = dict.fromkeys(cases, 0)
    done = 0
    with ProcessPoolExecutor(a.workers) as ex:
        for c, r, failed, pv in ex.map(one, jobs, chunksize=4):
            fails[c] += failed
            done += 1
            print(f"case {c} rep {r} fail {int(failed)} p {pv:.3g}", file=sys.stderr, flush=True)
    wall = time.time() - t0
    rows = []
    print("| case | atoms x frames | lag | steps | FAIL | rate | 95% CI |")
    print("|---|---|---|---|---|---|---|")
    for c in cases:
        name, kind, n, soft, atoms, frames, lag, steps = CASES[c]
        k = fails[c]
        lo, hi = wilson(k, a.replicates)
        rows.append({"case": name, "kind": kind, "n_states": n, "soft": soft, "atoms": atoms,
                     "frames": frames, "lag_frames": lag, "steps": steps, "fail": k,
                     "replicates": a.replicates, "rate": k / a.replicates,
                     "ci95": [lo, hi]})  # fmt: skip
        print(f"| {name} | {atoms} x {frames} | {lag} | {steps} | {k}/{a.replicates} | "
              f"{k / a.replicates:.3f} | [{lo:.3f}, {hi:.3f}] |")  # fmt: skip
    print(f"wall {wall:.0f} s, {a.workers} workers")
    if a.out:
        a.out.write_text(json.dumps({"rows": rows, "wall_s": wall}, indent=1))


if __name__ == "__main__":
    main()
