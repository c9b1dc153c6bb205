"""Koopman matrix estimation: lag pairs, covariance sums, ``K = C00^+ C01``.

The state probabilities of a softmax network are the basis functions of a VAMPnet-style
Koopman model (Methods, "Determination of the relaxation timescales"): ``K(tau) = C00^+ C01``
from the instantaneous and time-lagged covariances of the (non-mean-free) probabilities,
pooled over all target sets and trajectories. Lag pairs are rows of one trajectory whose
frames differ by exactly the lag, so no pair straddles two trajectories or a gap.

Two estimators (``koopman.estimator``):

* ``nonreversible`` (default, the paper's and the GDyNet/VAMPnets reference code's
  ``K = C00^-1 C01``);
* ``reversible``: ``K = Cs^+ Ms`` from the symmetrised covariances
  ``Cs = (C00 + C11) / 2`` and ``Ms = (C01 + C10) / 2``, as deeptime's
  ``Covariance(reversible=True)``: every pair counted forwards and backwards, which enforces
  detailed balance (real spectrum, stationary distribution = mean probability).

A probability entry that is NaN marks an unscored (row, target set): a pair with a NaN at
either end is skipped (the state selection drops rows whose mass lies in excluded states).
"""

from __future__ import annotations

import numpy as np

from gdyn.errors import InputError
from gdyn.settings import default

__all__ = [
    "C00_EPSILON",
    "ESTIMATORS",
    "PAIR_BLOCK",
    "check_estimator",
    "covariance_sums",
    "estimate_koopman",
    "koopman_matrix",
    "lag_pairs",
    "lagged_covariances",
]

# Relative eigenvalue cut-off of C00 below which directions are dropped (pseudo-inverse), as
# VAMPnets' epsilon does; only bites when a state is (almost) never populated.
C00_EPSILON = 1e-10
# Pairs per block when accumulating covariances (bounds float64 temporaries to ~100 MB).
PAIR_BLOCK = 1 << 18
# The K estimators of ``koopman.estimator`` (the first is the default).
ESTIMATORS: tuple[str, ...] = ("nonreversible", "reversible")


def check_estimator(estimator: str) -> str:
    """``estimator`` if it is one of :data:`ESTIMATORS`, else :class:`InputError`."""
    if estimator not in ESTIMATORS:
        raise InputError(
            f"koopman settings key 'estimator': expected one of {', '.join(ESTIMATORS)}, "
            f"got {estimator!r}"
        )
    return estimator


def lag_pairs(
    traj: np.ndarray, frame: np.ndarray, lag_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(i0, i1)`` with ``traj[i0] == traj[i1]`` and ``frame[i1] == frame[i0] + lag``.

    Rows may come in any order and trajectories may have gaps: a pair exists only where
    both frames are present, so no pair straddles two trajectories or a gap.

    Parameters
    ----------
    traj, frame : (F,) int
        Trajectory index and frame number of every row.
    lag_frames : int
        The lag in frames (>= 1).

    Returns
    -------
    i0, i1 : (P,) int64
        Row indices of the pairs, ordered by ``i0``.
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


def lagged_covariances(
    probs: np.ndarray,
    i0: np.ndarray,
    i1: np.ndarray,
    sets: np.ndarray | None = None,
    with_c11: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Unnormalised ``C00``, ``C01`` (and ``C11``) summed over pairs and target sets.

    ``C00 = sum x_t x_t^T``, ``C01 = sum x_t x_{t+tau}^T``, ``C11 = sum x_{t+tau}
    x_{t+tau}^T``; ``probs`` is (F, n_sets, n_states), ``sets`` selects target sets
    (default all). A (pair, set) sample with a non-finite entry at either end is skipped.

    Returns
    -------
    c00, c01 : (S, S) float64
    c11 : (S, S) float64 or None
        None unless ``with_c11``.
    count : int
        Number of (pair, set) samples summed.
    """
    n_states = probs.shape[-1]
    c00 = np.zeros((n_states, n_states))
    c01 = np.zeros((n_states, n_states))
    c11 = np.zeros((n_states, n_states)) if with_c11 else None
    count = 0
    for start in range(0, len(i0), PAIR_BLOCK):
        a = probs[i0[start : start + PAIR_BLOCK]]
        b = probs[i1[start : start + PAIR_BLOCK]]
        if sets is not None:
            a = a[:, sets]
            b = b[:, sets]
        x0 = a.reshape(-1, n_states).astype(np.float64)
        x1 = b.reshape(-1, n_states).astype(np.float64)
        ok = np.isfinite(x0).all(axis=1) & np.isfinite(x1).all(axis=1)
        if not ok.all():
            x0, x1 = x0[ok], x1[ok]
        c00 += x0.T @ x0
        c01 += x0.T @ x1
        if c11 is not None:
            c11 += x1.T @ x1
        count += x0.shape[0]
    return c00, c01, c11, count


def covariance_sums(
    probs: np.ndarray,
    i0: np.ndarray,
    i1: np.ndarray,
    sets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Unnormalised ``C00 = sum x_t x_t^T`` and ``C01 = sum x_t x_{t+tau}^T`` over pairs and sets.

    ``probs`` is (F, n_sets, n_states); ``sets`` selects target sets (default all). Returns
    float64 sums and the number of (pair, set) samples (see :func:`lagged_covariances`).
    """
    c00, c01, _, count = lagged_covariances(probs, i0, i1, sets)
    return c00, c01, count


def koopman_matrix(
    c00: np.ndarray,
    c01: np.ndarray,
    epsilon: float = C00_EPSILON,
    c11: np.ndarray | None = None,
    estimator: str = default("koopman", "estimator"),
) -> np.ndarray:
    """``K = C00^+ C01``; the pseudo-inverse drops C00 eigenvalues below ``epsilon * max``.

    With ``estimator="reversible"`` (``c11`` required) ``K = Cs^+ Ms`` with
    ``Cs = (C00 + C11) / 2`` and ``Ms = (C01 + C01^T) / 2``.
    """
    if check_estimator(estimator) == "reversible":
        if c11 is None:
            raise ValueError("c11: expected C11 for the reversible estimator, got None")
        c00 = 0.5 * (c00 + c11)
        c01 = 0.5 * (c01 + c01.T)
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
    estimator: str = default("koopman", "estimator"),
) -> tuple[np.ndarray, int]:
    """K at ``lag_frames`` from the rows ``rows`` (bool mask or indices) and target sets ``sets``.

    Pairs are formed among the selected rows only; ``estimator`` is one of
    :data:`ESTIMATORS`.

    Returns
    -------
    K : (S, S) float64
        NaN when there are no pairs.
    n_samples : int
        Number of (pair, target set) samples pooled.
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
    reversible = check_estimator(estimator) == "reversible"
    c00, c01, c11, count = lagged_covariances(probs, i0, i1, sets, with_c11=reversible)
    if count == 0:
        return np.full((n_states, n_states), np.nan), 0
    return koopman_matrix(c00, c01, c11=c11, estimator=estimator), count
