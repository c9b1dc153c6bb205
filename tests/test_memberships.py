"""Well-defined memberships (gdyn.train.memberships): the affine map on the simplex leaves
VAMP-2 and every timescale unchanged, makes a known mixture crisp, and gives a synthetic
chain's populations through floored memberships; the model directory and the API apply it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from deeptime.markov import TransitionCountEstimator
from deeptime.markov.msm import MaximumLikelihoodMSM

from gdyn.errors import InputError
from gdyn.koopman.eigen import spectrum
from gdyn.koopman.estimate import estimate_koopman
from gdyn.train import GDyNetModel
from gdyn.train.estimators import train
from gdyn.train.memberships import MembershipMap, fit_memberships

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import toy  # noqa: F401 (fixture)


def markov_chain(t: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A discrete trajectory of ``n`` steps of transition matrix ``t``."""
    rng = np.random.default_rng(seed)
    cum = np.cumsum(t, axis=1)
    u = rng.random(n)
    out = np.empty(n, dtype=np.int64)
    s = 0
    for i in range(n):
        out[i] = s
        s = min(int(np.searchsorted(cum[s], u[i])), len(t) - 1)
    return out


def _koopman(chi: np.ndarray, lag: int) -> np.ndarray:
    n = len(chi)
    k, _ = estimate_koopman(chi[:, None, :], np.zeros(n, dtype=np.int64),
                            np.arange(n, dtype=np.int64), lag)
    return k


def _vamp2(chi: np.ndarray, lag: int) -> float:
    """Unregularised VAMP-2 ||C00^-1/2 C01 C11^-1/2||_F^2 (mean-free, plus the constant 1)."""
    x, y = chi[:-lag] - chi[:-lag].mean(0), chi[lag:] - chi[lag:].mean(0)
    # Drop the direction the sum-to-one constraint removes: S - 1 coordinates.
    x, y = x[:, 1:], y[:, 1:]

    def isqrt(c: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(c)
        return (v / np.sqrt(w)) @ v.T

    n = len(x)
    k = isqrt(x.T @ x / n) @ (x.T @ y / n) @ isqrt(y.T @ y / n)
    return 1.0 + float(np.sum(k**2))


T3 = np.array([[0.97, 0.02, 0.01], [0.03, 0.95, 0.02], [0.02, 0.04, 0.94]])
FUZZY3 = np.array([[0.80, 0.15, 0.05], [0.10, 0.70, 0.20], [0.05, 0.25, 0.70]])


def test_map_keeps_vamp2_and_timescales_and_makes_the_mixture_crisp() -> None:
    dtraj = markov_chain(T3, 20_000, seed=1)
    chi = FUZZY3[dtraj]  # each state observed through a fixed fuzzy membership row
    m = fit_memberships(chi, "val")
    crisp = m.apply(chi).astype(np.float64)
    # The known mixture becomes the indicator of the hidden state (rows in state order).
    np.testing.assert_allclose(crisp, np.eye(3)[dtraj], atol=1e-5)
    np.testing.assert_allclose(m.matrix, np.linalg.inv(FUZZY3), atol=1e-9)
    for lag in (1, 5, 20):
        w_raw = np.sort(np.abs(spectrum(_koopman(chi, lag)).eigenvalues))
        w_map = np.sort(np.abs(spectrum(_koopman(crisp, lag)).eigenvalues))
        np.testing.assert_allclose(w_map, w_raw, atol=1e-6)
        ts_raw, ts_map = -lag / np.log(w_raw[:2]), -lag / np.log(w_map[:2])
        np.testing.assert_allclose(ts_map, ts_raw, rtol=1e-5)
        assert _vamp2(crisp, lag) == pytest.approx(_vamp2(chi, lag), rel=1e-6)


def test_noisy_outputs_stay_on_the_simplex_and_keep_the_spectrum() -> None:
    rng = np.random.default_rng(3)
    dtraj = markov_chain(T3, 20_000, seed=2)
    chi = FUZZY3[dtraj] + rng.normal(0, 0.02, (len(dtraj), 3))
    chi = np.clip(chi, 1e-3, None)
    chi /= chi.sum(1, keepdims=True)
    m = fit_memberships(chi)
    y = m.apply(chi).astype(np.float64)
    np.testing.assert_allclose(y.sum(1), 1, atol=1e-5)
    # Each face at the 1 % quantile of its coordinate: 1 % of the fitting rows beyond it,
    # by little; with quantile 0 every row is on the simplex and each face touches one.
    np.testing.assert_allclose(np.quantile(y, 0.01, axis=0), 0, atol=1e-6)
    assert y.min() > -0.05 and y.max() < 1.05
    hull = fit_memberships(chi, quantile=0.0).apply(chi).astype(np.float64)
    assert hull.min() > -1e-6 and hull.max() < 1 + 1e-6
    np.testing.assert_allclose(hull.min(axis=0), 0, atol=1e-6)
    # Crisper than the raw outputs: each state's mean membership within its own hidden
    # state rises (the hull's vertices sit on the noise's extreme rows, ~4 sigma out).
    raw = np.array([chi[dtraj == s, s].mean() for s in range(3)])
    for z in (y, hull):
        own = np.array([z[dtraj == s, s].mean() for s in range(3)])
        assert np.all(own > raw + 0.01) and np.all(own > 0.8)
    w_raw = np.abs(spectrum(_koopman(chi, 10)).eigenvalues)
    w_map = np.abs(spectrum(_koopman(y, 10)).eigenvalues)
    np.testing.assert_allclose(np.sort(w_map), np.sort(w_raw), atol=1e-5)


@pytest.mark.parametrize("floor", [0.015, 0.075])
def test_populations_through_floored_memberships_equal_the_truth(floor: float) -> None:
    # Two states, pi_tet = 0.02 / (0.02 + 0.18) = 0.1 exactly; the network's tet
    # membership has a floor (and a ceiling below 1), as on the toy.
    t = np.array([[0.98, 0.02], [0.18, 0.82]])
    dtraj = markov_chain(t, 100_000, seed=4)
    p_tet = np.where(dtraj == 1, 0.93, floor)
    chi = np.stack([1 - p_tet, p_tet], axis=1)
    lag = 5
    pi_raw = spectrum(_koopman(chi, lag)).stationary
    m = fit_memberships(chi)
    pi_map = spectrum(_koopman(m.apply(chi).astype(np.float64), lag)).stationary
    # deeptime's maximum-likelihood MSM of the hidden chain (not reversible, as K here).
    counts = TransitionCountEstimator(lag, "sliding").fit(dtraj).fetch_model()
    msm = MaximumLikelihoodMSM(reversible=False).fit(counts).fetch_model()
    np.testing.assert_allclose(pi_map, msm.stationary_distribution, atol=1e-6)
    assert pi_map[1] == pytest.approx(0.1, abs=0.01)  # and the analytic truth
    # The raw memberships are off by what the floor adds: 0.1 * 0.93 + 0.9 * floor.
    assert pi_raw[1] == pytest.approx(msm.stationary_distribution[1] * (0.93 - floor) + floor,
                                      abs=1e-6)


def test_degenerate_outputs_keep_the_identity_and_bad_entries_raise() -> None:
    chi = np.tile([[0.3, 0.7]], (50, 1))  # constant outputs: one vertex only
    m = fit_memberships(chi)
    assert np.array_equal(m.matrix, np.eye(2)) and m.rule == "identity"
    assert np.array_equal(MembershipMap.from_dict(None, 3).matrix, np.eye(3))
    with pytest.raises(InputError, match=r"memberships\.matrix"):
        MembershipMap.from_dict({"matrix": [[1.0, 0.5], [0.0, 1.0]]}, 2)


def test_model_directory_and_api_apply_one_map(toy: dict, tmp_path: Path) -> None:  # noqa: F811
    s = {"batch_size": 64, "max_pairs_per_epoch": 1024, "epochs": 3, "learning_rate": 0.01,
         "seed": 3}
    train("gdynet", tmp_path, 2, "1ps", toy["parts"], toy["graphs"], s, progress=False)
    model = GDyNetModel.load(tmp_path)
    mm = model.membership_map
    assert mm.fitted_on == "val" and mm.rule != "identity"
    with np.load(tmp_path / "probs_val.npz") as z:
        raw_val, probs_val = z["probs_raw"], z["probs"]
    # Fitted on the validation rows: their 1 % and 99 % quantiles are the pure states.
    q = np.quantile(probs_val[..., 1].astype(np.float64), [0.01, 0.99])
    np.testing.assert_allclose(q, [0, 1], atol=1e-6)
    assert probs_val.min() > -0.1 and probs_val.max() < 1.1
    for part in ("train", "val", "test"):
        with np.load(tmp_path / f"probs_{part}.npz") as z:
            np.testing.assert_allclose(z["probs"], mm.apply(z["probs_raw"]), atol=1e-7)
    # transform (memberships by default, raw on request) gives the probs file's rows.
    piece = toy["parts"]["test"][0]
    with np.load(tmp_path / "probs_test.npz") as z:
        rows = z["traj"] == 0
        want, want_raw = z["probs"][rows], z["probs_raw"][rows]
    frames = model.grid(piece)
    got, got_raw = (model.transform(piece, frames=frames, raw=r) for r in (False, True))
    assert np.array_equal(got, model.memberships(got_raw))
    # The fixture's stores are unpruned, transform prunes: equal up to float32 sums.
    np.testing.assert_allclose(got_raw, want_raw, atol=1e-3)
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert not np.allclose(raw_val, probs_val, atol=1e-3)  # the map did something
