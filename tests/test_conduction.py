"""Transport (Eqs. 13-16): unwrapping, transition MSDs, D_ij, K and Nernst-Einstein shares.

Ground truth: a two-state Markov chain driving Brownian motion with a state-dependent
diffusion coefficient, for which E[d^2(t) | i -> j] is exact:
6 dt sum_m sum_k D_k (M^m)_ik (M^(n-m))_kj / (M^n)_ij for n steps of transition matrix M.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gdyn.analysis import transport as cd
from gdyn.cli import main

DT = 0.1  # ps per frame
D_STATE = np.array([0.05, 0.5])  # A^2/ps
# Per-frame transition matrix: dwell times 25 ps (state 0) and 12.5 ps (state 1), so at
# tau = 10 ps a good share of the pairs changed state; pi = (2/3, 1/3).
M = np.array([[0.996, 0.004], [0.008, 0.992]])
TAU = 100  # frames


@functools.cache
def simulate(n: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions (steps+1, n, 3) unwrapped, states (steps+1, n)); step m uses D of s_m."""
    rng = np.random.default_rng(seed)
    s = np.empty((steps + 1, n), dtype=np.int64)
    s[0] = rng.random(n) < M[0, 1] / (M[0, 1] + M[1, 0])
    u = rng.random((steps, n))
    for t in range(steps):
        s[t + 1] = np.where(u[t] < M[s[t], 1 - s[t]], 1 - s[t], s[t])
    inc = rng.standard_normal((steps, n, 3)) * np.sqrt(2 * D_STATE[s[:-1]] * DT)[..., None]
    return np.concatenate([np.zeros((1, n, 3)), np.cumsum(inc, axis=0)]), s


def exact_msd(n_steps: int) -> np.ndarray:
    """E[d^2 | i -> j] after n_steps frames of the chain above (S, S)."""
    powers = [np.linalg.matrix_power(M, m) for m in range(n_steps + 1)]
    acc = sum(np.einsum("ik,k,kj->ij", powers[m], D_STATE, powers[n_steps - m])
              for m in range(n_steps))
    return 6 * DT * acc / powers[n_steps]


def exact_d(lags: list[int]) -> np.ndarray:
    """D_ij from the exact MSD with the estimator's own slope rule."""
    curve = np.stack([exact_msd(lag) for lag in lags])
    return cd.local_slope(np.asarray(lags) * DT, curve) / 6


def test_unwrap_particle_crossing_triclinic_box_many_times() -> None:
    lat = np.array([[4.0, 0.0, 0.0], [1.5, 3.5, 0.0], [-1.0, 0.8, 3.0]])
    t = np.arange(2000)
    true = np.stack([0.37 * t, -0.21 * t, 0.13 * np.sin(t / 7) + 0.05 * t], -1)[:, None]
    frac = np.einsum("fnj,jk->fnk", true, np.linalg.inv(lat))
    wrapped = np.einsum("fnj,jk->fnk", frac - np.floor(frac), lat)
    assert np.abs(frac[-1] - frac[0]).max() > 100  # crossed the cell > 100 times
    lats = np.repeat(lat[None], t.size, 0)
    np.testing.assert_allclose(cd.unwrap(wrapped, lats) - wrapped[:1], true - true[:1],
                               atol=1e-8)


def test_transition_msd_matches_bruteforce_loop() -> None:
    rng = np.random.default_rng(5)
    n_frames, n_sets, n_states = 30, 3, 3
    x = rng.normal(size=(n_frames, n_sets, 3)).cumsum(0)
    p = rng.dirichlet(np.ones(n_states), size=(n_frames, n_sets))
    p[4, 1] = np.nan  # an unscored row drops out of every pair it is in
    lags = [2, 5]
    sums = cd.TransitionSums.zeros(1, len(lags), n_states)
    cd.accumulate(sums, x, p, lags, 3, np.zeros((n_frames, n_sets), dtype=np.int64))
    got = cd.transition_msd(sums.num[0], sums.den[0])
    for k, lag in enumerate(lags):
        num = np.zeros((n_states, n_states))
        den = np.zeros((n_states, n_states))
        for t0 in range(n_frames - lag):
            for s in range(n_sets):
                if np.isnan(p[t0, s]).any() or np.isnan(p[t0 + lag, s]).any():
                    continue
                d2 = np.sum((x[t0 + lag, s] - x[t0, s]) ** 2)
                num += d2 * np.outer(p[t0, s], p[t0 + lag, s])
                den += np.outer(p[t0, s], p[t0 + lag, s])
        np.testing.assert_allclose(got[k], num / den, rtol=1e-12)
    # K rows sum to one and K = C00^-1 C0t reproduces the one-step counts.
    k_mat = cd.koopman_matrix(sums.c00[0], sums.c0t[0])
    np.testing.assert_allclose(k_mat.sum(axis=1), 1.0, atol=1e-12)


def test_two_state_brownian_gives_d_ij_within_10_percent() -> None:
    x, s = simulate(300, 3000, seed=11)
    lags = cd.msd_lags(TAU, 0.5, 11)
    sums = cd.TransitionSums.zeros(1, len(lags), 2)
    cd.accumulate(sums, x, np.eye(2)[s], lags, TAU, np.zeros(s.shape, dtype=np.int64))
    est = cd.transport(sums, np.asarray(lags) * DT, np.ones(2), 1e-3, 300.0)
    truth = exact_d(lags)
    np.testing.assert_allclose(est.d, truth, rtol=0.10)
    # The truth is not trivial: i != j mixes both states' D, i -> i stays near D_i.
    assert 2 * D_STATE[0] < truth[0, 1] < 0.8 * D_STATE[1]
    assert truth[1, 1] > 3 * truth[0, 0]
    # The windowed slope is the derivative at tau up to O(w^2) curvature.
    deriv = (exact_msd(TAU + 1) - exact_msd(TAU - 1)) / (2 * DT) / 6
    np.testing.assert_allclose(truth, deriv, rtol=0.02)
    np.testing.assert_allclose(est.k, np.linalg.matrix_power(M, TAU), atol=0.02)
    np.testing.assert_allclose(est.pi, [2 / 3, 1 / 3], atol=0.03)


def test_nernst_einstein_units() -> None:
    # One state, K = 1, D = 1 A^2/ps = 1e-8 m^2/s, N/V = 1e-3 A^-3 = 1e27 m^-3, T = 300 K.
    sigma = cd.nernst_einstein(np.array([1.0]), np.eye(1), np.eye(1), np.eye(1), 1e-3, 300.0)
    e, kb = 1.602176634e-19, 1.380649e-23
    assert sigma[0, 0] == pytest.approx(e**2 * 1e27 * 1e-8 / (kb * 300.0), rel=1e-12)
    assert sigma[0, 0] == pytest.approx(61.97, abs=0.01)


def test_t_interval_and_groups() -> None:
    # Issue 22: the interval comes from the Koopman uncertainty engine (groups: Student-t
    # half-width centred on the pooled value, as transport's own t_interval did before).
    from gdyn.koopman.uncertainty import CISettings

    reps = CISettings("chunks", 3).replicates(np.zeros(9, int), np.arange(9), 1)
    lo, hi = reps.interval(np.array([1.0, 2.0, 3.0]), point=np.array(2.0))
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2}
    assert (lo, hi) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))


def _write_brownian_inputs(tmp: Path, swap: bool) -> tuple[list[str], list[int]]:
    """Two test pieces of wrapped Brownian motion in a triclinic cell + probs + summary."""
    lat = np.array([[9.0, 0.0, 0.0], [2.0, 8.5, 0.0], [1.0, -1.0, 9.5]])
    x, s = simulate(300, 3000, seed=12)
    frac = np.einsum("fnj,jk->fnk", x, np.linalg.inv(lat))
    wrapped = np.einsum("fnj,jk->fnk", frac - np.floor(frac), lat)
    probs = np.eye(2)[s]
    if swap:  # raw model order puts the less populated state first
        probs = probs[..., ::-1]
    pieces, sources = [], []
    for k, sl in enumerate([slice(0, 150), slice(150, 300)]):
        path = tmp / f"p{k}.npz"
        n = sl.stop - sl.start
        coords = np.concatenate([wrapped[:, sl], np.zeros((x.shape[0], 1, 3))], axis=1)
        np.savez(path, traj_coords=coords, lattices=np.repeat(lat[None], x.shape[0], 0),
                 atom_types=np.r_[np.full(n, 3), 16], target_index=np.arange(n),
                 frame_interval_ps=np.float64(DT), frame_offset=np.int64(500),
                 source=np.str_(f"traj{k}"))
        pieces.append(str(path))
        sources.append(f"traj{k}")
    f = x.shape[0]
    probs_path = tmp / "probs_test.npz"
    np.savez(probs_path, probs=np.concatenate([probs[:, :150], probs[:, 150:]]).astype(np.float32),
             traj=np.repeat([0, 1], f), sources=np.array(sources),
             frame=np.tile(np.arange(f) + 500, 2), lag_ps=np.float64(TAU * DT),
             frame_interval_ps=np.float64(DT))
    (tmp / "summary.json").write_text(json.dumps({"tau_star_ps": TAU * DT,
                                                  "probs_test": str(probs_path)}))
    lags = cd.msd_lags(TAU, 0.5, 11)
    return ["--test", *pieces, "--probs", str(probs_path), "--summary",
            str(tmp / "summary.json")], lags


@pytest.mark.parametrize("method", ["trajectories", "chunks", "target_subsets", "bootstrap"])
def test_conduction_cli_on_wrapped_brownian_system(tmp_path: Path, method: str) -> None:
    args, lags = _write_brownian_inputs(tmp_path, swap=True)
    dif, con = tmp_path / "diffusion.csv", tmp_path / "conduction.csv"
    settings = json.dumps({"temperature_K": 300.0, "charges": {"Li": 1}})
    n = {"trajectories": 2, "bootstrap": 200}.get(method, 4)
    ci = json.dumps({"ci": {"method": method, "n": n}})
    assert main(["conduction", str(dif), str(con), *args, "--settings", settings,
                 "--koopman-settings", ci]) == 0
    d = pd.read_csv(dif)
    c = pd.read_csv(con)
    assert list(d.columns) == ["from_state", "to_state", "tau_ps", "D_cm2_per_s",
                               "ci_low_cm2_per_s", "ci_high_cm2_per_s",
                               "near_empty"]  # issue 15: the Koopman state selection
    assert list(c.columns) == ["from_state", "to_state", "tau_ps", "population_from", "K", "z",
                               "D_cm2_per_s", "sigma_S_per_m", "percent", "ci_low_percent",
                               "ci_high_percent", "near_empty"]
    assert not d.near_empty.any() and not c.near_empty.any()
    got = d.pivot(index="from_state", columns="to_state", values="D_cm2_per_s").to_numpy()
    # The raw order was swapped; states come back most populated first (= chain state 0).
    np.testing.assert_allclose(got / 1e-4, exact_d(lags), rtol=0.10)
    assert (d.ci_low_cm2_per_s < d.D_cm2_per_s).all() and (d.D_cm2_per_s < d.ci_high_cm2_per_s).all()
    assert c.percent.sum() == pytest.approx(100.0)
    assert c.population_from.iloc[0] == pytest.approx(2 / 3, abs=0.03)
    assert (c.z == 1.0).all()
    # Eq. 15 by hand from the table's own columns: N/V = 150 Li per cell volume.
    volume = 9.0 * 8.5 * 9.5
    e, kb = 1.602176634e-19, 1.380649e-23
    pref = e**2 * (150 / volume * 1e30) / (kb * 300.0)
    np.testing.assert_allclose(c.sigma_S_per_m, pref * c.population_from * c.z * c.K
                               * c.D_cm2_per_s * 1e-4, rtol=1e-9)


def test_conduction_uses_charge_csv(tmp_path: Path) -> None:
    args, _ = _write_brownian_inputs(tmp_path, swap=False)
    charge = tmp_path / "charge.csv"
    pd.DataFrame({"state": [0, 0, 1], "r_A": [1.0, 2.0, 1.0], "charge": 0.0,
                  "r_star_A": 3.0, "charge_at_r_star": [0.5, 0.5, -1.0]}).to_csv(charge)
    dif, con = tmp_path / "diffusion.csv", tmp_path / "conduction.csv"
    assert main(["conduction", str(dif), str(con), *args, "--charge", str(charge),
                 "--settings", json.dumps({"temperature_K": 300.0}),
                 "--koopman-settings", json.dumps({"ci": {"method": "chunks", "n": 3}})]) == 0
    c = pd.read_csv(con)
    np.testing.assert_allclose(c.z, [0.5, -0.25, -0.25, -1.0])
    assert c.percent.sum() == pytest.approx(100.0)
