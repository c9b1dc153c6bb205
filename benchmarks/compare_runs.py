"""Compare two default-run result trees: per-rule CPU and the Koopman results (issue 24).

    python benchmarks/compare_runs.py BEFORE/results AFTER/results

Prints Markdown: per rule, jobs and summed ``cpu_time`` of ``results/benchmarks/``
(Snakemake's psutil sampling, CPU seconds) before and after; then, per Koopman model
(``results/koopman/<system>/<model>/``), the slowest timescale at every lag with its CI
(``timescales.csv``) and the populations at tau* with their CIs (``populations.csv``),
before and after, and whether each after-value lies inside the before-CI and vice versa.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path


def rule_cpu(results: Path) -> dict[str, tuple[int, float]]:
    """rule -> (jobs, summed cpu_time seconds) from ``results/benchmarks``."""
    out: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for f in sorted((results / "benchmarks").rglob("*.tsv")):
        rows = list(csv.DictReader(f.open(), delimiter="\t"))
        if rows:
            rule = f.relative_to(results / "benchmarks").parts[0]
            out[rule][0] += 1
            out[rule][1] += float(rows[-1].get("cpu_time") or 0.0)
    return {k: (int(v[0]), v[1]) for k, v in out.items()}


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def _inside(x: float, lo: float, hi: float) -> str:
    return "yes" if lo <= x <= hi else "**no**"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    a = ap.parse_args()
    b, c = rule_cpu(a.before), rule_cpu(a.after)
    print("| rule | jobs before | jobs after | CPU s before | CPU s after |\n|---|---|---|---|---|")
    for rule in sorted(set(b) | set(c), key=lambda r: -b.get(r, (0, 0.0))[1]):
        jb, sb = b.get(rule, (0, 0.0))
        jc, sc = c.get(rule, (0, 0.0))
        print(f"| {rule} | {jb} | {jc} | {sb:.1f} | {sc:.1f} |")
    tb, tc = sum(v[1] for v in b.values()), sum(v[1] for v in c.values())
    print(f"| **all jobs** | {sum(v[0] for v in b.values())} | {sum(v[0] for v in c.values())}"
          f" | {tb:.1f} | {tc:.1f} |\n")
    print("| model | quantity | before [95% CI] | after [95% CI] | after in before-CI | "
          "before in after-CI |\n|---|---|---|---|---|---|")
    for mdir in sorted((a.before / "koopman").glob("*/*")):
        other = a.after / mdir.relative_to(a.before)
        name = "/".join(mdir.parts[-2:])
        ts_b = [r for r in _rows(mdir / "timescales.csv") if r["process"] == "1"]
        ts_c = {r["lag_ps"]: r for r in _rows(other / "timescales.csv") if r["process"] == "1"}
        for r in ts_b:
            q = ts_c.get(r["lag_ps"])
            if q is None:
                continue
            vb, lb, hb = (float(r[k]) for k in ("timescale_ps", "ci_low_ps", "ci_high_ps"))
            vc, lc, hc = (float(q[k]) for k in ("timescale_ps", "ci_low_ps", "ci_high_ps"))
            print(f"| {name} | t1 at lag {float(r['lag_ps']):g} ps | {vb:.1f} [{lb:.1f}, {hb:.1f}]"
                  f" | {vc:.1f} [{lc:.1f}, {hc:.1f}] | {_inside(vc, lb, hb)} | "
                  f"{_inside(vb, lc, hc)} |")
        pop_c = {r["state"]: r for r in _rows(other / "populations.csv")}
        for r in _rows(mdir / "populations.csv"):
            q = pop_c.get(r["state"])
            if q is None:
                continue
            vb, lb, hb = (100 * float(r[k]) for k in ("population", "ci_low", "ci_high"))
            vc, lc, hc = (100 * float(q[k]) for k in ("population", "ci_low", "ci_high"))
            print(f"| {name} | population {r['state']} at tau* {float(r['tau_ps']):g} ps (%) | "
                  f"{vb:.2f} [{lb:.2f}, {hb:.2f}] | {vc:.2f} [{lc:.2f}, {hc:.2f}] | "
                  f"{_inside(vc, lb, hb)} | {_inside(vb, lc, hc)} |")
        sb = json.loads((mdir / "summary.json").read_text())
        sc = json.loads((other / "summary.json").read_text()) if (other / "summary.json").is_file() else {}
        for key in ("ck_pass", "its_converged", "unconverged_models", "vamp2"):
            print(f"| {name} | {key} | {sb.get(key)} | {sc.get(key)} | | |")


if __name__ == "__main__":
    main()
