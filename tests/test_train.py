"""Training: two-state recovery, resume after a crash, the probs contract, the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gdyn import train as gt
from gdyn.errors import InputError
from gdyn.graph import build_store
from gdyn.graph.search import nearest_neighbours
from gdyn.train.batches import epoch_permutation, epoch_seed
from gdyn.train.data import graphs_in_memory, open_graphs
from gdyn.train.loop import Interrupted, predict_part, prepare
from gdyn.train.outputs import load_model
from gdyn.train.settings import TrainSettings
from gdyn.trajectory import load_trajectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_model import periodic_neighbours

A = 6.5  # FCC S lattice parameter of the paper's toy (Angstrom)
S_SITES = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
OCT = np.array([[0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
TET = np.array([[x, y, z] for x in (0.25, 0.75) for y in (0.25, 0.75) for z in (0.25, 0.75)])


def toy_trajectory(
    n_frames: int, seed: int, p_leave_tet: float = 0.01, p_leave_oct: float = 0.02,
    noise_A: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Li hopping tet <-> oct in an FCC S cell (5 atoms): coords (F, 5, 3), label (F,).

    A Markov jump process on the 8 tetrahedral and 4 octahedral sites (each tet site
    borders 4 oct sites) with Gaussian thermal noise; label 0 = octahedral, 1 = tetrahedral.
    The S atoms vibrate a little: in a frozen lattice the M = 12 cut falls inside a shell
    of equidistant S images, and its deterministic tie-break makes the four (equivalent)
    octahedral sites distinguishable to a 2+ layer GDyNet; site identity then decays more
    slowly than tet <-> oct hopping and becomes the slowest learnable process.
    """
    rng = np.random.default_rng(seed)
    sites = np.vstack([OCT, TET])  # 0..3 oct, 4..11 tet
    d = np.linalg.norm(((sites[:, None] - sites[None]) + 0.5) % 1.0 - 0.5, axis=-1)
    adjacent = np.isclose(d, np.sqrt(3) / 4)  # tet-oct neighbours
    site = int(rng.integers(12))
    path = np.empty(n_frames, dtype=np.int64)
    for t in range(n_frames):
        leave = p_leave_oct if site < 4 else p_leave_tet
        if rng.random() < leave:
            site = int(rng.choice(np.flatnonzero(adjacent[site])))
        path[t] = site
    li = sites[path] * A + rng.normal(0, noise_A, size=(n_frames, 3))
    coords = np.empty((n_frames, 5, 3))
    coords[:, 0] = li % A
    coords[:, 1:] = S_SITES * A + rng.normal(0, 0.05, size=(n_frames, 4, 3))
    return coords, (path >= 4).astype(np.int8)


def write_piece(root: Path, part: str, name: str, coords: np.ndarray, label: np.ndarray,
                offset: int, m: int = 12, frame_interval_ps: float = 0.1) -> tuple[Path, Path]:
    """A split piece and its (unpruned) graph store, following docs/contracts.md."""
    split = root / "split" / part / f"{name}.npz"
    split.parent.mkdir(parents=True, exist_ok=True)
    f = coords.shape[0]
    np.savez(
        split, traj_coords=coords.astype(np.float32),
        lattices=np.broadcast_to(np.eye(3) * A, (f, 3, 3)).astype(np.float32),
        atom_types=np.array([3, 16, 16, 16, 16]), target_index=np.array([0]),
        frame_interval_ps=np.float64(frame_interval_ps), frame_offset=np.int64(offset),
        source=np.str_(name), site_label=label[:, None],
    )
    gdir = root / "graphs" / part / name
    gdir.mkdir(parents=True, exist_ok=True)
    index, dist = periodic_neighbours(coords, np.eye(3) * A, m)
    np.save(gdir / "index.npy", index)
    np.save(gdir / "distance.npy", dist)
    np.save(gdir / "rows.npy", np.arange(5, dtype=np.int64))
    (gdir / "meta.json").write_text(json.dumps(
        {"n_frames": f, "n_atoms": 5, "n_neighbors": m, "n_conv": 3, "pruned": False,
         "source": name}))
    return split, gdir


def two_trajectory_split(root: Path, n_frames: int, seed: int) -> dict:
    """Two toy trajectories (seeds ``seed``, ``seed + 1``): first halves train (li000) /
    val (li001), second halves test, as the toy config splits them."""
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    graphs: dict[str, list] = {"train": [], "val": [], "test": []}
    labels = {}
    half = n_frames // 2
    for i, name in enumerate(["li000", "li001"]):
        coords, label = toy_trajectory(n_frames, seed=seed + i)
        labels[name] = label
        first = "train" if i == 0 else "val"
        for part, lo, hi in ((first, 0, half), ("test", half, n_frames)):
            s, g = write_piece(root, part, name, coords[lo:hi], label[lo:hi], lo)
            parts[part].append(s)
            graphs[part].append(g)
    return {"root": root, "parts": parts, "graphs": graphs, "labels": labels}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two trajectories of 3000 frames, split as :func:`two_trajectory_split`."""
    return two_trajectory_split(tmp_path_factory.mktemp("toy"), 3000, seed=10)


FAST = {"batch_size": 64, "epochs": 6, "max_pairs_per_epoch": 2048, "learning_rate": 0.01,
        "seed": 3}


def _agreement(probs: np.ndarray, truth: np.ndarray) -> float:
    state = probs[:, 0].argmax(1)
    return max(np.mean(state == truth), np.mean(state != truth))


def test_epoch_permutation_is_a_seeded_bijection() -> None:
    for n in (1, 2, 3, 7, 100, 1000, 4097, 65537):
        img = epoch_permutation(n, 5, 0)
        assert img.dtype == np.int64 and np.array_equal(np.sort(img), np.arange(n))
        assert np.array_equal(img, epoch_permutation(n, 5, 0))  # pure function
    img = epoch_permutation(10000, 1, 0)
    assert not np.array_equal(img, epoch_permutation(10000, 2, 0))  # seed matters
    assert not np.array_equal(img, epoch_permutation(10000, 1, 1))  # so does the epoch
    # Shuffled: far from the identity and from any short-range order.
    assert abs(np.corrcoef(np.arange(10000), img)[0, 1]) < 0.05
    # It is numpy's permutation of the epoch's seed.
    expected = np.random.default_rng(epoch_seed(1, 0)).permutation(10000)
    assert np.array_equal(img, expected)


def test_settings_are_checked() -> None:
    assert TrainSettings.from_mapping({"lags_ps": [1], "models": {}}).batch_size == 16
    with pytest.raises(InputError, match="'epoch'"):
        TrainSettings.from_mapping({"epoch": 3})
    with pytest.raises(InputError, match=r"'batch_size'.*integer >= 2"):
        TrainSettings.from_mapping({"batch_size": 1})
    with pytest.raises(InputError, match="'vamp_mode'"):
        TrainSettings.from_mapping({"vamp_mode": "svd"})


def test_gdynet_recovers_the_two_states(toy: dict, tmp_path: Path) -> None:
    res = gt.train("gdynet", tmp_path, 2, "1ps", toy["parts"], toy["graphs"], FAST,
                   progress=False)
    assert res["best_val_vamp2"] > 1.3  # two-state optimum: 1 + (0.97^10)^2 = 1.54
    for part in ("val", "test"):
        with np.load(tmp_path / f"probs_{part}.npz") as z:
            truth = np.array([toy["labels"][str(z["sources"][i])][f]
                              for i, f in zip(z["traj"], z["frame"], strict=True)])
            assert _agreement(z["probs"], truth) > 0.95


def _check_probs_contract(outdir: Path, toy: dict, n_states: int, lag_ps: float,
                          stride: int = 1) -> None:
    for part in ("train", "val", "test"):
        with np.load(outdir / f"probs_{part}.npz", allow_pickle=False) as z:
            assert set(z.files) == {"probs", "probs_raw", "traj", "sources", "frame",
                                    "lag_ps", "frame_interval_ps"}
            assert z["probs_raw"].dtype == np.float32
            assert z["probs_raw"].shape == z["probs"].shape
            probs, traj, frame = z["probs"], z["traj"], z["frame"]
            names = [Path(p).stem for p in toy["parts"][part]]
            assert list(z["sources"]) == names
            n = 1500 // stride
            assert probs.dtype == np.float32 and probs.shape == (n * len(names), 1, n_states)
            assert traj.dtype == np.int64 and frame.dtype == np.int64
            np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)
            for i, _ in enumerate(names):
                lo = 0 if part != "test" else 1500
                assert np.array_equal(frame[traj == i], np.arange(lo, lo + 1500, stride))
            assert float(z["lag_ps"]) == lag_ps and float(z["frame_interval_ps"]) == 0.1


def test_outputs_follow_the_contract(toy: dict, tmp_path: Path) -> None:
    settings = dict(FAST, epochs=2, frame_stride=5)
    gt.train("gdynet", tmp_path, 3, "2ps", toy["parts"], toy["graphs"], settings, progress=False)
    _check_probs_contract(tmp_path, toy, 3, 2.0, stride=5)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["lag_frames"] == 20 and cfg["frame_interval_ps"] == 0.1 and cfg["seed"] == 3
    assert 1 <= cfg["best_epoch"] <= 2
    metrics = (tmp_path / "metrics.csv").read_text().splitlines()
    assert metrics[0] == ("seed,epoch,train_vamp2,val_vamp2,epochs_run,best_epoch,"
                          "training_converged,seconds") and len(metrics) == 3
    assert not (tmp_path / "checkpoint.pt").exists()
    # model.pt is a plain state_dict and rebuilds the model that wrote probs_test.
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model, _ = load_model(tmp_path)
    problem = prepare("gdynet", 3, "2ps", toy["parts"], toy["graphs"],
                         TrainSettings.from_mapping(settings))
    probs, _, _ = predict_part(model, problem, "test", torch.device("cpu"))
    # probs_raw: the network's outputs; probs: their memberships (docs/contracts.md).
    mm = gt.GDyNetModel.load(tmp_path).membership_map
    with np.load(tmp_path / "probs_test.npz") as z:
        np.testing.assert_allclose(probs, z["probs_raw"], atol=1e-6)
        np.testing.assert_allclose(z["probs"], mm.apply(z["probs_raw"]), atol=1e-7)


def test_vampnet_baseline_outputs(toy: dict, tmp_path: Path) -> None:
    gt.train("vampnet", tmp_path, 2, "1ps", toy["parts"], None, dict(FAST, epochs=2),
             progress=False)
    _check_probs_contract(tmp_path, toy, 2, 1.0)
    model, cfg = load_model(tmp_path)
    assert cfg["dims"]["n_inputs"] == 3
    # It sees positions in the cell, so (unlike GDyNet) a translation changes its output.
    x = torch.tensor([[0.1, 0.2, 0.3], [0.6, 0.7, 0.8]])
    assert not torch.allclose(model(x)[0], model(x)[1])


def _run(toy: dict, outdir: Path, settings: dict) -> dict:
    return gt.train("gdynet", outdir, 2, "1ps", toy["parts"], toy["graphs"], settings,
                    progress=False)


@pytest.mark.parametrize("every_s", [1e9, 0.0], ids=["epoch-checkpoints", "batch-checkpoints"])
def test_resume_after_crash_equals_uninterrupted(toy: dict, tmp_path: Path, every_s: float,
                                                 crash_after) -> None:
    settings = dict(FAST, epochs=3, batch_size=128, max_pairs_per_epoch=1024,
                    checkpoint_every_s=every_s)
    _run(toy, tmp_path / "ref", settings)
    # 1024 pairs / 128 = 8 batches per epoch: crash in the middle of the second epoch.
    with pytest.raises(Interrupted), crash_after(12):
        _run(toy, tmp_path / "crash", settings)
    assert (tmp_path / "crash" / "checkpoint.pt").exists()
    res = _run(toy, tmp_path / "crash", settings)
    # The crash hits after the 12th step, before that batch's checkpoint.
    assert res["resumed"] == ((1, 0) if every_s else (1, 3))
    ref = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)
    got = torch.load(tmp_path / "crash" / "model.pt", weights_only=True)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    for part in ("train", "val", "test"):
        with np.load(tmp_path / "ref" / f"probs_{part}.npz") as a, \
                np.load(tmp_path / "crash" / f"probs_{part}.npz") as b:
            assert np.array_equal(a["probs"], b["probs"])
    strip = lambda p: [line.rsplit(",", 1)[0] for line in p.read_text().splitlines()]  # noqa: E731
    assert strip(tmp_path / "ref" / "metrics.csv") == strip(tmp_path / "crash" / "metrics.csv")


def _cli(toy: dict, outdir: Path, settings: dict, lag: str = "1.0") -> list[str]:
    """The command line train.smk runs, for one toy GDyNet."""
    args = ["gdyn", "train", "gdynet", str(outdir), "--n-states", "2", "--lag-ps", lag]
    for part in ("train", "val", "test"):
        args += [f"--{part}", *map(str, toy["parts"][part])]
        args += [f"--{part}-graphs", *map(str, toy["graphs"][part])]
    return [*args, "--settings", json.dumps(settings), "--threads", "1"]


@pytest.mark.slow  # two `gdyn train` processes, ~13 s; resume itself: test_resume_after_crash_*
def test_sigkill_then_rerun_equals_uninterrupted(toy: dict, tmp_path: Path) -> None:
    """A real crash: SIGKILL the CLI mid-epoch, run it again, get the same model."""
    settings = dict(FAST, epochs=4, checkpoint_every_s=0.0)
    _run(toy, tmp_path / "ref", settings)
    crash = tmp_path / "crash"
    proc = subprocess.Popen(_cli(toy, crash, settings), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not (crash / "checkpoint.pt").exists():
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "finished before it could be killed"
    assert (crash / "checkpoint.pt").exists() and not (crash / "model.pt").exists()
    rerun = subprocess.run(_cli(toy, crash, settings), capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from" in rerun.stderr
    ref = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)
    got = torch.load(crash / "model.pt", weights_only=True)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_checkpoint_of_other_settings_is_ignored(toy: dict, tmp_path: Path,
                                                 crash_after) -> None:
    settings = dict(FAST, epochs=2, max_pairs_per_epoch=1024)
    with pytest.raises(Interrupted), crash_after(20):
        _run(toy, tmp_path, settings)
    res = _run(toy, tmp_path, dict(settings, learning_rate=0.02))
    assert res["resumed"] is None


@pytest.mark.slow  # two CLI processes, ~11 s on 2 cores: CI runs it (README pytest under 3 min)
def test_cli_trains_and_rejects_bad_input(toy: dict, tmp_path: Path) -> None:
    def cmd(lag: str = "1.0") -> subprocess.CompletedProcess:
        settings = dict(FAST, epochs=1, max_pairs_per_epoch=256, lags_ps=[1], models={})
        return subprocess.run(_cli(toy, tmp_path / "m", settings, lag), capture_output=True,
                              text=True, timeout=300)

    ok = cmd()
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "m" / "probs_test.npz").exists()
    bad = cmd(lag="0.15")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("gdyn train: error: lag 0.15 ps")


def test_graph_store_must_match_its_piece(toy: dict, tmp_path: Path) -> None:
    graphs = dict(toy["graphs"], val=toy["graphs"]["train"])
    with pytest.raises(InputError, match="--val-graphs: expected a graph store named 'li001'"):
        prepare("gdynet", 2, "1ps", toy["parts"], graphs, TrainSettings.from_mapping({}))


def test_training_reads_strided_compact_stores_and_refuses_other_grids(
    toy: dict, tmp_path: Path
) -> None:
    """Stores built by `gdyn graphs --frame-stride 5` (uint16 distances) serve training
    strides that are multiples of 5, decode to the seeded search within half a step, and
    any other grid, or another piece's store, is refused naming the store."""
    graphs: dict[str, list[Path]] = {part: [] for part in toy["parts"]}
    for part, paths in toy["parts"].items():
        for p in paths:
            out = tmp_path / part / p.stem
            build_store(load_trajectory(p), out, 12, n_conv=3, progress=False, frame_stride=5)
            graphs[part].append(out)
    problem = prepare("gdynet", 2, "1ps", toy["parts"], graphs,
                         TrainSettings.from_mapping({"frame_stride": 10}))
    piece = problem.parts["test"][0]
    assert piece.frame_offset == 1500 and piece.graphs.meta["frame_stride"] == 5
    frames = piece.grid_frames()[:6]
    index, dist = piece.graphs.take(frames)
    for k, f in enumerate(frames):
        ref_i, ref_d = nearest_neighbours(piece.coords[f], piece.lattices[f], 12,
                                          tie_seed=1500 + int(f))
        np.testing.assert_array_equal(index[k], ref_i)
        assert np.abs(dist[k] - ref_d).max() <= 2.0**-13
    with pytest.raises(InputError, match=r"li000/meta.json: key 'frame_stride': expected a divisor of "
                       r"the training frame_stride 2 .* got 5"):
        prepare("gdynet", 2, "1ps", toy["parts"], graphs,
                   TrainSettings.from_mapping({"frame_stride": 2}))
    swapped = dict(graphs, test=[graphs["train"][0], graphs["test"][1]])
    with pytest.raises(InputError, match=r"meta.json: key 'frame_offset': expected 1500"):
        prepare("gdynet", 2, "1ps", toy["parts"], swapped,
                   TrainSettings.from_mapping({"frame_stride": 10}))


def test_graphs_in_memory_equal_a_strided_pruned_store(tmp_path: Path) -> None:
    """The API's graphs of a stride grid (GDyNet.fit) are the store `gdyn graphs
    --frame-stride` writes: the same rows (receptive field over the grid frames only), ids
    and decoded distances."""
    rng = np.random.default_rng(4)
    n_frames, n_atoms, offset, stride = 30, 60, 3, 4
    lat = np.eye(3) * 10.0
    coords = (rng.random((n_atoms, 3)) + rng.normal(0, 0.02, (n_frames, n_atoms, 3)).cumsum(0)) @ lat
    piece = tmp_path / "piece.npz"
    np.savez(piece, traj_coords=coords, lattices=np.repeat(lat[None], n_frames, axis=0),
             atom_types=np.full(n_atoms, 8), target_index=np.array([5]),
             frame_offset=np.int64(offset), frame_interval_ps=np.float64(0.1))
    traj = load_trajectory(piece)
    build_store(traj, tmp_path / "s", 6, n_conv=2, progress=False, frame_stride=stride)
    store = open_graphs(tmp_path / "s")
    grid = np.arange((-offset) % stride, n_frames, stride)
    mem = graphs_in_memory(traj, grid, 6, 2, offset, "piece")
    np.testing.assert_array_equal(store.frames, grid)
    np.testing.assert_array_equal(mem.rows, store.rows)
    assert len(mem.rows) < n_atoms  # pruning drops rows here
    for got, ref in zip(mem.take(grid), store.take(grid), strict=True):
        np.testing.assert_array_equal(got, ref)
