"""Koopman matrix estimation: lag pairs, covariance sums, ``K = C00^+ C01``.

The state probabilities of a softmax network are the basis functions of a VAMPnet-style
Koopman model (Methods, "Determination of the relaxation timescales"): ``K(tau) = C00^+ C01``
from the instantaneous and time-lagged covariances of the (non-mean-free) probabilities,
pooled over all target sets and trajectories. Lag pairs are rows of one trajectory whose
frames differ by exactly the lag, so no pair straddles two trajectories or a gap.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "C00_EPSILON",
    "PAIR_BLOCK",
    "covariance_sums",
    "estimate_koopman",
    "koopman_matrix",
    "lag_pairs",
]

# Relative eigenvalue cut-off of C00 below which directions are dropped (pseudo-inverse), as
# VAMPnets' epsilon does; only bites when a state is (almost) never populated.
C00_EPSILON = 1e-10
# Pairs per block when accumulating covariances (bounds float64 temporaries to ~100 MB).
PAIR_BLOCK = 1 << 18


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

    Pairs are formed among the selected rows only.

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
    c00, c01, count = covariance_sums(probs, i0, i1, sets)
    return koopman_matrix(c00, c01), count
