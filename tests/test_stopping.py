"""Training to convergence: the stopping rule on curves whose answer is known, its wiring
into the training loop (epochs run, best epoch, resume), metrics.csv and the API warning."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gdyn.errors import InputError
from gdyn.train import GDyNet
from gdyn.train import loop as gl
from gdyn.train.estimators import train
from gdyn.train.settings import TrainSettings
from gdyn.train.stopping import curve, stopping_state

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_estimators import make_traj
from test_train import toy, toy_trajectory  # noqa: F401 (fixture)

GEOMETRIC = [2.0 - 0.5**e for e in range(1, 41)]  # gains 0.5^e per epoch


def test_rule_on_a_geometric_curve() -> None:
    # Gains 0.5^e: >= 1e-3 up to epoch 9; epoch 10 gains 9.8e-4 (< 1e-3), but epochs 10
    # and 11 together gain 1.46e-3 over epoch 9, so epoch 11 is the new reference; 12, 13,
    # 14 add 2.4e-4, 3.7e-4, 4.3e-4 in all: patience 3 runs out at epoch 14.
    st = stopping_state(GEOMETRIC, patience=3, min_delta=1e-3)
    assert (st.stop, st.epochs, st.reference_epoch, st.since) == (True, 14, 11, 3)
    # Cut at 13 epochs the rule has not fired: not converged.
    assert not stopping_state(GEOMETRIC[:13], 3, 1e-3).stop
    # min_delta 0: any rise is an improvement, a strictly rising curve never stops.
    assert not stopping_state(GEOMETRIC, 3, 0.0).stop


def test_epochs_before_anything_is_resolved_do_not_count() -> None:
    # The NaCl benchmark (benchmarks/liquid, 200 ps): the lag-20 ps model scored 1.0000 for
    # 4 epochs, and the rule counting them stopped it there, "converged", nothing learned.
    plateau = [1.00001, 1.00000, 1.00001, 1.00001]
    assert stopping_state(plateau, 3, 1e-3, floor=-np.inf).stop
    assert not stopping_state(plateau, 3, 1e-3).stop
    # Its lag-1 ps curve: flat at the constant-feature score for 4 epochs, then learning.
    start = [1.0000001, 1.0000351, 1.0004014, 1.0010156]
    rise = [1.0034, 1.0081, 1.0175, 1.0303, 1.0452, 1.0615, 1.0831, 1.0835, 1.0838, 1.0836]
    st = stopping_state(start + rise, 3, 1e-3)
    # Epoch 5 (1.0034) is the first above 1 + 1e-3; the reference then moves to epoch 11
    # (1.0831), and epochs 12-14 gain < 1e-3 over it.
    assert (st.stop, st.epochs, st.reference_epoch) == (True, 14, 11)
    # A seed that never leaves the floor is never called converged.
    assert not stopping_state([1.0] * 40, 3, 1e-3).stop
    assert not stopping_state([np.nan] * 5, 3, 1e-3).stop


def test_rule_on_a_peak_and_on_missing_scores() -> None:
    # Rise to epoch 3, then fall: 3 epochs without a gain stop it at epoch 6.
    st = stopping_state([1.1, 1.3, 1.35, 1.33, 1.30, 1.28, 1.4], 3, 1e-3)
    assert (st.stop, st.epochs, st.reference_epoch) == (True, 6, 3)
    # NaN never improves; the first finite score sets the reference.
    st = stopping_state([np.nan, 1.2, np.nan, np.nan], 2, 1e-3)
    assert (st.stop, st.epochs, st.reference_epoch) == (True, 4, 2)
    # Without validation scores the training curve stands in.
    rows = [{"val_vamp2": np.nan, "train_vamp2": v} for v in (1.0, 1.5)]
    assert curve(rows) == [1.0, 1.5]
    with pytest.raises(InputError, match="patience"):
        TrainSettings.from_mapping({"patience": 0})
    with pytest.raises(InputError, match="min_delta"):
        TrainSettings.from_mapping({"min_delta": -1e-3})


@pytest.fixture
def known_curve(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The loop's validation score follows :data:`GEOMETRIC` by epoch (calls counted)."""
    calls: list[int] = []

    def score(model, problem, settings, device):
        calls.append(1)
        return GEOMETRIC[len(calls) - 1], None

    monkeypatch.setattr(gl, "_validation_score", score)
    return calls


def _problem(toy: dict, settings: dict) -> gl.Problem:  # noqa: F811
    return gl.prepare("gdynet", 2, "1ps", toy["parts"], toy["graphs"], settings)


def test_fit_stops_where_the_rule_fires_and_resumes_stopped(
    toy: dict, tmp_path: Path, known_curve: list[int],  # noqa: F811
) -> None:
    s = TrainSettings.from_mapping({"batch_size": 64, "max_pairs_per_epoch": 128, "epochs": 30,
                          "checkpoint_every_s": 1e9})
    res = gl.fit(_problem(toy, s), s, tmp_path, progress=False)
    assert len(known_curve) == 14 and res["epochs_run"] == 14
    assert res["training_converged"] is True
    assert res["best_epoch"] == 14  # the curve still rises a little: the best is the last
    assert res["steps"] == 14 * 2  # 128 pairs / 64 per batch
    # Started again on its checkpoint, a stopped run trains no more and decides alike.
    again = gl.fit(_problem(toy, s), s, tmp_path, progress=False)
    assert again["resumed"] == (14, 0) and again["steps"] == 0
    assert again["training_converged"] is True and again["epochs_run"] == 14


def test_fit_at_the_maximum_is_unconverged(toy: dict, known_curve: list[int]) -> None:  # noqa: F811
    s = TrainSettings.from_mapping({"batch_size": 64, "max_pairs_per_epoch": 128, "epochs": 12})
    res = gl.fit(_problem(toy, s), s, None, progress=False)
    assert res["epochs_run"] == 12 and res["training_converged"] is False


def test_metrics_and_config_record_the_verdict(toy: dict, tmp_path: Path) -> None:  # noqa: F811
    # Patience 1 with a gain threshold no real curve reaches: stops after epoch 2.
    s = {"batch_size": 64, "max_pairs_per_epoch": 256, "epochs": 5, "patience": 1,
         "min_delta": 10.0, "seeds": [0, 1], "all_seeds_dead": "keep"}
    res = train("gdynet", tmp_path, 2, "1ps", toy["parts"], toy["graphs"], s, progress=False)
    m = pd.read_csv(tmp_path / "metrics.csv")
    assert list(m.columns) == ["seed", "epoch", "train_vamp2", "val_vamp2", "epochs_run",
                               "best_epoch", "training_converged", "seconds"]
    assert m.groupby("seed").size().tolist() == [2, 2]
    assert m["epochs_run"].eq(2).all() and m["training_converged"].all()
    for _, rows in m.groupby("seed"):
        assert rows["best_epoch"].iloc[0] == rows["epoch"][rows["val_vamp2"].idxmax()]
    assert res["training_converged"] is True and res["unconverged_seeds"] == []
    assert [r["epochs_run"] for r in res["seeds"]] == [2, 2]


def test_api_fit_warns_when_unconverged() -> None:
    coords, label = toy_trajectory(400, seed=5)
    traj = make_traj(coords, label, frame_interval_ps=np.float64(0.1))
    est = GDyNet(2, 1.0, n_neighbors=12, epochs=1, batch_size=64, max_pairs_per_epoch=128)
    with pytest.warns(UserWarning, match="did not converge in 1 epochs"):
        model = est.fit(traj, val=traj)
    assert model.training_converged is False and model.config["unconverged_seeds"] == [0]
    # Converged (a threshold every curve misses, patience 1): no warning.
    est = GDyNet(2, 1.0, n_neighbors=12, epochs=3, batch_size=64, max_pairs_per_epoch=128,
                 patience=1, min_delta=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = est.fit(traj, val=traj)
    assert model.training_converged is True and model.config["epochs_run"] == 2
