"""K(tau)^n stays a probability with the membership map, on paper-shaped data (issue 21).

A network's outputs are memberships only up to an affine map that VAMP-2 cannot see
(gdyn.train.memberships). Where a state is rare and its output barely rises above a floor
(the Si-Au-like 4-state model of the issue: a state at 4 %, CK prediction 1.72 away from the
estimate), K = C00^-1 C0t of the raw outputs is the truth conjugated by the inverse of a
nearly singular mixing matrix, and K(tau)^n leaves [0, 1]. The issue's "Done when": with the
map fitted on other frames than the ones analysed (as the workflow fits it on validation
frames), no CK prediction entry is outside [-0.05, 1.05], in a Si-Au-like 4-state case and
the PEO-like case (tests/test_koopman_peo_like.py's chain, state 3 at 0.17 %, excluded as
near-empty). Ground truth: the hidden chains' occupancies and the invariance of the
timescales under the map (exact).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import simulate, softmax
from test_koopman_peo_like import N_FRAMES, N_LI, N_TRAJ
from test_koopman_peo_like import T as T_PEO

from gdyn import koopman as kp
from gdyn.train.memberships import fit_memberships

LOW, HIGH = -0.05, 1.05
# Si-Au-like: liquid-interface, solid, solid-interface, liquid at 55/25/16/4 %, a reversible
# chain from symmetric fluxes per step (detailed balance by construction).
PI_SIAU = np.array([0.55, 0.25, 0.16, 0.04])
FLUX = np.array([[0, 4, 2, 0.6], [4, 0, 3, 0.5], [2, 3, 0, 0.8], [0.6, 0.5, 0.8, 0]]) * 1e-3
T_SIAU = FLUX / PI_SIAU[:, None]
T_SIAU[np.diag_indices(4)] = 1.0 - T_SIAU.sum(axis=1)
# The network's mean output in each hidden state (rows): every output carries a floor of
# 15 % on the rare state 3, whose own frames rise only to 20 % on it. The inverse of this
# mixing matrix has entries up to 17, which is what K of the raw outputs is conjugated by.
MIX = np.array([[0.85, 0.0, 0.0, 0.15], [0.0, 0.85, 0.0, 0.15], [0.0, 0.0, 0.85, 0.15],
                [0.3, 0.3, 0.2, 0.2]])


def floored_outputs(hidden: np.ndarray, mix: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Softmax outputs scattered around ``mix[hidden]`` (hidden.shape + (S,))."""
    rng = np.random.default_rng(seed)
    logits = np.log(mix[hidden] + 1e-9) + noise * rng.standard_normal((*hidden.shape, len(mix)))
    return softmax(logits)


def ck_range(probs: list[np.ndarray], lag: int, steps: int) -> tuple[float, float, kp.KoopmanModel]:
    km = kp.KoopmanModel.estimate(probs, float(lag), 1.0)
    predicted = km.ck_test(probs, steps).predicted
    return float(np.nanmin(predicted)), float(np.nanmax(predicted)), km


@pytest.mark.parametrize("lag", [5, 20])
def test_siau_like_ck_predictions_are_probabilities_with_the_map(lag: int) -> None:
    assert np.allclose(PI_SIAU @ T_SIAU, PI_SIAU)
    hidden = simulate(T_SIAU, 40, 6000, seed=1)[:, 1000:].T  # (F, n) after burn-in
    chi = floored_outputs(hidden, MIX, 0.01, seed=2)
    fit, test = chi[:, :20], chi[:, 20:]  # the map is fitted on other atoms' frames
    occupancy = np.bincount(hidden[:, 20:].ravel(), minlength=4) / hidden[:, 20:].size
    assert 0.03 < occupancy[3] < 0.05  # the rare state is above near-empty
    lo_raw, _, raw = ck_range([test], lag, 6)
    mapped_test = fit_memberships(fit, "val").apply(test)
    lo, hi, km = ck_range([mapped_test], lag, 6)
    # Without the map the check fails (so it can): K(tau)^n of raw outputs goes negative.
    assert lo_raw < LOW
    assert raw.near_empty_states == [] and km.near_empty_states == []
    assert LOW <= lo and hi <= HIGH, (lo, hi)
    # The map is affine: timescales unchanged.
    np.testing.assert_allclose(km.timescales_ps, raw.timescales_ps, rtol=1e-5)
    # Populations: the rare state keeps part of its floor. Its face sits at the 1 % quantile
    # of its coordinate, and the other states' frames scatter in that coordinate by ~1/0.05
    # times their output noise (its own frames rise 0.05 above the floor), so its
    # population is 8.4 % against 3.6 % (measured); the raw outputs' stationary vector
    # gives it the whole floor, 15 %.
    pops = km.populations_frame()["population"].to_numpy()
    rare = int(np.flatnonzero(km.state_order == 3)[0])
    raw_rare = float(np.mean(test[..., 3]))
    assert abs(pops[rare] - occupancy[3]) < 0.5 * abs(raw_rare - occupancy[3])


FLOORED_XFAIL = (
    "Known limit (issue 21): with a 10 % floor on a state that the data never visit "
    "(0.17 %), the map leaves it 1.8 % of membership from the noise of the other "
    "vertices (each an extreme row); that is above koopman.min_population (0.5 %), so the "
    "state is kept, its row of K comes from noise and K(tau)^n reaches -0.16 at 4 frames "
    "(-0.10 from the raw outputs). The near-empty rule counts membership, not frames that "
    "belong to the state.")


@pytest.mark.parametrize("outputs", [
    "sharp", pytest.param("floored", marks=pytest.mark.xfail(strict=True, reason=FLOORED_XFAIL))])
def test_peo_like_ck_predictions_are_probabilities_with_the_map(outputs: str) -> None:
    hidden = simulate(T_PEO, N_TRAJ * N_LI, N_FRAMES + 200, seed=1, start=0)[:, 200:]
    hidden = hidden.reshape(N_TRAJ, N_LI, N_FRAMES).transpose(0, 2, 1)  # (traj, F, Li)
    if outputs == "sharp":  # the outputs of tests/test_koopman_peo_like.py
        noise = np.random.default_rng(10).standard_normal((*hidden.shape, 4))
        chi = softmax(8.0 * np.eye(4)[hidden] + 0.5 * noise)
    else:  # a floor of 10 % on the rare state, which its own frames raise to 25 %
        mix = np.array([[0.8, 0.05, 0.05, 0.1], [0.05, 0.8, 0.05, 0.1],
                        [0.05, 0.05, 0.8, 0.1], [0.3, 0.25, 0.2, 0.25]])
        chi = floored_outputs(hidden, mix, 0.05, seed=3)
    # Trajectory a is the fitting set (it trains, as the paper's PEO model), b..e are
    # tested. State 3 (0.17 %) never occurs in a: before the map gave such a state its
    # pure output as vertex, the map's entries reached 205 on the sharp outputs.
    assert not np.any(hidden[0] == 3)
    membership_map = fit_memberships(chi[0], "val")
    assert np.abs(membership_map.matrix).max() < 2.0
    test = [membership_map.apply(c) for c in chi[1:]]
    occupancy = np.bincount(hidden[1:].ravel(), minlength=4) / hidden[1:].size
    for lag in (2, 4, 8):  # the PEO-like test's lags (frames)
        lo, hi, km = ck_range(test, lag, 3)
        assert LOW <= lo and hi <= HIGH, (lag, lo, hi)
        pops = km.populations_frame()["population"].to_numpy()
        if outputs == "sharp":
            assert km.near_empty_states == [3]
            surviving = occupancy[km.state_order[:3]]
            np.testing.assert_allclose(pops[:3], surviving / surviving.sum(), atol=0.01)
        else:  # the floor is gone to the 1 % quantile of the rare coordinate (~1-2 %)
            np.testing.assert_allclose(pops, occupancy[km.state_order], atol=0.025)
