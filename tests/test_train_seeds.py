"""Seeds and state alignment of `gdyn train` (issue 16): the best seed is kept, dead seeds are
reported and never kept, a killed multi-seed job resumes bit-identically, and states are
mapped onto the reference model's."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gdyn import train as gt
from gdyn.train import seeds as seeds_mod
from gdyn.train.align import output_layer
from gdyn.train.loop import Interrupted
from gdyn.train.settings import TrainSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import _cli, two_trajectory_split

FAST = {"batch_size": 64, "epochs": 2, "max_pairs_per_epoch": 1024, "learning_rate": 0.01,
        "seed": 3}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two toy trajectories of 2000 frames: first halves train / val, second halves test."""
    return two_trajectory_split(tmp_path_factory.mktemp("toy"), 2000, seed=20)


def _train(toy: dict, outdir: Path, settings: dict, lag: str = "1ps", **kw) -> dict:
    return gt.train("gdynet", outdir, 2, lag, toy["parts"], toy["graphs"], settings,
                    progress=False, **kw)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path / "model.pt", weights_only=True)


def test_seeds_change_results_and_the_best_is_kept(toy: dict, tmp_path: Path) -> None:
    res = _train(toy, tmp_path / "multi", dict(FAST, seeds=[0, 1, 2]))
    cfg = json.loads((tmp_path / "multi" / "config.json").read_text())
    records = cfg["seeds"]
    assert [r["seed"] for r in records] == [0, 1, 2] and not cfg["dead_seeds"]
    vals = [r["val_vamp2"] for r in records]
    assert len(set(vals)) == 3  # the seed changes the result
    best = int(np.argmax(vals))
    assert cfg["seed"] == res["seed"] == best and cfg["settings"]["seed"] == best
    assert cfg["best_val_vamp2"] == pytest.approx(max(vals))
    assert cfg["seed_spread"]["val_vamp2"] == pytest.approx(
        {"min": min(vals), "median": float(np.median(vals)), "max": max(vals), "n": 3})
    tests = [r["test_vamp2"] for r in records]
    assert cfg["test_vamp2"] == pytest.approx(tests[best]) and all(t > 1.0 for t in tests)
    metrics = pd.read_csv(tmp_path / "multi" / "metrics.csv")
    assert list(metrics.columns) == ["seed", "epoch", "train_vamp2", "val_vamp2", "epochs_run",
                                     "best_epoch", "training_converged", "seconds"]
    assert metrics.groupby("seed")["val_vamp2"].max().tolist() == pytest.approx(vals)
    # The kept model is exactly that seed trained alone (same weights, same probabilities).
    _train(toy, tmp_path / "single", dict(FAST, seed=best))
    ref, got = _weights(tmp_path / "single"), _weights(tmp_path / "multi")
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    for part in ("val", "test"):
        with np.load(tmp_path / "single" / f"probs_{part}.npz") as a, \
                np.load(tmp_path / "multi" / f"probs_{part}.npz") as b:
            assert np.array_equal(a["probs"], b["probs"])
    assert not list((tmp_path / "multi").glob("seed*.pt"))
    assert not (tmp_path / "multi" / "checkpoint.pt").exists()


def _dying(monkeypatch: pytest.MonkeyPatch, dead_seeds: set[int]) -> None:
    """Make the networks of ``dead_seeds`` die after training: a zeroed output layer gives
    constant outputs (what a saturated softmax with zero gradient looks like)."""
    real_fit = seeds_mod.fit

    def fit(problem, settings, *args, **kwargs):
        res = real_fit(problem, settings, *args, **kwargs)
        if settings.seed in dead_seeds:
            layer = output_layer(res["model"], problem.n_states)
            with torch.no_grad():
                layer.weight.zero_()
                layer.bias.zero_()
        return res

    monkeypatch.setattr(seeds_mod, "fit", fit)


def test_dead_seed_is_reported_and_never_kept(toy: dict, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    _dying(monkeypatch, {0})
    with caplog.at_level(logging.WARNING, logger="gdyn.train.seeds"):
        _train(toy, tmp_path, dict(FAST, seeds=[0, 1]))
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["dead_seeds"] == [0] and cfg["seed"] == 1 and not cfg["kept_dead"]
    dead = cfg["seeds"][0]
    assert dead["dead"] and dead["dead_reason"].startswith("constant outputs")
    assert dead["output_spread"] == 0.0 and dead["val_vamp2"] == pytest.approx(1.0, abs=1e-6)
    assert cfg["seed_spread"]["val_vamp2"]["n"] == 1  # the spread is over live seeds
    assert "seed 0 is dead: constant outputs" in caplog.text
    # Its weights are not those written.
    with np.load(tmp_path / "probs_val.npz") as z:
        assert z["probs"].std(axis=0).max() > 0.1


def test_dead_means_collapsed() -> None:
    """A dead seed is what the Koopman stage calls a collapsed model (same thresholds)."""
    from gdyn.koopman import selection as states

    assert seeds_mod.DEAD_SPREAD == states.CONSTANT_SD
    assert seeds_mod.DEAD_VAMP2 == states.COLLAPSE_VAMP2


def test_dead_reason_rules() -> None:
    rng = np.random.default_rng(0)
    live = rng.dirichlet([1, 1], size=(100, 1))
    assert seeds_mod.dead_reason(live, 1.4) is None
    assert seeds_mod.dead_reason(np.full((100, 1, 2), 0.5), 1.0).startswith("constant")
    assert "not finite" in seeds_mod.dead_reason(live, float("nan"))
    assert "VAMP-2 1.00050 < 1 + 0.001" in seeds_mod.dead_reason(live, 1.0005)


def test_all_seeds_dead_fail_the_job_in_one_line(toy: dict, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    from gdyn.cli import main

    _dying(monkeypatch, {4, 5})
    settings = dict(FAST, epochs=1, max_pairs_per_epoch=256, seeds=[4, 5])
    args = _cli(toy, tmp_path / "m", settings)[1:]  # `gdyn train ...` in this process
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("gdyn train: error: gdynet s2 lag 1ps: every seed is dead")
    assert "seed 4: constant outputs" in err[-1] and "seed 5: constant outputs" in err[-1]
    assert not (tmp_path / "m" / "model.pt").exists()
    # all_seeds_dead: keep keeps the best of them, flagged (smoke tests).
    args = _cli(toy, tmp_path / "k", dict(settings, all_seeds_dead="keep"))[1:]
    assert main(args) == 0
    cfg = json.loads((tmp_path / "k" / "config.json").read_text())
    assert cfg["kept_dead"] and cfg["dead_seeds"] == [4, 5] and cfg["seed"] == 4
    # The estimator API keeps it by default, flagged, with a warning.
    est = gt.GDyNet(2, "1ps", **settings)
    model = est.fit_pieces(toy["parts"], toy["graphs"])
    assert model.config["kept_dead"] and model.config["dead_seeds"] == [4, 5]


def test_killed_multi_seed_job_resumes_bit_identically(toy: dict, tmp_path: Path,
                                                       crash_after) -> None:
    settings = dict(FAST, seeds=[0, 1], checkpoint_every_s=0.0)
    _train(toy, tmp_path / "ref", settings)
    # 1024 pairs / 64 = 16 steps per epoch, 32 per seed: crash in seed 1's first epoch.
    with pytest.raises(Interrupted), crash_after(32 + 5):
        _train(toy, tmp_path / "crash", settings)
    assert (tmp_path / "crash" / "seed0.pt").exists()
    assert (tmp_path / "crash" / "checkpoint.pt").exists()
    res = _train(toy, tmp_path / "crash", settings)
    ref, got = _weights(tmp_path / "ref"), _weights(tmp_path / "crash")
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    a = json.loads((tmp_path / "ref" / "config.json").read_text())
    b = json.loads((tmp_path / "crash" / "config.json").read_text())
    assert a["seeds"] == b["seeds"] and a["alignment"] == b["alignment"]
    assert res["seed"] == a["seed"]
    strip = lambda p: [line.rsplit(",", 1)[0] for line in p.read_text().splitlines()]  # noqa: E731
    assert strip(tmp_path / "ref" / "metrics.csv") == strip(tmp_path / "crash" / "metrics.csv")


def test_states_are_aligned_to_the_reference(toy: dict, tmp_path: Path) -> None:
    # Trained long enough to find the tet/oct states at both lags (test_train's settings).
    good = dict(FAST, epochs=6, max_pairs_per_epoch=2048)
    # The reference lag: states by decreasing population on the validation frames.
    _train(toy, tmp_path / "lag1", good)
    al = json.loads((tmp_path / "lag1" / "alignment.json").read_text())
    assert al["reference"] is None and al["rule"].startswith("reference model")
    assert al["populations"] == sorted(al["populations"], reverse=True)
    with np.load(tmp_path / "lag1" / "probs_val.npz") as z:
        ref = dict(z)
        # The alignment sees the network's outputs (probs_raw), before the memberships map.
        np.testing.assert_allclose(ref["probs_raw"].reshape(-1, 2).mean(0), al["populations"],
                                   rtol=1e-5)
    # Another lag, aligned to it: the same states under the same numbers.
    _train(toy, tmp_path / "lag2", good, lag="2ps", reference=tmp_path / "lag1" / "probs_val.npz")
    al2 = json.loads((tmp_path / "lag2" / "alignment.json").read_text())
    assert al2["reference"] == str(tmp_path / "lag1" / "probs_val.npz")
    overlap = np.asarray(al2["overlap"])
    order = al2["permutation"]
    assert overlap.shape == (2, 2) and overlap.sum() == pytest.approx(1.0)
    assert al2["agreement"] == pytest.approx(overlap[[0, 1], order].sum())
    assert al2["agreement"] > overlap[[0, 1], order[::-1]].sum()  # better than swapped
    # Agreement of the model's outputs with the reference file's probs (its memberships).
    with np.load(tmp_path / "lag2" / "probs_val.npz") as z:
        same = np.mean(z["probs_raw"][:, 0].argmax(1) == ref["probs"][:, 0].argmax(1))
    assert same == pytest.approx(al2["hard_agreement"]) and same > 0.9
    # A reference with its states swapped: the model follows it, through its output layer.
    swapped = tmp_path / "swapped.npz"
    np.savez(swapped, **{**ref, "probs": ref["probs"][..., ::-1]})
    _train(toy, tmp_path / "lag2s", good, lag="2ps", reference=swapped)
    al3 = json.loads((tmp_path / "lag2s" / "alignment.json").read_text())
    assert al3["permutation"] == al2["permutation"][::-1]
    for part in ("train", "val", "test"):
        with np.load(tmp_path / "lag2" / f"probs_{part}.npz") as a, \
                np.load(tmp_path / "lag2s" / f"probs_{part}.npz") as b:
            assert np.array_equal(a["probs_raw"][..., ::-1], b["probs_raw"])
            np.testing.assert_allclose(a["probs"][..., ::-1], b["probs"], atol=1e-6)
    a, b = _weights(tmp_path / "lag2"), _weights(tmp_path / "lag2s")
    assert torch.equal(a["out.weight"].flip(0), b["out.weight"])
    # The model directory loads with its aligned output layer.
    model = gt.GDyNetModel.load(tmp_path / "lag2s")
    assert model.config["alignment"]["permutation"] == al3["permutation"]


def test_seed_settings_are_checked() -> None:
    from gdyn.errors import InputError

    assert TrainSettings.from_mapping({"seed": 7}).seed_list == [7]
    assert TrainSettings.from_mapping({"seed": 7, "seeds": [3, 1]}).seed_list == [3, 1]
    for bad in ([], [1, 1], [-1], ["a"], 2):
        with pytest.raises(InputError, match="'seeds'"):
            TrainSettings.from_mapping({"seeds": bad})
    with pytest.raises(InputError, match="'all_seeds_dead'"):
        TrainSettings.from_mapping({"all_seeds_dead": "ignore"})
    # One seed's run does not depend on the seed list (its checkpoint survives a longer list).
    s = seeds_mod.seed_settings(TrainSettings.from_mapping({"seeds": [0, 1]}), 1)
    assert s.seed == 1 and s.seeds is None
