"""A run with no valid result fails (issue 26), and the selection's fallback is honest.

The Koopman stage and ``gdyn select`` run on probs files of a known two-state Markov chain
(noisy soft assignments); a test window shorter than 2 x lag leaves the CK test nothing
beyond step 1, where the prediction equals the estimate by construction.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gdyn.cli import main
from gdyn.errors import InputError
from gdyn.koopman.analysis import run_koopman
from gdyn.koopman.model_selection import (
    NoResult,
    candidate_table,
    no_result_reason,
    run_select,
    run_select_koopman,
    select,
)

T2 = np.array([[0.95, 0.05], [0.04, 0.96]])
KOOPMAN = {"ck_steps": 3, "ci": {"method": "chunks", "n": 2}}


def chain_probs(n_frames: int, n_traj: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Probs-file arrays of a 2-state chain seen through 10 % noise, one target per traj."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_traj):
        s = np.empty(n_frames, dtype=np.int64)
        s[0] = 0
        for i in range(1, n_frames):
            s[i] = rng.choice(2, p=T2[s[i - 1]])
        rows.append(0.9 * np.eye(2)[s] + 0.1 * rng.dirichlet(np.ones(2), size=n_frames))
    probs = np.concatenate(rows)[:, None].astype(np.float32)
    return {"probs": probs, "traj": np.repeat(np.arange(n_traj), n_frames),
            "frame": np.tile(np.arange(n_frames), n_traj),
            "sources": np.array([f"t{i}" for i in range(n_traj)])}


def write_probs(path: Path, arrays: dict[str, np.ndarray], lag: float) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays, lag_ps=np.float64(lag), frame_interval_ps=np.float64(1.0))
    return str(path)


def write_config(path: Path, n: int, lag: float, kept_dead: bool = False) -> str:
    path.write_text(json.dumps({"model": "gdynet", "n_states": n, "lag_ps": lag, "seed": 0,
                                "best_val_vamp2": 1.5, "test_vamp2": 1.4,
                                "kept_dead": kept_dead}))
    return str(path)


def test_koopman_fails_when_no_lag_has_an_evaluable_ck(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    # 25 frames per trajectory: at lags 15 and 20 frames no (t, t + 2 lag) pair exists.
    arrays = chain_probs(25, 200)
    files = [write_probs(tmp_path / f"m{lag}" / "probs_test.npz", arrays, lag)
             for lag in (15, 20)]
    args = ["koopman", str(tmp_path / "k" / "gdynet-s2"), "--probs", *files,
            "--model", "gdynet", "--settings", json.dumps(KOOPMAN)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no valid result" in err and "not evaluable beyond step 1" in err
    assert "too short" in err and "no_valid_result: keep" in err
    # Asked to keep: the flagged result stays.
    keep = dict(KOOPMAN, no_valid_result="keep")
    assert main([*args[:-1], json.dumps(keep)]) == 0
    summary = json.loads((tmp_path / "k" / "gdynet-s2" / "summary.json").read_text())
    assert [e["ck_steps_tested"] for e in summary["ck_by_lag"]] == [1, 1]
    assert not summary["ck_pass"]
    # The same data at lags whose 2 x lag fits are fine (and the CK test is evaluable).
    short = [write_probs(tmp_path / f"n{lag}" / "probs_test.npz", arrays, lag)
             for lag in (1, 2)]
    assert main(["koopman", str(tmp_path / "ok" / "gdynet-s2"), "--probs", *short,
                 "--model", "gdynet", "--settings", json.dumps(KOOPMAN)]) == 0
    ok = json.loads((tmp_path / "ok" / "gdynet-s2" / "summary.json").read_text())
    assert [e["ck_steps_tested"] for e in ok["ck_by_lag"]] == [3, 3]


def _candidates(tmp_path: Path, n_frames: int, lags: tuple[int, ...], kept_dead: bool
                ) -> tuple[list[str], list[str], list[str]]:
    """Koopman summaries and configs of one 2-state candidate at ``lags``."""
    arrays = chain_probs(n_frames, 200 if n_frames < 100 else 4, seed=1)
    files = [write_probs(tmp_path / f"gdynet-s2-lag{lag}ps" / "probs_test.npz", arrays, lag)
             for lag in lags]
    configs = [write_config(Path(f).parent / "config.json", 2, float(lag), kept_dead)
               for f, lag in zip(files, lags, strict=True)]
    out = tmp_path / "koopman" / "gdynet-s2"
    run_koopman(out, files, dict(KOOPMAN, no_valid_result="keep"), "gdynet", 2)
    return [str(out / "summary.json")], configs, files


def test_select_fails_when_no_ck_is_evaluable(tmp_path: Path) -> None:
    summaries, configs, _ = _candidates(tmp_path, 25, (15, 20), kept_dead=False)
    out = tmp_path / "selection.json", tmp_path / "selection.csv"
    with pytest.raises(NoResult, match="no valid result: no candidate's CK test is "
                                       "evaluable beyond step 1"):
        run_select(*out, summaries, configs, KOOPMAN)
    assert not out[0].exists()
    sel = run_select(*out, summaries, configs, dict(KOOPMAN, no_valid_result="keep"))
    assert not sel["passed"]
    table = pd.read_csv(out[1])
    assert not table["ck_evaluable"].any() and table["ck_max_abs_deviation"].isna().all()
    with pytest.raises(InputError, match="no_valid_result"):
        run_select(*out, summaries, configs, dict(KOOPMAN, no_valid_result="ignore"))


def _table(rows: list[tuple]) -> pd.DataFrame:
    """(n, lag, ck_pass, deviation, ck_steps_tested, kept_dead) rows -> candidate_table."""
    summaries, configs = {}, {}
    for n in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == n]
        summaries[f"s{n}/summary.json"] = {
            "model": "gdynet", "n_states": n, "lags_ps": [r[1] for r in mine],
            "tau_star_ps": mine[0][1], "tau_star_auto_ps": None, "its_converged": False,
            "collapsed": False,
            "ck_by_lag": [{"lag_ps": r[1], "ck_pass": r[2], "ck_max_abs_deviation": r[3],
                           "ck_steps_tested": r[4], "n_surviving_states": n} for r in mine]}
        for r in mine:
            configs[f"s{n}-{r[1]}/config.json"] = {"n_states": n, "lag_ps": r[1], "seed": 0,
                                                   "best_val_vamp2": 1.2, "kept_dead": r[5]}
    return candidate_table(summaries, configs)


def test_fallback_never_takes_a_lag_whose_ck_was_not_evaluable() -> None:
    # The case: every seed dead (kept), the 1 ps model's CK passed, the 2 ps one's
    # deviation is 0 only because no step beyond 1 could be evaluated.
    t = _table([(2, 1.0, True, 0.03, 5, True), (2, 2.0, False, 0.0, 1, True)])
    assert no_result_reason(t) is None  # kept-dead models are what all_seeds_dead: keep asks
    sel = select(t)
    assert (sel.n_states, sel.tau_star_ps, sel.passed) == (2, 1.0, False)
    assert "a passing CK test (0.03)" in sel.reason
    assert t["ck_evaluable"].tolist() == [True, False]
    # Among evaluable failing lags the smallest deviation still wins.
    t = _table([(2, 1.0, False, 0.2, 5, False), (2, 2.0, False, 0.1, 5, False),
                (2, 5.0, False, 0.0, 1, False)])
    sel = select(t)
    assert sel.tau_star_ps == 2.0 and "smallest CK deviation (0.1)" in sel.reason
    # Every candidate collapsed (none kept dead): nothing to select.
    t = _table([(2, 1.0, False, 0.2, 5, False)])
    t["collapsed"] = True
    assert "collapsed" in no_result_reason(t)


def test_select_koopman_credits_the_selection_not_the_config(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    summaries, configs, files = _candidates(tmp_path, 400, (1, 2), kept_dead=False)
    sel_path = tmp_path / "selection.json"
    run_select(sel_path, tmp_path / "selection.csv", summaries, configs, KOOPMAN)
    sel = json.loads(sel_path.read_text())
    assert sel["tau_star_source"] == "selection"
    caplog.set_level(logging.INFO, logger="gdyn")
    summary = run_select_koopman(tmp_path / "gdynet-sauto", sel_path, files, KOOPMAN)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tau* = ")]
    assert said and all("(selection)" in m and "(config)" not in m for m in said), said
    assert "set in config" not in summary["tau_star_reason"]
    assert summary["tau_star_source"] == "selection"
