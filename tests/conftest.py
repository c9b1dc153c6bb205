"""Fixtures and helpers shared by several test files.

Test files import the helpers with ``from conftest import ...`` (pytest puts ``tests/`` on
``sys.path``, as for ``_synthetic_systems.py``); fixtures need no import.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gdyn.graph.kernel as graph_kernel
import gdyn.graph.search as graph_search

# A 3-state chain with timescales of tens of steps, the Koopman tests' ground truth.
T3 = np.array([[0.97, 0.02, 0.01], [0.03, 0.95, 0.02], [0.01, 0.04, 0.95]])


@pytest.fixture
def one_thread():
    """One torch thread, as `gdyn train --threads 1` (the library leaves threads alone).

    Training test files use it for every test: ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def simulate(t_matrix: np.ndarray, n_traj: int, n_steps: int, seed: int,
             start: int | None = None) -> np.ndarray:
    """(n_traj, n_steps) states of independent chains with transition matrix ``t_matrix``.

    The chains start in uniformly random states, or all in state ``start``.
    """
    rng = np.random.default_rng(seed)
    cum = np.cumsum(t_matrix, axis=1)
    cum[:, -1] = 1.0
    if start is None:
        s = rng.integers(0, t_matrix.shape[0], n_traj)
    else:
        s = np.full(n_traj, start, dtype=np.int64)
    out = np.empty((n_traj, n_steps), dtype=np.int64)
    u = rng.random((n_steps, n_traj))
    for t in range(n_steps):
        out[:, t] = s
        s = (u[t][:, None] > cum[s]).sum(axis=1)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def soft(states: np.ndarray, n: int, noise: float, seed: int, scale: float = 3.0) -> np.ndarray:
    """Noisy softmax "network output" of the hidden states (states.shape + (n,))."""
    rng = np.random.default_rng(seed)
    return softmax(scale * np.eye(n)[states] + noise * rng.standard_normal((*states.shape, n)))


def true_timescales(t_matrix: np.ndarray, lag: float = 1.0) -> np.ndarray:
    """Implied timescales -lag / ln|lambda_i| of ``t_matrix``, slowest first."""
    lam = np.sort(np.abs(np.linalg.eigvals(t_matrix)))[::-1][1:]
    return -lag / np.log(lam)


def stationary(t_matrix: np.ndarray) -> np.ndarray:
    """Stationary distribution of a transition matrix."""
    w, v = np.linalg.eig(t_matrix.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1.0))])
    return pi / pi.sum()


@pytest.fixture(params=["cells", "images", "tight"])
def search_path(request, monkeypatch):
    """Run a graph test through the compiled cell-list kernel (with its sorting network; or
    "tight": tiny candidate lists and no network, so that the list regrowth and the
    insertion sort run) and through the batched image brute force."""
    monkeypatch.setattr(graph_search, "SMALL_WORK", 10**12 if request.param == "images" else 0)
    if request.param == "tight":
        monkeypatch.setattr(graph_search, "CAPACITY_FACTOR", 0)
        monkeypatch.setattr(graph_kernel, "network_size", lambda n_keep, width, typical=None: 1)
    return request.param
