"""Graphs built on the fly (graph.store: false) equal the graph store, batch for batch.

Two data shapes: a PEO-like liquid of seven elements in a triclinic cell with sparse
Li targets (cell lists, receptive-field pruning keeps a subset of atoms), and the toy
cell with its S frozen on exact lattice sites (the image brute force, with exact ties at
the M-th neighbour that the raw-frame seed decides). Stores come from the real
``gdyn.graph.build_store``; on-the-fly graphs from :mod:`gdyn.train.onthefly`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gdyn import train as gt
from gdyn.cli import main
from gdyn.errors import InputError
from gdyn.graph import build_store
from gdyn.graph.search import nearest_neighbours
from gdyn.train import batches as gb
from gdyn.train import data as gd
from gdyn.train import loop as gl
from gdyn.train.onthefly import OnTheFlyGraphs, as_stored, on_the_fly, survey
from gdyn.train.settings import TrainSettings
from gdyn.trajectory import load_trajectory

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("train", "val", "test")
# PEO/LiTFSI-like composition (C, H, O, Li, N, S, F), scaled down: 348 atoms, 9 Li.
ELEMENTS = np.tile([6] * 24 + [1] * 48 + [8] * 14 + [3] * 3 + [7] * 3 + [16] * 6 + [9] * 18, 3)
TARGETS = np.flatnonzero(ELEMENTS == 3)[:2]  # sparse targets: pruning keeps a subset


def _liquid(n_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A diffusing 348-atom liquid in a triclinic cell: coords (F, N, 3), lattices (F, 3, 3)."""
    rng = np.random.default_rng(seed)
    lattice = np.array([[17.0, 0.0, 0.0], [2.0, 16.5, 0.0], [-1.5, 1.0, 17.5]])
    frac = rng.random((len(ELEMENTS), 3))
    steps = rng.normal(0.0, 0.25, size=(n_frames, len(ELEMENTS), 3))
    coords = (frac @ lattice)[None] + np.cumsum(steps, axis=0)
    return coords, np.broadcast_to(lattice, (n_frames, 3, 3)).copy()


def _toy(n_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The toy cell: a wandering Li, the 4 S exactly on their FCC sites (ties at the cut)."""
    rng = np.random.default_rng(seed)
    a = 6.5
    s_sites = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a
    li = np.cumsum(rng.normal(0.0, 0.4, size=(n_frames, 3)), axis=0) + a / 2
    coords = np.concatenate([li[:, None], np.broadcast_to(s_sites, (n_frames, 4, 3))], axis=1)
    return coords, np.broadcast_to(np.eye(3) * a, (n_frames, 3, 3)).copy()


def _write_piece(path: Path, coords: np.ndarray, lattices: np.ndarray, types: np.ndarray,
                 targets: np.ndarray, offset: int, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, traj_coords=coords.astype(np.float32), lattices=lattices.astype(np.float32),
             atom_types=types, target_index=targets, frame_interval_ps=np.float64(0.1),
             frame_offset=np.int64(offset), source=np.str_(source))
    return path


def _dataset(root: Path, kind: str, m: int, stride: int = 1) -> dict:
    """Two trajectories split into train/val/test pieces, each with its pruned store (of
    the raw frames that are multiples of ``stride``, as the graphs rule builds it)."""
    out: dict = {"paths": {p: [] for p in PARTS}, "stores": {p: [] for p in PARTS}, "m": m}
    for t in range(2):
        name = f"traj{t}"
        if kind == "liquid":
            coords, lattices = _liquid(90, seed=t)
            types, targets = ELEMENTS, TARGETS
        else:
            coords, lattices = _toy(600, seed=t)
            types, targets = np.array([3, 16, 16, 16, 16]), np.array([0])
        f = len(coords)
        windows = {"train": (0, f // 2), "val": (f // 2, 3 * f // 4), "test": (3 * f // 4, f)}
        for part, (lo, hi) in windows.items():
            path = _write_piece(root / "split" / part / f"{name}.npz", coords[lo:hi],
                                lattices[lo:hi], types, targets, lo, name)
            store = root / "graphs" / part / name
            build_store(load_trajectory(path), store, m, n_conv=3, progress=False,
                        frame_stride=stride)
            out["paths"][part].append(path)
            out["stores"][part].append(store)
    return out


@pytest.fixture(scope="module", params=["liquid", "toy"])
def dataset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    m = 8 if request.param == "liquid" else 12
    return _dataset(tmp_path_factory.mktemp(request.param), request.param, m)


def _problem(data: dict, live: bool, stride: int = 1, cache_mb: float = 0) -> gl.Problem:
    settings = TrainSettings.from_mapping({"frame_stride": stride})
    graph = ({"n_neighbors": data["m"], "prune": True, "store": False, "cache_mb": cache_mb}
             if live else None)
    return gl.prepare("gdynet", 2, 0.2 * stride, data["paths"],
                      {} if live else data["stores"], settings, graph)


@pytest.mark.parametrize("cache_mb", [0, 100], ids=["per-batch", "kept"])
def test_on_the_fly_batches_equal_the_store(dataset: dict, cache_mb: float) -> None:
    stored, live = _problem(dataset, live=False), _problem(dataset, live=True, cache_mb=cache_mb)
    kept = [p.graphs.nbytes > 0 for ps in live.parts.values() for p in ps]
    assert all(kept) if cache_mb else not any(kept)
    assert live.dims == stored.dims  # the Gaussian grid: same largest M-th distance
    rng = np.random.default_rng(0)
    for part in PARTS:
        for p_live, p_store in zip(live.parts[part], stored.parts[part], strict=True):
            assert isinstance(p_live.graphs, OnTheFlyGraphs)
            np.testing.assert_array_equal(p_live.graphs.rows, p_store.graphs.rows)
            np.testing.assert_array_equal(p_live.target_rows, p_store.target_rows)
            if part == "train":
                assert (p_live.graphs.meta["max_neighbor_distance_A"]
                        == p_store.graphs.meta["max_neighbor_distance_A"])
        n = len(live.parts[part])
        piece_ids = rng.integers(0, n, 40)
        frames = np.array([rng.integers(0, live.parts[part][i].n_frames) for i in piece_ids])
        a = live.batch(part, piece_ids, frames)
        b = stored.batch(part, piece_ids, frames)
        for key in ("atom_types", "row_types", "nbr", "dist", "targets"):
            assert torch.equal(getattr(a, key), getattr(b, key)), key
        assert (a.rows is None) == (b.rows is None)
        if a.rows is not None:
            assert torch.equal(a.rows, b.rows)
    if dataset["m"] == 8:  # the liquid's sparse Li targets: pruning drops atoms
        assert len(live.parts["train"][0].graphs.rows) < live.parts["train"][0].n_atoms


def _assert_store_and_live_train_alike(tmp_path: Path, lag_ps: float, data: dict,
                                       settings: dict, graph: dict) -> None:
    """Training from the stores and with ``graph`` on the fly gives bit-identical weights
    and probabilities of every part (models in tmp_path/store and tmp_path/live)."""
    a = gt.train("gdynet", tmp_path / "store", 2, lag_ps, data["paths"], data["stores"],
                 settings, progress=False)
    b = gt.train("gdynet", tmp_path / "live", 2, lag_ps, data["paths"], None, settings,
                 progress=False, graph=graph)
    wa, wb = a["model"].state_dict(), b["model"].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    for part in PARTS:
        x = np.load(tmp_path / "store" / f"probs_{part}.npz")
        y = np.load(tmp_path / "live" / f"probs_{part}.npz")
        assert all(np.array_equal(x[k], y[k]) for k in x.files)


def test_training_on_the_fly_equals_the_store(dataset: dict, tmp_path: Path) -> None:
    """Every seed of the job, the kept one, its alignment and probabilities agree."""
    settings = {"batch_size": 16, "epochs": 2, "max_pairs_per_epoch": 96, "seeds": [1, 2],
                "learning_rate": 0.005, "n_conv": 3, "all_seeds_dead": "keep"}
    graph = {"n_neighbors": dataset["m"], "prune": True, "store": False, "cache_mb": 0}
    _assert_store_and_live_train_alike(tmp_path, 0.2, dataset, settings, graph)
    ca = json.loads((tmp_path / "store" / "config.json").read_text())
    cb = json.loads((tmp_path / "live" / "config.json").read_text())
    assert ca["dims"] == cb["dims"]
    for key in ("seed", "seeds", "dead_seeds", "alignment", "best_val_vamp2", "test_vamp2"):
        assert ca[key] == cb[key], key
    assert [r["seed"] for r in cb["seeds"]] == [1, 2]
    ma, mb = (pd.read_csv(tmp_path / d / "metrics.csv").drop(columns="seconds")
              for d in ("store", "live"))
    pd.testing.assert_frame_equal(ma, mb)
    assert sorted(set(mb["seed"])) == [1, 2]


def test_stride_grid_store_and_on_the_fly_agree(tmp_path: Path) -> None:
    """Stores of the stride grid (``gdyn graphs --frame-stride s``) and graphs built on the
    fly with ``frame_stride`` s give the same rows, Gaussian grid, batches and weights."""
    stride = 3
    data = _dataset(tmp_path / "data", "liquid", 6, stride=stride)
    stored, live = (_problem(data, live=x, stride=stride) for x in (False, True))
    assert live.dims == stored.dims
    rng = np.random.default_rng(1)
    for part in PARTS:
        for p_live, p_store in zip(live.parts[part], stored.parts[part], strict=True):
            assert p_store.graphs.meta["frame_stride"] == stride
            np.testing.assert_array_equal(p_live.graphs.rows, p_store.graphs.rows)
        piece_ids = rng.integers(0, len(live.parts[part]), 24)
        frames = np.array([rng.choice(live.parts[part][i].grid_frames()) for i in piece_ids])
        a, b = live.batch(part, piece_ids, frames), stored.batch(part, piece_ids, frames)
        for key in ("atom_types", "row_types", "nbr", "dist", "targets"):
            assert torch.equal(getattr(a, key), getattr(b, key)), key
    settings = {"batch_size": 8, "epochs": 1, "max_pairs_per_epoch": 32, "seed": 3,
                "frame_stride": stride, "n_conv": 3, "all_seeds_dead": "keep"}
    graph = {"n_neighbors": 6, "store": False, "cache_mb": 0}
    _assert_store_and_live_train_alike(tmp_path, 0.6, data, settings, graph)


def test_stride_grid_surveys_the_grid_frames_only(tmp_path: Path) -> None:
    """With frame_stride s, rows and the largest distance come from the grid frames (raw
    frame a multiple of s) and each searched frame equals the brute-force reference."""
    data = _dataset(tmp_path, "liquid", 6)
    stride = 3
    problem = _problem(data, live=True, stride=stride)
    kept_problem = _problem(data, live=True, stride=stride, cache_mb=100)
    for part in PARTS:
        for p in problem.parts[part]:
            grid = p.grid_frames()
            assert ((p.frame_offset + grid) % stride == 0).all()
            coords = np.asarray(p.coords, dtype=np.float64)
            lattices = np.asarray(p.lattices, dtype=np.float64)
            targets = np.unique(p.target_sets)
            reach = np.zeros(p.n_atoms, dtype=bool)
            worst = {}
            for f in grid:
                index, dist = nearest_neighbours(coords[f], lattices[f], 6,
                                                 tie_seed=p.frame_offset + f)
                front = targets
                hit = np.zeros(p.n_atoms, dtype=bool)
                hit[front] = True
                for _ in range(2):
                    new = np.unique(index[front])
                    front = new[~hit[new]]
                    hit[front] = True
                reach |= hit
                worst[f] = dist[:, -1]
            np.testing.assert_array_equal(p.graphs.rows, np.flatnonzero(reach))
            if part == "train":
                want = max(float(worst[f][p.graphs.rows].max()) for f in grid)
                assert p.graphs.meta["max_neighbor_distance_A"] == want
            index, dist = p.graphs.take(grid[:4])
            kept = kept_problem.parts[part][problem.parts[part].index(p)].graphs
            assert kept.nbytes > 0
            np.testing.assert_array_equal(kept.take(grid[:4])[0], index)
            np.testing.assert_array_equal(kept.take(grid[:4])[1], dist)
            for k, f in enumerate(grid[:4]):
                ref_i, ref_d = nearest_neighbours(coords[f], lattices[f], 6, rows=p.graphs.rows,
                                                  tie_seed=p.frame_offset + f)
                np.testing.assert_array_equal(index[k], ref_i)
                # the distances a uint16 store gives back (within 2^-13 A of the exact ones)
                np.testing.assert_array_equal(dist[k], as_stored(ref_d[None])[0])
                assert np.abs(dist[k] - ref_d).max() <= 2.0**-13


def test_unpruned_rows_are_every_atom(tmp_path: Path) -> None:
    data = _dataset(tmp_path, "liquid", 6)
    settings = TrainSettings.from_mapping({})
    problem = gl.prepare("gdynet", 2, 0.2, data["paths"], {}, settings,
                         {"n_neighbors": 6, "prune": False, "store": False})
    p = problem.parts["train"][0]
    np.testing.assert_array_equal(p.graphs.rows, np.arange(p.n_atoms))
    assert p.identity_rows
    rows, dmax, kept = survey(p, 6, None, need_distance=False)
    assert dmax is None and kept is None and len(rows) == p.n_atoms


def test_bad_frame_is_named(tmp_path: Path) -> None:
    coords, lattices = _liquid(20, seed=5)
    coords[13, 7] = np.nan
    path = _write_piece(tmp_path / "bad.npz", coords, lattices, ELEMENTS, TARGETS, 100, "bad")
    piece = gd.load_piece(path, None, 3)
    gd.set_grid([piece], 1)
    with pytest.raises(InputError, match=r"bad\.npz: key 'traj_coords'.*frame 13"):
        on_the_fly([piece], 6, 3)(piece)


def test_ahead_equals_a_plain_loop() -> None:
    calls = []

    def make(i: int) -> int:
        calls.append(i)
        return i * i

    assert list(gl.ahead(make, range(3, 9))) == [(i, i * i) for i in range(3, 9)]
    assert sorted(calls) == list(range(3, 9))
    assert list(gl.ahead(make, range(0))) == []

    def boom(i: int) -> int:
        if i == 2:
            raise ValueError("batch 2")
        return i

    with pytest.raises(ValueError, match="batch 2"):
        list(gl.ahead(boom, range(5)))


def test_vampnet_inputs_from_the_grid_cache_equal_direct(tmp_path: Path) -> None:
    data = _dataset(tmp_path, "liquid", 6)
    piece = gd.load_piece(data["paths"]["test"][1], None, 3)
    gd.set_grid([piece], 3)
    frames = np.array([piece.grid_frames()[2], 1, 2, piece.grid_frames()[0]])  # on and off grid
    got = gb.vampnet_batch([piece], np.zeros(len(frames), dtype=np.int64), frames)
    assert piece.positions is not None
    want = gb.fractional_targets(piece, frames)
    assert np.array_equal(got.numpy(), want)
    on_grid = piece.grid_frames()[[3, 1]]
    got = gb.vampnet_batch([piece], np.zeros(2, dtype=np.int64), on_grid)
    assert np.array_equal(got.numpy(), gb.fractional_targets(piece, on_grid))


def test_cli_trains_without_stores(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _dataset(tmp_path, "toy", 12)
    args = ["train", "gdynet", str(tmp_path / "out"), "--n-states", "2", "--lag-ps", "0.2"]
    for part in PARTS:
        args += [f"--{part}", *map(str, data["paths"][part])]
    # One short epoch learns nothing: keep the (dead) model, as tests/e2e/tiny.yaml does.
    settings = json.dumps({"batch_size": 16, "epochs": 1, "max_pairs_per_epoch": 64,
                           "all_seeds_dead": "keep"})
    args += ["--settings", settings]
    assert main(args) == 2  # neither stores nor store: false
    assert "--train-graphs: expected graph stores for gdynet" in capsys.readouterr().err
    code = "import sys; from gdyn.cli import main; sys.exit(main(sys.argv[1:]))"
    ok = subprocess.run([sys.executable, "-c", code, *args, "--graph",
                         json.dumps({"n_neighbors": 12, "store": False})],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "out" / "probs_test.npz").is_file()
