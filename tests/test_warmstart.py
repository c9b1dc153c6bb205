"""Warm start (``gdyn train --init-from``, gdyn.train.warmstart): the run starts from the
given weights, refuses another architecture's, and never resumes a checkpoint of a run that
started elsewhere."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from gdyn import train as gt
from gdyn.errors import InputError
from gdyn.train.loop import Interrupted

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import FAST, toy, toy_trajectory  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def reference(toy: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: F811
    out = tmp_path_factory.mktemp("ref")
    res = gt.train("gdynet", out, 2, "1ps", toy["parts"], toy["graphs"], FAST, progress=False)
    return {"dir": out, "res": res}


def test_a_warm_start_begins_at_the_given_weights(toy: dict, reference: dict,  # noqa: F811
                                                  tmp_path: Path) -> None:
    # A learning rate of 1e-12 leaves the weights where they started, so the first epoch's
    # validation VAMP-2 is the reference's best one: the same weights on the same frames.
    settings = dict(FAST, epochs=1, learning_rate=1e-12)
    gt.train("gdynet", tmp_path, 2, "1ps", toy["parts"], toy["graphs"], settings,
             progress=False, init_from=reference["dir"] / "model.pt")
    first = pd.read_csv(tmp_path / "metrics.csv")["val_vamp2"].iloc[0]
    assert first == pytest.approx(reference["res"]["best_val_vamp2"], abs=1e-5)
    ref = torch.load(reference["dir"] / "model.pt", weights_only=True)
    got = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.allclose(ref[k], got[k], atol=1e-6) for k in ref)
    # From random weights the same single epoch is far below the trained model (a dead
    # model, kept here to read its score).
    cold = tmp_path / "cold"
    gt.train("gdynet", cold, 2, "1ps", toy["parts"], toy["graphs"],
             dict(settings, all_seeds_dead="keep"), progress=False)
    assert pd.read_csv(cold / "metrics.csv")["val_vamp2"].iloc[0] < first - 0.1


def test_other_weights_are_refused(toy: dict, reference: dict, tmp_path: Path) -> None:  # noqa: F811
    init = reference["dir"] / "model.pt"
    with pytest.raises(InputError, match=r"--init-from .*model\.pt.*same shape"):
        gt.train("gdynet", tmp_path / "s3", 3, "1ps", toy["parts"], toy["graphs"],
                 dict(FAST, epochs=1), progress=False, init_from=init)
    with pytest.raises(InputError, match=r"--init-from .*file not found"):
        gt.train("gdynet", tmp_path / "x", 2, "1ps", toy["parts"], toy["graphs"],
                 dict(FAST, epochs=1), progress=False, init_from=tmp_path / "none.pt")


def test_a_checkpoint_of_a_cold_run_is_not_resumed_warm(toy: dict, reference: dict,  # noqa: F811
                                                         tmp_path: Path, crash_after) -> None:
    settings = dict(FAST, epochs=2, max_pairs_per_epoch=1024)
    with pytest.raises(Interrupted), crash_after(10):
        gt.train("gdynet", tmp_path, 2, "1ps", toy["parts"], toy["graphs"], settings,
                 progress=False)
    res = gt.train("gdynet", tmp_path, 2, "1ps", toy["parts"], toy["graphs"], settings,
                   progress=False, init_from=reference["dir"] / "model.pt")
    assert res["resumed"] is None
