"""The CK verdict: does ``K(tau)^n`` agree with ``K(n tau)`` within statistical uncertainty?

The paper selects "the smallest feature space dimension and tau that fulfils the CK equation
within statistical uncertainty" (Methods). The verdict, one implementation for the Koopman
stage, its figures and model selection:

* per element (step n, from state i, to state j) of the surviving states: **pass** when the
  prediction ``K(tau)^n_ij`` lies inside the 95 % CI of the estimate ``K(n tau)_ij`` (the
  Student-t interval over the CI groups, :mod:`.ci`); when that CI is degenerate (NaN, as
  without CI groups, or of zero width) the element passes when
  ``|predicted - estimated| <= tolerance`` (``koopman.ck_tolerance``, default 0.05, the
  absolute deviation of a transition probability one would still draw as agreeing);
* step 1 passes by construction (the estimate at tau is K(tau) itself);
* an element whose estimate is NaN (no lag pairs at ``n tau``) is untested;
* the model **passes** when every tested element passes and at least one step > 1 was
  tested.

The worst element is the failing one with the largest ``|predicted - estimated|`` (the
largest deviation overall when everything passes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DEFAULT_CK_TOLERANCE", "CKVerdict", "ck_verdict"]

DEFAULT_CK_TOLERANCE = 0.05


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
    pick = failing if failing.any() else tested
    idx = np.unravel_index(int(np.argmax(np.where(pick, dev, -np.inf))), dev.shape)
    n, i, j = (int(x) for x in idx)
    worst = {
        "step": n + 1,
        "from_state": i,
        "to_state": j,
        "predicted": float(pred[idx]),
        "estimated": float(est[idx]),
        "estimated_ci_low": _num(lo[idx]),
        "estimated_ci_high": _num(hi[idx]),
        "abs_deviation": float(dev[idx]),
        "pass": bool(ok[idx]),
    }
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
