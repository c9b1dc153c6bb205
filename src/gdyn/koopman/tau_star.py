"""Implied-timescale flags and the automatic tau*.

Flags of process i at lag tau (``timescales.csv`` columns, :func:`timescale_flags`):

* ``complex``: the eigenvalue has an imaginary part (|Im lambda| > 1e-9); its timescale
  ``-tau / ln|lambda|`` is the decay time of an oscillating pair, reported with the flag;
* ``negative``: a real eigenvalue below zero (no relaxation process of equilibrium
  dynamics; ``|lambda|`` would fake a timescale);
* ``faster_than_lag``: ``t_i <= tau`` (below the t = tau line: the process decays within
  one lag and is not resolved);
* ``resolved``: a finite ``t_i > tau`` of a real, positive eigenvalue;
* ``converged``: resolved, and at every later lag where the process is resolved its
  estimate lies inside the 95 % CI at this lag (the tau* rule below);
* a process the lag's model does not have (fewer surviving states) is ``present`` False
  and carries NaN.

tau* is the smallest lag from which every resolved timescale stays constant within its
95 % confidence interval, i.e. the estimates at all later lags fall inside the CI at tau*,
and at which no process above the t = tau line has a complex or negative eigenvalue (a
config value overrides it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gdyn.layout import lag_label

__all__ = ["COMPLEX_TOL", "TauStar", "TimescaleFlags", "select_tau_star", "timescale_flags"]

COMPLEX_TOL = 1e-9


@dataclass(frozen=True)
class TauStar:
    """Automatic tau* choice: index into the lag grid (None when no lag has dynamics)."""

    index: int | None
    reason: str


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class TimescaleFlags:
    """(n_lags, n_processes) bool flags of every process at every lag (module docstring)."""

    present: np.ndarray
    complex: np.ndarray
    negative: np.ndarray
    faster_than_lag: np.ndarray
    resolved: np.ndarray
    converged: np.ndarray

    @property
    def flagged(self) -> np.ndarray:
        """Processes above the t = tau line whose eigenvalue is complex or negative."""
        return self.present & ~self.faster_than_lag & (self.complex | self.negative)

    def labels(self, k: int) -> list[str]:
        """One word per process at lag index ``k``: ``no_process``, ``negative``,
        ``complex``, ``faster_than_lag`` or ``resolved`` (first that applies)."""
        out = []
        for i in range(self.present.shape[1]):
            if not self.present[k, i]:
                out.append("no_process")
            elif self.negative[k, i]:
                out.append("negative")
            elif self.complex[k, i]:
                out.append("complex")
            elif self.resolved[k, i]:
                out.append("resolved")
            else:
                out.append("faster_than_lag")
        return out


def _bounds(t: np.ndarray, ci_low: np.ndarray, ci_high: np.ndarray) -> tuple[np.ndarray, ...]:
    low = np.where(np.isfinite(ci_low), ci_low, t)
    high = np.where(np.isfinite(ci_high), ci_high, t)
    return low, high


def timescale_flags(
    lags_ps: Sequence[float],
    eigenvalues: np.ndarray,
    timescales: np.ndarray,
    ci_low: np.ndarray,
    ci_high: np.ndarray,
) -> TimescaleFlags:
    """Flags of every (lag, process); arrays are (n_lags, n_processes), slowest first.

    ``eigenvalues`` are complex (NaN where the lag's model has no such process); a missing
    CI counts as a zero-width interval at the point value.
    """
    lags = np.asarray(lags_ps, dtype=float)[:, None]
    lam = np.asarray(eigenvalues, dtype=complex)
    t = np.asarray(timescales, dtype=float)
    present = np.isfinite(lam.real) & np.isfinite(lam.imag)
    cplx = present & (np.abs(lam.imag) > COMPLEX_TOL)
    neg = present & ~cplx & (lam.real < 0)
    with np.errstate(invalid="ignore"):
        above = present & np.isfinite(t) & (t > lags)
        faster = present & ~(t > lags)
    resolved = above & ~cplx & ~neg
    low, high = _bounds(t, np.asarray(ci_low, float), np.asarray(ci_high, float))
    converged = resolved.copy()
    n_lags = t.shape[0]
    for k in range(n_lags):
        for m in range(k + 1, n_lags):
            both = converged[k] & resolved[m]
            with np.errstate(invalid="ignore"):
                inside = (low[k] <= t[m]) & (t[m] <= high[k])
            converged[k] &= ~both | inside
    return TimescaleFlags(present, cplx, neg, faster, resolved, converged)


def select_tau_star(
    lags_ps: Sequence[float],
    timescales: np.ndarray,
    ci_low: np.ndarray,
    ci_high: np.ndarray,
    eigenvalues: np.ndarray | None = None,
) -> TauStar:
    """Smallest lag from which every resolved timescale stays constant within its 95 % CI.

    ``timescales``, ``ci_low``, ``ci_high`` (and ``eigenvalues``) are (n_lags, n_processes),
    slowest first. Lag k is accepted when its slowest process is resolved, no process above
    the t = tau line is flagged complex or negative (needs ``eigenvalues``; without them
    every finite eigenvalue counts as real and positive), and for every later lag m and
    every process resolved at both k and m the estimate ``t_i(tau_m)`` lies inside the
    95 % CI of ``t_i(tau_k)``. Processes faster than the lag carry no information and are
    skipped. A missing CI counts as a zero-width interval at the point value. When no lag
    qualifies, the largest lag whose slowest process is resolved and which has no flagged
    process (else the largest with a resolved slowest process) is returned.
    """
    lags = np.asarray(lags_ps, dtype=float)
    t = np.asarray(timescales, dtype=float)
    if eigenvalues is None:
        eigenvalues = np.where(np.isfinite(t), 0.5, np.nan).astype(complex)
    flags = timescale_flags(lags, eigenvalues, t, ci_low, ci_high)
    low, high = _bounds(t, np.asarray(ci_low, float), np.asarray(ci_high, float))
    resolved, flagged = flags.resolved, flags.flagged
    rejected: list[str] = []
    for k in range(len(lags)):
        if not resolved[k, 0]:
            what = flags.labels(k)[0].replace("_", " ")
            rejected.append(f"{lag_label(lags[k])} (slowest process t={t[k, 0]:.4g} ps: {what})")
            continue
        if flagged[k].any():
            i = int(np.flatnonzero(flagged[k])[0])
            kind = "negative" if flags.negative[k, i] else "complex"
            rejected.append(f"{lag_label(lags[k])} (process {i + 1}: {kind} eigenvalue)")
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
            "smallest lag from which every resolved timescale (t_i > tau, real positive "
            f"eigenvalue) stays inside its 95% CI at this lag ({later})"
        )
        if rejected:
            reason += "; rejected: " + "; ".join(rejected)
        return TauStar(k, reason)
    clean = np.flatnonzero(resolved[:, 0] & ~flagged.any(axis=1))
    ok = clean if clean.size else np.flatnonzero(resolved[:, 0])
    if ok.size:
        k = int(ok[-1])
        return TauStar(
            k,
            "no lag has timescales constant within CI at all later lags; largest lag with "
            "a resolved slowest process"
            + ("" if clean.size else " (every such lag has a flagged process)")
            + "; rejected: " + "; ".join(rejected),
        )
    return TauStar(None, "no lag resolves any process (all t_i <= tau or flagged)")
