"""VAMP-2: analytic Markov chains and linear systems, and agreement with deeptime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deeptime.decomposition.deep import vamp_score as deeptime_vamp_score

from gdyn.errors import InputError
from gdyn.models.vamp import CovarianceAccumulator, vamp2_loss, vamp2_score


def exact_pairs(p: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """One-hot (t, t+1) pairs whose counts are exactly total * pi_i * P_ij (integers)."""
    w, v = np.linalg.eig(p.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    pi /= pi.sum()
    counts = total * pi[:, None] * p
    assert np.allclose(counts, np.round(counts)), "choose total so the counts are integers"
    counts = np.round(counts).astype(int)
    n = p.shape[0]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    src = np.repeat(i.ravel(), counts.ravel())
    dst = np.repeat(j.ravel(), counts.ravel())
    eye = np.eye(n)
    return eye[src], eye[dst]


def test_two_state_chain_one_hot_scores_one_plus_lambda_squared() -> None:
    a, b = 0.1, 0.3
    p = np.array([[1 - a, a], [b, 1 - b]])
    x, y = exact_pairs(p, 1000)
    score = vamp2_score(torch.from_numpy(x), torch.from_numpy(y))
    assert score.item() == pytest.approx(1 + (1 - a - b) ** 2, abs=1e-12)  # lambda = 0.6


def test_three_state_reversible_chain_scores_sum_of_squared_eigenvalues() -> None:
    # Detailed balance with pi = (1/2, 1/3, 1/6): pi_i P_ij = pi_j P_ji.
    p = np.array([[0.8, 0.15, 0.05], [0.225, 0.7, 0.075], [0.15, 0.15, 0.7]])
    x, y = exact_pairs(p, 12000)
    lam = np.sort(np.real(np.linalg.eigvals(p)))[:-1]
    score = vamp2_score(torch.from_numpy(x), torch.from_numpy(y))
    assert score.item() == pytest.approx(1 + np.sum(lam**2), abs=1e-10)


def test_linear_ar1_system() -> None:
    """x_{t+1} = diag(l) x_t + noise (stationary, independent components): 1 + sum l^2."""
    lam = np.array([0.9, 0.5, -0.3])
    rng = np.random.default_rng(0)
    t = 200_000
    x = np.empty((t, 3))
    x[0] = rng.normal(size=3)
    noise = rng.normal(size=(t, 3)) * np.sqrt(1 - lam**2)
    for i in range(1, t):
        x[i] = lam * x[i - 1] + noise[i]
    score = vamp2_score(torch.from_numpy(x[:-1]), torch.from_numpy(x[1:]))
    assert score.item() == pytest.approx(1 + np.sum(lam**2), abs=0.01)


@pytest.mark.parametrize("mode", ["trunc", "regularize", "clamp"])
def test_agrees_with_deeptime(mode: str) -> None:
    rng = np.random.default_rng(1)
    z = np.cumsum(rng.normal(size=(600, 4)), axis=0) * 0.05
    logits = z @ rng.normal(size=(4, 3))
    # Softmax features: rows sum to one, so C00 is singular (the case that needs epsilon).
    feats = torch.softmax(torch.from_numpy(logits), dim=1)
    x, y = feats[:-5], feats[5:]
    want = deeptime_vamp_score(x, y, method="VAMP2", epsilon=1e-6, mode=mode)
    got = vamp2_score(x, y, epsilon=1e-6, mode=mode)
    assert got.item() == pytest.approx(want.item(), rel=1e-9)


def test_gradient_agrees_with_deeptime() -> None:
    rng = np.random.default_rng(2)
    logits = torch.tensor(np.cumsum(rng.normal(size=(400, 3)), 0) * 0.1, requires_grad=True)
    feats = torch.softmax(logits, dim=1)
    (g_ours,) = torch.autograd.grad(vamp2_loss(feats[:-2], feats[2:]), logits)
    feats = torch.softmax(logits, dim=1)
    (g_dt,) = torch.autograd.grad(-deeptime_vamp_score(feats[:-2], feats[2:], epsilon=1e-6,
                                                        mode="trunc"), logits)
    assert torch.isfinite(g_ours).all()
    assert torch.allclose(g_ours, g_dt, rtol=1e-6, atol=1e-9)


def test_regularized_gradient_is_finite_for_constant_features() -> None:
    """C + eps I = eps I has a double eigenvalue: eigh's gradient is infinite there, the
    Cholesky evaluation's is not (and the value is still deeptime's)."""
    logits = torch.zeros(64, 2, dtype=torch.float64, requires_grad=True)
    feats = torch.softmax(logits * 1.0 + torch.tensor([30.0, 0.0], dtype=torch.float64), dim=1)
    score = vamp2_score(feats[:-1], feats[1:], epsilon=1e-3, mode="regularize")
    (grad,) = torch.autograd.grad(score, logits)
    assert torch.isfinite(grad).all()
    assert score.item() == pytest.approx(1.0, abs=1e-9)
    x = torch.rand(50, 3, dtype=torch.float64)
    want = deeptime_vamp_score(x[:-1], x[1:], epsilon=1e-3, mode="regularize").item()
    assert vamp2_score(x[:-1], x[1:], epsilon=1e-3, mode="regularize").item() == pytest.approx(
        want, rel=1e-12)


def test_float32_softmax_features_truncate_the_null_direction() -> None:
    """In float32 the structural null eigenvalue is round-off; trunc must drop it."""
    x, y = exact_pairs(np.array([[0.9, 0.1], [0.3, 0.7]]), 1000)
    smooth = lambda a: (0.9 * a + 0.05).astype(np.float32)  # noqa: E731  rows still sum to 1
    score = vamp2_score(torch.from_numpy(smooth(x)), torch.from_numpy(smooth(y)))
    assert score.item() == pytest.approx(1.36, abs=1e-5)


def test_streaming_accumulator_equals_one_shot() -> None:
    rng = np.random.default_rng(3)
    x = rng.random((1000, 3))
    y = 0.5 * x + 0.5 * rng.random((1000, 3))
    acc = CovarianceAccumulator(3)
    for lo in range(0, 1000, 137):
        acc.update(x[lo : lo + 137], y[lo : lo + 137])
    want = vamp2_score(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert acc.score() == pytest.approx(want, rel=1e-12)


def test_bad_shapes_are_input_errors() -> None:
    with pytest.raises(InputError, match="equal shape"):
        vamp2_score(torch.zeros(5, 2), torch.zeros(4, 2))
    with pytest.raises(InputError, match="at least 2 pairs"):
        vamp2_score(torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(InputError, match="mode"):
        vamp2_score(torch.rand(5, 2), torch.rand(5, 2), mode="bogus")
