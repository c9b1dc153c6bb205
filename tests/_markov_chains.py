"""Exact Markov chains (and a lumped non-Markovian one) for the CK calibration.

Used by tests/test_ck_calibration.py and benchmarks/bench_ck_calibration.py: the answer is
known, so a CK FAIL on :func:`markov_chain` data is a false FAIL and a PASS on
:func:`lumped_chain` data is a miss.
"""

from __future__ import annotations

import numpy as np


def reversible_chain(n: int, min_population: float, exit_rate: float,
                     rng: np.random.Generator) -> np.ndarray:
    """A reversible (n, n) transition matrix per frame with stationary populations falling
    geometrically from the largest to ``min_population`` (the smallest state's), and the
    fastest total exit probability per frame ``exit_rate``.

    Detailed balance by construction: ``T_ij = c A_ij pi_j`` (i != j) with ``A`` symmetric.
    """
    ratio = min_population ** (1.0 / max(n - 1, 1)) if n > 1 else 1.0
    pi = ratio ** np.arange(n)
    pi = pi / pi.sum()
    # Rescale so the smallest state holds exactly min_population (geometric up to rounding).
    a = rng.random((n, n)) ** 2 + 0.05
    a = a + a.T
    np.fill_diagonal(a, 0.0)
    off = a * pi[None, :]
    c = exit_rate / off.sum(axis=1).max()
    t = c * off
    np.fill_diagonal(t, 1.0 - t.sum(axis=1))
    return t


def stationary(t: np.ndarray) -> np.ndarray:
    """Stationary distribution of a transition matrix."""
    w, v = np.linalg.eig(t.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1.0))])
    return pi / pi.sum()


def simulate(t: np.ndarray, frames: int, atoms: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, atoms) state indices of ``atoms`` independent chains started in equilibrium."""
    n = t.shape[0]
    cum = np.cumsum(t, axis=1)
    cum[:, -1] = 1.0
    s = np.empty((frames, atoms), dtype=np.int64)
    s[0] = rng.choice(n, size=atoms, p=stationary(t))
    u = rng.random((frames, atoms))
    for f in range(1, frames):
        s[f] = (u[f][:, None] > cum[s[f - 1]]).sum(axis=1)
    return s


def blend(n: int, weight: float, rng: np.random.Generator) -> np.ndarray:
    """A fixed affine blend ``M = (1 - weight) I + weight D`` (rows of D Dirichlet): soft
    memberships ``p = M[state]`` of an exact chain are exactly Markovian in that basis
    (``K = M^-1 T M``)."""
    return (1.0 - weight) * np.eye(n) + weight * rng.dirichlet(np.ones(n), size=n)


def markov_chain(n: int, frames: int, atoms: int, seed: int, soft: float = 0.0,
                 min_population: float = 0.03, exit_rate: float = 0.03,
                 chain_seed: int = 0) -> np.ndarray:
    """(frames, atoms, n) memberships of an exact n-state chain (one-hot, or an affine
    blend with weight ``soft``); the chain is fixed by ``chain_seed``, the trajectory by
    ``seed``."""
    crng = np.random.default_rng(chain_seed)
    t = reversible_chain(n, min_population, exit_rate, crng)
    m = blend(n, soft, crng) if soft > 0 else np.eye(n)
    s = simulate(t, frames, atoms, np.random.default_rng(seed))
    return m[s]


# The lumped chain: micro states 0 <-> 1 <-> 2 (a slow 0 <-> 1 exchange, a fast exit from 1
# to 2); macro state 0 = {0, 1}, macro state 1 = {2}. Macro 0 holds two sub-populations
# with different exit rates, so its macro dynamics is not Markovian at short lags.
LUMPED_T = np.array([
    [0.990, 0.010, 0.000],
    [0.010, 0.940, 0.050],
    [0.000, 0.050, 0.950],
])


def lumped_chain(frames: int, atoms: int, seed: int) -> np.ndarray:
    """(frames, atoms, 2) one-hot memberships of the lumped chain :data:`LUMPED_T`."""
    s = simulate(LUMPED_T, frames, atoms, np.random.default_rng(seed))
    macro = np.array([0, 0, 1])[s]
    return np.eye(2)[macro]
