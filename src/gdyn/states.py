"""State numbering of two soft assignments of the same rows: their overlap, the
permutation that matches them, and how often they agree.

Numpy and scipy only, so that the Koopman stage (which never imports torch) and the
training stage's alignment (:mod:`gdyn.train.align`) share one rule: the Hungarian
assignment (``scipy.optimize.linear_sum_assignment``) on the soft contingency table.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["agreement", "hard_agreement", "hungarian_order", "overlap_matrix",
           "population_order"]


def overlap_matrix(p_ref: np.ndarray, p_model: np.ndarray) -> np.ndarray:
    """``O[a, j]``: mean over rows (frames x target sets) of ``p_ref[a] p_model[j]``.

    The soft contingency table of the two assignments: its entries sum to one, row ``a``
    sums to the reference population of state ``a``, and the trace of a permuted table is
    the expected fraction of rows on which the two models agree.
    """
    a = np.asarray(p_ref, dtype=np.float64).reshape(-1, p_ref.shape[-1])
    b = np.asarray(p_model, dtype=np.float64).reshape(-1, p_model.shape[-1])
    if len(a) != len(b):
        raise ValueError(f"overlap_matrix: {len(a)} reference rows vs {len(b)} model rows")
    return a.T @ b / max(len(a), 1)


def hungarian_order(overlap: np.ndarray) -> np.ndarray:
    """``order[a]``: the model output that becomes state ``a`` (maximum total overlap)."""
    rows, cols = linear_sum_assignment(np.asarray(overlap), maximize=True)
    order = np.empty(len(rows), dtype=np.int64)
    order[rows] = cols
    return order


def agreement(overlap: np.ndarray, order: np.ndarray) -> float:
    """Expected fraction of rows on which the aligned model agrees with the reference
    (the trace of the permuted overlap matrix; below one for soft assignments)."""
    return float(np.asarray(overlap)[np.arange(len(order)), order].sum())


def hard_agreement(p_ref: np.ndarray, p_model: np.ndarray, order: np.ndarray) -> float:
    """Fraction of rows whose most probable state is the same in the reference and in the
    model aligned by ``order`` (1 for a model compared with itself)."""
    a = np.asarray(p_ref).reshape(-1, p_ref.shape[-1]).argmax(axis=1)
    b = np.asarray(p_model)[..., np.asarray(order)].reshape(-1, p_model.shape[-1]).argmax(axis=1)
    return float(np.mean(a == b)) if len(a) else float("nan")


def population_order(probs: np.ndarray) -> np.ndarray:
    """Output indices by decreasing mean probability (stable: ties keep the output order)."""
    p = np.asarray(probs, dtype=np.float64)
    mean = p.reshape(-1, p.shape[-1]).mean(axis=0)
    return np.argsort(-mean, kind="stable").astype(np.int64)
