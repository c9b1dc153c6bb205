"""The CK verdict: does ``K(tau)^n`` agree with ``K(n tau)`` within statistical uncertainty?

The paper selects "the smallest feature space dimension and tau that fulfils the CK equation
within statistical uncertainty" (Methods). One implementation for the Koopman stage, its
figures and model selection:

* :func:`ck_verdict_replicates` (the workflow's, whenever the uncertainty engine gives
  replicates): the prediction and the estimate are recomputed on every replicate and the
  difference ``K(tau)^n - K(n tau)`` is tested over all elements x steps at once (a
  studentised max-statistic over the bootstrap, Bonferroni Student-t over CI groups) at a
  family-wise error ``alpha`` (``koopman.ck_alpha``, 0.05). Measured error rates
  (benchmarks/bench_ck_calibration.py, docs/koopman.md): false FAIL 0-1 in 200 on exact
  one-hot Markov chains of 2-8 states, 3-7 % on soft ones, FAIL 200 of 200 on a lumped
  non-Markovian chain;
* :func:`ck_verdict` (no replicates, e.g. the API with ``ci=None``): an element passes when
  the prediction lies inside the estimate's CI, or, when that CI is NaN or of zero width,
  when ``|predicted - estimated| <= tolerance`` (``koopman.ck_tolerance``, 0.05);
* step 1 passes by construction (the estimate at tau is K(tau) itself); an element whose
  estimate is NaN (no lag pairs at ``n tau``) is untested; the model passes when no tested
  element fails and at least one step > 1 was tested.

The worst element is the failing one with the largest ``|predicted - estimated|`` (the
largest deviation overall when everything passes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gdyn.settings import default

__all__ = ["DEFAULT_CK_ALPHA", "DEFAULT_CK_TOLERANCE", "CKVerdict", "ck_verdict", "ck_verdict_replicates"]

DEFAULT_CK_TOLERANCE = float(default("koopman", "ck_tolerance"))
DEFAULT_CK_ALPHA = float(default("koopman", "ck_alpha"))
# A difference whose replicate spread is below this is degenerate (structural zeros of one-hot
# chains: both sides exactly 0 on every replicate); the tolerance decides it.
_SE_FLOOR = 1e-12


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class CKVerdict:
    """Outcome of :func:`ck_verdict`.

    Attributes
    ----------
    passed : bool
        The model's verdict.
    element_pass : (steps, S, S) float
        1.0 pass, 0.0 fail, NaN untested (no estimate).
    max_abs_deviation : float
        Largest ``|predicted - estimated|`` over tested elements (NaN if none).
    worst : dict or None
        The worst element: step, from_state, to_state, predicted, estimated,
        estimated_ci_low, estimated_ci_high, abs_deviation, pass (None if none tested).
    reason : str
        One sentence.
    """

    passed: bool
    element_pass: np.ndarray
    max_abs_deviation: float
    worst: dict[str, Any] | None
    reason: str
    p_value: float = math.nan
    critical: float = math.nan
    alpha: float = math.nan


def ck_verdict(
    predicted: np.ndarray,
    estimated: np.ndarray,
    estimated_ci_low: np.ndarray,
    estimated_ci_high: np.ndarray,
    tolerance: float = DEFAULT_CK_TOLERANCE,
) -> CKVerdict:
    """The CK verdict on (steps, S, S) arrays of the surviving states (module docstring).

    Parameters
    ----------
    predicted, estimated : (steps, S, S)
        ``K(tau)^n`` and ``K(n tau)``, step n = 1..steps along axis 0.
    estimated_ci_low, estimated_ci_high : (steps, S, S)
        95 % CI of the estimate (NaN where there is none).
    tolerance : float
        Absolute tolerance used where the CI is degenerate.
    """
    pred = np.asarray(predicted, dtype=float)
    est = np.asarray(estimated, dtype=float)
    lo = np.asarray(estimated_ci_low, dtype=float)
    hi = np.asarray(estimated_ci_high, dtype=float)
    dev = np.abs(pred - est)
    tested = np.isfinite(est) & np.isfinite(pred)
    degenerate = ~(np.isfinite(lo) & np.isfinite(hi)) | ~(hi > lo)
    with np.errstate(invalid="ignore"):
        inside = (pred >= lo) & (pred <= hi)
        ok = np.where(degenerate, dev <= tolerance, inside)
    if ok.shape[0]:
        ok[0] = True  # step 1: K(tau) on both sides
    element = np.where(tested, ok.astype(float), np.nan)
    later = tested[1:]
    if not tested.any():
        return CKVerdict(False, element, math.nan, None, "no CK element could be estimated")
    max_dev = float(dev[tested].max())
    failing = tested & ~ok
    idx, worst = _worst(tested, ok, dev, pred, est)
    n, i, j = (int(x) for x in idx)
    worst.update(estimated_ci_low=_num(lo[idx]), estimated_ci_high=_num(hi[idx]),
                 abs_deviation=float(dev[idx]), **{"pass": bool(ok[idx])})
    if not later.any():
        return CKVerdict(
            False, element, max_dev, worst,
            "no step beyond 1 could be estimated (no lag pairs at 2 tau)",
        )  # fmt: skip
    n_fail = int(failing.sum())
    if n_fail:
        reason = (
            f"{n_fail} of {int(tested.sum())} elements fail: the prediction lies outside the "
            f"estimate's 95% CI (or deviates by more than {tolerance:g} where the CI is "
            f"degenerate); worst {i}->{j} at step {n + 1}: predicted {pred[idx]:.4g}, "
            f"estimated {est[idx]:.4g}"
        )
    else:
        reason = (
            f"all {int(tested.sum())} elements pass (prediction inside the estimate's 95% CI, "
            f"or within {tolerance:g} where the CI is degenerate); largest deviation "
            f"{max_dev:.3g}"
        )
    return CKVerdict(n_fail == 0, element, max_dev, worst, reason)


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def ck_verdict_replicates(
    predicted: np.ndarray,
    estimated: np.ndarray,
    rep_predicted: np.ndarray,
    rep_estimated: np.ndarray,
    bootstrap: bool = True,
    alpha: float = DEFAULT_CK_ALPHA,
    tolerance: float = DEFAULT_CK_TOLERANCE,
    effective_starts: np.ndarray | None = None,
) -> CKVerdict:
    """The calibrated CK verdict: a simultaneous test of ``d = K(tau)^n - K(n tau)``.

    ``rep_*`` (R, steps, S, S) are the prediction and the estimate recomputed on the same
    replicate (bootstrap resample or CI group), so the spread of ``d_r`` is the spread of
    the difference, prediction's uncertainty included. Over the tested elements of steps
    >= 2 (finite estimate, replicate standard error ``se > 1e-12``):

    * ``bootstrap``: the max-statistic ``T = max_e |d_e| / se_e`` against the bootstrap
      distribution of ``T*_r = max_e |d_{r,e} - d_e| / se_e`` (studentised maximum, which
      controls the family-wise error of all element x step comparisons at ``alpha``);
      ``p = (1 + #{T*_r >= T}) / (R + 1)``; an element fails when ``|d_e| / se_e`` exceeds
      the ``1 - alpha`` quantile of ``T*``;
    * groups: ``se_e = sd_g / sqrt(G)`` and a Bonferroni Student-t critical value
      ``t_{1 - alpha / (2 m), G - 1}`` over the m tested elements.

    ``effective_starts`` (steps, S), when given, floors every standard error at the
    binomial one of the prediction, ``sqrt(P (1 - P) / N_i)`` (``N_i`` the independent
    lag-``n tau`` windows starting in state i): a rare transition never seen in the data
    has an estimate of 0 on every resample, so the bootstrap alone would call its
    difference exact (measured: 8-state chains with 1 % states failed 5 of 6 times without
    the floor).

    Elements with ``se <= 1e-12`` (the same value on every replicate) pass when
    ``|d| <= tolerance``. The model passes when no element fails and some step >= 2 was
    tested.
    """
    pred = np.asarray(predicted, dtype=float)
    est = np.asarray(estimated, dtype=float)
    rp = np.asarray(rep_predicted, dtype=float)
    re = np.asarray(rep_estimated, dtype=float)
    d = pred - est
    dev = np.abs(d)
    tested = np.isfinite(est) & np.isfinite(pred)
    nan = np.full(pred.shape, np.nan)
    if rp.shape[0] < 2:
        return ck_verdict(pred, est, nan, nan, tolerance)
    dr = rp - re
    with np.errstate(invalid="ignore"):
        se = np.nanstd(dr, axis=0, ddof=1)
        if not bootstrap:
            se = se / np.sqrt(np.isfinite(dr).sum(axis=0).clip(min=1))
    if effective_starts is not None:
        n_i = np.asarray(effective_starts, dtype=float)[:, :, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            floor = np.sqrt(np.clip(pred * (1.0 - pred), 0.0, None) / n_i)
        se = np.fmax(se, np.where(np.isfinite(floor), floor, 0.0))
    later = np.zeros(pred.shape, dtype=bool)
    later[1:] = True
    stat = tested & later & np.isfinite(se) & (se > _SE_FLOOR)
    degenerate = tested & later & ~stat
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(stat, dev / np.where(stat, se, 1.0), 0.0)
    m = int(stat.sum())
    p_value = math.nan
    if m and bootstrap:
        with np.errstate(invalid="ignore", divide="ignore"):
            zr = np.abs(dr - d) / np.where(stat, se, 1.0)
        zr = np.where(stat, zr, -np.inf).reshape(dr.shape[0], -1)
        t_star = np.max(np.where(np.isnan(zr), -np.inf, zr), axis=1)
        t_star = t_star[np.isfinite(t_star)]
        critical = float(np.quantile(t_star, 1.0 - alpha)) if t_star.size else math.inf
        t_obs = float(z.max())
        p_value = float((1 + np.sum(t_star >= t_obs)) / (t_star.size + 1))
    elif m:
        from scipy import stats

        g = int(np.isfinite(dr).sum(axis=0).max())
        critical = float(stats.t.ppf(1.0 - alpha / (2 * m), max(g - 1, 1)))
    else:
        critical = math.inf
    ok = np.ones(pred.shape, dtype=bool)
    ok[stat] = z[stat] <= critical
    ok[degenerate] = dev[degenerate] <= tolerance
    element = np.where(tested, ok.astype(float), np.nan)
    if not tested.any():
        return CKVerdict(False, element, math.nan, None, "no CK element could be estimated",
                         p_value, critical, alpha)  # fmt: skip
    max_dev = float(dev[tested].max())
    failing = tested & ~ok
    idx, worst = _worst(tested, ok, dev, pred, est)
    n, i, j = (int(x) for x in idx)
    worst.update(abs_deviation=float(dev[idx]), standard_error=_num(se[idx]),
                 z=_num(z[idx]) if stat[idx] else None, **{"pass": bool(ok[idx])})
    if not (tested & later).any():
        return CKVerdict(False, element, max_dev, worst,
                         "no step beyond 1 could be estimated (no lag pairs at 2 tau)",
                         p_value, critical, alpha)  # fmt: skip
    n_fail = int(failing.sum())
    how = (
        f"max-statistic over the bootstrap, p = {p_value:.3g}" if bootstrap
        else f"Bonferroni Student-t over {m} elements"
    )
    if n_fail:
        reason = (
            f"{n_fail} of {int((tested & later).sum())} elements (steps >= 2) differ beyond "
            f"the simultaneous {100 * (1 - alpha):g}% band ({how}, critical |d|/se = "
            f"{critical:.3g}); worst {i}->{j} at step {n + 1}: predicted {pred[idx]:.4g}, "
            f"estimated {est[idx]:.4g}"
        )
    else:
        reason = (
            f"all {int((tested & later).sum())} elements (steps >= 2) inside the simultaneous "
            f"{100 * (1 - alpha):g}% band ({how}); largest deviation {max_dev:.3g}"
        )
    return CKVerdict(n_fail == 0, element, max_dev, worst, reason, p_value, critical, alpha)


def _worst(
    tested: np.ndarray, ok: np.ndarray, dev: np.ndarray, pred: np.ndarray, est: np.ndarray
) -> tuple[tuple[int, ...], dict]:
    """The element the verdict reports: the largest deviation among the failing elements
    (among the tested ones when none fails), as ``ck_worst``'s first keys."""
    pick = tested & ~ok if (tested & ~ok).any() else tested
    idx = np.unravel_index(int(np.argmax(np.where(pick, dev, -np.inf))), dev.shape)
    n, i, j = (int(x) for x in idx)
    return idx, {"step": n + 1, "from_state": i, "to_state": j,
                 "predicted": float(pred[idx]), "estimated": float(est[idx])}
