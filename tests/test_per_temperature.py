"""Temperature series beyond pooled training (issue 25): per-temperature models' drift from
the pooled states (train.per_temperature), conduction per temperature, their config checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _markov_chains import simulate
from test_analysis_api import FI, _api_inputs, _csv_text, _diffusing_pieces, _write_case

from gdyn import analysis as an
from gdyn import config as gc
from gdyn.cli import main
from gdyn.errors import InputError
from gdyn.koopman.drift import DRIFT_COLUMNS, membership_drift, per_temperature_drift
from gdyn.koopman.probs import Probs
from gdyn.temperatures import series_problems

# ----------------------------------------------------------------------------- drift


def _onehot_chain(p01: float, p10: float, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.array([[1 - p01, p01], [p10, 1 - p10]])
    return np.eye(2)[simulate(t, n, 1, rng)]  # (n, 1 target set, 2)


def test_membership_drift_known_answers() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet([0.3, 0.3, 0.3], size=(400, 2))  # soft memberships, 3 states
    same = membership_drift(p, p)
    assert same.order.tolist() == [0, 1, 2]
    assert same.argmax_agreement == 1.0 and same.membership_overlap == pytest.approx(1.0)
    perm = membership_drift(p, p[..., [2, 0, 1]])  # the other model numbers states 2, 0, 1
    assert perm.order.tolist() == [1, 2, 0]
    assert perm.argmax_agreement == 1.0 and perm.membership_overlap == pytest.approx(1.0)
    # one-hot pooled states; the other model moves eps of each row's mass to the next state
    # and assigns a known fraction f of rows to another state outright, outputs swapped:
    # overlap = (1 - f)(1 - eps), argmax agreement = 1 - f
    hard = np.eye(3)[rng.integers(0, 3, size=900)]
    eps, flip = 0.2, np.arange(900) % 10 == 0  # f = 0.1
    other = (1 - eps) * hard + eps * np.roll(hard, 1, axis=1)
    other[flip] = np.roll(hard[flip], 2, axis=1)
    got = membership_drift(hard, other[:, [1, 0, 2]])
    assert got.order.tolist() == [1, 0, 2] and got.n_rows == 900
    assert got.argmax_agreement == pytest.approx(0.9, abs=1e-12)
    assert got.membership_overlap == pytest.approx(0.9 * 0.8, abs=1e-12)
    # the same permutation and agreement as the workflow's alignment of lags and seeds
    from gdyn.states import hard_agreement, hungarian_order, overlap_matrix

    order = hungarian_order(overlap_matrix(hard, other[:, [1, 0, 2]]))
    assert order.tolist() == got.order.tolist()
    assert hard_agreement(hard, other[:, [1, 0, 2]], order) == got.argmax_agreement
    with pytest.raises(InputError, match="same rows"):
        membership_drift(hard, other[:500])


def _probs(blocks: dict[str, np.ndarray], lag_ps: float = 2.0) -> Probs:
    names = list(blocks)
    return Probs("<probs>", np.concatenate([blocks[n] for n in names]),
                 np.concatenate([np.full(len(blocks[n]), i) for i, n in enumerate(names)]),
                 np.concatenate([np.arange(len(blocks[n])) for n in names]),
                 np.array([f"results/split/x/test/{n}.npz" for n in names]), lag_ps, 1.0)


def _slowest_by_hand(p: np.ndarray, lag: int) -> float:
    """Independent: K = C00^-1 C0t of one trajectory, t_2 = -lag / ln lambda_2."""
    p = p.reshape(len(p), -1)
    k = np.linalg.solve(p[:-lag].T @ p[:-lag], p[:-lag].T @ p[lag:])
    lam = np.sort(np.linalg.eigvals(k).real)[::-1]
    return -lag / np.log(lam[1])


def test_per_temperature_drift_on_a_synthetic_series() -> None:
    """Two temperatures, one trajectory each. At 40 K the per-temperature model finds the
    pooled states (overlap 1); at 80 K it numbers them the other way round and blurs each
    row by eps: overlap 1 - eps, argmax agreement 1, and the same slowest timescale (an
    invertible mixing of the memberships leaves K's eigenvalues unchanged)."""
    rng = np.random.default_rng(1)
    cold = _onehot_chain(0.02, 0.05, 3000, rng)
    hot = _onehot_chain(0.08, 0.15, 3000, rng)
    temps = {"a": 40.0, "b": 80.0}
    pooled = _probs({"a": cold, "b": hot})
    eps = 0.25
    blurred = ((1 - eps) * hot + eps * hot[..., ::-1])[..., ::-1]
    table = per_temperature_drift(pooled, [_probs({"b": blurred}), _probs({"a": cold})], temps,
                                  2.0)  # fmt: skip
    assert list(table.columns) == DRIFT_COLUMNS
    assert table.temperature_K.tolist() == [40.0, 80.0]  # ascending, whatever the input order
    assert table.state_order.tolist() == ["0 1", "1 0"]
    assert table.n_rows.tolist() == [3000, 3000]
    np.testing.assert_allclose(table.argmax_agreement, [1.0, 1.0])
    np.testing.assert_allclose(table.membership_overlap, [1.0, 1 - eps], atol=1e-12)
    for row, p in zip(table.itertuples(), (cold, hot), strict=True):
        want = _slowest_by_hand(p, 2)
        assert row.pooled_timescale_ps == pytest.approx(want, rel=1e-9)
        assert row.per_temperature_timescale_ps == pytest.approx(want, rel=1e-9)
    # the engine's bootstrap (the default ci): the same resamples give both models' K the
    # same eigenvalues, so the same interval, and it brackets the estimate
    for side in ("ci_low_ps", "ci_high_ps"):
        np.testing.assert_allclose(table[f"per_temperature_{side}"], table[f"pooled_{side}"],
                                   rtol=1e-9)  # fmt: skip
    assert (table.pooled_ci_low_ps < table.pooled_timescale_ps).all()
    assert (table.pooled_timescale_ps < table.pooled_ci_high_ps).all()
    with pytest.raises(InputError, match="one temperature"):
        per_temperature_drift(pooled, [pooled], temps, 2.0)


def test_per_temperature_cli_writes_the_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    blocks = {"a": _onehot_chain(0.05, 0.05, 800, rng),
              "b": _onehot_chain(0.1, 0.1, 800, rng)}  # fmt: skip

    def save(path: Path, names: list[str]) -> str:
        p = _probs({n: blocks[n] for n in names})
        np.savez(path, probs=p.probs.astype(np.float32), traj=p.traj, frame=p.frame,
                 sources=p.sources, lag_ps=np.float64(2.0), frame_interval_ps=np.float64(1.0))
        return str(path)

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"analysis_lag_ps": 2.0, "lags_ps": [2.0],
                                   "probs_test": save(tmp_path / "probs_test.npz", ["a", "b"])}))
    out = tmp_path / "per_temperature.csv"
    args = ["per-temperature", str(out), "--summary", str(summary), "--per-temperature",
            save(tmp_path / "pa.npz", ["a"]), save(tmp_path / "pb.npz", ["b"]),
            "--temperatures", json.dumps({"a": 300, "b": 400}),
            "--settings", json.dumps({"n_states": 2, "ci": {"method": "chunks", "n": 4}})]
    assert main(args) == 0
    table = pd.read_csv(out)
    assert table.temperature_K.tolist() == [300.0, 400.0]
    np.testing.assert_allclose(table.membership_overlap, 1.0)
    np.testing.assert_allclose(table.per_temperature_timescale_ps, table.pooled_timescale_ps)
    assert (table.pooled_ci_low_ps <= table.pooled_timescale_ps).all()
    assert (table.pooled_timescale_ps <= table.pooled_ci_high_ps).all()


# ------------------------------------------------------------------------- conduction


def _three_runs(tmp: Path) -> list[str]:
    """run0, run1 (to be at 300 K) and run2 (450 K) = run0's data: split pieces + probs."""
    pieces, probs = _diffusing_pieces()
    return _write_case(tmp, [*pieces, pieces[0]], [*probs, probs[0]], 4, [0, 1])


TEMPS = {"run0": 300.0, "run1": 300.0, "run2": 450.0}
CI = {"method": "chunks", "n": 2}


def test_conduction_per_temperature_equals_each_temperature_alone(tmp_path: Path) -> None:
    trajs, p = _api_inputs(_three_runs(tmp_path), [0, 1])
    kw = {"msd_window": 0.5, "msd_points": 5, "ci": CI}
    diffusion, cond = an.conduction(trajs, p, 4 * FI, TEMPS, **kw)
    assert diffusion.columns[0] == cond.columns[0] == "temperature_K"
    assert cond.temperature_K.tolist() == [300.0] * 4 + [450.0] * 4
    # the reference: the single-temperature computation on each temperature's data alone
    for t, idx in ((300.0, [0, 1]), (450.0, [2])):
        d_ref, c_ref = an.conduction([trajs[i] for i in idx], [p[i] for i in idx], 4 * FI, t,
                                     **kw)  # fmt: skip
        for got, ref in ((diffusion, d_ref), (cond, c_ref)):
            block = got[got.temperature_K == t].drop(columns="temperature_K")
            pd.testing.assert_frame_equal(block.reset_index(drop=True), ref)
    # run2 is run0's data: at 450 K its Nernst-Einstein sigma is run0's at 300 K x 300 / 450
    _, c0 = an.conduction([trajs[0]], [p[0]], 4 * FI, 300.0, **kw)
    np.testing.assert_allclose(cond[cond.temperature_K == 450.0].sigma_S_per_m,
                               c0.sigma_S_per_m * 300.0 / 450.0, rtol=1e-12)
    with pytest.raises(InputError, match="run2"):
        an.conduction(trajs, p, 4 * FI, {"run0": 300.0, "run1": 300.0}, **kw)


def test_conduction_cli_per_temperature(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _three_runs(tmp_path)
    dif, con = tmp_path / "diffusion.csv", tmp_path / "conduction.csv"
    settings = {"msd_window": 0.5, "msd_points": 5}
    base = ["conduction", str(dif), str(con), *args, "--koopman-settings", json.dumps({"ci": CI})]
    assert main([*base, "--settings", json.dumps(settings),
                 "--temperatures", json.dumps(TEMPS)]) == 0  # fmt: skip
    trajs, p = _api_inputs(args, [0, 1])
    diffusion, cond = an.conduction(trajs, p, 4 * FI, TEMPS, ci=CI, **settings)
    pair = ("from_state", "to_state")
    assert _csv_text(an.flag_states(diffusion, [], pair)) == dif.read_text()
    assert _csv_text(an.flag_states(cond, [], pair)) == con.read_text()
    both = {**settings, "temperature_K": 300.0}
    assert main([*base, "--settings", json.dumps(both), "--temperatures", json.dumps(TEMPS)]) == 2
    assert "conduction/temperature_K': expected absent" in capsys.readouterr().err
    assert main([*base, "--settings", json.dumps(settings)]) == 2
    assert "conduction/temperature_K': expected the temperature" in capsys.readouterr().err


# ----------------------------------------------------------------------------- config


def _toy(per_temperature: bool | None = None, **sim) -> dict:
    train = {"lags_ps": [1.0], "models": {"gdynet": [2]}}
    if per_temperature is not None:
        train["per_temperature"] = per_temperature
    return {
        "source": "simulate", "frame_interval_ps": 0.1,
        "simulate": {"n_li": 2, "duration_ps": 100, **sim},
        "split": {p: [{"trajectories": "all", "start": a, "stop": b}]
                  for p, a, b in (("train", 0.0, 0.5), ("val", 0.5, 0.7), ("test", 0.7, 1.0))},
        "train": train, "koopman": {"n_states": 2},
    }  # fmt: skip


def test_per_temperature_needs_a_series() -> None:
    assert series_problems("t", _toy(True, temperatures_K=[32, 64])) == []
    assert series_problems("t", _toy(False, temperature_K=64)) == []
    assert series_problems("t", _toy(True, temperature_K=64)) == [
        "systems/t/train/per_temperature: expected false for a system that is not a "
        "temperature series (no simulate/temperatures_K and no files/*/temperature_K), got true"
    ]
    with pytest.raises(InputError, match=r"^systems/t/train/per_temperature: expected false"):
        gc.check({"systems": {"t": _toy(True, temperature_K=64)}})
    gc.check({"systems": {"t": _toy(True, temperatures_K=[32, 64])}})  # fine


def test_per_temperature_needs_pieces_at_every_temperature() -> None:
    s = _toy(True, temperatures_K=[32, 64])  # li000, li001 at 32 K; li002, li003 at 64 K
    s["split"]["val"] = [{"trajectories": ["li000", "li002", "li003"], "start": 0.5,
                          "stop": 0.7}]  # fmt: skip
    gc.check({"systems": {"t": s}})
    s["split"]["val"][0]["trajectories"] = ["li002", "li003"]
    with pytest.raises(InputError, match=r"train/per_temperature: expected val pieces at every "
                       r"temperature .* got none at 32 K in split/val"):  # fmt: skip
        gc.check({"systems": {"t": s}})


def test_conduction_temperature_follows_the_series() -> None:
    s = _toy(temperatures_K=[32, 64])
    s["conduction"] = {}
    assert series_problems("t", s) == []  # per temperature: no conduction/temperature_K
    s["conduction"] = {"temperature_K": 64}
    assert series_problems("t", s) == [
        "systems/t/conduction/temperature_K: expected absent for a temperature series (the "
        "conduction is computed per temperature, at each trajectory's temperature), got 64"
    ]
    single = _toy(temperature_K=64)
    single["conduction"] = {"msd_points": 5}
    assert series_problems("t", single) == [
        "systems/t/conduction/temperature_K: expected the temperature (K) of the "
        "Nernst-Einstein relation, got none"
    ]
    series = _toy(temperatures_K=[32, 64])
    series["figures"] = ["fig5"]
    assert series_problems("t", series) == [
        "systems/t/figures: expected no fig5 for a temperature series (its conduction.csv "
        "holds one block of rows per temperature; Fig. 5 draws one temperature), got fig5"
    ]


def test_report_rows_of_the_drift(tmp_path: Path) -> None:
    from gdyn.compare.arrhenius import arrhenius_inputs, arrhenius_section

    s = _toy(True, temperatures_K=[32, 64])
    inputs = arrhenius_inputs({"t": s})
    assert inputs["t:per_temperature.csv"] == "results/koopman/t/gdynet-s2/per_temperature.csv"
    assert "t:per_temperature.csv" not in arrhenius_inputs({"t": _toy(temperatures_K=[32, 64])})
    (tmp_path / "arrhenius.json").write_text(json.dumps(
        {"temperatures_K": [32.0, 64.0], "lag_ps": 1.0, "transitions": []}))
    row = dict.fromkeys(DRIFT_COLUMNS, 1.0) | {"temperature_K": 32.0, "state_order": "1 0",
                                               "argmax_agreement": 0.9,
                                               "membership_overlap": 0.75}  # fmt: skip
    pd.DataFrame([row]).to_csv(tmp_path / "pt.csv", index=False)
    records, md = arrhenius_section({"t": s}, {"t:arrhenius.json": str(tmp_path / "arrhenius.json"),
                                               "t:per_temperature.csv": str(tmp_path / "pt.csv")})
    assert "| 32 | 0.900 | 0.750 | 1 [1, 1] | 1 [1, 1] |" in md
    assert records == [{"role": "per_temperature", "system": "t", "unit": "",
                        "quantity": "membership overlap at 32 K", "run_value": 0.75,
                        "argmax_agreement": 0.9}]  # fmt: skip
