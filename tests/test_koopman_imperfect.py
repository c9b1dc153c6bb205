"""Koopman analysis of imperfect models (issue 15): near-empty states, CK verdict, flags.

References: brute-force counts and analytic truths of synthetic Markov chains (a 4-state
chain with one state at 0.2 % occupancy, ghost outputs like the default toy's 8-state
VAMPnet), deeptime (reversible covariances, VAMP-2 score, sliding-effective counts), and
crafted arrays for the verdict and flag rules.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import T3, simulate, softmax, stationary, true_timescales

from gdyn import cli
from gdyn import koopman as kp
from gdyn.errors import InputError
from gdyn.koopman.estimate import estimate_koopman
from gdyn.koopman.probs import as_probs
from gdyn.koopman.selection import effective_samples, vamp2_score
from gdyn.koopman.tau_star import select_tau_star, timescale_flags

# T3 plus a rare state 3: entered from state 0 with probability 5e-4, left after ~10 steps
# (stationary population 0.21 %).
T4 = np.zeros((4, 4))
T4[:3, :3] = T3
T4[0, 0] -= 5e-4
T4[0, 3] = 5e-4
T4[3, 3], T4[3, 0] = 0.9, 0.1


def sharp(states: np.ndarray, n: int, seed: int, scale: float = 8.0) -> np.ndarray:
    """A confident network's output for the hidden states (unused outputs ~ e^-scale)."""
    rng = np.random.default_rng(seed)
    return softmax(scale * np.eye(n)[states] + 0.5 * rng.standard_normal((*states.shape, n)))


def with_ghosts(states: np.ndarray, n_real: int, n_ghost: int, seed: int) -> np.ndarray:
    """Outputs of a network with ``n_ghost`` states it never uses, as the default toy's
    8-state VAMPnet: populations ~1e-4, never above ~0.02."""
    rng = np.random.default_rng(seed)
    n = n_real + n_ghost
    logits = 4.0 * np.eye(n)[states] + 0.3 * rng.standard_normal((*states.shape, n))
    logits[..., n_real:] = -6.5 + 1.5 * rng.standard_normal((*states.shape, n_ghost))
    return softmax(logits)


@pytest.fixture(scope="module")
def rare_chain() -> np.ndarray:
    return simulate(T4, 8, 10_000, seed=3)


# --------------------------------------------------------------------------------------
# Near-empty states


def test_rare_state_is_excluded_and_the_surviving_block_matches_the_truth(rare_chain) -> None:
    assert math.isclose(stationary(T4)[3], 0.0021, abs_tol=1e-4)
    lag = 2
    km = kp.KoopmanModel.estimate(list(np.eye(4)[rare_chain]), float(lag), 1.0)
    assert km.near_empty_states == [3] and km.n_surviving == 3 and km.n_states == 4
    assert km.state_order[3] == 3  # the excluded output comes last
    sel = km.selection
    np.testing.assert_allclose(sel.population, np.bincount(rare_chain.ravel()) / rare_chain.size)
    # One-hot frames in state 3 have no surviving mass: every one is dropped.
    assert sel.rows_dropped == int((rare_chain == 3).sum()) > 0
    # Brute force: counts of lag pairs with both ends in {0, 1, 2}, row-normalised.
    s0, s1 = rare_chain[:, :-lag].ravel(), rare_chain[:, lag:].ravel()
    ok = (s0 < 3) & (s1 < 3)
    counts = np.zeros((3, 3))
    np.add.at(counts, (s0[ok], s1[ok]), 1)
    order = km.state_order[:3]
    brute = (counts / counts.sum(axis=1, keepdims=True))[np.ix_(order, order)]
    np.testing.assert_allclose(km.koopman_matrix, brute, atol=1e-12)
    # Analytic truth: the surviving block of T^lag, renormalised (pairs through state 3
    # are what is dropped), and its timescales.
    block = np.linalg.matrix_power(T4, lag)[:3, :3]
    truth = block / block.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(km.koopman_matrix, truth[np.ix_(order, order)], atol=0.01)
    np.testing.assert_allclose(km.timescales_ps, true_timescales(truth, lag), rtol=0.05)
    # A confident network's soft output gives the same selection and timescales.
    soft = kp.KoopmanModel.estimate(list(sharp(rare_chain, 4, seed=4)), float(lag), 1.0)
    assert soft.near_empty_states == [3]
    np.testing.assert_allclose(soft.timescales_ps, true_timescales(truth, lag), rtol=0.05)
    # Without the selection the rare state's eigenvector component is ~1/sqrt(0.002).
    bare = kp.KoopmanModel.estimate(list(np.eye(4)[rare_chain]), float(lag), 1.0, selection=None)
    assert bare.n_surviving == 4 and np.abs(bare.eigenvectors).max() > 10
    assert np.abs(km.eigenvectors).max() < 3


def test_ghost_states_are_flagged_and_the_ck_test_stays_a_probability() -> None:
    states = simulate(T3, 8, 5000, seed=0)
    p = list(with_ghosts(states, 3, 2, seed=1))
    ci = {"method": "chunks", "n": 5}
    bare = kp.KoopmanModel.estimate(p, 5.0, 1.0, ci=ci, selection=None)
    # The failure mode of the toy's 8-state VAMPnet: rows of K on ghost outputs explode.
    assert bare.ck_test(p, 5).max_deviation > 1.0
    km = kp.KoopmanModel.estimate(p, 5.0, 1.0, ci=ci)
    assert km.near_empty_states == [3, 4] and sorted(km.state_order[3:]) == [3, 4]
    assert km.selection.rows_dropped == 0  # ghosts never hold half a row
    ck = km.ck_test(p, 5)
    assert ck.max_deviation < 0.05 and ck.passed
    np.testing.assert_allclose(km.timescales_ps, true_timescales(T3, 1.0), rtol=0.05)
    # K equals the estimate on the three real outputs renormalised (the rule's definition).
    real = [x[..., :3] / x[..., :3].sum(axis=-1, keepdims=True) for x in p]
    ref = kp.KoopmanModel.estimate(real, 5.0, 1.0, selection=None)
    np.testing.assert_allclose(km.koopman_matrix, ref.koopman_matrix, rtol=1e-9, atol=1e-12)
    # Tables: one row per state, excluded ones flagged with no numbers.
    table = ck.to_frame("vampnet")
    assert len(table) == 5 * 5 * 5
    flagged = table[table["near_empty"]]
    assert set(flagged["from_state"]) | set(flagged["to_state"]) >= {3, 4}
    assert flagged[["predicted", "estimated"]].isna().all().all()
    assert flagged["pass"].isna().all()
    kept = table[~table["near_empty"]]
    assert (kept["predicted"] - kept["estimated"]).abs().max() < 0.05
    pop = km.populations_frame()
    assert pop["near_empty"].tolist() == [False, False, False, True, True]
    assert pop["population"].iloc[3:].isna().all()
    np.testing.assert_allclose(pop["population"].iloc[:3].sum(), 1.0)
    assert (pop["mean_probability"].iloc[3:] < 1e-3).all()
    eig = km.eigen_frame()
    assert set(eig["process"]) == {0, 1, 2}
    assert eig[eig["near_empty"]]["component"].isna().all()


def test_selection_thresholds_and_effective_samples_match_deeptime() -> None:
    from deeptime.markov import TransitionCountEstimator

    states = simulate(T3, 3, 3000, seed=5)
    lag = 3
    counts = TransitionCountEstimator(lag, "sliding-effective").fit(list(states)).fetch_model()
    onehot = np.eye(3)[states].reshape(-1, 1, 3)
    traj = np.repeat(np.arange(3), 3000)
    frame = np.tile(np.arange(3000), 3)
    np.testing.assert_allclose(
        effective_samples(onehot, traj, frame, lag), counts.count_matrix.sum(axis=1)
    )
    # Rows every 2nd frame (a frame stride): the same counts on the strided chain.
    sub = states[:, ::2]
    strided = TransitionCountEstimator(2, "sliding-effective").fit(list(sub)).fetch_model()
    keep = frame % 2 == 0
    np.testing.assert_allclose(
        effective_samples(onehot[keep], traj[keep], frame[keep], 4),
        strided.count_matrix.sum(axis=1),
    )
    probs = as_probs(onehot, 3.0, 1.0, traj, frame)
    sel = kp.select_states(probs, min_samples=counts.count_matrix.sum(axis=1).min() + 1)
    assert sel.n_surviving == 2 and "effective samples" in sel.describe()
    assert kp.select_states(probs, min_population=0.9).collapsed


def test_vamp2_matches_deeptime() -> None:
    from deeptime.decomposition import VAMP

    states = simulate(T3, 3, 3000, seed=6)
    x = [softmax(3 * np.eye(3)[s] + 0.5 * np.random.default_rng(i).standard_normal((3000, 3)))
         for i, s in enumerate(states)]  # fmt: skip
    ref = VAMP(lagtime=3, scaling=None).fit(x).fetch_model().score(r=2)
    ours = vamp2_score(
        np.concatenate(x)[:, None], np.repeat(np.arange(3), 3000), np.tile(np.arange(3000), 3), 3
    )
    assert math.isclose(ours, ref, rel_tol=1e-9)


def test_collapsed_models() -> None:
    n = 4000
    # Constant outputs: the network gives every input the same vector.
    const = np.tile([0.6, 0.4], (n, 1))
    sel = kp.select_states(as_probs(const, 1.0, 1.0))
    assert sel.n_surviving == 2 and sel.collapsed and "constant" in sel.collapse_reason
    # One state takes all the mass: a single survivor.
    states = simulate(T3, 1, n, seed=7)[0]
    one = softmax(np.stack([np.full(n, 12.0), 0.1 * (states == 1), 0.1 * (states == 2)], 1))
    km = kp.KoopmanModel.estimate(one, 1.0, 1.0)
    assert km.n_surviving == 1 and km.collapsed and km.near_empty_states == [1, 2]
    ck = km.ck_test(one, 3)
    assert ck.predicted.shape == (3, 1, 1)
    assert km.populations_frame()["near_empty"].tolist() == [False, True, True]
    # Uncorrelated noise: outputs vary but carry no dynamics (VAMP-2 ~ 1).
    noise = softmax(np.random.default_rng(8).standard_normal((n, 3)))
    sel = kp.select_states(as_probs(noise, 1.0, 1.0))
    assert sel.collapsed and "VAMP-2" in sel.collapse_reason
    # A resolved model is not collapsed.
    assert not kp.select_states(as_probs(sharp(states, 3, 9), 1.0, 1.0)).collapsed


# --------------------------------------------------------------------------------------
# CK verdict


def test_ck_verdict_rule() -> None:
    pred = np.full((3, 1, 2), 0.5)
    est = pred.copy()
    lo, hi = est - 0.01, est + 0.01
    assert kp.ck_verdict(pred, est, lo, hi).passed
    # Step 3, element (0, 1): the prediction leaves the estimate's CI by 0.005.
    est[2, 0, 1] = 0.515
    lo[2, 0, 1], hi[2, 0, 1] = 0.505, 0.525
    v = kp.ck_verdict(pred, est, lo, hi)
    assert not v.passed
    assert v.worst["step"] == 3 and (v.worst["from_state"], v.worst["to_state"]) == (0, 1)
    assert math.isclose(v.worst["abs_deviation"], 0.015) and v.worst["pass"] is False
    assert v.element_pass[2, 0, 1] == 0.0 and v.element_pass[2, 0, 0] == 1.0
    # Degenerate CIs (NaN, zero width): the absolute tolerance decides.
    nan = np.full_like(lo, np.nan)
    assert kp.ck_verdict(pred, est, nan, nan, tolerance=0.05).passed
    assert not kp.ck_verdict(pred, est, nan, nan, tolerance=0.01).passed
    assert kp.ck_verdict(pred, est, est, est, tolerance=0.05).passed
    # Step 1 passes by construction even outside a CI; a NaN estimate is untested.
    est1 = pred.copy()
    est1[0] += 0.3
    est1[1:] = np.nan
    v = kp.ck_verdict(pred, est1, est1 - 0.01, est1 + 0.01)
    assert not v.passed and "beyond 1" in v.reason  # nothing tested after step 1
    assert np.isnan(v.element_pass[1:]).all()


def test_lumped_chain_fails_and_markov_chain_passes_the_verdict() -> None:
    hidden = np.array([[0.9, 0.1, 0.0], [0.3, 0.69, 0.01], [0.0, 0.01, 0.99]])
    lumped = np.array([0, 1, 1])[simulate(hidden, 10, 10_000, seed=4)]
    p = list(sharp(lumped, 2, seed=5, scale=3.0))
    for ci in ({"method": "chunks", "n": 5}, None):  # None: the tolerance decides
        km = kp.KoopmanModel.estimate(p, 1.0, 1.0, ci=ci)
        ck = km.ck_test(p, 5)
        assert not ck.passed, ci
        assert ck.worst()["abs_deviation"] > 0.05 and ck.worst()["lag_ps"] >= 2.0
    # A Markov chain seen through a fixed soft map passes (frame-independent output noise
    # would bias K(tau)^n against K(n tau): C00 carries the noise, C01 does not).
    chain = simulate(T3, 8, 5000, seed=0)
    q = list(softmax(3.0 * np.eye(3))[chain])
    km = kp.KoopmanModel.estimate(q, 2.0, 1.0, ci={"method": "chunks", "n": 5})
    assert km.ck_test(q, 4).passed


# --------------------------------------------------------------------------------------
# Timescale flags, tau*, reversible estimator


def test_flagged_processes_are_reported_and_never_tau_star() -> None:
    lags = [1.0, 2.0, 5.0, 10.0]
    t = np.array([[50.0, 8.0], [50.0, 8.2], [50.0, 8.0], [50.0, 8.0]])
    lam = np.exp(-np.array(lags)[:, None] / t).astype(complex)
    lam[0, 1] = -lam[0, 1]  # negative eigenvalue at 1 ps (|lambda| fakes t = 8 ps > tau)
    lam[1, 1] = lam[1, 1] * np.exp(0.2j)  # complex pair member at 2 ps
    flags = timescale_flags(lags, lam, t, t * 0.9, t * 1.1)
    assert flags.negative[0, 1] and flags.complex[1, 1] and not flags.resolved[0, 1]
    assert flags.labels(0) == ["resolved", "negative"]
    choice = select_tau_star(lags, t, t * 0.9, t * 1.1, lam)
    # This test expected 5 ps before issue 22 item 3: process 2 (t = 8 ps) is resolved at
    # 5 ps, but no later lag resolves it (t < tau at 10 ps), and the old rule passed it by
    # default. Now it is not testable, so 5 ps is rejected; 10 ps is the grid's last lag
    # (process 1 not testable): no lag qualifies.
    assert choice.index is None, choice.reason
    assert "negative eigenvalue" in choice.reason and "complex eigenvalue" in choice.reason
    assert "5ps (process 2: t=8 ps not testable: no later lag resolves" in choice.reason
    assert "10ps (process 1: t=50 ps not testable: no later lag resolves" in choice.reason
    # Without eigenvalues the same timescales give 1 ps: the flags are what moves tau*
    # (process 2 at 1 ps is compared with 2 and 5 ps, where it is resolved and agrees).
    assert select_tau_star(lags, t, t * 0.9, t * 1.1).index == 0
    # The original intent on a grid where process 2 stays above the line up to 10 ps and a
    # 20 ps lag follows: the flagged 1 and 2 ps are skipped and 5 ps is tau*.
    lags = [1.0, 2.0, 5.0, 10.0, 20.0]
    t = np.array([[50.0, 12.0], [50.0, 12.2], [50.0, 12.0], [50.0, 12.0], [50.0, 12.0]])
    lam = np.exp(-np.array(lags)[:, None] / t).astype(complex)
    lam[0, 1] = -lam[0, 1]
    lam[1, 1] = lam[1, 1] * np.exp(0.2j)
    choice = select_tau_star(lags, t, t * 0.9, t * 1.1, lam)
    assert lags[choice.index] == 5.0, choice.reason
    assert "negative eigenvalue" in choice.reason and "complex eigenvalue" in choice.reason
    assert select_tau_star(lags, t, t * 0.9, t * 1.1).index == 0


def test_negative_and_complex_eigenvalues_in_the_tables() -> None:
    # A period-2 chain (lambda = -0.9) and a 3-cycle (a complex pair).
    flip = simulate(np.array([[0.05, 0.95], [0.95, 0.05]]), 4, 3000, seed=10)
    its = kp.implied_timescales(list(np.eye(2)[flip]), 1.0, [1.0, 2.0], selection=None)
    table = its.to_frame()
    one = table[table["lag_ps"] == 1.0].iloc[0]
    assert one["negative"] and not one["resolved"] and one["eigenvalue"] < -0.8
    assert table[table["lag_ps"] == 2.0].iloc[0]["eigenvalue"] > 0.7  # lambda^2 > 0
    cycle = np.array([[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.2, 0.0, 0.8]])
    states = simulate(cycle, 4, 4000, seed=11)
    frame = kp.implied_timescales(list(np.eye(3)[states]), 1.0, [1.0]).to_frame()
    assert frame["complex"].all() and (frame["eigenvalue_imag"].abs() > 0.1).all()
    rev = kp.implied_timescales(list(np.eye(3)[states]), 1.0, [1.0], estimator="reversible")
    assert not rev.to_frame()["complex"].any()


def test_reversible_estimator_matches_deeptime() -> None:
    from deeptime.covariance import Covariance

    states = simulate(T3, 4, 3000, seed=12)
    x = np.stack([sharp(states, 3, seed=13, scale=3.0), sharp(states[::-1], 3, 14, 3.0)], 2)
    flat = x.reshape(-1, 2, 3)
    traj, frame = np.repeat(np.arange(4), 3000), np.tile(np.arange(3000), 4)
    lag = 5
    k, _ = estimate_koopman(flat, traj, frame, lag, estimator="reversible")
    series = [x[i, :, s].astype(np.float64) for i in range(4) for s in range(2)]
    cov = Covariance(lagtime=lag, compute_c0t=True, reversible=True, remove_data_mean=False,
                     bessels_correction=False).fit(series).fetch_model()  # fmt: skip
    np.testing.assert_allclose(k, np.linalg.solve(cov.cov_00, cov.cov_0t), rtol=1e-8, atol=1e-12)
    km = kp.KoopmanModel.estimate(list(x[:, :, 0]), float(lag), 1.0, estimator="reversible")
    # Detailed balance: real spectrum, stationary distribution = mean probability.
    assert np.abs(np.imag(km.eigenvalues)).max() == 0.0
    ends = np.concatenate([x[:, :-lag, 0], x[:, lag:, 0]], axis=1)  # both ends of every pair
    mean = ends.reshape(-1, 3).mean(axis=0)[km.state_order]
    np.testing.assert_allclose(km.stationary_distribution, mean, rtol=1e-8)
    np.testing.assert_allclose(km.timescales_ps, true_timescales(T3, 1.0), rtol=0.1)
    nonrev = kp.KoopmanModel.estimate(list(x[:, :, 0]), float(lag), 1.0)
    assert not np.allclose(nonrev.koopman_matrix, km.koopman_matrix, atol=1e-6)
    with pytest.raises(InputError, match="estimator"):
        estimate_koopman(flat, traj, frame, lag, estimator="symmetric")


# --------------------------------------------------------------------------------------
# The stage: summary keys for model selection (issue 16)


def write_probs(path, p: np.ndarray, lag_ps: float, dt: float) -> None:
    n_traj, n_steps = p.shape[:2]
    np.savez(path, probs=p.reshape(n_traj * n_steps, 1, -1).astype(np.float32),
             traj=np.repeat(np.arange(n_traj), n_steps), frame=np.tile(np.arange(n_steps), n_traj),
             sources=np.array([f"t{i}" for i in range(n_traj)]), lag_ps=np.float64(lag_ps),
             frame_interval_ps=np.float64(dt))  # fmt: skip


def test_stage_summary_and_tables(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cli, "STAGES", ("koopman",))
    states = simulate(T3, 8, 5000, seed=0)
    lags, paths = [1.0, 2.0, 5.0], []
    for i, lag in enumerate(lags):
        path = tmp_path / f"p{lag}.npz"
        write_probs(path, with_ghosts(states, 3, 2, seed=20 + i), lag, 1.0)
        paths.append(str(path))
    out = tmp_path / "vampnet-s5"
    settings = {"ck_steps": 4, "ci": {"method": "chunks", "n": 5}}
    argv = ["koopman", str(out), "--probs", *paths, "--model", "vampnet",
            "--settings", json.dumps(settings)]  # fmt: skip
    assert cli.main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["near_empty_states"] == [3, 4] and s["n_surviving_states"] == 3
    assert not s["collapsed"] and s["collapse_reason"] == ""
    assert "States 3" in s["state_selection"] and "0.005" in s["state_selection"]
    assert s["selection_thresholds"] == {"min_population": 0.005, "min_samples": 10.0,
                                         "min_surviving_mass": 0.5}  # fmt: skip
    assert s["ck_pass"] is True and s["ck_worst"]["lag_ps"] == s["ck_worst"]["step"] * s[
        "tau_star_ps"]
    assert [e["lag_ps"] for e in s["ck_by_lag"]] == lags
    assert all(e["ck_pass"] and e["n_surviving_states"] == 3 for e in s["ck_by_lag"])
    assert s["timescale_flags"] == ["resolved", "resolved", "no_process", "no_process"]
    assert s["timescales_ps"][2:] == [None, None] and s["populations"][3:] == [None, None]
    assert s["its_converged"] is True and s["estimator"] == "nonreversible"
    assert s["vamp2"] > 2.0  # two slow processes: 1 + ~0.9^2 + ~0.8^2
    ck = pd.read_csv(out / "ck.csv")
    kept = ck[~ck["near_empty"]]
    assert (kept["predicted"] - kept["estimated"]).abs().max() < 0.05
    assert kept["pass"].astype(bool).all()
    assert s["ck_max_abs_deviation"] == pytest.approx(
        (kept["predicted"] - kept["estimated"]).abs().max()
    )
    ts = pd.read_csv(out / "timescales.csv")
    assert (ts["n_surviving_states"] == 3).all()
    assert ts[ts["process"] <= 2]["resolved"].all()
    assert ts[ts["process"] > 2]["timescale_ps"].isna().all()
    # Settings are checked.
    bad = dict(settings, estimator="symmetric")
    argv[-1] = json.dumps(bad)
    assert cli.main(argv) == 2
    argv[-1] = json.dumps(dict(settings, min_population=2))
    assert cli.main(argv) == 2


def test_no_surviving_state_is_reported_not_a_crash(tmp_path, monkeypatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gdyn.plots import plot_ck, plot_eigen, plot_timescales

    monkeypatch.setattr(cli, "STAGES", ("koopman",))
    states = simulate(T3, 2, 400, seed=14)
    paths = []
    for lag in (1.0, 2.0):
        paths.append(str(tmp_path / f"p{lag}.npz"))
        write_probs(paths[-1], sharp(states, 3, seed=15), lag, 1.0)
    out = tmp_path / "gdynet-s3"
    settings = {"ck_steps": 3, "min_samples": 1e6}  # no state has a million samples
    assert cli.main(["koopman", str(out), "--probs", *paths, "--model", "gdynet",
                     "--settings", json.dumps(settings)]) == 0  # fmt: skip
    s = json.loads((out / "summary.json").read_text())
    assert s["n_surviving_states"] == 0 and s["near_empty_states"] == [0, 1, 2]
    assert s["collapsed"] and not s["ck_pass"] and s["ck_worst"] is None
    assert s["timescale_flags"] == ["no_process", "no_process"]
    tables = {n: pd.read_csv(out / f"{n}.csv") for n in ("timescales", "ck", "eigen")}
    assert all(len(t) for t in tables.values())  # every table has its rows, flagged
    assert tables["ck"]["near_empty"].all() and tables["eigen"]["near_empty"].all()
    fig = plt.figure()
    try:
        grid = fig.add_gridspec(3, 1)
        plot_timescales(fig.add_subplot(grid[0]), tables["timescales"])
        (ax,) = plot_eigen(fig, grid[1], tables["eigen"])
        assert "collapsed" in ax.texts[0].get_text()
        (ax,) = plot_ck(fig, grid[2], tables["ck"])
        assert "collapsed" in ax.texts[0].get_text()
    finally:
        plt.close("all")


def test_panels_mark_flags_and_ignore_runaway_intervals() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gdyn.plots import plot_ck, plot_eigen, plot_timescales
    from gdyn.plots.panels_koopman import FAIL_COLOR

    ts = pd.DataFrame({"lag_ps": [1.0, 2.0, 1.0, 2.0], "process": [1, 1, 2, 2],
                       "timescale_ps": [50.0, 52.0, 8.0, 9.0], "ci_low_ps": [45, 47, 7, 8],
                       "ci_high_ps": [1e9, 58, 9, 10], "complex": [False, False, True, False],
                       "negative": False})  # fmt: skip
    eigen = pd.DataFrame({"tau_ps": 1.0, "process": [1, 1, 1], "timescale_ps": 50.0,
                          "state": [0, 1, 2], "component": [-0.8, 1.2, np.nan],
                          "ci_low": [-0.9, -40.0, np.nan], "ci_high": [-0.7, 45.0, np.nan],
                          "near_empty": [False, False, True]})  # fmt: skip
    rows = []
    for n in (1, 2):
        for i in range(2):
            for j in range(2):
                p = 0.9 if i == j else 0.1
                rows.append({"tau_ps": 1.0, "step": n, "lag_ps": float(n), "from_state": i,
                             "to_state": j, "predicted": p, "predicted_ci_low": p - 0.01,
                             "predicted_ci_high": p + 0.01, "estimated": p + 0.05 * (n == 2),
                             "estimated_ci_low": p, "estimated_ci_high": p + 0.06,
                             "near_empty": False, "pass": not (n == 2 and i == j == 0)})
    ck = pd.DataFrame(rows)
    ck.loc[(ck["step"] == 2) & (ck["from_state"] == 0) & (ck["to_state"] == 0),
           "estimated_ci_low"] = 0.92  # fmt: skip
    fig = plt.figure(figsize=(6, 8))
    try:
        grid = fig.add_gridspec(3, 1)
        ax = fig.add_subplot(grid[0])
        plot_timescales(ax, ts)
        assert ax.get_ylim()[1] < 1e4  # the runaway band does not set the range
        hollow = [ln for ln in ax.get_lines() if ln.get_markerfacecolor() == "white"]
        assert any(len(ln.get_xdata()) == 1 for ln in hollow)  # the complex point
        (eax,) = plot_eigen(fig, grid[1], eigen)
        assert eax.get_ylim()[1] < 5 and eax.get_ylim()[0] > -5
        axes = plot_ck(fig, grid[2], ck)
        assert len(axes) == 4
        shaded = [a for a in axes if matplotlib.colors.same_color(a.get_facecolor(), FAIL_COLOR)]
        assert [a.get_title() for a in shaded] == ["0→0"]
        assert any("FAIL" in t.get_text() for t in fig.texts)
    finally:
        plt.close("all")
