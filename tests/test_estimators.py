"""The estimator API: GDyNet / VAMPNet fit -> GDyNetModel transform / save / load, and its
agreement with `gdyn train` (one code path: same weights, same probabilities)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gdyn.errors import InputError
from gdyn.graph import build_store
from gdyn.models import MODEL_KINDS, REGISTRY, module_class
from gdyn.train import GDyNet, GDyNetModel, VAMPNet
from gdyn.trajectory import Trajectory, load_trajectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import A, toy_trajectory

TYPES = np.array([3, 16, 16, 16, 16])
FAST = {"batch_size": 64, "epochs": 6, "max_pairs_per_epoch": 2048, "learning_rate": 0.01,
        "seed": 3}


def make_traj(coords: np.ndarray, label: np.ndarray, **extras) -> Trajectory:
    """An in-memory toy trajectory (Li = atom 0, the target) with its site labels."""
    f = coords.shape[0]
    return Trajectory(
        traj_coords=coords.astype(np.float32),
        lattices=np.broadcast_to(np.eye(3) * A, (f, 3, 3)).astype(np.float32),
        atom_types=TYPES, target_index=np.array([0]),
        extras={"site_label": label[:, None], **extras},
    )


def _agreement(probs: np.ndarray, truth: np.ndarray) -> float:
    state = probs[:, 0].argmax(1)
    return max(np.mean(state == truth), np.mean(state != truth))


@pytest.fixture(scope="module")
def fitted() -> dict:
    """GDyNet fitted through the API on in-memory trajectories (tet <-> oct hopping)."""
    data = {}
    for name, seed in (("train", 10), ("val", 11), ("test", 12)):
        coords, label = toy_trajectory(1500, seed=seed)
        data[name] = (make_traj(coords, label, frame_interval_ps=np.float64(0.1)), label)
    est = GDyNet(n_states=2, lag_ps=1.0, n_neighbors=12, **FAST)
    model = est.fit(data["train"][0], val=data["val"][0])
    return {"model": model, "data": data, "estimator": est}


def test_gdynet_fit_transform_recovers_the_two_states(fitted: dict) -> None:
    model, (traj, truth) = fitted["model"], fitted["data"]["test"]
    probs = model.transform(traj)
    assert probs.dtype == np.float32 and probs.shape == (1500, 1, 2)
    np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)
    assert _agreement(probs, truth) > 0.95
    assert model.kind == "gdynet" and model.n_states == 2 and model.lag_ps == 1.0
    assert model.frame_interval_ps == 0.1 and model.dims["n_neighbors"] == 12
    assert list(model.metrics.columns) == ["seed", "epoch", "train_vamp2", "val_vamp2",
                                           "epochs_run", "best_epoch", "training_converged",
                                           "seconds"]
    # epochs is the maximum: the run ends there or where the stopping rule fired.
    assert len(model.metrics) == model.config["epochs_run"]
    assert model.config["epochs_run"] == FAST["epochs"] or model.training_converged
    assert model.config["best_val_vamp2"] == pytest.approx(model.metrics["val_vamp2"].max())
    # Any frames, in any order: the rows of the full transform.
    frames = np.array([7, 3, 1499, 3])
    raw = model.transform(traj, raw=True)
    assert np.array_equal(model.transform(traj, frames=frames, raw=True), raw[frames])
    assert np.array_equal(model.transform(traj, frames=frames), probs[frames])


def test_save_load_round_trip(fitted: dict, tmp_path: Path) -> None:
    model, (traj, _) = fitted["model"], fitted["data"]["test"]
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "alignment.json", "config.json", "metrics.csv", "model.pt"]
    loaded = GDyNetModel.load(tmp_path / "m")
    assert loaded.config == json.loads(json.dumps(model.config))
    assert np.array_equal(loaded.transform(traj), model.transform(traj))
    # Saving a loaded model rewrites the same files.
    loaded.save(tmp_path / "again")
    for name in ("config.json", "metrics.csv", "alignment.json"):
        assert (tmp_path / "m" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_without_validation_the_last_epoch_is_kept(fitted: dict) -> None:
    traj = fitted["data"]["train"][0]
    est = GDyNet(2, "1ps", n_neighbors=12, **dict(FAST, epochs=2, max_pairs_per_epoch=256))
    model = est.fit(traj)
    assert model.config["best_epoch"] == 2 and model.metrics["val_vamp2"].isna().all()


def test_vampnet_estimator_and_errors(fitted: dict) -> None:
    traj, _ = fitted["data"]["train"]
    model = VAMPNet(2, 1.0, **dict(FAST, epochs=1, max_pairs_per_epoch=256)).fit(traj)
    assert model.kind == "vampnet" and model.dims == {"n_inputs": 3}
    assert model.transform(traj, frames=np.arange(10)).shape == (10, 1, 2)
    bare = Trajectory(traj.traj_coords, traj.lattices, traj.atom_types, traj.target_index)
    with pytest.raises(InputError, match=r"frame_interval_ps.*pass frame_interval_ps="):
        VAMPNet(2, 1.0, epochs=1).fit(bare)
    # ... which the estimator argument supplies.
    model = VAMPNet(2, 1.0, frame_interval_ps=0.1, **dict(FAST, epochs=1)).fit(bare)
    assert model.frame_interval_ps == 0.1
    with pytest.raises(InputError, match="'epoch'"):
        GDyNet(2, 1.0, epoch=3)
    with pytest.raises(InputError, match="model: expected one of gdynet, vampnet"):
        GDyNet(2, 1.0, kind="cgcnn")


def test_registry_names_every_model_kind() -> None:
    assert MODEL_KINDS == ("gdynet", "vampnet")
    assert {k: s.inputs for k, s in REGISTRY.items()} == {"gdynet": "graphs",
                                                          "vampnet": "positions"}
    for kind in MODEL_KINDS:
        cls = module_class(kind)
        assert issubclass(cls, torch.nn.Module) and cls.__name__ == REGISTRY[kind].cls
    # The registry is light: the Snakefile and `gdyn --help` import it without torch.
    code = "import sys, gdyn.models, gdyn.cli.train; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


# --------------------------------------------------------------------------------------
# One code path: `gdyn train` and the API


def _random_system(n_frames: int, seed: int) -> Trajectory:
    """40 atoms vibrating in a 9 A cell, two target sets of two atoms: with M = 6 and two
    convolutions a pruned store keeps only part of the atoms."""
    rng = np.random.default_rng(seed)
    a = 9.0
    coords = (rng.uniform(0, a, size=(40, 3)) + rng.normal(0, 0.15, size=(n_frames, 40, 3))) % a
    return Trajectory(
        traj_coords=coords.astype(np.float32),
        lattices=np.broadcast_to(np.eye(3) * a, (n_frames, 3, 3)).astype(np.float32),
        atom_types=rng.choice([3, 8, 16], size=40), target_index=np.array([[0, 1], [5, 6]]),
    )


SYSTEMS = {  # name: (trajectory maker, M, train settings)
    "toy": (lambda seed: make_traj(*toy_trajectory(600, seed=seed)), 12,
            {"batch_size": 32, "epochs": 2, "max_pairs_per_epoch": 256, "learning_rate": 0.01,
             "seed": 5}),
    "pruned": (lambda seed: _random_system(600, seed), 6,
               {"batch_size": 16, "epochs": 2, "max_pairs_per_epoch": 128, "n_conv": 2,
                "seed": 1}),
}


def _write_pieces(root: Path, system: str) -> dict[str, list[Path]]:
    """Split pieces as the split rule writes them (two trajectories: first halves train /
    val, second halves test) and their pruned graph stores as the graphs rule builds them."""
    make, m, settings = SYSTEMS[system]
    parts: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for i, name in enumerate(["t000", "t001"]):
        full = make(20 + i)
        first = "train" if i == 0 else "val"
        for part, lo, hi in ((first, 0, 300), ("test", 300, 600)):
            path = root / "split" / part / f"{name}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = {k: v[lo:hi] if k in ("traj_coords", "lattices", "site_label") else v
                      for k, v in full.arrays().items()}
            np.savez(path, **arrays, frame_interval_ps=np.float64(0.1),
                     frame_offset=np.int64(lo), source=np.str_(name))
            build_store(load_trajectory(path), root / "graphs" / part / name, m,
                        n_conv=settings.get("n_conv", 3), progress=False)
            parts[part].append(path)
    return parts


RUNS = [("toy", 1), ("toy", 2), ("pruned", 1), ("pruned", 2)]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`gdyn train gdynet` on tiny pieces, frame_stride 1 and 2 (run side by side)."""
    root = tmp_path_factory.mktemp("cli")
    parts = {system: _write_pieces(root / system, system) for system in SYSTEMS}
    procs, out = [], {}
    for system, stride in RUNS:
        outdir = root / system / f"model-stride{stride}"
        args = ["gdyn", "train", "gdynet", str(outdir), "--n-states", "2", "--lag-ps", "1.0"]
        for part, paths in parts[system].items():
            args += [f"--{part}", *map(str, paths)]
            args += [f"--{part}-graphs",
                     *(str(root / system / "graphs" / part / p.stem) for p in paths)]
        settings = dict(SYSTEMS[system][2], frame_stride=stride)
        args += ["--settings", json.dumps(settings), "--threads", "1"]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True))
        out[system, stride] = outdir
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    return {"parts": parts, "models": out}


@pytest.mark.slow  # cli_runs: four `gdyn train` processes and their graph stores (~10 s)
@pytest.mark.parametrize(("system", "stride"), RUNS)
def test_loaded_workflow_model_reproduces_its_probs(cli_runs: dict, system: str,
                                                    stride: int) -> None:
    outdir = cli_runs["models"][system, stride]
    model = GDyNetModel.load(outdir)
    assert model.frame_stride == stride
    with np.load(outdir / "probs_test.npz") as z:
        probs, traj, frame, sources = z["probs"], z["traj"], z["frame"], list(z["sources"])
    for path in cli_runs["parts"][system]["test"]:
        piece = load_trajectory(path)
        rows = traj == sources.index(path.stem)
        frames = model.grid(piece)
        assert np.array_equal(frames + int(piece.extras["frame_offset"]), frame[rows])
        assert np.array_equal(model.transform(piece, frames=frames), probs[rows])


@pytest.mark.slow
@pytest.mark.parametrize("system", SYSTEMS)
def test_api_fit_equals_cli_train(cli_runs: dict, system: str) -> None:
    """Same data, settings and seed: the weights of `gdyn train` (frame_stride 1, where the
    in-memory graphs cover every frame the stores cover)."""
    parts, (_, m, settings) = cli_runs["parts"][system], SYSTEMS[system]
    est = GDyNet(2, "1ps", n_neighbors=m, **settings)
    model = est.fit([load_trajectory(p) for p in parts["train"]],
                    val=[load_trajectory(p) for p in parts["val"]])
    outdir = cli_runs["models"][system, 1]
    ref = torch.load(outdir / "model.pt", weights_only=True)
    got = model.module.state_dict()
    assert list(ref) == list(got) and all(torch.equal(ref[k], got[k]) for k in ref)
    cfg = json.loads((outdir / "config.json").read_text())
    mine = json.loads(json.dumps(model.config))
    # The CLI also scores the test split (the API fit has none): compare without it.
    test_keys = {"inputs", "test_vamp2", "seed_spread"}
    for c in (cfg, mine):
        for record in c["seeds"]:
            record.pop("test_vamp2")
        c["seed_spread"].pop("test_vamp2")
    assert cfg["seed_spread"] == mine["seed_spread"]
    # Every seed dead: `gdyn train` fails, the API keeps the model with a warning.
    assert cfg["settings"].pop("all_seeds_dead") == "fail"
    assert mine["settings"].pop("all_seeds_dead") == "keep"
    assert {k: v for k, v in cfg.items() if k not in test_keys} == {
        k: v for k, v in mine.items() if k not in test_keys}
    assert mine["inputs"] == {p: [str(x) for x in parts[p]] for p in ("train", "val")}
