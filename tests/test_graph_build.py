"""Graph stores: chunked builds, pruning to the K - 1 hop rows, seeded ties per raw frame,
the `gdyn graphs` CLI; checked against nearest_neighbours and brute force over images."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from _graph_reference import (
    OCT_FRAC,
    TOY_A,
    brute_force,
    hop_reach,
    make_trajectory,
    save_split,
    toy_coords,
)

import gdyn.cli.graphs as cli_graphs
import gdyn.graph.search as graph_search
import gdyn.graph.store as graph_store
from gdyn.cli import main
from gdyn.graph import build_store, open_store
from gdyn.graph.search import nearest_neighbours
from gdyn.trajectory import load_trajectory


@pytest.mark.parametrize("distances", ["float32", "uint16"])
@pytest.mark.parametrize("threads", [1, 2])
def test_store_round_trip_in_chunks(tmp_path, monkeypatch, threads, search_path, distances):
    rng = np.random.default_rng(21)
    coords, lattices = make_trajectory(rng, 9, 24, "triclinic", 7.0)
    path = tmp_path / "piece.npz"
    save_split(path, coords, lattices, [0, 5], source=np.array("traj7"), frame_offset=np.array(40))
    # Force several chunks so chunk boundaries and buffer reuse are exercised.
    monkeypatch.setattr(graph_store, "CHUNK_BYTES", 24 * 12 * 8 * 2)
    meta = build_store(
        load_trajectory(path), tmp_path / "store", 12, threads=threads, progress=False,
        distances=distances,
    )
    store = open_store(tmp_path / "store")
    assert isinstance(store.index, np.memmap) and store.index.shape == (9, 24, 12)
    # Format 2: ids in the narrowest exact type (24 atoms: uint16).
    assert store.index.dtype == np.uint16
    assert store.distance.dtype == (np.float32 if distances == "float32" else np.uint16)
    np.testing.assert_array_equal(store.rows, np.arange(24))
    np.testing.assert_array_equal(store.frames, np.arange(9))
    half_step = 2.0**-13  # the uint16 encoding's bound (2^-12 A steps below 16 A)
    for f in range(9):
        ref_index, ref_dist = brute_force(coords[f], lattices[f], 12)
        np.testing.assert_array_equal(store.index[f], ref_index)
        index, dist = store.read([f])
        np.testing.assert_array_equal(index[0], ref_index)
        if distances == "float32":
            np.testing.assert_array_equal(store.distance[f], ref_dist)
            np.testing.assert_array_equal(dist[0], ref_dist)
        else:
            assert np.abs(dist[0] - ref_dist).max() <= half_step
            np.testing.assert_array_equal(dist[0], np.float32(2.0**-12) * store.distance[f])
    on_disk = json.loads((tmp_path / "store" / "meta.json").read_text())
    assert on_disk == meta
    assert meta["n_frames"] == 9 and meta["n_atoms"] == 24 and meta["n_neighbors"] == 12
    assert meta["pruned"] is False and meta["n_conv"] is None
    assert meta["source"] == "traj7" and meta["frame_offset"] == 40
    assert meta["format_version"] == 2 and meta["distance_encoding"] == distances
    assert meta["n_piece_frames"] == 9 and meta["frame_stride"] == 1
    assert meta["frame_start"] == 0 and meta["index_dtype"] == "uint16"
    exact = np.stack([brute_force(coords[f], lattices[f], 12)[1] for f in range(9)])
    assert meta["max_neighbor_distance_A"] == pytest.approx(float(exact[:, :, -1].max()))
    decoded = store.read(np.arange(9))[1]
    assert meta["distance_max_error_A"] == float(np.abs(decoded - exact).max())
    assert meta["distance_max_error_A"] <= (0.0 if distances == "float32" else half_step)
    assert not list(tmp_path.glob(".store.*"))  # no temporary directory left behind


@pytest.mark.parametrize(("n_conv", "targets"), [(1, [3]), (2, [0, 7]), (3, [[4, 9]])])
def test_pruned_rows_hold_every_atom_within_k_minus_1_hops(tmp_path, n_conv, targets, search_path):
    rng = np.random.default_rng(31 + n_conv)
    coords, lattices = make_trajectory(rng, 6, 70, "orthogonal", 11.0)
    path = tmp_path / "piece.npz"
    save_split(path, coords, lattices, targets)
    m = 6
    build_store(
        load_trajectory(path), tmp_path / "store", m, n_conv=n_conv, threads=2, progress=False,
        distances="float32",
    )
    store = open_store(tmp_path / "store")
    union: set[int] = set()
    for f in range(6):
        ref_index, ref_dist = brute_force(coords[f], lattices[f], m)
        union |= hop_reach(ref_index, np.ravel(targets), n_conv - 1)
        np.testing.assert_array_equal(store.index[f], ref_index[store.rows])
        np.testing.assert_array_equal(store.distance[f], ref_dist[store.rows])
    # Exactly the union over frames: nothing needed is missing, nothing extra is kept.
    assert store.rows.tolist() == sorted(union)
    assert store.meta["pruned"] is True and store.meta["n_conv"] == n_conv
    assert store.meta["n_rows"] == len(union)
    if n_conv < 3:
        assert len(union) < 70  # pruning really drops rows here


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("chunk_frames", "block"), [(1, 64), (7, 3), (10**4, 64)])
def test_store_seeds_ties_with_the_raw_frame_index(
    tmp_path, monkeypatch, threads, chunk_frames, block, search_path
):
    """A toy trajectory (Li random walk, S frozen on their sites): frame f of the store is
    nearest_neighbours with tie_seed = frame_offset + f, whatever the chunks and threads."""
    rng = np.random.default_rng(81)
    n_frames, offset = 40, 1000
    li = TOY_A * OCT_FRAC[0] + rng.normal(0, 0.6, (n_frames, 3)).cumsum(axis=0)
    coords = toy_coords(li)
    lattices = np.repeat(np.eye(3)[None] * TOY_A, n_frames, axis=0)
    piece = tmp_path / "piece.npz"
    save_split(piece, coords, lattices, [0], frame_offset=np.array(offset))
    frame_bytes = 5 * 24 + 2 * 5 * 12 * 4
    monkeypatch.setattr(graph_store, "CHUNK_BYTES", chunk_frames * frame_bytes)
    monkeypatch.setattr(graph_store, "PROGRESS_BLOCK", block)
    if block == 3:
        monkeypatch.setattr(graph_search, "SMALL_BATCH_BYTES", 1)  # image path: one frame per batch
    meta = build_store(load_trajectory(piece), tmp_path / "s", 12, threads=threads, progress=False,
                       distances="float32")
    assert meta["tie_seed"] == "raw_frame_index"
    store = open_store(tmp_path / "s")
    lat = lattices[0]
    differs_from_ids = differs_from_local = 0
    for f in range(n_frames):
        index, dist = nearest_neighbours(coords[f], lat, 12, tie_seed=offset + f)
        np.testing.assert_array_equal(store.index[f], index)
        np.testing.assert_array_equal(store.distance[f], dist)
        differs_from_ids += not np.array_equal(index, nearest_neighbours(coords[f], lat, 12)[0])
        local = nearest_neighbours(coords[f], lat, 12, tie_seed=f)[0]
        differs_from_local += not np.array_equal(index, local)
    assert differs_from_ids > n_frames // 2 and differs_from_local > n_frames // 2
    # Through the CLI (pruned: K = 2 keeps the Li and its neighbours, here every atom).
    out = tmp_path / "cli"
    args = ["graphs", str(piece), str(out), "--n-neighbors", "12", "--n-conv", "2", "--quiet"]
    assert main([*args, "--threads", str(threads)]) == 0
    np.testing.assert_array_equal(open_store(out).index, store.index)


def test_after_block_runs_after_every_block_and_the_cli_trims_the_heap(tmp_path, monkeypatch):
    """The library's per-block hook (pruning pass and build), which ``gdyn graphs`` uses
    for its process-wide heap trim; the store does not depend on it."""
    rng = np.random.default_rng(61)
    coords, lattices = make_trajectory(rng, 10, 30, "orthogonal", 8.0)
    piece = tmp_path / "piece.npz"
    save_split(piece, coords, lattices, [0])
    monkeypatch.setattr(graph_store, "PROGRESS_BLOCK", 3)
    calls: list[int] = []
    traj = load_trajectory(piece)
    build_store(
        traj, tmp_path / "a", 6, n_conv=2, progress=False, after_block=lambda: calls.append(1)
    )
    assert len(calls) == 2 * 4  # ceil(10 / 3) blocks, in the pruning pass and the build
    build_store(traj, tmp_path / "b", 6, n_conv=2, progress=False)
    for name in ("index.npy", "distance.npy", "rows.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    trims: list[int] = []
    monkeypatch.setattr(cli_graphs, "_trim_heap", lambda: trims.append(1))
    args = ["graphs", str(piece), str(tmp_path / "c"), "--n-neighbors", "6", "--all-rows"]
    assert main([*args, "--quiet"]) == 0
    assert len(trims) == 4


def test_pruning_follows_the_seeded_tie_choice(tmp_path, search_path):
    """Simple cubic lattice, spacing 2 A: 6 neighbours tie at 2 A and M = 3 keeps 3, so
    which atoms are within K - 1 hops depends on the seeded choice in every frame. The
    pruned rows must be exactly the union over frames of the seeded graphs' hops."""
    g = np.arange(4) * 2.0
    base = np.array(list(itertools.product(g, g, g)))
    n_frames, offset, m, n_conv = 5, 17, 3, 3
    coords = np.repeat(base[None], n_frames, axis=0)
    coords[:, 21] += np.random.default_rng(91).normal(0, 0.3, (n_frames, 3))  # one mover
    lattices = np.repeat(np.eye(3)[None] * 8.0, n_frames, axis=0)
    piece = tmp_path / "piece.npz"
    save_split(piece, coords, lattices, [0], frame_offset=np.array(offset))
    build_store(load_trajectory(piece), tmp_path / "s", m, n_conv=n_conv, threads=2, progress=False,
                distances="float32")
    store = open_store(tmp_path / "s")
    union: set[int] = set()
    union_ids: set[int] = set()
    for f in range(n_frames):
        full_i, full_d = nearest_neighbours(coords[f], lattices[f], m, tie_seed=offset + f)
        union |= hop_reach(full_i, np.array([0]), n_conv - 1)
        union_ids |= hop_reach(nearest_neighbours(coords[f], lattices[f], m)[0], [0], n_conv - 1)
        np.testing.assert_array_equal(store.index[f], full_i[store.rows])
        np.testing.assert_array_equal(store.distance[f], full_d[store.rows])
    assert store.rows.tolist() == sorted(union)
    assert len(union) < 64 and union != union_ids  # pruning drops rows; the choice matters


def test_cli_builds_store_and_all_rows(tmp_path):
    rng = np.random.default_rng(41)
    coords, lattices = make_trajectory(rng, 4, 5, "orthogonal", 6.5)
    path = tmp_path / "piece.npz"
    save_split(path, coords, lattices, [0])
    out = tmp_path / "g"
    assert (
        main(
            [
                "graphs",
                str(path),
                str(out),
                "--n-neighbors",
                "12",
                "--all-rows",
                "--threads",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    store = open_store(out)
    assert store.index.shape == (4, 5, 12)
    ref_index, _ = brute_force(coords[3], lattices[3], 12)
    np.testing.assert_array_equal(store.index[3], ref_index)
    # Re-running replaces the store atomically.
    assert (
        main(["graphs", str(path), str(out), "--n-neighbors", "3", "--n-conv", "1", "--quiet"]) == 0
    )
    assert open_store(out).index.shape == (4, 1, 3)


@pytest.mark.parametrize(
    ("case", "message"),
    [("nan", "frame 2 has NaN"), ("flat", "frame 3: expected a non-degenerate cell")],
)
def test_cli_rejects_bad_frames_without_output(tmp_path, capsys, case, message):
    rng = np.random.default_rng(51)
    coords, lattices = make_trajectory(rng, 4, 6, "orthogonal", 6.0)
    if case == "nan":
        coords[2, 1, 0] = np.nan
    else:
        lattices[3, 2] = lattices[3, 0] + lattices[3, 1]  # coplanar vectors
    path = tmp_path / "bad.npz"
    save_split(path, coords, lattices, [0])
    out = tmp_path / "g"
    assert main(["graphs", str(path), str(out), "--n-neighbors", "4", "--all-rows", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.npz" in err
    assert not out.exists() and not list(tmp_path.glob(".g.*"))

