"""Eigen-decomposition of K, implied timescales, the CK test and the state order.

* ``t_i(tau) = -tau / ln|lambda_i(tau)|`` for every relaxation process ``i >= 1``.
* CK test: ``K(tau)^n`` (prediction) against ``K(n tau)`` re-estimated at the longer lag.
* States are ordered by decreasing stationary population (state 0 = most populated) so
  that every table and figure uses the same basis.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Spectrum",
    "align_spectrum",
    "ck_deviation",
    "ck_predictions",
    "permute_states",
    "spectrum",
    "state_order",
    "timescales_from_eigenvalues",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Spectrum:
    """Eigen-decomposition of one K: stationary process first, then slowest first."""

    eigenvalues: np.ndarray  # (S,) complex; [0] is the stationary one (closest to 1)
    right: np.ndarray  # (S, S) real; column i = right eigenvector of process i
    stationary: np.ndarray  # (S,) stationary distribution (left eigenvector, sum 1)

    def timescales(self, lag_ps: float) -> np.ndarray:
        """Implied timescales (ps) of the non-stationary processes, slowest first."""
        return timescales_from_eigenvalues(self.eigenvalues[1:], lag_ps)


def spectrum(k: np.ndarray) -> Spectrum:
    """Eigenvalues, right eigenvectors and stationary distribution of ``K``.

    The stationary process is the eigenvalue closest to 1 (softmax features make ``K 1 = 1``);
    the others follow by decreasing ``|lambda|``. Right eigenvectors of processes >= 1 are
    real parts normalised to ``sum_j pi_j r_j^2 = 1`` with their largest-magnitude component
    positive; column 0 is the constant vector of ones. A non-finite K gives NaN throughout.
    """
    import scipy.linalg

    n = k.shape[0]
    if n == 0:  # no surviving state (a collapsed model)
        return Spectrum(np.zeros(0, dtype=complex), np.zeros((0, 0)), np.zeros(0))
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
        log.debug(
            "K has complex eigenvalues %s; flagged 'complex' in the tables, eigenvectors are "
            "real parts", np.round(w, 6),
        )
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


def timescales_from_eigenvalues(eigenvalues: np.ndarray, lag_ps: float) -> np.ndarray:
    """``t_i = -tau / ln|lambda_i|`` (ps); ``inf`` where ``|lambda| >= 1``, 0 where it is 0.

    Parameters
    ----------
    eigenvalues : array_like
        Eigenvalues of K(tau) (any shape, complex allowed).
    lag_ps : float
        The lag tau in ps.
    """
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
