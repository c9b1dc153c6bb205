"""Koopman stage: K(tau), timescales, CK test, eigenvectors, CIs, tau* (gdyn.koopman).

Synthetic Markov chains with known transition matrices stand in for trained models; the
estimators are checked against analytic values and against deeptime on the same inputs.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import T3, simulate, soft, true_timescales
from hypothesis import given, settings
from hypothesis import strategies as st

from gdyn import cli
from gdyn import koopman as kp
from gdyn.errors import InputError
from gdyn.koopman.ck import CKTest
from gdyn.koopman.eigen import ck_deviation, permute_states, timescales_from_eigenvalues
from gdyn.koopman.estimate import estimate_koopman
from gdyn.koopman.model import KoopmanModel
from gdyn.koopman.probs import Probs
from gdyn.koopman.tau_star import select_tau_star
from gdyn.koopman.timescales import analyse_lag
from gdyn.koopman.uncertainty import ci_groups, t_interval


def as_probs(p: np.ndarray, lag_ps: float = 1.0, dt: float = 1.0) -> Probs:
    """(n_traj, n_steps, n) or (n_traj, n_steps, n_sets, n) -> a Probs with contiguous frames."""
    if p.ndim == 3:
        p = p[:, :, None, :]
    n_traj, n_steps = p.shape[:2]
    return Probs(
        "synthetic",
        p.reshape(n_traj * n_steps, *p.shape[2:]),
        np.repeat(np.arange(n_traj), n_steps),
        np.tile(np.arange(n_steps), n_traj),
        np.array([f"t{i}" for i in range(n_traj)]),
        float(lag_ps),
        float(dt),
    )


# --------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------


def tau_star_fit(data: Probs, groups: list, ck_steps: int) -> tuple[KoopmanModel, CKTest]:
    """K(tau*) on ``data`` with CIs over ``groups`` and its CK test, as the stage fits them."""
    km = KoopmanModel.estimate(data, data.lag_ps, ci=list(groups))
    return km, km.ck_test(data, ck_steps)

def test_pairs_never_straddle_trajectories() -> None:
    # Trajectory 0 sits in state 0, trajectory 1 in state 1: the true K is the identity.
    # Rows are shuffled; pairing by position would invent 0 -> 1 transitions.
    n = 50
    p = np.zeros((2 * n, 1, 2))
    p[:n, 0, 0] = 1.0
    p[n:, 0, 1] = 1.0
    traj = np.repeat([0, 1], n)
    frame = np.tile(np.arange(n), 2)
    perm = np.random.default_rng(0).permutation(2 * n)
    k, count = estimate_koopman(p[perm], traj[perm], frame[perm], 3)
    np.testing.assert_array_equal(k, np.eye(2))
    assert count == 2 * (n - 3)
    # What straddling would give (the naive stacked shift), to show the test can fail.
    x0, x1 = p[:-3, 0], p[3:, 0]
    naive = np.linalg.solve(x0.T @ x0, x0.T @ x1)
    assert not np.allclose(naive, np.eye(2))


def test_pairs_respect_gaps() -> None:
    traj = np.array([0, 0, 0, 0, 1, 1])
    frame = np.array([0, 1, 3, 4, 1, 2])  # frame 2 of trajectory 0 is missing
    i0, i1 = kp.lag_pairs(traj, frame, 1)
    got = sorted(zip(i0.tolist(), i1.tolist(), strict=True))
    assert got == [(0, 1), (2, 3), (4, 5)]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 30)), min_size=1, max_size=40, unique=True
    ),
    lag=st.integers(1, 6),
)
def test_pairs_match_brute_force(rows: list[tuple[int, int]], lag: int) -> None:
    traj = np.array([r[0] for r in rows])
    frame = np.array([r[1] for r in rows])
    i0, i1 = kp.lag_pairs(traj, frame, lag)
    got = set(zip(i0.tolist(), i1.tolist(), strict=True))
    want = {
        (a, b)
        for a in range(len(rows))
        for b in range(len(rows))
        if traj[a] == traj[b] and frame[b] == frame[a] + lag
    }
    assert got == want


# --------------------------------------------------------------------------------------
# Markov chain: timescales, CK, eigenvectors; deeptime agreement
# --------------------------------------------------------------------------------------


def test_markov_chain_timescales_and_ck_pass() -> None:
    states = simulate(T3, 20, 10_000, seed=0)
    data = as_probs(soft(states, 3, noise=0.3, seed=1), lag_ps=10.0)
    res = analyse_lag(data, ci_groups("chunks", 5, 0, data.traj, data.frame, 1))
    np.testing.assert_allclose(res.timescales, true_timescales(T3, 1.0), rtol=0.06)
    _km, ckt = tau_star_fit(data, [], ck_steps=5)
    assert ck_deviation(ckt.predicted, ckt.estimated) < 0.03
    # The estimate at step 1 is K itself.
    np.testing.assert_allclose(ckt.estimated[0], ckt.predicted[0], atol=1e-12)


def test_lumped_chain_fails_ck() -> None:
    # Hidden 0 <-> 1 fast, 1 <-> 2 slow; lumping {1, 2} leaves memory in the lumped state.
    hidden = np.array([[0.9, 0.1, 0.0], [0.3, 0.69, 0.01], [0.0, 0.01, 0.99]])
    states = np.array([0, 1, 1])[simulate(hidden, 20, 10_000, seed=2)]
    data = as_probs(soft(states, 2, noise=0.3, seed=3))
    groups = ci_groups("chunks", 5, 0, data.traj, data.frame, 1)
    _km, ckt = tau_star_fit(data, groups, ck_steps=5)
    assert ck_deviation(ckt.predicted, ckt.estimated) > 0.08
    # ...and the failure is far outside the 95% CI of the estimate at the last step.
    elo, ehi = t_interval(ckt.group_estimated)
    outside = (ckt.predicted[-1] < elo[-1]) | (ckt.predicted[-1] > ehi[-1])
    assert outside.all()


def test_matches_deeptime_covariance_on_soft_probs() -> None:
    from deeptime.covariance import Covariance
    from deeptime.markov.tools.analysis import timescales as dt_timescales

    states = simulate(T3, 4, 3000, seed=4)
    # Two target sets per frame: the second is an independent chain.
    states2 = simulate(T3, 4, 3000, seed=5)
    p = np.stack([soft(states, 3, 0.5, 6), soft(states2, 3, 0.5, 7)], axis=2)
    data = as_probs(p)
    lag = 7
    k, _ = estimate_koopman(data.probs, data.traj, data.frame, lag)
    series = [p[i, :, s].astype(np.float64) for i in range(p.shape[0]) for s in range(2)]
    cov = (
        Covariance(
            lagtime=lag,
            compute_c00=True,
            compute_c0t=True,
            remove_data_mean=False,
            bessels_correction=False,
        )
        .fit(series)
        .fetch_model()
    )
    k_dt = np.linalg.solve(cov.cov_00, cov.cov_0t)
    np.testing.assert_allclose(k, k_dt, rtol=1e-6, atol=1e-9)
    ours = timescales_from_eigenvalues(kp.spectrum(k).eigenvalues[1:], lag)
    np.testing.assert_allclose(np.sort(ours), np.sort(dt_timescales(k_dt, tau=lag)[1:]), rtol=1e-6)
    # A target subset (as the target_subsets CI groups use) pools only its own sets.
    k1, _ = estimate_koopman(data.probs, data.traj, data.frame, lag, sets=np.array([1]))
    cov1 = (
        Covariance(lagtime=lag, compute_c0t=True, remove_data_mean=False)
        .fit([p[i, :, 1].astype(np.float64) for i in range(p.shape[0])])
        .fetch_model()
    )
    np.testing.assert_allclose(k1, np.linalg.solve(cov1.cov_00, cov1.cov_0t), rtol=1e-6)
    assert not np.allclose(k1, k, rtol=1e-3)
    # Softmax features: K 1 = 1, so the stationary eigenvalue is exactly 1.
    np.testing.assert_allclose(k.sum(axis=1), 1.0, atol=1e-10)


def test_matches_deeptime_msm_on_hard_assignments() -> None:
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov._observables import MembershipsObservable
    from deeptime.markov.msm import MarkovStateModel, MaximumLikelihoodMSM
    from deeptime.util.validation import ck_test

    states = simulate(T3, 5, 4000, seed=8)
    onehot = np.eye(3)[states]
    data = as_probs(onehot, lag_ps=3.0, dt=0.5)  # lag 3 ps = 6 frames
    lag_frames, steps = 6, 4
    dtrajs = list(states)

    def msm_at(lag: int) -> MarkovStateModel:
        counts = TransitionCountEstimator(lag, "sliding").fit(dtrajs).fetch_model()
        return MaximumLikelihoodMSM(reversible=False).fit(counts).fetch_model()

    msm = msm_at(lag_frames)
    km, ckt = tau_star_fit(data, [], ck_steps=steps)
    order = km.state_order
    np.testing.assert_allclose(
        km.koopman_matrix, permute_states(msm.transition_matrix, order), rtol=1e-6, atol=1e-9
    )
    ours = timescales_from_eigenvalues(km.spectrum.eigenvalues[1:], 3.0)
    np.testing.assert_allclose(ours, msm.timescales() * 0.5, rtol=1e-6)
    np.testing.assert_allclose(
        km.spectrum.stationary, msm.stationary_distribution[order], rtol=1e-6
    )
    # Right eigenvectors: K r = lambda r, pi-normalised.
    for i in range(1, 3):
        r = km.spectrum.right[:, i]
        np.testing.assert_allclose(km.koopman_matrix @ r, np.real(km.spectrum.eigenvalues[i]) * r, atol=1e-9)
        assert math.isclose(float(np.sum(km.spectrum.stationary * r**2)), 1.0, rel_tol=1e-9)
    models = [msm_at(n * lag_frames) for n in range(1, steps + 1)]
    ck = ck_test(models, MembershipsObservable(msm, np.eye(3)), test_model=msm, include_lag0=False)
    # our state a = deeptime state order[a]
    pred = np.asarray(ck.predictions)[:, order][:, :, order]
    est = np.asarray(ck.estimates)[:, order][:, :, order]
    np.testing.assert_allclose(ckt.predicted, pred, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ckt.estimated, est, rtol=1e-6, atol=1e-9)


def test_states_ordered_by_population() -> None:
    # State 2 of the "network output" is the most populated; after ordering it is state 0.
    t = np.array([[0.90, 0.05, 0.05], [0.05, 0.85, 0.10], [0.01, 0.02, 0.97]])
    states = simulate(t, 5, 4000, seed=9)
    data = as_probs(np.eye(3)[states])
    km, _ckt = tau_star_fit(data, [], ck_steps=2)
    assert km.state_order[0] == 2
    assert np.all(np.diff(km.spectrum.stationary) <= 0)
    pop = km.populations_frame("m")
    assert pop["population"].is_monotonic_decreasing
    # The most stable output state (2 -> 2 = 0.97) is now row/column 0.
    assert math.isclose(km.koopman_matrix[0, 0], max(np.diag(km.koopman_matrix)), rel_tol=1e-12)


# --------------------------------------------------------------------------------------
# Confidence intervals
# --------------------------------------------------------------------------------------


def test_t_interval_known_values() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    t975_4 = 2.7764451051977987  # Student t, 0.975 quantile, 4 degrees of freedom
    half = t975_4 * math.sqrt(2.5) / math.sqrt(5)
    low, high = t_interval(x)
    assert math.isclose(float(low), 3.0 - half, rel_tol=1e-12)
    assert math.isclose(float(high), 3.0 + half, rel_tol=1e-12)
    llow, lhigh = t_interval(np.exp(x), log_scale=True)
    assert math.isclose(float(llow), math.exp(3.0 - half), rel_tol=1e-12)
    assert math.isclose(float(lhigh), math.exp(3.0 + half), rel_tol=1e-12)
    # Non-finite samples are dropped; fewer than two gives NaN.
    low, high = t_interval(np.array([[1.0, np.nan], [3.0, 2.0], [np.inf, np.nan]]))
    t975_1 = 12.706204736174705
    assert math.isclose(float(high[0]) - 2.0, t975_1 * math.sqrt(2.0) / math.sqrt(2), rel_tol=1e-9)
    assert np.isnan(low[1]) and np.isnan(high[1])


def test_chunk_ci_matches_per_chunk_reference() -> None:
    # Populations per time chunk, computed independently by deeptime on each chunk's frames
    # (each trajectory cut into 4 equal chunks, pooled across trajectories).
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    t = np.array([[0.9, 0.1], [0.3, 0.7]])
    states = simulate(t, 3, 2000, seed=10)
    data = as_probs(np.eye(2)[states])
    groups = ci_groups("chunks", 4, 0, data.traj, data.frame, 1)
    km, _ckt = tau_star_fit(data, groups, ck_steps=1)
    pops = []
    for c in range(4):
        pieces = [s[c * 500 : (c + 1) * 500] for s in states]
        counts = TransitionCountEstimator(1, "sliding").fit(pieces).fetch_model()
        msm = MaximumLikelihoodMSM(reversible=False).fit(counts).fetch_model()
        pops.append(msm.stationary_distribution[km.state_order])
    pops = np.array(pops)
    table = km.populations_frame("m")
    t975_3 = 3.182446305284263
    half = t975_3 * pops.std(axis=0, ddof=1) / 2.0
    np.testing.assert_allclose(table["ci_low"], pops.mean(axis=0) - half, rtol=1e-6)
    np.testing.assert_allclose(table["ci_high"], pops.mean(axis=0) + half, rtol=1e-6)
    # The spread is real (chunks differ) and the pooled value sits inside the interval.
    assert np.all(half > 1e-4)
    assert np.all(
        (table["ci_low"] < table["population"]) & (table["population"] < table["ci_high"])
    )


def test_ci_groups() -> None:
    traj = np.repeat([0, 1, 2, 3], 10)
    frame = np.tile(np.arange(10), 4)
    chunks = ci_groups("chunks", 5, 0, traj, frame, 1)
    assert [int(g.rows.sum()) for g in chunks] == [8] * 5
    # Each chunk holds two consecutive frames of every trajectory.
    assert sorted(frame[chunks[1].rows].tolist()) == [2] * 4 + [3] * 4
    subsets = ci_groups("target_subsets", 3, 7, traj, frame, 10)
    together = np.concatenate([g.sets for g in subsets])
    assert sorted(together.tolist()) == list(range(10))
    again = ci_groups("target_subsets", 3, 7, traj, frame, 10)
    assert all(np.array_equal(a.sets, b.sets) for a, b in zip(subsets, again, strict=True))
    trajs = ci_groups("trajectories", None, 0, traj, frame, 1)
    assert [sorted(set(traj[g.rows].tolist())) for g in trajs] == [[0], [1], [2], [3]]
    with pytest.raises(InputError, match="ci/n"):
        ci_groups("trajectories", 5, 0, traj, frame, 1)
    with pytest.raises(InputError, match="ci/n"):
        ci_groups("target_subsets", 5, 0, traj, frame, 3)


# --------------------------------------------------------------------------------------
# tau*
# --------------------------------------------------------------------------------------


def test_select_tau_star_crafted() -> None:
    lags = [1.0, 2.0, 5.0, 10.0, 20.0]
    t = np.array([[30.0, 8.0], [40.0, 9.0], [50.0, 4.0], [51.0, 6.0], [49.0, 30.0]])
    low, high = t * 0.97, t * 1.03
    choice = select_tau_star(lags, t, low, high)
    # Process 2 is below t = tau from 5 ps on and is ignored; process 1 is flat from 5 ps.
    assert choice.index == 2
    assert "rejected: 1ps" in choice.reason and "2ps" in choice.reason
    # Nothing resolved at all.
    none = select_tau_star(
        lags, np.full((5, 1), 0.5), np.full((5, 1), 0.4), np.full((5, 1), 0.6)
    )
    assert none.index is None


def test_a_process_no_later_lag_resolves_is_not_converged() -> None:
    """Issue 22 item 3: convergence needs a later lag that resolves the process and agrees.
    A flat 50 ps process on a grid up to 40 ps is converged at 1-20 ps and not at 40 ps (the
    last lag: not testable). A process resolved only at the last lag is never converged. A
    process resolved at 1-2 ps whose later timescales fall below the t = tau line (as on a
    lumped chain) is converged at 1 ps (2 ps agrees) and not testable at 2 ps; the old rule
    passed it there by default. Both the CI rule and the replicate rule say so."""
    from gdyn.koopman.tau_star import timescale_flags
    from gdyn.koopman.uncertainty import CISettings

    lags = np.array([1.0, 2.0, 5.0, 10.0, 20.0, 40.0])
    t = np.array([[50.0, 0.5, 4.0]] * 6)
    t[5, 1] = 45.0  # process 2 resolved only at 40 ps
    t[1, 2] = 4.1  # process 3 resolved at 1 and 2 ps, below the line (t < tau) from 5 ps
    lam = np.exp(-lags[:, None] / t).astype(complex)
    r = 200
    rng = np.random.default_rng(3)
    rep_t = t[:, None, :] * np.exp(rng.normal(0.0, 0.01, size=(6, r, 1)))
    reps = CISettings("bootstrap", r).replicates(np.zeros(40, int), np.arange(40), 1)
    for flags in (
        timescale_flags(lags, lam, t, t * 0.9, t * 1.1),
        timescale_flags(lags, lam, t, t * 0.9, t * 1.1, rep_t, reps.interval),
    ):
        assert flags.resolved[:, 0].all() and flags.resolved[5, 1]
        assert flags.converged[:, 0].tolist() == [True] * 5 + [False]
        assert not flags.converged[:, 1].any() and not flags.testable[5, 1]
        assert flags.resolved[:2, 2].tolist() == [True, True]
        assert flags.converged[:, 2].tolist() == [True] + [False] * 5
    # tau*: 1 ps qualifies (process 3 agrees at 2 ps); on the grid from 2 ps, 2 ps is
    # rejected (process 3 not testable) and 5 ps, where process 3 is below the line, is tau*.
    assert select_tau_star(lags, t, t * 0.9, t * 1.1, lam).index == 0
    sub = select_tau_star(lags[1:], t[1:], t[1:] * 0.9, t[1:] * 1.1, lam[1:])
    assert sub.index == 1, sub.reason  # 5 ps
    assert "2ps (process 3: t=4.1 ps not testable: no later lag resolves the process)" in (
        sub.reason
    )
    # A single resolved lag at the end of the grid: nothing to compare, no tau*.
    last = select_tau_star(lags[4:], t[4:, :1], t[4:, :1] * 0.9, t[4:, :1] * 1.1)
    assert last.index == 0
    only = select_tau_star(lags[5:], t[5:, :1], t[5:, :1] * 0.9, t[5:, :1] * 1.1)
    assert only.index is None and "no later lag resolves the process" in only.reason


def test_auto_tau_star_with_known_markovian_onset() -> None:
    # One "model" per lag, as the DAG trains them: below 5 frames the models are poor (very
    # noisy outputs, timescales biased low), from 5 frames on they resolve the chain.
    states = simulate(T3, 20, 10_000, seed=11)
    lags = [1.0, 2.0, 5.0, 10.0, 20.0]
    ts, low, high = [], [], []
    for lag in lags:
        noise = 2.0 if lag < 5 else 0.0
        data = as_probs(soft(states, 3, noise, seed=int(lag)), lag_ps=lag)
        res = analyse_lag(data, ci_groups("chunks", 5, 0, data.traj, data.frame, 1))
        ts.append(res.timescales)
        low.append(res.ci_low)
        high.append(res.ci_high)
    choice = select_tau_star(lags, np.array(ts), np.array(low), np.array(high))
    assert choice.index == 2, choice.reason
    np.testing.assert_allclose(ts[2], true_timescales(T3), rtol=0.06)


# --------------------------------------------------------------------------------------
# CLI end to end
# --------------------------------------------------------------------------------------


def write_probs(path, p: np.ndarray, lag_ps: float, dt: float, shuffle_seed: int | None = None):
    data = as_probs(p, lag_ps, dt)
    idx = np.arange(data.probs.shape[0])
    if shuffle_seed is not None:
        idx = np.random.default_rng(shuffle_seed).permutation(idx)
    np.savez(
        path,
        probs=data.probs[idx].astype(np.float32),
        traj=data.traj[idx],
        frame=data.frame[idx],
        sources=data.sources,
        lag_ps=np.float64(lag_ps),
        frame_interval_ps=np.float64(dt),
    )


CONTRACT = {
    "timescales.csv": [
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
    "ck.csv": [
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
    "eigen.csv": [
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
    "populations.csv": [
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


@pytest.fixture
def main(monkeypatch):
    """``gdyn`` with only this stage registered, so other stages' imports cannot interfere."""
    monkeypatch.setattr(cli, "STAGES", ("koopman",))
    return cli.main


def test_cli_writes_contract_outputs(tmp_path, main) -> None:
    states = simulate(T3, 6, 3000, seed=12)
    lags = [0.5, 1.0, 2.0]
    paths = []
    for i, lag in enumerate(lags):
        path = tmp_path / f"probs_{lag}.npz"
        write_probs(path, soft(states, 3, 0.2, seed=20 + i), lag, dt=0.1, shuffle_seed=i)
        paths.append(str(path))
    out = tmp_path / "koopman" / "gdynet-s3"
    cfg = {
        "model": "gdynet",
        "n_states": 3,
        "tau_star_ps": 1,
        "ck_steps": 3,
        "ci": {"method": "trajectories", "n": 3},
    }
    argv = [
        "koopman",
        str(out),
        "--probs",
        *paths,
        "--model",
        "gdynet",
        "--settings",
        json.dumps(cfg),
    ]
    assert main(argv) == 0
    for name, cols in CONTRACT.items():
        table = pd.read_csv(out / name)
        assert list(table.columns) == cols, name
        # Only declared rule outputs: the quick-look PNGs are gone (issue 18).
        assert not (out / name.replace(".csv", ".png")).exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tau_star_ps"] == 1.0 and summary["tau_star_source"] == "config"
    assert summary["tau_star_auto_ps"] in lags and summary["tau_star_reason"]
    assert summary["probs_test"] == paths[1]
    assert summary["ci_method"] == "trajectories" and summary["ci_n"] == 3
    assert summary["model"] == "gdynet" and summary["n_states"] == 3
    ts = pd.read_csv(out / "timescales.csv")
    assert len(ts) == 3 * 2 and ts["lag_ps"].unique().tolist() == lags
    at_tau = ts[ts["lag_ps"] == 1.0].sort_values("process")["timescale_ps"].to_numpy()
    np.testing.assert_allclose(summary["timescales_ps"], at_tau, rtol=1e-9)
    np.testing.assert_allclose(at_tau, true_timescales(T3) * 0.1, rtol=0.15)  # 0.1 ps frames
    assert (ts["ci_low_ps"] < ts["ci_high_ps"]).all()
    ck = pd.read_csv(out / "ck.csv")
    assert len(ck) == 3 * 3 * 3 and ck["lag_ps"].max() == 3.0
    eig = pd.read_csv(out / "eigen.csv")
    pop = pd.read_csv(out / "populations.csv")
    np.testing.assert_allclose(
        eig[eig["process"] == 0].sort_values("state")["component"], pop["population"]
    )
    np.testing.assert_allclose(pop["population"], summary["populations"])
    assert pop["population"].is_monotonic_decreasing

    # Automatic tau* when the config leaves it open.
    cfg["tau_star_ps"] = None
    argv[-1] = json.dumps(cfg)
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tau_star_source"] == "auto"
    assert summary["tau_star_ps"] == summary["tau_star_auto_ps"]


def test_cli_bad_input_exits_2(tmp_path, capsys, main) -> None:
    states = simulate(T3, 2, 200, seed=13)
    path = tmp_path / "p.npz"
    write_probs(path, soft(states, 3, 0.2, seed=0), 1.0, dt=0.1)
    out = str(tmp_path / "out")
    m = ["--model", "gdynet"]
    # two files recording one lag (each file's lag_ps is its lag)
    assert main(["koopman", out, "--probs", str(path), str(path), *m]) == 2
    assert "one file per lag, got 2 at lag 1ps" in capsys.readouterr().err
    # tau* must be a lag of the grid
    settings_json = json.dumps({"n_states": 3, "tau_star_ps": 5})
    assert main(["koopman", out, "--probs", str(path), *m, "--settings", settings_json]) == 2
    assert "tau_star_ps" in capsys.readouterr().err
    # state count disagrees with --n-states
    assert main(["koopman", out, "--probs", str(path), *m, "--n-states", "4"]) == 2
    assert "expected 4 states, got 3" in capsys.readouterr().err
    # frames 2 apart: no pairs at a 1-frame lag
    write_probs(path, soft(states, 3, 0.2, seed=0), 0.1, dt=0.1)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["frame"] = arrays["frame"] * 2
    np.savez(path, **arrays)
    assert main(["koopman", out, "--probs", str(path), *m]) == 2
    assert "got none" in capsys.readouterr().err
    arrays["probs"] = arrays["probs"][:, 0]  # (F, n_states): the set axis is missing
    np.savez(path, **arrays)
    assert main(["koopman", out, "--probs", str(path), *m]) == 2
    assert "key 'probs': expected shape" in capsys.readouterr().err
