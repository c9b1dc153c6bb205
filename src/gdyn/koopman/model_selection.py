"""Model selection: n_states and tau* by the paper's criterion (``koopman.n_states: auto``).

Methods of the paper: "we select the smallest feature space dimension and tau that fulfils
the CK equation within statistical uncertainty". The workflow trains every state count of
``train.models[<model>]`` at every lag; this module reads what the other stages wrote and
applies the rule, it computes no verdict itself:

* each candidate's Koopman ``summary.json`` (one per state count): the CK verdict of every
  lag's own model (``ck_by_lag``: ``lag_ps``, ``ck_pass``, ``ck_max_abs_deviation``,
  ``n_surviving_states``), whether its implied timescales have converged over the lag grid
  (``its_converged``) and from which lag (``tau_star_auto_ps``), and ``collapsed``;
* each model directory's ``config.json`` (one per state count and lag): the kept seed's
  validation and test VAMP-2 and their spread over the live seeds, and the dead seeds.

**The rule** (:func:`select`). A lag of a candidate is *converged* when the candidate's
timescales have converged (``its_converged``) and the lag is not below
``tau_star_auto_ps``, the smallest lag from which every resolved timescale stays inside its
95 % CI at all later lags. Going through the state counts from the smallest, a count is
chosen at the smallest converged lag whose CK test passes (with ``koopman.tau_star_ps`` set,
only that lag is considered); a collapsed candidate, or one whose kept model is dead, is
never chosen. Larger counts that also pass are reported as ties (the smallest count is
the criterion). When no candidate passes, the fallback is taken among the lags whose CK
test could be evaluated beyond step 1 (``ck_evaluable``: step 1 agrees by construction, so
a deviation of 0 there says nothing): a passing CK first, then the smallest CK deviation,
among converged lags (all lags when none converged); ``passed`` is false and the reason
says so.

**No result** (:func:`no_result_reason`). The fallback is a flagged result, not a
missing one; but when no live, non-collapsed candidate exists, or none has a CK test
evaluable beyond step 1 at any lag, there is nothing to select: ``gdyn select`` (and
``gdyn koopman`` when no lag's CK test is evaluable) exits non-zero with the reason
(:class:`NoResult`), unless ``koopman.no_valid_result: keep`` asks to go on with the
flagged fallback. Candidates whose every seed was dead are kept (as the fallback) without
it when ``train.all_seeds_dead: keep`` kept them (the ``kept_dead`` models).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.errors import InputError
from gdyn.files import read_json, write_csv, write_json
from gdyn.koopman.analysis import run_koopman
from gdyn.koopman.settings import KoopmanSettings, as_koopman_settings
from gdyn.layout import lag_label

if TYPE_CHECKING:  # pandas is imported where a table is built: `import gdyn.koopman` stays light
    import pandas as pd

__all__ = [
    "SELECTION_COLUMNS",
    "SELECTION_RULE",
    "NoResult",
    "Selection",
    "candidate_table",
    "check_koopman_result",
    "check_result",
    "koopman_no_result_reason",
    "no_result_reason",
    "run_select",
    "run_select_koopman",
    "select",
]

SELECTION_RULE = (
    "smallest n_states, and within it the smallest lag, whose Chapman-Kolmogorov test passes "
    "within statistical uncertainty (ck_by_lag of the Koopman stage) at a lag where the "
    "implied timescales have converged (its_converged and lag >= tau_star_auto_ps); "
    "collapsed models and dead kept models are never chosen"
)

# Columns of selection.csv (docs/contracts.md), one row per n_states x lag.
SELECTION_COLUMNS: list[str] = [
    "model", "n_states", "lag_ps",
    "val_vamp2", "val_vamp2_min", "val_vamp2_median", "val_vamp2_max",
    "test_vamp2", "test_vamp2_min", "test_vamp2_median", "test_vamp2_max",
    "n_seeds", "n_dead_seeds", "kept_seed", "kept_dead",
    "ck_pass", "ck_evaluable", "ck_max_abs_deviation", "n_surviving_states",
    "its_converged", "converged", "collapsed", "tau_star", "eligible", "selected",
]  # fmt: skip


def _need(data: Mapping[str, Any], key: str, where: str, expected: str, ok: Any) -> Any:
    if key not in data:
        raise InputError(f"{where}: key {key!r}: missing (expected {expected})")
    value = data[key]
    if not ok(value):
        raise InputError(f"{where}: key {key!r}: expected {expected}, got {value!r}")
    return value


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _num(v: Any) -> float:
    return float(v) if _is_num(v) else math.nan


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6)


# --------------------------------------------------------------------------------------
# The candidates' table


def candidate_table(
    summaries: Mapping[str, Mapping[str, Any]],
    configs: Mapping[str, Mapping[str, Any]],
) -> pd.DataFrame:
    """One row per n_states x lag (the :data:`SELECTION_COLUMNS` but ``eligible`` and
    ``selected``, filled by :func:`select`).

    Parameters
    ----------
    summaries : mapping
        File name -> Koopman ``summary.json`` of each candidate state count.
    configs : mapping
        File name -> model ``config.json`` of each candidate (state count, lag).
    """
    import pandas as pd

    per_n: dict[int, tuple[str, Mapping[str, Any]]] = {}
    model = None
    for where, s in summaries.items():
        n = int(_need(s, "n_states", where, "an integer >= 2", lambda v: _is_num(v) and v >= 2))
        m = str(s.get("model", "unknown"))
        if model is not None and m != model:
            raise InputError(f"{where}: key 'model': expected {model!r} (as the other "
                             f"candidates), got {m!r}")
        model = m
        if n in per_n:
            raise InputError(f"{where}: key 'n_states': {n} appears twice (also {per_n[n][0]})")
        per_n[n] = (where, s)
    if not per_n:
        raise InputError("--summaries: expected the Koopman summary.json of at least one "
                         "candidate state count, got none")
    by_key: dict[tuple[int, float], tuple[str, Mapping[str, Any]]] = {}
    for where, c in configs.items():
        n = int(_need(c, "n_states", where, "an integer", _is_num))
        lag = float(_need(c, "lag_ps", where, "a positive number", lambda v: _is_num(v) and v > 0))
        by_key[n, lag] = (where, c)
    rows = []
    for n in sorted(per_n):
        where, s = per_n[n]
        lags = [float(x) for x in _need(s, "lags_ps", where, "a list of lags", lambda v:
                                        isinstance(v, list) and v)]
        ck = _need(s, "ck_by_lag", where, "the per-lag CK verdicts of the Koopman stage "
                   "(a list of {lag_ps, ck_pass, ck_max_abs_deviation, n_surviving_states})",
                   lambda v: isinstance(v, list))
        its = bool(_need(s, "its_converged", where, "true or false", lambda v: isinstance(v, bool)))
        # The smallest lag with converged timescales (issue 22: tau_star_auto_ps also asks
        # for a CK pass, which this table judges per lag itself).
        auto = s.get("its_converged_from_ps", s.get("tau_star_auto_ps"))
        tau = _num(s.get("tau_star_ps"))
        collapsed = bool(s.get("collapsed", False))
        ck_at: dict[float, Mapping[str, Any]] = {}
        for i, entry in enumerate(ck):
            if not isinstance(entry, Mapping) or not _is_num(entry.get("lag_ps")) \
                    or not isinstance(entry.get("ck_pass"), bool):
                raise InputError(f"{where}: key 'ck_by_lag/{i}': expected an object with "
                                 f"lag_ps (number) and ck_pass (bool), got {entry!r}")
            ck_at[float(entry["lag_ps"])] = entry
        for lag in lags:
            verdict = next((v for k, v in ck_at.items() if _close(k, lag)), None)
            if verdict is None:
                raise InputError(f"{where}: key 'ck_by_lag': expected an entry for lag "
                                 f"{lag_label(lag)} (every lag of lags_ps), got none")
            cfg_where, cfg = next(((w, c) for (cn, cl), (w, c) in by_key.items()
                                   if cn == n and _close(cl, lag)), (None, None))
            if cfg is None:
                raise InputError(f"--configs: expected the config.json of {model}-s{n} at "
                                 f"{lag_label(lag)} (a lag of {where}), got none")
            _need(cfg, "best_val_vamp2", cfg_where, "a number (or null)",
                  lambda v: v is None or _is_num(v))
            # Steps tested (issue 26): with step 1 alone the deviation (0) means nothing.
            tested = verdict.get("ck_steps_tested")
            evaluable = not (_is_num(tested) and tested <= 1)
            spread = cfg.get("seed_spread") or {}
            val_s, test_s = spread.get("val_vamp2") or {}, spread.get("test_vamp2") or {}
            seeds = cfg.get("seeds") or [{"seed": cfg.get("seed")}]
            rows.append({
                "model": model, "n_states": n, "lag_ps": lag,
                "val_vamp2": _num(cfg.get("best_val_vamp2")),
                "val_vamp2_min": _num(val_s.get("min")),
                "val_vamp2_median": _num(val_s.get("median")),
                "val_vamp2_max": _num(val_s.get("max")),
                "test_vamp2": _num(cfg.get("test_vamp2")),
                "test_vamp2_min": _num(test_s.get("min")),
                "test_vamp2_median": _num(test_s.get("median")),
                "test_vamp2_max": _num(test_s.get("max")),
                "n_seeds": len(seeds),
                "n_dead_seeds": len(cfg.get("dead_seeds") or []),
                "kept_seed": cfg.get("seed"),
                "kept_dead": bool(cfg.get("kept_dead", False)),
                "ck_pass": bool(verdict["ck_pass"]),
                "ck_evaluable": evaluable,
                "ck_max_abs_deviation": _num(verdict.get("ck_max_abs_deviation"))
                if evaluable else math.nan,
                "n_surviving_states": verdict.get("n_surviving_states", n),
                "its_converged": its,
                "converged": its and _is_num(auto) and lag >= float(auto) * (1 - 1e-9),
                "collapsed": bool(verdict.get("collapsed", collapsed)),
                "tau_star": _close(lag, tau) if math.isfinite(tau) else False,
            })
    table = pd.DataFrame(rows)
    table["eligible"] = False
    table["selected"] = False
    return table[SELECTION_COLUMNS]


# --------------------------------------------------------------------------------------
# The rule


@dataclass(frozen=True)
class Selection:
    """The chosen state count and lag, and why."""

    n_states: int
    tau_star_ps: float
    passed: bool
    reason: str
    verdicts: dict[int, str]  # per state count: chosen at ..., or why not
    table: pd.DataFrame  # the candidates' table with eligible / selected filled in


def _fmt_dev(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}"


def select(table: pd.DataFrame, tau_star_ps: float | None = None) -> Selection:
    """Apply the selection rule (module docstring) to :func:`candidate_table`'s rows.

    Parameters
    ----------
    table : DataFrame
        The candidates' table.
    tau_star_ps : float, optional
        ``koopman.tau_star_ps``: only this lag is considered (it must be on the grid).
    """
    import pandas as pd

    t = table.copy()
    if tau_star_ps is not None:
        at = t["lag_ps"].map(lambda x: _close(float(x), float(tau_star_ps)))
        if not at.any():
            raise InputError(f"koopman settings key 'tau_star_ps': expected one of the lag "
                             f"grid, got {tau_star_ps!r}")
        considered = at
    else:
        considered = t["converged"]
    usable = ~t["collapsed"] & ~t["kept_dead"]
    t["eligible"] = considered & usable & t["ck_pass"]
    verdicts: dict[int, str] = {}
    chosen = None
    for n in sorted(t["n_states"].unique()):
        rows = t[t["n_states"] == n].sort_values("lag_ps")
        ok = rows[rows["eligible"]]
        if len(ok):
            lag = float(ok["lag_ps"].iloc[0])
            verdicts[int(n)] = f"CK passes at {lag_label(lag)} (converged)" if tau_star_ps is \
                None else f"CK passes at tau* = {lag_label(lag)} (config)"
            alive = ok["n_surviving_states"].iloc[0]
            if pd.notna(alive) and int(alive) < int(n):
                verdicts[int(n)] += f", only {int(alive)} of its {int(n)} states survive"
            if chosen is None:
                chosen = (int(n), lag)
            continue
        if rows["collapsed"].all():
            verdicts[int(n)] = "collapsed (fewer than two states used)"
        elif rows["kept_dead"].all():
            verdicts[int(n)] = "every seed dead at every lag"
        elif not rows[considered.loc[rows.index]].shape[0]:
            verdicts[int(n)] = ("implied timescales have not converged over the lag grid"
                                if tau_star_ps is None else "no model at tau*")
        else:
            cons = rows[considered.loc[rows.index] & usable.loc[rows.index]]
            if not len(cons):
                verdicts[int(n)] = "kept models dead at every considered lag"
            elif not cons["ck_evaluable"].any():
                verdicts[int(n)] = (f"CK test not evaluable beyond step 1 at any "
                                    f"{'converged ' if tau_star_ps is None else ''}lag "
                                    f"({NOT_EVALUABLE})")
            else:
                worst = cons["ck_max_abs_deviation"].min()
                where = ", ".join(lag_label(float(x)) for x in cons["lag_ps"])
                verdicts[int(n)] = (f"CK fails at every {'converged ' if tau_star_ps is None else ''}"
                                    f"lag ({where}; smallest max |deviation| {_fmt_dev(worst)})")
    counts = sorted(int(n) for n in t["n_states"].unique())
    if chosen is not None:
        n, lag = chosen
        ties = [f"{m} states ({verdicts[m]})" for m in counts if m > n and
                verdicts[m].startswith("CK passes")]
        smaller = [f"{m} states: {verdicts[m]}" for m in counts if m < n]
        reason = (f"{n} states at tau* = {lag_label(lag)}: the smallest state count whose "
                  f"CK test passes at a lag with converged implied timescales"
                  if tau_star_ps is None else
                  f"{n} states: the smallest state count whose CK test passes at tau* = "
                  f"{lag_label(lag)} (koopman.tau_star_ps)")
        if smaller:
            reason += "; rejected: " + "; ".join(smaller)
        if ties:
            reason += "; also passing, not needed: " + "; ".join(ties)
        passed = True
    else:
        # A lag whose CK test was not evaluable beyond step 1 never wins the fallback.
        evaluable = t["ck_evaluable"].astype(bool)
        pool = t[considered & usable & evaluable]
        basis = "converged lags"
        if not len(pool):
            basis = "all lags (none converged)"
            for pick in (usable & evaluable, evaluable, usable, t["n_states"] > 0):
                if pick.any():
                    pool = t[pick]
                    break
        rank = pd.DataFrame({"fail": ~pool["ck_pass"].astype(bool),
                             "dev": pool["ck_max_abs_deviation"].fillna(math.inf)})
        best = pool.loc[rank.sort_values(["fail", "dev"], kind="stable").index[0]]
        n, lag = int(best["n_states"]), float(best["lag_ps"])
        reason = (f"no candidate passes the criterion ({'; '.join(f'{m} states: {verdicts[m]}' for m in counts)}); "
                  f"fell back to {n} states at {lag_label(lag)}, "
                  + ("a passing CK test " if best["ck_pass"] else "the smallest CK deviation ")
                  + f"({_fmt_dev(float(best['ck_max_abs_deviation']))}) among {basis}")
        passed = False
    sel = (t["n_states"] == n) & t["lag_ps"].map(lambda x: _close(float(x), lag))
    t["selected"] = sel
    return Selection(n, lag, passed, reason, verdicts, t)


# --------------------------------------------------------------------------------------
# No result (issue 26): kept apart from the rule, which always names a (flagged) choice

NOT_EVALUABLE = ("no (t, t + 2 lag) pair in the test windows: the test data are too short "
                 "for the lags")


class NoResult(InputError):
    """The stage has no valid result (the CLI prints the one-line reason, exit 2)."""


def no_result_reason(table: pd.DataFrame) -> str | None:
    """Why the candidates give nothing to select, or None when some candidate is usable.

    Nothing to select: every (count, lag) is collapsed, or none of the others has a CK
    test evaluable beyond step 1 (the test data too short for the lags). Kept-dead models (only ``train.all_seeds_dead: keep``
    keeps them) count as usable, as that setting asks.
    """
    # A kept-dead model is usually collapsed too (the same thresholds): kept all the same.
    usable = ~table["collapsed"].astype(bool) | table["kept_dead"].astype(bool)
    if not usable.any():
        return "every candidate model is collapsed (fewer than two states used) at every lag"
    # A collapsed model's CK test has no surviving states to test: it says nothing here.
    live = ~table["collapsed"].astype(bool)
    if live.any() and not table.loc[live, "ck_evaluable"].astype(bool).any():
        return f"no candidate's CK test is evaluable beyond step 1 at any lag ({NOT_EVALUABLE})"
    return None


def koopman_no_result_reason(summary: Mapping[str, Any]) -> str | None:
    """Why one Koopman stage (``summary.json``) has no valid result, or None.

    No valid result: the CK test could not be evaluated beyond step 1 at any lag whose
    model is not collapsed (``ck_by_lag[*].ck_steps_tested``), so no lag's model could be
    checked. (A model collapsed at every lag is flagged in every table, and its seeds are
    dead: ``train.all_seeds_dead`` decided about it.)
    """
    tested = [e.get("ck_steps_tested") for e in summary.get("ck_by_lag", [])
              if not e.get("collapsed", False)]  # a collapsed lag has nothing to test
    if tested and all(_is_num(x) and x <= 1 for x in tested):
        return f"the CK test is not evaluable beyond step 1 at any lag ({NOT_EVALUABLE})"
    return None


def check_result(reason: str | None, settings: KoopmanSettings | Mapping[str, Any] | None,
                 what: str) -> None:
    """Raise :class:`NoResult` for a ``reason`` unless ``koopman.no_valid_result: keep``.

    Parameters
    ----------
    reason : str or None
        :func:`no_result_reason` / :func:`koopman_no_result_reason`.
    settings : KoopmanSettings or mapping, optional
        The system's ``koopman`` section.
    what : str
        The stage, named in the message.
    """
    if reason is not None and as_koopman_settings(settings).no_valid_result == "fail":
        raise NoResult(f"{what}: no valid result: {reason}; lengthen the trajectories or the "
                       "test window, shorten train.lags_ps, or set koopman.no_valid_result: "
                       "keep to go on with the flagged fallback")


def check_koopman_result(summary: Mapping[str, Any],
                         settings: KoopmanSettings | Mapping[str, Any] | None) -> None:
    """:func:`check_result` of one Koopman stage's ``summary`` (``gdyn koopman``): raise
    :class:`NoResult` when it has no valid result (:func:`koopman_no_result_reason`)
    unless ``koopman.no_valid_result: keep``."""
    check_result(koopman_no_result_reason(summary), settings,
                 f"gdyn koopman ({summary['model']}-s{summary['n_states']})")


# --------------------------------------------------------------------------------------
# The stage


def run_select(
    json_out: str | Path,
    csv_out: str | Path,
    summary_paths: Sequence[str | Path],
    config_paths: Sequence[str | Path],
    settings: KoopmanSettings | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``gdyn select``: read every candidate, apply :func:`select`, write the outputs.

    Parameters
    ----------
    json_out, csv_out : path
        ``selection.json`` and ``selection.csv`` (docs/contracts.md).
    summary_paths : sequence of path
        The Koopman ``summary.json`` of every candidate state count.
    config_paths : sequence of path
        The ``config.json`` of every candidate's model at every lag.
    settings : KoopmanSettings or mapping, optional
        The system's ``koopman`` section (``tau_star_ps`` restricts the lags).

    Returns
    -------
    dict
        What ``selection.json`` holds.
    """
    summaries = {str(p): read_json(p) for p in summary_paths}
    configs = {str(p): read_json(p) for p in config_paths}
    table = candidate_table(summaries, configs)
    lags = sorted(set(table["lag_ps"].astype(float)))
    settings = as_koopman_settings(settings)
    tau = settings.tau_star_on(lags)
    check_result(no_result_reason(table), settings, f"gdyn select ({table['model'].iloc[0]})")
    sel = select(table, tau)
    out = {
        "model": str(table["model"].iloc[0]),
        "n_states": sel.n_states,
        "tau_star_ps": sel.tau_star_ps,
        "passed": sel.passed,
        "reason": sel.reason,
        "rule": SELECTION_RULE,
        "tau_star_source": "config" if tau is not None else "selection",
        "candidates": {str(n): v for n, v in sel.verdicts.items()},
        "table": json.loads(sel.table.to_json(orient="records")),
        "summaries": [str(p) for p in summary_paths],
    }
    write_csv(csv_out, sel.table)
    write_json(json_out, out)
    return out


def run_select_koopman(
    outdir: str | Path,
    selection_path: str | Path,
    probs_paths: Sequence[str | Path],
    settings: KoopmanSettings | Mapping[str, Any] | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """``gdyn select-koopman``: the selected candidate's Koopman outputs at the selected
    tau*, in ``outdir`` (the same files as ``gdyn koopman`` writes).

    ``probs_paths`` are the selected state count's test probs at every lag (each file
    records its lag; files of other counts may be given too: those whose state count is
    not the selected one are skipped). The summary gains ``selection`` (the selection file),
    ``selection_reason`` and ``tau_star_source: "selection"`` (unless tau* was set in
    config).
    """
    sel = read_json(selection_path)
    n = int(_need(sel, "n_states", str(selection_path), "an integer", _is_num))
    tau = float(_need(sel, "tau_star_ps", str(selection_path), "a number", _is_num))
    model = str(sel.get("model", "unknown"))
    mine_p = []
    for p in probs_paths:
        with np.load(p, allow_pickle=False) as z:
            if "probs" not in z.files:
                raise InputError(f"{p}: key 'probs': missing (expected a probs file)")
            s = z["probs"].shape[-1]
        if s == n:
            mine_p.append(p)
    if not mine_p:
        raise InputError(f"--probs: expected the test probs of {model}-s{n} (the selection "
                         f"of {selection_path}), got none with {n} states")
    koop = replace(as_koopman_settings(settings), tau_star_ps=tau)
    source = "config" if sel.get("tau_star_source") == "config" else "selection"
    summary = run_koopman(Path(outdir), mine_p, koop, model, n, progress=progress,
                          tau_star_source=source)
    if sel.get("tau_star_source") != "config":
        summary["tau_star_source"] = "selection"
        summary["tau_star_reason"] = f"chosen with n_states ({sel.get('reason', '')})"
    summary["selection"] = str(selection_path)
    summary["selection_reason"] = sel.get("reason", "")
    summary["selection_passed"] = bool(sel.get("passed", False))
    write_json(Path(outdir) / "summary.json", summary)
    return summary
