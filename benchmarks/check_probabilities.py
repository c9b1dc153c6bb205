"""Every probability a finished run reports, and its interval, lies in [0, 1] (issue 22).

    python benchmarks/check_probabilities.py RESULTS_DIR

Reads every Koopman directory (populations.csv, the stationary row of eigen.csv, ck.csv's
predictions and estimates with their intervals, summary.json's populations and ck_worst),
conduction.csv's population_from and K, and the population rows of paper_comparison.csv
(percent, in [0, 100]). Prints the number of values checked and every violation; exits 1
when there is one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def check(root: Path) -> tuple[int, list[str]]:
    bad: list[str] = []
    n = 0

    def values(name: str, vals: object, lo: float = 0.0, hi: float = 1.0) -> None:
        nonlocal n
        v = np.asarray(vals, dtype=float)
        v = v[np.isfinite(v)]
        n += v.size
        if v.size and (v.min() < lo - 1e-12 or v.max() > hi + 1e-12):
            bad.append(f"{name}: min {v.min():.4g} max {v.max():.4g}")

    for d in sorted(p for p in (root / "koopman").glob("*/*") if p.is_dir()):
        pops = pd.read_csv(d / "populations.csv")
        for c in ("population", "ci_low", "ci_high"):
            values(f"{d}/populations.csv {c}", pops[c])
        ck = pd.read_csv(d / "ck.csv")
        for c in ("predicted", "predicted_ci_low", "predicted_ci_high", "estimated",
                  "estimated_ci_low", "estimated_ci_high"):  # fmt: skip
            values(f"{d}/ck.csv {c}", ck[c])
        eigen = pd.read_csv(d / "eigen.csv")
        for c in ("component", "ci_low", "ci_high"):
            values(f"{d}/eigen.csv process 0 {c}", eigen.loc[eigen["process"] == 0, c])
        s = json.loads((d / "summary.json").read_text())
        values(f"{d}/summary.json populations", [x for x in s["populations"] if x is not None])
        worst = s.get("ck_worst") or {}
        values(f"{d}/summary.json ck_worst", [worst[k] for k in ("predicted", "estimated")
                                              if worst.get(k) is not None])  # fmt: skip
    for f in sorted((root / "structure").glob("*/conduction.csv")):
        cond = pd.read_csv(f)
        values(f"{f} population_from", cond["population_from"])
        values(f"{f} K", cond["K"])
    table = root / "tables" / "paper_comparison.csv"
    if table.is_file():
        t = pd.read_csv(table)
        rows = t[(t["unit"].astype(str) == "%") & t["quantity"].str.contains("population")]
        for c in ("run_value", "run_ci_low", "run_ci_high"):
            values(f"{table} population rows {c} (%)", rows[c], 0.0, 100.0)
    return n, bad


def main() -> None:
    n, bad = check(Path(sys.argv[1]))
    print(f"{n} values checked; " + ("violations:" if bad else "no violation"))
    print("\n".join(bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
