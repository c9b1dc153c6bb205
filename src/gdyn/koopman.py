"""Koopman analysis of trained models: K(tau), timescales vs lag, tau*, CK test, eigenvectors.

The state probabilities of a softmax network are the basis functions of a VAMPnet-style
Koopman model (Methods, "Determination of the relaxation timescales"):

* ``K(tau) = C00^+ C01`` from the instantaneous and time-lagged covariances of the
  (non-mean-free) probabilities, pooled over all target sets and trajectories; lag pairs are
  rows of one trajectory whose frames differ by exactly the lag.
* ``t_i(tau) = -tau / ln|lambda_i(tau)|`` for every model of the lag grid.
* tau*: the smallest lag from which every resolved timescale stays constant within its 95 %
  confidence interval, i.e. the estimates at all later lags fall inside the CI at tau*
  (a config value overrides it).
* CK test at tau*: ``K(tau*)^n`` against ``K(n tau*)`` re-estimated from the same
  probabilities at the longer lag.
* Eigen-decomposition of ``K(tau*)``: right eigenvectors in the state basis (Figs. 3e, 4e)
  and the stationary distribution (state populations).

Confidence intervals follow the paper: the same quantity is estimated on ``n`` disjoint
groups of the test data (time chunks, random target subsets, or whole trajectories) and
the 95 % CI is the Student-t interval of the group estimates,
``mean +- t_{0.975, n-1} * sd / sqrt(n)`` (sd with ddof = 1). Timescales use this interval
on ``ln t`` (a geometric interval, as the GDyNet reference code does with 1.96). Reported
point values are the estimates from all test data pooled.

Pure numpy functions first; file I/O, the CLI and quick-look plots at the end.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.config import lag_label, lag_to_frames, parse_lag
from gdyn.errors import InputError

log = logging.getLogger(__name__)

CI_METHODS: tuple[str, ...] = ("chunks", "target_subsets", "trajectories")
CI_LEVEL = 0.95
CI_FORMULA = (
    "95% Student-t interval over the n group estimates: mean +- t_{0.975,n-1}*sd/sqrt(n), "
    "sd with ddof=1; timescales on ln(t) (geometric mean); non-finite group values dropped. "
    "Point values are estimates from all test data pooled."
)
DEFAULT_CI_N = {"chunks": 5, "target_subsets": 5}
# Relative eigenvalue cut-off of C00 below which directions are dropped (pseudo-inverse), as
# VAMPnets' epsilon does; only bites when a state is (almost) never populated.
C00_EPSILON = 1e-10
# Pairs per block when accumulating covariances (bounds float64 temporaries to ~100 MB).
PAIR_BLOCK = 1 << 18


# --------------------------------------------------------------------------------------
# Core: pairs, covariances, Koopman matrix
# --------------------------------------------------------------------------------------


def lag_pairs(
    traj: np.ndarray, frame: np.ndarray, lag_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(i0, i1)`` with ``traj[i0] == traj[i1]`` and ``frame[i1] == frame[i0] + lag``.

    Rows may come in any order and trajectories may have gaps: a pair exists only where
    both frames are present, so no pair straddles two trajectories or a gap.
    """
    traj = np.asarray(traj, dtype=np.int64)
    frame = np.asarray(frame, dtype=np.int64)
    if lag_frames < 1:
        raise ValueError(f"lag_frames must be >= 1, got {lag_frames}")
    if traj.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    # One integer key per row; the stride keeps frame + lag inside its trajectory's range.
    stride = int(frame.max()) + lag_frames + 1
    key = (traj - traj.min()) * stride + frame
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    target = key + lag_frames
    pos = np.searchsorted(sorted_key, target)
    hit = pos < key.size
    hit[hit] = sorted_key[pos[hit]] == target[hit]
    i0 = np.flatnonzero(hit)
    i1 = order[pos[hit]]
    return i0.astype(np.int64), i1.astype(np.int64)


def covariance_sums(
    probs: np.ndarray,
    i0: np.ndarray,
    i1: np.ndarray,
    sets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Unnormalised ``C00 = sum x_t x_t^T`` and ``C01 = sum x_t x_{t+tau}^T`` over pairs and sets.

    ``probs`` is (F, n_sets, n_states); ``sets`` selects target sets (default all). Returns
    float64 sums and the number of (pair, set) samples.
    """
    n_states = probs.shape[-1]
    c00 = np.zeros((n_states, n_states))
    c01 = np.zeros((n_states, n_states))
    count = 0
    for start in range(0, len(i0), PAIR_BLOCK):
        a = probs[i0[start : start + PAIR_BLOCK]]
        b = probs[i1[start : start + PAIR_BLOCK]]
        if sets is not None:
            a = a[:, sets]
            b = b[:, sets]
        x0 = a.reshape(-1, n_states).astype(np.float64)
        x1 = b.reshape(-1, n_states).astype(np.float64)
        c00 += x0.T @ x0
        c01 += x0.T @ x1
        count += x0.shape[0]
    return c00, c01, count


def koopman_matrix(c00: np.ndarray, c01: np.ndarray, epsilon: float = C00_EPSILON) -> np.ndarray:
    """``K = C00^+ C01``; the pseudo-inverse drops C00 eigenvalues below ``epsilon * max``."""
    w, v = np.linalg.eigh((c00 + c00.T) / 2)
    keep = w > epsilon * max(float(w.max()), 0.0)
    if not np.any(keep):
        return np.full_like(c01, np.nan)
    inv = (v[:, keep] / w[keep]) @ v[:, keep].T
    return inv @ c01


def estimate_koopman(
    probs: np.ndarray,
    traj: np.ndarray,
    frame: np.ndarray,
    lag_frames: int,
    rows: np.ndarray | None = None,
    sets: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """K at ``lag_frames`` from the rows ``rows`` (bool mask or indices) and target sets ``sets``.

    Pairs are formed among the selected rows only. Returns ``(K, n_samples)``; K is NaN when
    there are no pairs.
    """
    if rows is None:
        i0, i1 = lag_pairs(traj, frame, lag_frames)
    else:
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)
        j0, j1 = lag_pairs(np.asarray(traj)[idx], np.asarray(frame)[idx], lag_frames)
        i0, i1 = idx[j0], idx[j1]
    n_states = probs.shape[-1]
    if i0.size == 0:
        return np.full((n_states, n_states), np.nan), 0
    c00, c01, count = covariance_sums(probs, i0, i1, sets)
    return koopman_matrix(c00, c01), count


# --------------------------------------------------------------------------------------
# Core: spectra, timescales, CK test
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spectrum:
    """Eigen-decomposition of one K: stationary process first, then slowest first."""

    eigenvalues: np.ndarray  # (S,) complex; [0] is the stationary one (closest to 1)
    right: np.ndarray  # (S, S) real; column i = right eigenvector of process i
    stationary: np.ndarray  # (S,) stationary distribution (left eigenvector, sum 1)


def spectrum(k: np.ndarray) -> Spectrum:
    """Eigenvalues, right eigenvectors and stationary distribution of ``K``.

    The stationary process is the eigenvalue closest to 1 (softmax features make ``K 1 = 1``);
    the others follow by decreasing ``|lambda|``. Right eigenvectors of processes >= 1 are
    real parts normalised to ``sum_j pi_j r_j^2 = 1`` with their largest-magnitude component
    positive; column 0 is the constant vector of ones.
    """
    import scipy.linalg

    n = k.shape[0]
    if not np.all(np.isfinite(k)):
        return Spectrum(
            np.full(n, np.nan, dtype=complex), np.full((n, n), np.nan), np.full(n, np.nan)
        )
    w, vl, vr = scipy.linalg.eig(k, left=True, right=True)
    i_stat = int(np.argmin(np.abs(w - 1.0)))
    rest = [i for i in np.argsort(-np.abs(w), kind="stable") if i != i_stat]
    order = [i_stat, *rest]
    w = w[order]
    vl = vl[:, order]
    vr = vr[:, order]
    pi = np.real(vl[:, 0])
    pi = pi / pi.sum()
    if np.max(np.abs(np.imag(w))) > 1e-8:
        log.warning("K has complex eigenvalues %s; reporting real parts", np.round(w, 6))
    right = np.real(vr).copy()
    right[:, 0] = 1.0
    weight = np.abs(pi)
    for i in range(1, n):
        col = right[:, i]
        norm = math.sqrt(float(np.sum(weight * col**2)))
        if norm > 0:
            col = col / norm
        if col[np.argmax(np.abs(col))] < 0:
            col = -col
        right[:, i] = col
    return Spectrum(w, right, pi)


def align_spectrum(sample: Spectrum, reference: Spectrum) -> Spectrum:
    """Flip the signs of ``sample``'s right eigenvectors to agree with ``reference``'s.

    Group estimates of a CI must use the same sign convention as the pooled estimate, else
    their spread is meaningless; agreement is the pi-weighted inner product.
    """
    right = sample.right.copy()
    weight = np.abs(reference.stationary)
    for i in range(1, right.shape[1]):
        if np.sum(weight * right[:, i] * reference.right[:, i]) < 0:
            right[:, i] = -right[:, i]
    return Spectrum(sample.eigenvalues, right, sample.stationary)


def implied_timescales(eigenvalues: np.ndarray, lag_ps: float) -> np.ndarray:
    """``t_i = -tau / ln|lambda_i|`` (ps); ``inf`` where ``|lambda| >= 1``, 0 where it is 0."""
    mod = np.abs(np.asarray(eigenvalues))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -float(lag_ps) / np.log(mod)
    return np.where(mod >= 1.0, np.inf, t)


def ck_predictions(k_tau: np.ndarray, steps: int) -> np.ndarray:
    """``(K(tau)^n)_ij`` for n = 1..steps as (steps, S, S): row i = start in state i."""
    return np.stack([np.linalg.matrix_power(k_tau, n) for n in range(1, steps + 1)])


def ck_deviation(predicted: np.ndarray, estimated: np.ndarray) -> float:
    """Largest ``|predicted - estimated|`` over steps and state pairs (a CK summary number)."""
    diff = np.abs(np.asarray(predicted) - np.asarray(estimated))
    return float(np.nanmax(diff)) if np.any(np.isfinite(diff)) else float("nan")


def state_order(stationary: np.ndarray) -> np.ndarray:
    """Permutation putting states in order of decreasing population (stable on ties)."""
    return np.argsort(-np.asarray(stationary), kind="stable")


def permute_states(k: np.ndarray, order: np.ndarray) -> np.ndarray:
    """K in the re-ordered state basis: new state a is old state ``order[a]``."""
    return k[np.ix_(order, order)]


# --------------------------------------------------------------------------------------
# Core: confidence intervals and tau*
# --------------------------------------------------------------------------------------


def t_interval(
    samples: np.ndarray, log_scale: bool = False, level: float = CI_LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t CI over axis 0: ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)``, sd ddof=1.

    Non-finite samples (and non-positive ones when ``log_scale``) are dropped per element;
    fewer than two left gives NaN. With ``log_scale`` the interval is formed on ``ln x``
    and transformed back (a geometric interval, always positive).
    """
    from scipy import stats

    x = np.asarray(samples, dtype=float)
    if log_scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(x > 0, np.log(x), np.nan)
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    xs = np.where(ok, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xs.sum(axis=0) / n
        var = (np.where(ok, x - mean, 0.0) ** 2).sum(axis=0) / (n - 1)
        half = stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * np.sqrt(var / n)
    low = np.where(n >= 2, mean - half, np.nan)
    high = np.where(n >= 2, mean + half, np.nan)
    if log_scale:
        low, high = np.exp(low), np.exp(high)
    return low, high


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


# --------------------------------------------------------------------------------------
# Core: CI groups
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One CI group: rows of the probs arrays (None = all) and target sets (None = all)."""

    rows: np.ndarray | None
    sets: np.ndarray | None


def chunk_labels(traj: np.ndarray, frame: np.ndarray, n: int) -> np.ndarray:
    """Chunk index 0..n-1 of every row: each trajectory's frames cut into n equal time chunks."""
    traj = np.asarray(traj)
    frame = np.asarray(frame)
    labels = np.zeros(traj.shape[0], dtype=np.int64)
    order = np.lexsort((frame, traj))
    bounds = np.flatnonzero(np.diff(traj[order])) + 1
    for seg in np.split(order, bounds):
        m = seg.size
        labels[seg] = (np.arange(m) * n) // m
    return labels


def ci_groups(
    method: str, n: int | None, seed: int, traj: np.ndarray, frame: np.ndarray, n_sets: int
) -> list[Group]:
    """The paper's CI groups: time ``chunks``, random ``target_subsets`` or test ``trajectories``."""
    if method == "chunks":
        labels = chunk_labels(traj, frame, int(n))
        return [Group(labels == g, None) for g in range(int(n))]
    if method == "target_subsets":
        if n_sets < int(n):
            raise InputError(
                f"koopman settings key 'ci/n': expected at most n_sets={n_sets} target subsets, "
                f"got {n}"
            )
        perm = np.random.default_rng(seed).permutation(n_sets)
        return [Group(None, np.sort(s)) for s in np.array_split(perm, int(n))]
    if method == "trajectories":
        uniq = np.unique(traj)
        k = len(uniq) if n is None else int(n)
        if k > len(uniq) or k < 2:
            raise InputError(
                f"koopman settings key 'ci/n': expected 2..{len(uniq)} (test trajectories), got {k}"
            )
        return [Group(np.isin(traj, part), None) for part in np.array_split(uniq, k)]
    raise InputError(
        f"koopman settings key 'ci/method': expected one of {', '.join(CI_METHODS)}, got {method!r}"
    )


# --------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probs:
    """One ``probs_{part}.npz`` (see docs/contracts.md)."""

    path: str
    probs: np.ndarray  # (F, n_sets, n_states)
    traj: np.ndarray  # (F,) int64
    frame: np.ndarray  # (F,) int64
    sources: np.ndarray
    lag_ps: float
    frame_interval_ps: float

    @property
    def n_states(self) -> int:
        return int(self.probs.shape[-1])

    @property
    def n_sets(self) -> int:
        return int(self.probs.shape[1])

    def frames_for(self, lag_ps: float) -> int:
        """Frames in ``lag_ps`` at this file's frame interval."""
        return lag_to_frames(lag_ps, self.frame_interval_ps)


def load_probs(path: str | Path) -> Probs:
    """Read and validate a probs npz; bad content raises :class:`InputError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz ({exc})") from None
    for key in ("probs", "traj", "frame", "sources", "lag_ps", "frame_interval_ps"):
        if key not in data:
            raise InputError(f"{path}: key {key!r}: expected present, got missing")
    p = data["probs"]
    if p.ndim != 3 or p.shape[0] < 2 or p.shape[1] < 1 or p.shape[2] < 2:
        raise InputError(
            f"{path}: key 'probs': expected shape (F>=2, n_sets>=1, n_states>=2), got {p.shape}"
        )
    if not np.issubdtype(p.dtype, np.floating) or not np.all(np.isfinite(p)):
        raise InputError(f"{path}: key 'probs': expected finite floats, got {p.dtype} with NaN/inf")
    f = p.shape[0]
    out: dict[str, np.ndarray] = {}
    for key in ("traj", "frame"):
        a = data[key]
        if a.shape != (f,) or not np.issubdtype(a.dtype, np.integer):
            raise InputError(
                f"{path}: key {key!r}: expected int array of shape ({f},), got {a.dtype} {a.shape}"
            )
        if a.size and a.min() < 0:
            raise InputError(f"{path}: key {key!r}: expected >= 0, got {a.min()}")
        out[key] = a.astype(np.int64)
    sources = data["sources"]
    if out["traj"].max() >= max(len(sources), 1) and len(sources):
        raise InputError(
            f"{path}: key 'traj': expected indices < len(sources)={len(sources)}, "
            f"got {out['traj'].max()}"
        )
    key = out["traj"] * (int(out["frame"].max()) + 1) + out["frame"]
    if np.unique(key).size != f:
        raise InputError(
            f"{path}: keys 'traj'/'frame': expected unique (traj, frame) rows, got duplicates"
        )
    scalars = {}
    for key_name in ("lag_ps", "frame_interval_ps"):
        try:
            value = float(data[key_name])
        except (TypeError, ValueError):
            raise InputError(
                f"{path}: key {key_name!r}: expected a scalar, got {data[key_name]!r}"
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{path}: key {key_name!r}: expected a positive number, got {value}")
        scalars[key_name] = value
    return Probs(
        str(path),
        p,
        out["traj"],
        out["frame"],
        sources,
        scalars["lag_ps"],
        scalars["frame_interval_ps"],
    )


def parse_settings(settings: Mapping[str, Any], lags_ps: Sequence[float]) -> dict[str, Any]:
    """The koopman block with defaults filled in and checked against the lag grid."""
    if not isinstance(settings, Mapping):
        raise InputError(f"koopman settings: expected a JSON object, got {type(settings).__name__}")
    ci = dict(settings.get("ci") or {"method": "chunks"})
    method = ci.get("method", "chunks")
    if method not in CI_METHODS:
        raise InputError(
            f"koopman settings key 'ci/method': expected one of "
            f"{', '.join(CI_METHODS)}, got {method!r}"
        )
    n = ci.get("n", DEFAULT_CI_N.get(method))
    if n is not None and (not isinstance(n, int) or n < 2):
        raise InputError(f"koopman settings key 'ci/n': expected an integer >= 2, got {n!r}")
    ck_steps = settings.get("ck_steps", 5)
    if not isinstance(ck_steps, int) or ck_steps < 1:
        raise InputError(
            f"koopman settings key 'ck_steps': expected an integer >= 1, got {ck_steps!r}"
        )
    tau = settings.get("tau_star_ps")
    if tau is not None:
        matches = [x for x in lags_ps if math.isclose(x, float(tau), rel_tol=1e-9)]
        if not matches:
            raise InputError(
                f"koopman settings key 'tau_star_ps': expected one of the lag grid "
                f"{', '.join(lag_label(x) for x in lags_ps)} (a model must exist there), "
                f"got {tau!r}"
            )
        tau = matches[0]
    return {
        "tau_star_ps": tau,
        "ck_steps": ck_steps,
        "ci_method": method,
        "ci_n": n,
        "ci_seed": int(ci.get("seed", 0)),
    }


# --------------------------------------------------------------------------------------
# Analysis of one (model, n_states)
# --------------------------------------------------------------------------------------


@dataclass
class LagResult:
    """Timescales of one lag's model: pooled and per CI group."""

    lag_ps: float
    eigenvalues: np.ndarray  # (S-1,) complex, slowest first (stationary excluded)
    timescales: np.ndarray  # (S-1,)
    group_timescales: np.ndarray  # (n_groups, S-1)
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_samples: int


def analyse_lag(data: Probs, groups: Sequence[Group]) -> LagResult:
    """Pooled and per-group timescales of the model trained at ``data.lag_ps``."""
    lf = data.frames_for(data.lag_ps)
    k, count = estimate_koopman(data.probs, data.traj, data.frame, lf)
    if count == 0:
        raise InputError(
            f"{data.path}: keys 'traj'/'frame': expected rows {lf} frames apart within one "
            f"trajectory (lag {lag_label(data.lag_ps)}), got none"
        )
    spec = spectrum(k)
    ts = implied_timescales(spec.eigenvalues[1:], data.lag_ps)
    per_group = []
    for g in groups:
        kg, _ = estimate_koopman(data.probs, data.traj, data.frame, lf, g.rows, g.sets)
        per_group.append(implied_timescales(spectrum(kg).eigenvalues[1:], data.lag_ps))
    group_ts = np.array(per_group).reshape(len(groups), len(ts))
    low, high = t_interval(group_ts, log_scale=True)
    return LagResult(data.lag_ps, spec.eigenvalues[1:], ts, group_ts, low, high, count)


@dataclass
class TauStarResult:
    """Everything estimated at tau*, in the population-ordered state basis."""

    tau_ps: float
    order: np.ndarray  # new state a = model output order[a]
    k: np.ndarray
    spectrum: Spectrum
    group_spectra: list[Spectrum]
    predicted: np.ndarray  # (steps, S, S)
    estimated: np.ndarray  # (steps, S, S)
    group_predicted: np.ndarray  # (n_groups, steps, S, S)
    group_estimated: np.ndarray


def analyse_tau_star(data: Probs, groups: Sequence[Group], ck_steps: int) -> TauStarResult:
    """K(tau*), its eigen-decomposition and the CK test, pooled and per group."""
    lf = data.frames_for(data.lag_ps)
    n_states = data.n_states

    def ks(rows: Any, sets: Any) -> list[np.ndarray]:
        return [
            estimate_koopman(data.probs, data.traj, data.frame, n * lf, rows, sets)[0]
            for n in range(1, ck_steps + 1)
        ]

    pooled = ks(None, None)
    if not np.all(np.isfinite(pooled[0])):
        raise InputError(
            f"{data.path}: keys 'traj'/'frame': expected rows {lf} frames apart within one "
            f"trajectory (tau* = {lag_label(data.lag_ps)}), got none"
        )
    order = state_order(spectrum(pooled[0]).stationary)
    pooled = [permute_states(k, order) for k in pooled]
    spec = spectrum(pooled[0])
    g_spec, g_pred, g_est = [], [], []
    for g in groups:
        gk = [permute_states(k, order) for k in ks(g.rows, g.sets)]
        g_spec.append(align_spectrum(spectrum(gk[0]), spec))
        g_pred.append(ck_predictions(gk[0], ck_steps))
        g_est.append(np.stack(gk))
    for n, k in enumerate(pooled[1:], start=2):
        if not np.all(np.isfinite(k)):
            log.warning(
                "CK: no lag pairs at %d x tau* = %s; estimate is NaN", n, lag_label(n * data.lag_ps)
            )
    return TauStarResult(
        tau_ps=data.lag_ps,
        order=order,
        k=pooled[0],
        spectrum=spec,
        group_spectra=g_spec,
        predicted=ck_predictions(pooled[0], ck_steps),
        estimated=np.stack(pooled),
        group_predicted=np.array(g_pred).reshape(len(groups), ck_steps, n_states, n_states),
        group_estimated=np.array(g_est).reshape(len(groups), ck_steps, n_states, n_states),
    )


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------


def timescales_table(model: str, n_states: int, results: Sequence[LagResult]) -> Any:
    """``timescales.csv`` rows."""
    import pandas as pd

    rows = []
    for r in results:
        for i in range(len(r.timescales)):
            rows.append(
                {
                    "model": model,
                    "n_states": n_states,
                    "lag_ps": r.lag_ps,
                    "process": i + 1,
                    "eigenvalue": float(np.real(r.eigenvalues[i])),
                    "timescale_ps": float(r.timescales[i]),
                    "ci_low_ps": float(r.ci_low[i]),
                    "ci_high_ps": float(r.ci_high[i]),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "model",
            "n_states",
            "lag_ps",
            "process",
            "eigenvalue",
            "timescale_ps",
            "ci_low_ps",
            "ci_high_ps",
        ],
    )


def ck_table(model: str, n_states: int, res: TauStarResult) -> Any:
    """``ck.csv`` rows."""
    import pandas as pd

    plo, phi = t_interval(res.group_predicted)
    elo, ehi = t_interval(res.group_estimated)
    rows = []
    steps, s, _ = res.predicted.shape
    for n in range(steps):
        for i in range(s):
            for j in range(s):
                rows.append(
                    {
                        "model": model,
                        "n_states": n_states,
                        "tau_ps": res.tau_ps,
                        "step": n + 1,
                        "lag_ps": (n + 1) * res.tau_ps,
                        "from_state": i,
                        "to_state": j,
                        "predicted": res.predicted[n, i, j],
                        "predicted_ci_low": plo[n, i, j],
                        "predicted_ci_high": phi[n, i, j],
                        "estimated": res.estimated[n, i, j],
                        "estimated_ci_low": elo[n, i, j],
                        "estimated_ci_high": ehi[n, i, j],
                    }
                )
    return pd.DataFrame(rows)


def eigen_table(model: str, n_states: int, res: TauStarResult) -> Any:
    """``eigen.csv`` rows: process 0 = stationary distribution, then right eigenvectors."""
    import pandas as pd

    spec = res.spectrum
    comp = spec.right.copy()
    comp[:, 0] = spec.stationary
    n = comp.shape[0]
    g_comp = np.array([g.right for g in res.group_spectra]).reshape(-1, n, n)
    g_comp[:, :, 0] = np.array([g.stationary for g in res.group_spectra]).reshape(-1, n)
    lo, hi = t_interval(g_comp)
    ts = implied_timescales(spec.eigenvalues, res.tau_ps)
    rows = []
    for p in range(comp.shape[1]):
        for j in range(comp.shape[0]):
            rows.append(
                {
                    "model": model,
                    "n_states": n_states,
                    "tau_ps": res.tau_ps,
                    "process": p,
                    "eigenvalue": float(np.real(spec.eigenvalues[p])),
                    "timescale_ps": float(ts[p]),
                    "state": j,
                    "component": comp[j, p],
                    "ci_low": lo[j, p],
                    "ci_high": hi[j, p],
                }
            )
    return pd.DataFrame(rows)


def populations_table(model: str, n_states: int, res: TauStarResult) -> Any:
    """``populations.csv`` rows."""
    import pandas as pd

    pi = res.spectrum.stationary
    lo, hi = t_interval(np.array([g.stationary for g in res.group_spectra]).reshape(-1, len(pi)))
    return pd.DataFrame(
        {
            "model": model,
            "n_states": n_states,
            "tau_ps": res.tau_ps,
            "state": np.arange(len(pi)),
            "population": pi,
            "ci_low": lo,
            "ci_high": hi,
        }
    )


# --------------------------------------------------------------------------------------
# Quick-look plots (not rule outputs)
# --------------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    from gdyn.files import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def plot_quicklooks(
    outdir: Path, ts: Any, ck: Any, eig: Any, pop: Any, title: str, tau_ps: float | None = None
) -> None:
    """One PNG per table, for a glance at the numbers (the paper figures live in plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    lags = np.sort(ts["lag_ps"].unique())
    for p, sub in ts.groupby("process"):
        sub = sub.sort_values("lag_ps")
        ax.plot(sub["lag_ps"], sub["timescale_ps"], "o-", label=f"process {p}")
        ax.fill_between(sub["lag_ps"], sub["ci_low_ps"], sub["ci_high_ps"], alpha=0.25)
    if len(lags):
        ax.plot(lags, lags, "k-", lw=1, label="t = tau")
        ax.fill_between(lags, lags, lags.min() * 0.5, color="k", alpha=0.15)
    if tau_ps is not None:
        ax.axvline(tau_ps, color="0.4", ls=":", lw=1, label=f"tau* = {tau_ps:g} ps")
    ax.set_yscale("log")
    ax.set_xlabel("lag time tau (ps)")
    ax.set_ylabel("timescale (ps)")
    ax.set_title(title)
    ax.legend(fontsize=6)
    _save(fig, outdir / "timescales.png")

    s = int(ck["from_state"].max()) + 1 if len(ck) else 1
    fig, axes = plt.subplots(
        s, s, figsize=(1.6 * s + 1, 1.3 * s + 1), sharex=True, sharey=True, squeeze=False
    )
    for (i, j), sub in ck.groupby(["from_state", "to_state"]):
        a = axes[i][j]
        x = np.concatenate([[0.0], sub["lag_ps"].to_numpy()])
        one = 1.0 if i == j else 0.0
        a.plot(x, np.concatenate([[one], sub["predicted"]]), color="tab:blue")
        a.fill_between(
            x,
            np.concatenate([[one], sub["predicted_ci_low"]]),
            np.concatenate([[one], sub["predicted_ci_high"]]),
            color="tab:blue",
            alpha=0.25,
        )
        est = sub["estimated"].to_numpy()
        err = np.vstack([est - sub["estimated_ci_low"], sub["estimated_ci_high"] - est])
        a.errorbar(
            sub["lag_ps"],
            est,
            yerr=np.nan_to_num(np.abs(err)),
            color="tab:red",
            ls="--",
            marker="o",
            ms=2,
        )
        a.set_title(f"{i}->{j}", fontsize=7)
        a.set_ylim(-0.1, 1.1)
    fig.suptitle(f"{title}: CK test", fontsize=8)
    _save(fig, outdir / "ck.png")

    procs = sorted(eig["process"].unique())
    fig, axes = plt.subplots(1, len(procs), figsize=(1.8 * len(procs) + 0.5, 2.4), squeeze=False)
    for a, p in zip(axes[0], procs, strict=True):
        sub = eig[eig["process"] == p].sort_values("state")
        y = sub["component"].to_numpy()
        err = np.vstack([y - sub["ci_low"], sub["ci_high"] - y])
        a.bar(sub["state"], y, yerr=np.nan_to_num(np.abs(err)), color="0.6")
        a.axhline(0, color="k", lw=0.5)
        label = "stationary" if p == 0 else f"t={sub['timescale_ps'].iloc[0]:.3g} ps"
        a.set_title(f"process {p} ({label})", fontsize=7)
        a.set_xlabel("state")
    _save(fig, outdir / "eigen.png")

    fig, ax = plt.subplots(figsize=(3, 2.5))
    y = pop["population"].to_numpy()
    err = np.vstack([y - pop["ci_low"], pop["ci_high"] - y])
    ax.bar(pop["state"], y, yerr=np.nan_to_num(np.abs(err)), color="0.6")
    ax.set_xlabel("state")
    ax.set_ylabel("population")
    ax.set_title(title)
    _save(fig, outdir / "populations.png")


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def _name_from_outdir(outdir: Path) -> tuple[str | None, int | None]:
    m = re.fullmatch(r"(?P<model>.+)-s(?P<n>\d+)", outdir.name)
    return (m["model"], int(m["n"])) if m else (None, None)


def run_koopman(
    outdir: Path,
    probs_paths: Sequence[str | Path],
    lag_labels: Sequence[str],
    settings: Mapping[str, Any],
    model: str | None = None,
    n_states: int | None = None,
) -> dict[str, Any]:
    """The whole stage: read the probs of every lag, write the tables, plots and summary."""
    from tqdm import tqdm

    from gdyn.files import write_csv, write_json

    if len(probs_paths) != len(lag_labels):
        raise InputError(
            f"--probs/--lags: expected as many files as lags, got "
            f"{len(probs_paths)} files and {len(lag_labels)} lags"
        )
    lags = [parse_lag(x) for x in lag_labels]
    if len(set(lags)) != len(lags):
        raise InputError(f"--lags: expected distinct lags, got {' '.join(lag_labels)}")
    pairs = sorted(zip(lags, (str(p) for p in probs_paths), strict=True))
    lags = [lg for lg, _ in pairs]
    paths = [p for _, p in pairs]
    opts = parse_settings(settings, lags)
    dir_model, dir_states = _name_from_outdir(Path(outdir))
    model = model or dir_model or "unknown"

    results: list[LagResult] = []
    n_sets = traj_ids = None
    for lag, path in tqdm(list(zip(lags, paths, strict=True)), desc="koopman lags", unit="lag"):
        data = load_probs(path)
        if not math.isclose(data.lag_ps, lag, rel_tol=1e-6):
            raise InputError(
                f"{path}: key 'lag_ps': expected {lag:g} (from --lags), got {data.lag_ps:g}"
            )
        expected = n_states or dir_states or data.n_states
        if data.n_states != expected:
            raise InputError(
                f"{path}: key 'probs': expected {expected} states, got {data.n_states}"
            )
        n_states = data.n_states
        if n_sets is None:
            n_sets, traj_ids = data.n_sets, np.unique(data.traj)
        elif data.n_sets != n_sets:
            raise InputError(
                f"{path}: key 'probs': expected {n_sets} target sets like "
                f"{paths[0]}, got {data.n_sets}"
            )
        groups = ci_groups(
            opts["ci_method"], opts["ci_n"], opts["ci_seed"], data.traj, data.frame, data.n_sets
        )
        res = analyse_lag(data, groups)
        log.info(
            "%s: %d samples, timescales %s ps, CI low %s, high %s",
            lag_label(lag),
            res.n_samples,
            np.round(res.timescales, 4),
            np.round(res.ci_low, 4),
            np.round(res.ci_high, 4),
        )
        results.append(res)
        del data
    ci_n = len(groups)

    ts_arr = np.array([r.timescales for r in results])
    auto = select_tau_star(
        lags, ts_arr, np.array([r.ci_low for r in results]), np.array([r.ci_high for r in results])
    )
    auto_ps = None if auto.index is None else lags[auto.index]
    if opts["tau_star_ps"] is not None:
        tau, source = opts["tau_star_ps"], "config"
        reason = f"set in config (tau_star_ps = {tau:g}); automatic choice: " + (
            f"{auto_ps:g} ps, {auto.reason}" if auto_ps is not None else auto.reason
        )
    elif auto_ps is not None:
        tau, source, reason = auto_ps, "auto", auto.reason
    else:
        tau, source = lags[0], "auto"
        reason = f"{auto.reason}; fell back to the smallest lag"
    log.info("tau* = %s (%s): %s", lag_label(tau), source, reason)

    tau_path = paths[lags.index(tau)]
    data = load_probs(tau_path)
    groups = ci_groups(
        opts["ci_method"], opts["ci_n"], opts["ci_seed"], data.traj, data.frame, data.n_sets
    )
    star = analyse_tau_star(data, groups, opts["ck_steps"])
    log.info("tau* state order (model output index per state): %s", star.order.tolist())

    ts = timescales_table(model, n_states, results)
    ck = ck_table(model, n_states, star)
    eig = eigen_table(model, n_states, star)
    pop = populations_table(model, n_states, star)
    outdir = Path(outdir)
    write_csv(outdir / "timescales.csv", ts)
    write_csv(outdir / "ck.csv", ck)
    write_csv(outdir / "eigen.csv", eig)
    write_csv(outdir / "populations.csv", pop)
    star_ts = implied_timescales(star.spectrum.eigenvalues[1:], tau)
    summary = {
        "model": model,
        "n_states": n_states,
        "tau_star_ps": tau,
        "tau_star_source": source,
        "tau_star_reason": reason,
        "tau_star_auto_ps": auto_ps,
        "lags_ps": lags,
        "probs_test": tau_path,
        "timescales_ps": [float(x) if np.isfinite(x) else None for x in star_ts],
        "populations": star.spectrum.stationary.tolist(),
        "ci_method": opts["ci_method"],
        "ci_n": ci_n,
        "ci_seed": opts["ci_seed"],
        "ci_formula": CI_FORMULA,
        "ck_steps": opts["ck_steps"],
        "ck_max_abs_deviation": ck_deviation(star.predicted, star.estimated),
        "state_order": star.order.tolist(),
        "n_test_trajectories": len(traj_ids),
        "n_target_sets": int(n_sets),
    }
    write_json(outdir / "summary.json", summary)
    try:
        plot_quicklooks(outdir, ts, ck, eig, pop, f"{model} {n_states} states", tau)
    except Exception as exc:  # a quick-look must never fail the stage
        log.warning("quick-look plots failed: %s", exc)
    return summary


def _cmd_koopman(args: argparse.Namespace) -> int:
    summary = run_koopman(
        args.outdir, args.probs, args.lags, args.settings, args.model, args.n_states
    )
    print(
        f"koopman: {summary['model']} {summary['n_states']} states: tau* = "
        f"{summary['tau_star_ps']:g} ps ({summary['tau_star_source']}), timescales "
        f"{summary['timescales_ps']} ps, populations "
        f"{[round(x, 4) for x in summary['populations']]}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdyn koopman`` to the CLI."""
    from gdyn.cli import json_arg

    p = subparsers.add_parser(
        "koopman",
        help="Koopman analysis: timescales vs lag, tau*, CK test, eigenvectors, populations",
        description="Koopman models from the test-set state probabilities of one model per "
        "lag: timescales vs lag with 95%% CIs, automatic tau*, CK test, eigenvectors and "
        "populations at tau*. Writes timescales/ck/eigen/populations CSVs (+ PNGs) and "
        "summary.json to OUTDIR.",
    )
    p.add_argument("outdir", type=Path, help="output directory")
    p.add_argument(
        "--probs",
        nargs="+",
        required=True,
        metavar="NPZ",
        help="probs_test.npz of the model trained at each lag, same order as --lags",
    )
    p.add_argument(
        "--lags", nargs="+", required=True, metavar="LAG", help="lag labels, e.g. 1ps 2ps 5ps"
    )
    p.add_argument(
        "--settings", type=json_arg, default={}, help="the system's koopman config block (JSON)"
    )
    p.add_argument(
        "--model",
        default=None,
        help="model name for the tables (default: from OUTDIR '{model}-s{n}')",
    )
    p.add_argument(
        "--n-states",
        type=int,
        default=None,
        help="expected state count (default: from OUTDIR, else the probs)",
    )
    p.set_defaults(func=_cmd_koopman)
