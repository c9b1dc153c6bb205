"""The Koopman API (gdyn.koopman.model): KoopmanModel, CKTest, ImpliedTimescales.

Synthetic Markov chains with known transition matrices stand in for trained models. The
estimates are checked against the analytic truth and against deeptime on the same inputs;
the tables against the contract and against what the workflow stage writes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import T3, simulate, soft, stationary, true_timescales

from gdyn import cli
from gdyn import koopman as kp
from gdyn.errors import InputError
from gdyn.koopman.eigen import permute_states

CONTRACT = {
    # issue 22: lifetimes and MFPTs
    "kinetics": ["quantity", "from_state", "to_state", "value_ps", "ci_low_ps", "ci_high_ps"],
    # issue 22: K(tau*) on every replicate of the uncertainty engine
    "replicates": ["model", "n_states", "tau_ps", "replicate", "from_state", "to_state", "value"],
    "timescales": [
        "model",
        "n_states",
        "lag_ps",
        "process",
        "eigenvalue",
        "timescale_ps",
        "ci_low_ps",
        "ci_high_ps",
        # issue 15: the flags of each (lag, process)
        "eigenvalue_imag",
        "n_surviving_states",
        "faster_than_lag",
        "complex",
        "negative",
        "resolved",
        "converged",
    ],
    "ck": [
        "model",
        "n_states",
        "tau_ps",
        "step",
        "lag_ps",
        "from_state",
        "to_state",
        "predicted",
        "predicted_ci_low",
        "predicted_ci_high",
        "estimated",
        "estimated_ci_low",
        "estimated_ci_high",
        "near_empty",  # issue 15
        "pass",
    ],
    "eigen": [
        "model",
        "n_states",
        "tau_ps",
        "process",
        "eigenvalue",
        "timescale_ps",
        "state",
        "component",
        "ci_low",
        "ci_high",
        "near_empty",  # issue 15
    ],
    "populations": [
        "model",
        "n_states",
        "tau_ps",
        "state",
        "population",
        "ci_low",
        "ci_high",
        "near_empty",  # issue 15
        "mean_probability",
        "effective_samples",
    ],
}


def deeptime_msm(dtrajs: list[np.ndarray], lag: int):
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    counts = TransitionCountEstimator(lag, "sliding").fit(dtrajs).fetch_model()
    return MaximumLikelihoodMSM(reversible=False).fit(counts).fetch_model()


@pytest.fixture(scope="module")
def chain() -> np.ndarray:
    return simulate(T3, 8, 5000, seed=0)


# --------------------------------------------------------------------------------------
# KoopmanModel against the truth and deeptime


def test_one_hot_model_is_the_count_msm(chain) -> None:
    # One-hot features: K = C00^-1 C01 is the row-normalised count matrix (deeptime's
    # non-reversible maximum-likelihood MSM), in population order.
    lag_frames, dt = 4, 0.25
    km = kp.KoopmanModel.estimate(list(np.eye(3)[chain]), lag_frames * dt, dt)
    msm = deeptime_msm(list(chain), lag_frames)
    order = km.state_order
    assert km.n_states == 3 and km.lag_ps == 1.0
    np.testing.assert_allclose(
        km.koopman_matrix, permute_states(msm.transition_matrix, order), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        km.stationary_distribution, msm.stationary_distribution[order], rtol=1e-9
    )
    np.testing.assert_allclose(km.timescales_ps, msm.timescales() * dt, rtol=1e-9)
    # ...and against the chain's own T (sampling error only).
    t4 = np.linalg.matrix_power(T3, lag_frames)
    np.testing.assert_allclose(km.koopman_matrix, permute_states(t4, order), atol=0.01)
    np.testing.assert_allclose(km.stationary_distribution, stationary(T3)[order], atol=0.03)
    np.testing.assert_allclose(km.timescales_ps, true_timescales(T3, dt), rtol=0.1)
    # Eigen-decomposition: stationary first, K r = lambda r, pi-normalised right vectors.
    assert km.eigenvalues.shape == (3,) and np.isclose(km.eigenvalues[0], 1.0)
    assert np.all(np.diff(km.stationary_distribution) <= 0)
    for i in range(1, 3):
        r = km.eigenvectors[:, i]
        np.testing.assert_allclose(
            km.koopman_matrix @ r, np.real(km.eigenvalues[i]) * r, atol=1e-12
        )
        assert np.isclose(np.sum(km.stationary_distribution * r**2), 1.0)


def test_soft_assignments_are_a_change_of_basis(chain) -> None:
    # A fixed soft assignment x = M[s] (no noise) makes K = M^-1 T_counts M exactly:
    # deeptime's eigenvalues, and the stationary distribution of K is pi_counts M.
    m = soft(np.arange(3), 3, noise=0.0, seed=0)  # (3, 3), row s = output for state s
    m = m[[1, 2, 0]]  # the network's output order differs from the hidden order
    km = kp.KoopmanModel.estimate(list(m[chain]), 2.0, 1.0)
    msm = deeptime_msm(list(chain), 2)
    np.testing.assert_allclose(km.timescales_ps, msm.timescales(), rtol=1e-8)
    k_out = np.linalg.solve(m, msm.transition_matrix @ m)  # in the output basis
    np.testing.assert_allclose(
        km.koopman_matrix, permute_states(k_out, km.state_order), rtol=1e-8, atol=1e-10
    )
    pi_out = msm.stationary_distribution @ m
    np.testing.assert_allclose(km.stationary_distribution, pi_out[km.state_order], rtol=1e-8)


def test_noisy_soft_assignments_match_deeptime_and_truth(chain) -> None:
    from deeptime.covariance import Covariance

    p = soft(chain, 3, noise=0.3, seed=1)
    km = kp.KoopmanModel.estimate(list(p), 1.0, 1.0)
    cov = (
        Covariance(lagtime=1, compute_c0t=True, remove_data_mean=False)
        .fit([x.astype(np.float64) for x in p])
        .fetch_model()
    )
    k_dt = np.linalg.solve(cov.cov_00, cov.cov_0t)
    np.testing.assert_allclose(
        km.koopman_matrix, permute_states(k_dt, km.state_order), rtol=1e-8, atol=1e-10
    )
    np.testing.assert_allclose(km.timescales_ps, true_timescales(T3), rtol=0.08)
    # The stationary distribution of K is the mean network output.
    mean = p.reshape(-1, 3).mean(axis=0)[km.state_order]
    np.testing.assert_allclose(km.stationary_distribution, mean, atol=2e-3)


def test_probs_forms_agree(chain, tmp_path) -> None:
    p = soft(chain[:3, :2000], 3, noise=0.3, seed=2)  # (3 traj, 2000, 3)
    ref = kp.KoopmanModel.estimate(list(p), 0.2, 0.1)
    # One array with explicit traj/frame, rows shuffled.
    flat = p.reshape(-1, 1, 3)
    traj = np.repeat(np.arange(3), 2000)
    frame = np.tile(np.arange(2000), 3)
    perm = np.random.default_rng(0).permutation(len(traj))
    km = kp.KoopmanModel.estimate(flat[perm], 0.2, 0.1, traj=traj[perm], frame=frame[perm])
    np.testing.assert_allclose(km.koopman_matrix, ref.koopman_matrix, rtol=1e-10)
    # A probs file (its own training lag and frame interval), and the loaded Probs.
    path = tmp_path / "probs_test.npz"
    np.savez(path, probs=flat.astype(np.float64), traj=traj, frame=frame,
             sources=np.array(["a", "b", "c"]), lag_ps=np.float64(5.0),
             frame_interval_ps=np.float64(0.1))  # fmt: skip
    for form in (path, str(path), kp.load_probs(path)):
        km = kp.KoopmanModel.estimate(form, 0.2)
        assert km.lag_ps == 0.2
        np.testing.assert_allclose(km.koopman_matrix, ref.koopman_matrix, rtol=1e-10)
    # A single contiguous trajectory is not the concatenation of three.
    one = kp.KoopmanModel.estimate(flat, 0.2, 0.1)
    assert one.n_samples == 3 * 2000 - 2 and ref.n_samples == 3 * (2000 - 2)
    with pytest.raises(ValueError, match="frame_interval_ps"):
        kp.KoopmanModel.estimate(flat, 0.2)
    with pytest.raises(ValueError, match="frame_interval_ps"):
        kp.KoopmanModel.estimate(path, 0.2, 0.5)
    with pytest.raises(ValueError, match="traj/frame"):
        kp.KoopmanModel.estimate(list(p), 0.2, 0.1, traj=traj)
    with pytest.raises(InputError, match="whole multiple"):
        kp.KoopmanModel.estimate(flat, 0.25, 0.1)  # not a whole number of frames


# --------------------------------------------------------------------------------------
# CK test


def test_ck_test_passes_on_a_markov_chain(chain) -> None:
    p = soft(chain, 3, noise=0.3, seed=3)
    km = kp.KoopmanModel.estimate(list(p), 2.0, 1.0, ci={"method": "chunks", "n": 4})
    ck = km.ck_test(list(p), steps=4)
    assert ck.predicted.shape == ck.estimated.shape == (4, 3, 3)
    assert ck.max_deviation < 0.03
    np.testing.assert_allclose(ck.estimated[0], km.koopman_matrix, atol=1e-12)
    np.testing.assert_allclose(ck.predicted[1], km.koopman_matrix @ km.koopman_matrix)
    # Row sums: softmax features make every K(tau)^n and K(n tau) stochastic.
    np.testing.assert_allclose(ck.estimated.sum(axis=-1), 1.0, atol=1e-10)
    assert ck.group_predicted.shape == ck.group_estimated.shape == (4, 4, 3, 3)
    frame = ck.to_frame()
    assert list(frame.columns) == CONTRACT["ck"]
    assert frame["predicted_ci_low"].notna().all() and frame["estimated_ci_high"].notna().all()


def test_ck_test_fails_on_a_lumped_chain() -> None:
    # Hidden 0 <-> 1 fast, 1 <-> 2 slow; lumping {1, 2} leaves memory in the lumped state.
    hidden = np.array([[0.9, 0.1, 0.0], [0.3, 0.69, 0.01], [0.0, 0.01, 0.99]])
    states = np.array([0, 1, 1])[simulate(hidden, 10, 10_000, seed=4)]
    p = soft(states, 2, noise=0.3, seed=5)
    km = kp.KoopmanModel.estimate(list(p), 1.0, 1.0, ci={"method": "chunks", "n": 5})
    ck = km.ck_test(list(p), steps=5)
    assert ck.max_deviation > 0.08
    frame = ck.to_frame().query("step == 5")
    outside = (frame["predicted"] < frame["estimated_ci_low"]) | (
        frame["predicted"] > frame["estimated_ci_high"]
    )
    assert outside.all()


# --------------------------------------------------------------------------------------
# Implied timescales


def test_implied_timescales_forms(chain) -> None:
    p = list(soft(chain, 3, noise=0.3, seed=6))
    lags = [1.0, 3.0, 2.0]
    its = kp.implied_timescales(p, frame_interval_ps=1.0, lags_ps=lags)
    np.testing.assert_array_equal(its.lags_ps, [1.0, 2.0, 3.0])
    assert its.timescales_ps.shape == its.ci_low_ps.shape == (3, 2)
    # A Markov chain seen through a fixed noisy map: timescales flat in the lag.
    np.testing.assert_allclose(its.timescales_ps, true_timescales(T3)[None].repeat(3, 0),
                               rtol=0.1)  # fmt: skip
    assert np.isnan(its.ci_low_ps).all()  # no ci: NaN CIs
    # {lag: probs} with the same probs at every lag gives the same numbers.
    by_lag = kp.implied_timescales({lag: p for lag in lags}, frame_interval_ps=1.0)
    np.testing.assert_array_equal(by_lag.timescales_ps, its.timescales_ps)
    with_ci = kp.implied_timescales(p, 1.0, lags, ci={"method": "trajectories"})
    assert np.all(with_ci.ci_low_ps < with_ci.timescales_ps)
    assert np.all(with_ci.timescales_ps < with_ci.ci_high_ps)
    frame = with_ci.to_frame("gdynet")
    assert list(frame.columns) == CONTRACT["timescales"]
    assert len(frame) == 3 * 2 and (frame["model"] == "gdynet").all()
    assert (frame["n_states"] == 3).all()
    with pytest.raises(ValueError, match="lags_ps"):
        kp.implied_timescales(p, 1.0)


def test_model_frames_follow_the_contract(chain) -> None:
    p = list(np.eye(3)[chain[:, :2000]])
    bare = kp.KoopmanModel.estimate(p, 1.0, 1.0)
    for frame, name in ((bare.eigen_frame(), "eigen"), (bare.populations_frame(), "populations")):
        assert list(frame.columns) == CONTRACT[name]
        assert frame["ci_low"].isna().all() and frame["ci_high"].isna().all()
    eig = bare.eigen_frame()
    np.testing.assert_allclose(
        eig.query("process == 0").sort_values("state")["component"], bare.stationary_distribution
    )
    # |lambda_0| = 1 up to rounding: infinite or astronomically long.
    assert (eig.query("process == 0")["timescale_ps"] > 1e9).all()
    km = kp.KoopmanModel.estimate(p, 1.0, 1.0, ci={"method": "chunks", "n": 4})
    pop = km.populations_frame("m")
    assert (pop["ci_low"] < pop["population"]).all() and (pop["population"] < pop["ci_high"]).all()
    assert "KoopmanModel(lag=1ps, n_states=3" in repr(km)


# --------------------------------------------------------------------------------------
# One code path: the API's frames are the stage's CSVs


def test_api_frames_equal_stage_outputs(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cli, "STAGES", ("koopman",))
    states = simulate(T3, 4, 2000, seed=7)
    lags, dt = [0.5, 1.0, 2.0], 0.1
    paths = {}
    for i, lag in enumerate(lags):
        p = soft(states, 3, 0.2, seed=10 + i).reshape(-1, 1, 3)
        path = tmp_path / f"probs_{lag}.npz"
        perm = np.random.default_rng(i).permutation(len(p))
        np.savez(path, probs=p[perm].astype(np.float32),
                 traj=np.repeat(np.arange(4), 2000)[perm], frame=np.tile(np.arange(2000), 4)[perm],
                 sources=np.array(list("abcd")), lag_ps=np.float64(lag),
                 frame_interval_ps=np.float64(dt))  # fmt: skip
        paths[lag] = path
    ci = {"method": "chunks", "n": 3, "seed": 0}
    settings = {"tau_star_ps": 1.0, "ck_steps": 3, "ci": ci}
    out = tmp_path / "gdynet-s3"
    argv = ["koopman", str(out), "--probs", *map(str, paths.values()), "--model", "gdynet",
            "--settings", json.dumps(settings)]  # fmt: skip
    assert cli.main(argv) == 0

    def csv(name: str) -> pd.DataFrame:
        return pd.read_csv(out / f"{name}.csv")

    its = kp.implied_timescales(paths, ci=ci)
    pd.testing.assert_frame_equal(its.to_frame("gdynet"), csv("timescales"))
    km = kp.KoopmanModel.estimate(paths[1.0], 1.0, ci=ci)
    pd.testing.assert_frame_equal(km.eigen_frame("gdynet"), csv("eigen"))
    pd.testing.assert_frame_equal(km.populations_frame("gdynet"), csv("populations"))
    ck = km.ck_test(paths[1.0], steps=3)
    pd.testing.assert_frame_equal(ck.to_frame("gdynet"), csv("ck"))
    kin = csv("kinetics")
    assert list(kin.columns) == CONTRACT["kinetics"]
    np.testing.assert_allclose(kin["value_ps"], km.kinetics_frame()["value_ps"], rtol=1e-12)
    reps = csv("replicates")
    assert list(reps.columns) == CONTRACT["replicates"]
    k = np.zeros_like(km.group_matrices)
    k[reps["replicate"], reps["from_state"], reps["to_state"]] = reps["value"]
    np.testing.assert_allclose(k, km.group_matrices, rtol=1e-12)  # the 3 chunks' K(tau*)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ck_max_abs_deviation"] == ck.max_deviation
    assert summary["state_order"] == km.state_order.tolist()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{t}.csv" for t in CONTRACT] + ["summary.json"]
    )


# --------------------------------------------------------------------------------------
# Plots


def test_plots_draw(chain) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = list(soft(chain[:, :2000], 3, noise=0.3, seed=8))
    ci = {"method": "chunks", "n": 3}
    try:
        its = kp.implied_timescales(p, 1.0, [1.0, 2.0, 4.0], ci=ci)
        ax = its.plot(tau_star_ps=2.0)
        assert len(ax.get_lines()) >= 2 and ax.get_yscale() == "log"
        km = kp.KoopmanModel.estimate(p, 2.0, 1.0, ci=ci)
        axes = km.ck_test(p, steps=3).plot()
        assert len(axes) == 9
        fig, host = plt.subplots()
        axes = km.plot(ax=host)
        assert len(axes) == 2 and all(a.figure is fig for a in axes)
        assert host not in fig.axes
    finally:
        plt.close("all")


def test_drift_of_the_slowest_timescale() -> None:
    # A Markov chain: the slowest timescale is flat in the lag, so its change from the first
    # to the last lag is ~0 and its interval covers 0. The lumped chain of the CK test
    # (memory in the lumped state): the timescale rises with the lag, beyond its interval.
    lags = [1.0, 2.0, 5.0, 10.0]
    ci = {"method": "bootstrap", "n": 100, "seed": 3}
    flat = kp.implied_timescales(list(np.eye(3)[simulate(T3, 8, 5000, seed=0)]), 1.0, lags,
                                 ci=ci)  # fmt: skip
    d = flat.drift(0)
    t = flat.timescales_ps[:, 0]
    assert (d["from_ps"], d["to_ps"]) == (1.0, 10.0)
    assert d["change_ps"] == pytest.approx(t[-1] - t[0], rel=1e-12)
    assert d["ci_low_ps"] < 0 < d["ci_high_ps"] and abs(d["relative_change"]) < 0.1
    # the interval is the engine's percentile interval of the replicate differences
    rep = flat.replicate_timescales
    diff = rep[-1, :, 0] - rep[0, :, 0]
    np.testing.assert_allclose([d["ci_low_ps"], d["ci_high_ps"]],
                               np.percentile(diff, [2.5, 97.5]), rtol=1e-9)  # fmt: skip
    hidden = np.array([[0.9, 0.1, 0.0], [0.3, 0.69, 0.01], [0.0, 0.01, 0.99]])
    lumped = np.eye(2)[np.array([0, 1, 1])[simulate(hidden, 10, 10_000, seed=4)]]
    rising = kp.implied_timescales(list(lumped), 1.0, lags, ci=ci).drift(0)
    assert rising["ci_low_ps"] > 0 and rising["relative_change"] > 0.1
    assert flat.drift(len(lags) - 1) is None  # no later lag to move to
