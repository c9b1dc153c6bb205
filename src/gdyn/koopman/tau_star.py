"""Automatic tau*: the smallest lag from which the relaxation timescales stop changing.

tau* is the smallest lag from which every resolved timescale stays constant within its
95 % confidence interval, i.e. the estimates at all later lags fall inside the CI at tau*
(a config value overrides it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gdyn.layout import lag_label

__all__ = ["TauStar", "select_tau_star"]


@dataclass(frozen=True)
class TauStar:
    """Automatic tau* choice: index into the lag grid (None when no lag has dynamics)."""

    index: int | None
    reason: str


def select_tau_star(
    lags_ps: Sequence[float],
    timescales: np.ndarray,
    ci_low: np.ndarray,
    ci_high: np.ndarray,
) -> TauStar:
    """Smallest lag from which every resolved timescale stays constant within its 95 % CI.

    ``timescales``, ``ci_low``, ``ci_high`` are (n_lags, n_processes), slowest first.
    Lag k is accepted when its slowest process is resolved (``t > tau``) and, for every
    later lag m and every process resolved at both k and m, the estimate ``t_i(tau_m)``
    lies inside the 95 % CI of ``t_i(tau_k)``. Processes faster than the lag (below the
    tau = t line) carry no information and are skipped. A missing CI counts as a
    zero-width interval at the point value. When no lag qualifies the largest lag whose
    slowest process is resolved is returned.
    """
    lags = np.asarray(lags_ps, dtype=float)
    t = np.asarray(timescales, dtype=float)
    low = np.where(np.isfinite(ci_low), ci_low, t)
    high = np.where(np.isfinite(ci_high), ci_high, t)
    resolved = np.isfinite(t) & (t > lags[:, None])
    rejected: list[str] = []
    for k in range(len(lags)):
        if not resolved[k, 0]:
            rejected.append(f"{lag_label(lags[k])} (slowest process t={t[k, 0]:.4g} ps <= lag)")
            continue
        bad = None
        for m in range(k + 1, len(lags)):
            for i in np.flatnonzero(resolved[k] & resolved[m]):
                if not low[k, i] <= t[m, i] <= high[k, i]:
                    bad = (
                        f"{lag_label(lags[k])} (process {i + 1}: {t[m, i]:.4g} ps at "
                        f"{lag_label(lags[m])} outside {t[k, i]:.4g} ps "
                        f"[{low[k, i]:.4g}, {high[k, i]:.4g}])"
                    )
                    break
            if bad:
                break
        if bad:
            rejected.append(bad)
            continue
        later = "no later lag to compare" if k == len(lags) - 1 else "all later lags agree"
        reason = (
            "smallest lag from which every resolved timescale (t_i > tau) stays inside its "
            f"95% CI at this lag ({later})"
        )
        if rejected:
            reason += "; rejected: " + "; ".join(rejected)
        return TauStar(k, reason)
    ok = np.flatnonzero(resolved[:, 0])
    if ok.size:
        k = int(ok[-1])
        return TauStar(
            k,
            "no lag has timescales constant within CI at all later lags; largest lag with "
            "a resolved slowest process; rejected: " + "; ".join(rejected),
        )
    return TauStar(None, "no lag resolves any process (all t_i <= tau)")
