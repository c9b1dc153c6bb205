"""Mean lifetimes and mean first-passage times of the states of K(tau).

K(tau) read as the transition matrix of a Markov chain sampled every tau (row i: where
state i goes within one lag):

* **lifetime** of state i: the mean time before leaving it, ``tau / (1 - K_ii)`` (the
  number of lags spent in i is geometric with stay probability ``K_ii``);
* **MFPT** from i to j (i != j): the mean time to reach j first, ``m_i`` of the linear
  system ``m_j = 0``, ``m_k = tau + sum_l K_kl m_l`` (k != j), i.e.
  ``(I - K_{-j,-j}) m = tau 1`` on the states other than j (as deeptime's
  ``MarkovStateModel.mfpt`` for a single start state; tested against it).

Both are resolved no finer than tau: a state whose lifetime is below tau is not
kinetically resolved at this lag. Batched over leading axes, so the uncertainty engine's
replicate matrices (R, s, s) give replicate values in one call.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KINETICS_COLUMNS", "lifetimes", "mfpt_matrix"]

KINETICS_COLUMNS = ["quantity", "from_state", "to_state", "value_ps", "ci_low_ps", "ci_high_ps"]


def lifetimes(k: np.ndarray, lag_ps: float) -> np.ndarray:
    """``tau / (1 - K_ii)`` (..., s) in ps; ``inf`` where ``K_ii >= 1`` (never left)."""
    stay = np.diagonal(np.asarray(k, dtype=float), axis1=-2, axis2=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = float(lag_ps) / (1.0 - stay)
    return np.where(stay >= 1.0, np.inf, out)


def mfpt_matrix(k: np.ndarray, lag_ps: float) -> np.ndarray:
    """(..., s, s) mean first-passage times ``i -> j`` in ps (diagonal 0).

    NaN where the system is singular (j unreachable from some state) or K is not finite.
    """
    k = np.asarray(k, dtype=float)
    s = k.shape[-1]
    out = np.zeros(k.shape)
    if s < 2:  # no pair of states (a collapsed model keeps 0 or 1): nothing to pass to
        return out
    eye = np.eye(s - 1)
    for j in range(s):
        rest = [i for i in range(s) if i != j]
        a = eye - k[..., rest, :][..., :, rest]
        b = np.full(a.shape[:-1], float(lag_ps))
        try:
            m = np.linalg.solve(a, b[..., None])[..., 0]
        except np.linalg.LinAlgError:
            m = np.stack([_solve_or_nan(aa, bb) for aa, bb in zip(
                a.reshape(-1, s - 1, s - 1), b.reshape(-1, s - 1), strict=True)]
            ).reshape(b.shape)  # fmt: skip
        out[..., rest, j] = m
    return out


def _solve_or_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.full(b.shape, np.nan)
