"""Implied-timescale flags and the automatic tau*.

Flags of process i at lag tau (``timescales.csv`` columns, :func:`timescale_flags`):

* ``complex``: the eigenvalue has an imaginary part (|Im lambda| > 1e-9); its timescale
  ``-tau / ln|lambda|`` is the decay time of an oscillating pair, reported with the flag;
* ``negative``: a real eigenvalue below zero (no relaxation process of equilibrium
  dynamics; ``|lambda|`` would fake a timescale);
* ``faster_than_lag``: ``t_i <= tau`` (below the t = tau line: the process decays within
  one lag and is not resolved);
* ``resolved``: a finite ``t_i > tau`` of a real, positive eigenvalue;
* ``testable``: resolved, and at least one later lag of the grid resolves the process too;
* ``converged``: testable (a process no later lag resolves, e.g. at the grid's last lag or
  when every later timescale is below the t = tau line, is *not testable* and therefore not
  converged: there is nothing to agree with), and, with replicate timescales (the
  uncertainty engine draws the same resamples at every lag), for every later lag where the
  process is resolved the 95 % interval of the replicate differences ``t_i(tau_m) - t_i(tau)`` contains 0, and the
  95 % interval of the replicate slopes of ``t_i`` against ``ln tau`` over this and the
  later lags contains 0 (no significant trend; needs two later lags). Without replicates:
  the estimate at every later lag lies inside this lag's 95 % CI (the old rule, which
  accepts a rising curve when the CIs are wide);
* a process the lag's model does not have (fewer surviving states) is ``present`` False
  and carries NaN.

tau* is the smallest lag whose slowest process is resolved, at which every resolved
process is converged, no process above the t = tau line has a complex or negative
eigenvalue, and whose own CK test passes (when the verdicts are given). When no lag
qualifies there is no tau* (``index`` None, with the reason); a config value overrides it
and is flagged when the data disagree. Since a converged process needs a later lag that
resolves it, the grid's last lag is never the automatic tau*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    testable: np.ndarray

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


Interval = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _excludes_zero(interval: Interval, samples: np.ndarray) -> np.ndarray:
    """Where the interval of (R, ...) replicate values lies entirely on one side of 0."""
    lo, hi = interval(samples)
    with np.errstate(invalid="ignore"):
        return (lo > 0) | (hi < 0)


def _testable(resolved: np.ndarray) -> np.ndarray:
    """Resolved at lag k and resolved at some later lag m > k (else there is nothing to
    compare with, and the rule would pass by default: a lumped chain whose timescale drops
    below the t = tau line at long lags was "converged" in every data set, docs/koopman.md)."""
    later = np.zeros_like(resolved)
    # reverse cumulative OR over the later lags
    later[:-1] = np.logical_or.accumulate(resolved[::-1], axis=0)[::-1][1:]
    return resolved & later


def _converged_by_replicates(
    lags: np.ndarray, rep_t: np.ndarray, resolved: np.ndarray, interval: Interval
) -> np.ndarray:
    """The difference-and-trend rule (module docstring) on (n_lags, R, P) replicates."""
    n_lags, _, n_proc = rep_t.shape
    converged = _testable(resolved)
    with np.errstate(invalid="ignore"):
        finite = np.where(np.isfinite(rep_t), rep_t, np.nan)
    logs = np.log(lags)
    for k in range(n_lags):
        for i in range(n_proc):
            if not converged[k, i]:
                continue
            later = [m for m in range(k + 1, n_lags) if resolved[m, i]]
            for m in later:
                if _excludes_zero(interval, (finite[m, :, i] - finite[k, :, i])[:, None])[0]:
                    converged[k, i] = False
                    break
            if converged[k, i] and len(later) >= 2:
                idx = [k, *later]
                x = logs[idx] - logs[idx].mean()
                y = finite[idx, :, i]  # (n_pts, R)
                slope = (x[:, None] * (y - np.nanmean(y, axis=0))).sum(axis=0) / (x @ x)
                if _excludes_zero(interval, slope[:, None])[0]:
                    converged[k, i] = False
    return converged


def timescale_flags(
    lags_ps: Sequence[float],
    eigenvalues: np.ndarray,
    timescales: np.ndarray,
    ci_low: np.ndarray,
    ci_high: np.ndarray,
    replicate_timescales: np.ndarray | None = None,
    interval: Interval | None = None,
) -> TimescaleFlags:
    """Flags of every (lag, process); arrays are (n_lags, n_processes), slowest first.

    ``eigenvalues`` are complex (NaN where the lag's model has no such process); a missing
    CI counts as a zero-width interval at the point value. ``replicate_timescales``
    (n_lags, R, n_processes), the same resamples at every lag, with the engine's
    ``interval`` give the difference-and-trend convergence rule.
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
    testable = _testable(resolved)
    low, high = _bounds(t, np.asarray(ci_low, float), np.asarray(ci_high, float))
    if replicate_timescales is not None and interval is not None:
        rep = np.asarray(replicate_timescales, dtype=float)
        if rep.ndim == 3 and rep.shape[1] >= 2:
            conv = _converged_by_replicates(lags[:, 0], rep, resolved, interval)
            return TimescaleFlags(present, cplx, neg, faster, resolved, conv, testable)
    converged = testable.copy()
    n_lags = t.shape[0]
    for k in range(n_lags):
        for m in range(k + 1, n_lags):
            both = converged[k] & resolved[m]
            with np.errstate(invalid="ignore"):
                inside = (low[k] <= t[m]) & (t[m] <= high[k])
            converged[k] &= ~both | inside
    return TimescaleFlags(present, cplx, neg, faster, resolved, converged, testable)


def select_tau_star(
    lags_ps: Sequence[float],
    timescales: np.ndarray,
    ci_low: np.ndarray,
    ci_high: np.ndarray,
    eigenvalues: np.ndarray | None = None,
    flags: TimescaleFlags | None = None,
    ck_pass: Sequence[bool] | None = None,
) -> TauStar:
    """Smallest lag whose slowest process is resolved, every resolved process converged
    (so testable: a later lag resolves it), no process above the t = tau line complex or
    negative, and (``ck_pass``) CK passed.

    ``timescales``, ``ci_low``, ``ci_high`` (and ``eigenvalues``) are (n_lags, n_processes),
    slowest first; ``flags`` are the grid's flags (default: :func:`timescale_flags` from
    the CIs). Without ``eigenvalues`` every finite eigenvalue counts as real and positive.
    When no lag qualifies, ``index`` is None and the reason lists why each lag was
    rejected.
    """
    lags = np.asarray(lags_ps, dtype=float)
    t = np.asarray(timescales, dtype=float)
    if eigenvalues is None:
        eigenvalues = np.where(np.isfinite(t), 0.5, np.nan).astype(complex)
    if flags is None:
        flags = timescale_flags(lags, eigenvalues, t, ci_low, ci_high)
    resolved, flagged, converged = flags.resolved, flags.flagged, flags.converged
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
        untestable = np.flatnonzero(resolved[k] & ~flags.testable[k])
        if untestable.size:
            i = int(untestable[0])
            rejected.append(
                f"{lag_label(lags[k])} (process {i + 1}: t={t[k, i]:.4g} ps not testable: "
                "no later lag resolves the process)"
            )
            continue
        moving = np.flatnonzero(resolved[k] & ~converged[k])
        if moving.size:
            i = int(moving[0])
            rejected.append(
                f"{lag_label(lags[k])} (process {i + 1}: t={t[k, i]:.4g} ps not converged: "
                "a later lag differs beyond the interval of the difference, or the "
                "timescales trend)"
            )
            continue
        if ck_pass is not None and not ck_pass[k]:
            rejected.append(f"{lag_label(lags[k])} (CK test fails at this lag)")
            continue
        below = int((flags.present[k] & flags.faster_than_lag[k]).sum())
        later = "a later lag resolves each and all later lags agree"
        reason = (
            "smallest lag whose resolved timescales (t_i > tau, real positive eigenvalue) "
            f"are converged ({later})" + (" and whose CK test passes" if ck_pass is not None
                                          else "")
            + (f"; {below} process(es) below the t = tau line, not resolved" if below else "")
        )
        if rejected:
            reason += "; rejected: " + "; ".join(rejected)
        return TauStar(k, reason)
    return TauStar(
        None,
        "no lag qualifies (converged resolved timescales"
        + (", CK pass" if ck_pass is not None else "") + "): " + "; ".join(rejected),
    )
