"""Well-defined memberships: the crispest affine map of the network's outputs on the simplex.

VAMP-2 (and every Koopman quantity built on K = C00^-1 C0t) cannot tell a network's outputs
chi from chi M for an invertible M whose rows sum to one: K becomes M^-1 K M (same
eigenvalues, so the same implied timescales and VAMP-2), the stationary vector pi M. Training
therefore leaves the outputs anywhere in a family of equally good, differently fuzzy
memberships; on the toy the 2-state model's tetrahedral membership never falls below a
floor of 1.5-7.5 % (different per lag), and every population and state-weighted analysis
inherits it (issue 21). This module picks one member of the family by a documented rule,
the inner-simplex algorithm of PCCA+ (Weber and Galliat 2002; Deuflhard and Weber 2005;
deeptime.markov.pcca) applied to the outputs themselves:

1. **Face directions.** Among the fitting rows (the kept model's validation frames: never
   the test split), the row farthest from their mean is the first vertex; each next vertex
   is the row farthest from the affine span of the vertices so far (the inner-simplex
   algorithm). Barycentric coordinates relative to these S vertex rows V, B = chi V^-1,
   have rows summing to one (V 1 = 1); coordinate i is the direction of face i.
2. **Face positions.** Each face is placed at the ``q``-quantile of its own coordinate over
   the fitting rows: chi' = (B - m) / (1 - sum m) with m_i = quantile_q(B_i). A fraction q
   of the fitting rows lies beyond each face, by little (:data:`QUANTILE` = 1 %: on the
   default toy's test frames no membership below -0.4 %), so a handful of frames at the far tail does not
   decide the map: the strict hull (q = 0) let one frame of the default toy's lag-20 ps
   model hold the octahedral vertex and left the typical octahedral frame at 2.4 %
   tetrahedral (population 11.2 % against 8.4 % from the site labels; 9.9 % with q = 1 %).
   For two states the vertices drop out: the q- and (1 - q)-quantiles of p_1 go to 0 and
   1.
3. **State order.** Vertex k becomes the state it belongs to most (Hungarian assignment on
   V), so the aligned state order of :mod:`gdyn.train.align` is kept.
4. **States without a vertex.** A state that fewer than a fraction q of the fitting rows
   belong to (mapped membership above 1/2) has no vertex in the data: the algorithm's
   vertex there is the farthest noise, and stretching it to 1 made a PEO-like model's map
   entries reach 205 and its CK predictions leave [0, 1]
   (tests/test_koopman_bounds.py). Such a state takes the network's pure output e_k as
   its vertex, and the map is refitted: its floor under the other states' frames is
   removed down to the other vertices' noise, nothing is stretched.

The whole map is chi' = chi M with M = V^-1 (I - 1 m) / (1 - sum m): affine, rows of M sum to
one, so rows of chi' sum to one. It is not clipped, because clipping would break the
invariance of K: the few frames beyond a face keep slightly negative memberships. A
singular vertex matrix (a collapsed state) keeps the identity.

The map is fitted once per model (:func:`fit_memberships`, by ``gdyn.train.estimators``),
stored in ``config.json`` (``memberships``) and applied in one place,
``GDyNetModel.memberships``: the workflow's probs files (``probs``; the network's outputs
stay beside them as ``probs_raw``), ``GDyNetModel.transform`` and every analysis see the
same memberships.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from gdyn.errors import InputError

__all__ = ["RULE", "MembershipMap", "fit_memberships", "inner_simplex_vertices"]

RULE = ("inner-simplex (PCCA+) face directions, each face at the 1 % quantile of its "
        "coordinate over the fitting rows; a state fewer rows belong to keeps its pure output "
        "as vertex")
# Fraction of the fitting rows allowed beyond each face of the simplex (module docstring).
QUANTILE = 0.01
IDENTITY = "identity"
# Vertex matrices with a condition number above this are a collapsed state: no map.
MAX_CONDITION = 1e8


@dataclass(frozen=True)
class MembershipMap:
    """chi' = chi @ matrix: an affine map of memberships (rows of ``matrix`` sum to one)."""

    matrix: np.ndarray  # (S, S) float64
    rule: str = IDENTITY
    fitted_on: str | None = None  # which frames (e.g. "val")
    n_rows: int = 0

    @classmethod
    def identity(cls, n_states: int) -> MembershipMap:
        """The map that leaves the outputs as they are."""
        return cls(np.eye(n_states))

    @property
    def n_states(self) -> int:
        return int(self.matrix.shape[0])

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """The memberships of raw outputs ``probs`` (..., S): float32, rows sum to one."""
        p = np.asarray(probs)
        if p.shape[-1] != self.n_states:
            raise InputError(f"probs: expected {self.n_states} states (as the membership map), "
                             f"got shape {p.shape}")
        x = p.reshape(-1, self.n_states).astype(np.float64)
        # Row by row in a fixed order (not BLAS, whose blocking depends on the row count):
        # a frame's memberships must not depend on which other frames are mapped with it.
        out = np.zeros_like(x)
        for j in range(self.n_states):
            out += x[:, j : j + 1] * self.matrix[j]
        return out.reshape(p.shape).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` ``memberships`` entry."""
        return {"rule": self.rule, "matrix": self.matrix.tolist(), "fitted_on": self.fitted_on,
                "n_rows": self.n_rows}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any] | None, n_states: int,
                  where: str = "config.json") -> MembershipMap:
        """The map of a ``config.json`` entry; None (models trained before it existed):
        the identity."""
        if entry is None:
            return cls.identity(n_states)
        m = np.asarray(entry.get("matrix"), dtype=np.float64)
        if m.shape != (n_states, n_states) or not np.all(np.isfinite(m)) or not np.allclose(
                m.sum(axis=1), 1.0, atol=1e-6):
            raise InputError(f"{where}: key 'memberships.matrix': expected a finite "
                             f"{n_states} x {n_states} matrix with rows summing to 1, got "
                             f"{entry.get('matrix')!r}")
        return cls(m, str(entry.get("rule", RULE)), entry.get("fitted_on"),
                   int(entry.get("n_rows", 0)))


def inner_simplex_vertices(x: np.ndarray) -> np.ndarray:
    """Row indices of the S vertices of the inner-simplex algorithm on rows ``x`` (N, S).

    The first is the row farthest from the mean, each next one the row farthest from the
    affine span of those chosen (Gram-Schmidt on the differences to the first vertex).
    """
    x = np.asarray(x, dtype=np.float64)
    n_states = x.shape[1]
    first = int(np.argmax(np.einsum("ij,ij->i", x - x.mean(axis=0), x - x.mean(axis=0))))
    idx = [first]
    z = x - x[first]
    for _ in range(1, n_states):
        d2 = np.einsum("ij,ij->i", z, z)
        j = int(np.argmax(d2))
        if d2[j] <= 0:
            break
        idx.append(j)
        e = z[j] / np.sqrt(d2[j])
        z = z - np.outer(z @ e, e)
    return np.asarray(idx, dtype=np.int64)


def _face_map(x: np.ndarray, v: np.ndarray, quantile: float) -> np.ndarray:
    """chi -> chi' of vertex rows ``v`` (state k's vertex in row k), faces at ``quantile``."""
    n_states = v.shape[0]
    vinv = np.linalg.inv(v)
    m = np.quantile(x @ vinv, quantile, axis=0)
    shift = np.eye(n_states) - np.outer(np.ones(n_states), m)
    matrix = vinv @ shift / (1.0 - m.sum())
    # Exact row sums (float error only): memberships stay on the plane sum = 1.
    return matrix + (1.0 - matrix.sum(axis=1, keepdims=True)) / n_states


def fit_memberships(probs: np.ndarray, fitted_on: str | None = None,
                    quantile: float = QUANTILE) -> MembershipMap:
    """The crispest affine map on the simplex of the rows ``probs`` (..., S) (module docstring).

    Parameters
    ----------
    probs : ndarray (..., S)
        Raw network outputs of the fitting frames (validation or training, never test).
    fitted_on : str, optional
        Recorded with the map (e.g. ``"val"``).
    quantile : float
        Fraction of the fitting rows allowed beyond each face (0: every row on the simplex).

    Returns
    -------
    MembershipMap
        The identity when the rows span fewer than S vertices (a collapsed state).
    """
    x = np.asarray(probs, dtype=np.float64)
    n_states = x.shape[-1]
    x = x.reshape(-1, n_states)
    x = x[np.all(np.isfinite(x), axis=1)]
    if len(x) < n_states:
        return MembershipMap.identity(n_states)
    idx = inner_simplex_vertices(x)
    if len(idx) < n_states:
        return MembershipMap(np.eye(n_states), IDENTITY, fitted_on, len(x))
    v = x[idx]
    if not np.isfinite(np.linalg.cond(v)) or np.linalg.cond(v) > MAX_CONDITION:
        return MembershipMap(np.eye(n_states), IDENTITY, fitted_on, len(x))
    # Vertex k (row k of the ordered vertex matrix) becomes the state whose output it is
    # highest in (Hungarian assignment), so the aligned state order of gdyn.train.align
    # is kept.
    rows, cols = linear_sum_assignment(-v)  # rows: vertices, cols: states
    order = np.empty(n_states, dtype=np.int64)
    order[cols] = rows
    v = v[order]
    matrix = _face_map(x, v, quantile)
    # A state that fewer fitting rows belong to than the quantile lets lie beyond a face
    # has no vertex in the data: the algorithm's vertex there is the farthest noise, and
    # stretching it to 1 made the PEO-like model's map reach 205 (state 3 absent from the
    # fitting frames; tests/test_koopman_bounds.py). Such a state keeps the network's own
    # pure output e_k as its vertex: its floor under the others is still removed.
    support = np.count_nonzero(x @ matrix > 0.5, axis=0)
    weak = support < max(1.0, quantile * len(x))
    if np.any(weak) and not np.all(weak):
        v[weak] = np.eye(n_states)[weak]
        if not np.isfinite(np.linalg.cond(v)) or np.linalg.cond(v) > MAX_CONDITION:
            return MembershipMap(np.eye(n_states), IDENTITY, fitted_on, len(x))
        matrix = _face_map(x, v, quantile)
    rule = RULE if quantile == QUANTILE else RULE.replace("1 %", f"{100 * quantile:g} %")
    return MembershipMap(matrix, rule, fitted_on, len(x))
