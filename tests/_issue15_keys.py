"""TEST FIXTURE, TO BE SWAPPED FOR THE REAL ONE AT THE MERGE WITH ISSUE 15.

The model selection (issue 16) reads, from each Koopman ``summary.json``, keys that the
issue-15 Koopman stage writes (``ck_by_lag``, ``its_converged``, ``collapsed``, ...). Until
that stage is merged, :func:`add_issue15_keys` computes them for the tests from the probs
files with today's API, mirroring the issue-15 rule (gdyn.koopman.verdict.ck_verdict): an
element of step n >= 2 passes when the prediction lies inside the estimate's 95 % CI, or
within 0.05 where that CI is degenerate; a model passes when every element passes.
``its_converged``: the automatic tau* was found by the rule (not its fallback).

It only fills keys that are missing, so once the real stage writes them this is a no-op
and the tests exercise the real verdicts; the integrator may then delete this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.koopman import KoopmanModel, implied_timescales, load_probs

TOLERANCE = 0.05
KEYS = ("ck_by_lag", "its_converged", "collapsed", "n_surviving_states", "ck_pass")


def _verdict(table: Any) -> tuple[bool, float]:
    t = table[table["step"] >= 2]
    pred, est = t["predicted"].to_numpy(float), t["estimated"].to_numpy(float)
    lo, hi = t["estimated_ci_low"].to_numpy(float), t["estimated_ci_high"].to_numpy(float)
    dev = np.abs(pred - est)
    tested = np.isfinite(pred) & np.isfinite(est)
    degenerate = ~(np.isfinite(lo) & np.isfinite(hi)) | ~(hi > lo)
    with np.errstate(invalid="ignore"):
        ok = np.where(degenerate, dev <= TOLERANCE, (pred >= lo) & (pred <= hi))
    if not tested.any():
        return False, math.nan
    return bool(ok[tested].all()), float(dev[tested].max())


def add_issue15_keys(
    summary_path: str | Path, probs_paths: Sequence[str | Path], settings: Mapping[str, Any],
) -> dict[str, Any]:
    """Fill the issue-15 keys the selection reads into ``summary_path`` (if missing)."""
    summary_path = Path(summary_path)
    summary = json.loads(summary_path.read_text())
    if all(k in summary for k in KEYS):
        return summary
    ci = settings.get("ci") or {"method": "chunks", "n": 5}
    steps = int(settings.get("ck_steps", 5))
    by_lag = []
    for path in probs_paths:
        data = load_probs(path)
        km = KoopmanModel.estimate(data, data.lag_ps, ci=ci)
        ok, dev = _verdict(km.ck_test(data, steps).to_frame("m"))
        by_lag.append({"lag_ps": data.lag_ps, "ck_pass": ok, "ck_max_abs_deviation": dev,
                       "n_surviving_states": data.n_states, "collapsed": False})
    by_lag.sort(key=lambda e: e["lag_ps"])
    its = implied_timescales({load_probs(p).lag_ps: p for p in probs_paths}, ci=ci)
    auto = its.select_tau_star()
    converged = auto.index is not None and not auto.reason.startswith("no lag has")
    tau = float(summary["tau_star_ps"])
    at_tau = next(e for e in by_lag if math.isclose(e["lag_ps"], tau, rel_tol=1e-6))
    summary.setdefault("ck_by_lag", by_lag)
    summary.setdefault("its_converged", converged)
    summary.setdefault("collapsed", False)
    summary.setdefault("n_surviving_states", summary["n_states"])
    summary.setdefault("ck_pass", at_tau["ck_pass"])
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary
