"""Temperature series (issue 25): config validation, per-temperature Koopman models of one
pooled set of states, kinetics with a temperature column."""

from __future__ import annotations

import numpy as np
import pytest
from _markov_chains import simulate
from scipy.linalg import expm

from gdyn import config as gc
from gdyn.errors import InputError
from gdyn.koopman import KoopmanModel
from gdyn.koopman.probs import Probs
from gdyn.koopman.temperature import (
    arrhenius_by_temperature,
    kinetics_by_temperature,
    models_by_temperature,
    split_by_temperature,
)
from gdyn.temperatures import is_series, series_problems, temperature_of

KB = 8.617333262e-5


def _toy(**sim):
    return {"source": "simulate", "simulate": {"n_li": 2, "duration_ps": 100, **sim}}


def test_toy_series_names_and_temperatures() -> None:
    s = _toy(temperatures_K=[32, 64, 128])
    assert is_series(s) and not is_series(_toy(temperature_K=64))
    assert gc.trajectory_names(s) == [f"li{i:03d}" for i in range(6)]
    assert temperature_of(s) == {"li000": 32.0, "li001": 32.0, "li002": 64.0,
                                 "li003": 64.0, "li004": 128.0, "li005": 128.0}  # fmt: skip
    assert temperature_of(_toy(temperature_K=64)) == {}
    bad = series_problems("t", _toy(temperatures_K=[32, 64], temperature_K=64))
    assert bad == ["systems/t/simulate/temperature_K: expected absent with temperatures_K "
                   "(which replaces it), got 64"]  # fmt: skip


def test_file_series_needs_every_temperature() -> None:
    s = {"source": "local", "files": {"a": {"path": "a.npz", "temperature_K": 300},
                                      "b": {"path": "b.npz"}}}  # fmt: skip
    assert series_problems("own", s) == [
        "systems/own/files/b/temperature_K: expected a temperature (K) as every other file "
        "of this temperature series has, got none"
    ]
    with pytest.raises(InputError, match="files/b/temperature_K"):
        temperature_of(s)
    s["files"]["b"]["temperature_K"] = 400
    assert temperature_of(s) == {"a": 300.0, "b": 400.0}
    s["conduction"] = {"temperature_K": 300}  # per temperature (tests/test_per_temperature.py)
    assert "conduction/temperature_K: expected absent" in series_problems("own", s)[0]


def _series(seed: int = 0, swap_hot: bool = False) -> tuple[Probs, dict, np.ndarray]:
    """One-hot memberships of a 2-state chain at 3 temperatures, 2 trajectories each; the
    network's output 1 is the rare state at every temperature. (Soft memberships
    ``p = M[state]`` are Markovian too, but K is then ``M^-1 T M`` and its generator gives
    the rates of the soft basis, not of the states: docs/koopman.md, "Arrhenius".)"""
    rng = np.random.default_rng(seed)
    temps = {"t0": 40.0, "t1": 40.0, "t2": 80.0, "t3": 80.0, "t4": 160.0, "t5": 160.0}
    blend = np.eye(2)
    rows, traj, frame = [], [], []
    for i, t in enumerate(temps.values()):
        q = np.array([[0, 0.4 * np.exp(-0.012 / (KB * t))], [0.5 * np.exp(-0.004 / (KB * t)), 0]])
        np.fill_diagonal(q, -q.sum(axis=1))
        st = simulate(expm(q), 1500, 4, rng)
        rows.append(blend[st])
        traj.append(np.full(1500, i))
        frame.append(np.arange(1500))
    data = Probs("<series>", np.concatenate(rows), np.concatenate(traj), np.concatenate(frame),
                 np.array([f"results/split/x/test/{n}.npz" for n in temps]), 5.0, 1.0)
    return data, temps, np.array([0, 1])


def test_split_by_temperature_and_unknown_source() -> None:
    data, temps, _ = _series()
    parts = split_by_temperature(data, temps)
    assert sorted(parts) == [40.0, 80.0, 160.0]
    assert sum(p.probs.shape[0] for p in parts.values()) == data.probs.shape[0]
    with pytest.raises(InputError, match="'t5' without one"):
        split_by_temperature(data, {k: v for k, v in temps.items() if k != "t5"})


def test_pooled_states_keep_their_meaning_across_temperatures() -> None:
    data, temps, _ = _series()
    pooled = KoopmanModel.estimate(data, 5.0, selection=None)
    by_t = models_by_temperature(data, temps, pooled, {"method": "bootstrap", "n": 40})
    # At every temperature the rare (higher-energy) state is pooled state 1: its exit rate
    # has the small activation energy and its population grows with T.
    res = arrhenius_by_temperature(by_t, pooled.state_order, n_boot=300)
    assert res.fits[(0, 1)].activation_energy_eV == pytest.approx(0.012, rel=0.25)
    assert res.fits[(1, 0)].activation_energy_eV == pytest.approx(0.004, rel=0.5)
    pops = [by_t[t].stationary_distribution[list(by_t[t].state_order).index(1)] for t in
            sorted(by_t)]  # fmt: skip
    assert pops == sorted(pops)
    table = kinetics_by_temperature(by_t, pooled.state_order)
    assert list(table.columns[:2]) == ["temperature_K", "quantity"]
    assert sorted(set(table["temperature_K"])) == [40.0, 80.0, 160.0]
    life = table[(table.quantity == "lifetime") & (table.from_state == 1)]
    assert np.all(np.diff(life.sort_values("temperature_K")["value_ps"].to_numpy()) < 0)
