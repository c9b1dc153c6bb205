"""The graph store (format 2): only the stride grid's frames, compact encoding, old stores,
and the compiled cell-list search against the image brute force on large tied crystals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _graph_reference import TOY_A, hop_reach, make_trajectory, save_split, toy_coords

import gdyn.graph.search as graph_search
from gdyn.cli import main
from gdyn.errors import InputError
from gdyn.graph import (
    NeighbourSearch,
    build_store,
    decode_distance,
    encode_distance,
    frame_grid,
    open_store,
)
from gdyn.graph.search import nearest_neighbours
from gdyn.trajectory import load_trajectory

HALF_STEP = 2.0**-13  # bound of the uint16 encoding below 16 A (steps of 2^-12 A)


def toy_piece(tmp_path: Path, n_frames: int, offset: int) -> tuple[Path, np.ndarray, np.ndarray]:
    """The toy cell with the S frozen on their sites (ties at the cut) and a moving Li."""
    rng = np.random.default_rng(5)
    li = TOY_A * 0.5 + rng.normal(0, 0.5, (n_frames, 3)).cumsum(axis=0)
    coords = toy_coords(li)
    lattices = np.repeat(np.eye(3)[None] * TOY_A, n_frames, axis=0)
    piece = tmp_path / "piece.npz"
    save_split(piece, coords, lattices, [0], frame_offset=np.array(offset))
    return piece, coords, lattices


@pytest.mark.parametrize("distances", ["float32", "uint16"])
@pytest.mark.parametrize("stride", [1, 3, 7])
def test_strided_store_holds_exactly_the_grid_frames(tmp_path, stride, distances):
    """Frames whose raw index is a multiple of the stride, each equal to the stride-1
    store's frame (same seeded tie choice), nothing else."""
    offset, n_frames = 1001, 40
    piece, coords, lattices = toy_piece(tmp_path, n_frames, offset)
    traj = load_trajectory(piece)
    build_store(traj, tmp_path / "full", 12, progress=False, distances="float32")
    full = open_store(tmp_path / "full")
    meta = build_store(traj, tmp_path / "s", 12, progress=False, frame_stride=stride,
                       distances=distances)
    store = open_store(tmp_path / "s")
    grid = np.array([f for f in range(n_frames) if (offset + f) % stride == 0])
    np.testing.assert_array_equal(store.frames, grid)
    np.testing.assert_array_equal(frame_grid(n_frames, offset, stride), grid)
    assert store.index.shape == (len(grid), 5, 12)
    assert meta["n_frames"] == len(grid) and meta["n_piece_frames"] == n_frames
    assert meta["frame_start"] == grid[0] and meta["frame_stride"] == stride
    index, dist = store.read(grid)
    ref_index, ref_dist = full.read(grid)
    np.testing.assert_array_equal(index, ref_index)
    if distances == "float32":
        np.testing.assert_array_equal(dist, ref_dist)
    else:
        assert np.abs(dist - ref_dist).max() <= HALF_STEP
    for k, f in enumerate(grid):  # and each is the seeded single-frame search
        i, _ = nearest_neighbours(coords[f], lattices[f], 12, tie_seed=offset + int(f))
        np.testing.assert_array_equal(index[k], i)
    if stride > 1:
        with pytest.raises(ValueError, match=f"frame {grid[0] + 1} is not stored"):
            store.read([grid[0] + 1])


def test_strided_pruned_rows_follow_the_grid_frames_only(tmp_path):
    """Receptive-field rows of a strided store: the union over the grid frames' graphs."""
    rng = np.random.default_rng(8)
    coords, lattices = make_trajectory(rng, 12, 70, "orthogonal", 11.0)
    piece = tmp_path / "piece.npz"
    save_split(piece, coords, lattices, [3], frame_offset=np.array(2))
    m, n_conv, stride = 6, 2, 5
    build_store(load_trajectory(piece), tmp_path / "s", m, n_conv=n_conv, progress=False,
                frame_stride=stride)
    store = open_store(tmp_path / "s")
    np.testing.assert_array_equal(store.frames, [3, 8])
    union: set[int] = set()
    for f in store.frames:
        ref_index, _ = nearest_neighbours(coords[f], lattices[f], m, tie_seed=2 + int(f))
        union |= hop_reach(ref_index, np.array([3]), n_conv - 1)
        np.testing.assert_array_equal(store.read([f])[0][0], ref_index[store.rows])
    assert store.rows.tolist() == sorted(union)


def test_cli_frame_stride_and_distances(tmp_path, capsys):
    piece, _, _ = toy_piece(tmp_path, 30, 4)
    out = tmp_path / "g"
    args = ["graphs", str(piece), str(out), "--n-neighbors", "12", "--all-rows", "--quiet"]
    assert main([*args, "--frame-stride", "4"]) == 0
    store = open_store(out)
    np.testing.assert_array_equal(store.frames, [0, 4, 8, 12, 16, 20, 24, 28])
    assert store.meta["distance_encoding"] == "uint16" and store.distance.dtype == np.uint16
    assert "8 of 30 frames (every 4-th raw frame)" in capsys.readouterr().err
    assert main([*args, "--distances", "float32"]) == 0
    assert open_store(out).distance.dtype == np.float32 and len(open_store(out).frames) == 30
    assert main([*args, "--frame-stride", "0"]) == 2
    assert "frame_stride: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_store_shrinks_with_stride_and_encoding(tmp_path):
    """Stride 10 and the compact encoding: 1/10 of the frames at 4 of 8 bytes per edge."""
    piece, _, _ = toy_piece(tmp_path, 200, 0)
    traj = load_trajectory(piece)
    build_store(traj, tmp_path / "old", 12, progress=False, distances="float32")
    build_store(traj, tmp_path / "new", 12, progress=False, frame_stride=10)

    def data_bytes(d: Path) -> int:
        return sum(np.load(d / f, mmap_mode="r").nbytes for f in ("index.npy", "distance.npy"))

    # float32 distances with uint16 ids: 6 bytes per edge; the 2-byte ids alone halve
    # the old int32 index.
    assert data_bytes(tmp_path / "old") == 200 * 5 * 12 * 6
    assert data_bytes(tmp_path / "new") == 20 * 5 * 12 * 4


def test_encode_distance_steps_and_bound():
    rng = np.random.default_rng(3)
    d = np.sort(rng.uniform(0, 15.99, (3, 50, 20)), axis=2).astype(np.float32)
    d[1] *= 2.5  # a frame beyond 16 A: step 2^-10 (its largest distance < 64 A)
    d[2] = 0.0  # no distance at all
    codes, scale = encode_distance(d)
    np.testing.assert_array_equal(scale, np.float32([2.0**-12, 2.0**-10, 2.0**-12]))
    back = decode_distance(codes, scale)
    assert back.dtype == np.float32 and codes.dtype == np.uint16
    assert np.abs(back[0] - d[0]).max() <= 2.0**-13
    assert np.abs(back[1] - d[1]).max() <= 2.0**-11
    assert (back[2] == 0).all()
    assert (np.diff(back, axis=2) >= 0).all()  # rounding is monotone: rows stay sorted
    # codes * step is exact in float32: decoding equals the float64 product.
    np.testing.assert_array_equal(back[0], codes[0].astype(np.float64) * 2.0**-12)
    assert decode_distance(d, None) is not None and decode_distance(d, None).dtype == np.float32


def test_open_store_reads_format_1_and_refuses_newer_formats(tmp_path):
    """A store as gdyn wrote it before format 2 (every frame, int32 ids, float32)."""
    old = tmp_path / "old"
    old.mkdir()
    rng = np.random.default_rng(2)
    index = rng.integers(0, 9, (6, 9, 4)).astype(np.int32)
    dist = np.sort(rng.uniform(1, 5, (6, 9, 4)), axis=2).astype(np.float32)
    np.save(old / "index.npy", index)
    np.save(old / "distance.npy", dist)
    np.save(old / "rows.npy", np.arange(9))
    meta = {"n_frames": 6, "n_atoms": 9, "n_rows": 9, "n_neighbors": 4, "n_conv": None,
            "pruned": False, "source": "x", "frame_offset": 12, "tie_seed": "raw_frame_index"}
    (old / "meta.json").write_text(json.dumps(meta))
    store = open_store(old)
    np.testing.assert_array_equal(store.frames, np.arange(6))
    assert store.distance_scale is None
    assert store.meta["frame_stride"] == 1 and store.meta["n_piece_frames"] == 6
    i, d = store.read([1, 4])
    np.testing.assert_array_equal(i, index[[1, 4]])
    np.testing.assert_array_equal(d, dist[[1, 4]])
    (old / "meta.json").write_text(json.dumps(dict(meta, format_version=3)))
    with pytest.raises(InputError, match=r"meta.json: key 'format_version': expected 1\.\.2 .*got 3"):
        open_store(old)


def crystal(n_side: int, spacing: float, jitter: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A simple cubic crystal, a few atoms displaced: shells of exactly tied images."""
    g = np.arange(n_side) * spacing
    x = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    moved = rng.choice(len(x), size=len(x) // 10, replace=False)
    x[moved] += rng.normal(0, jitter, (len(moved), 3))
    return x, np.eye(3) * n_side * spacing


@pytest.mark.parametrize("m", [12, 20])
def test_kernel_equals_image_search_on_tied_crystals(monkeypatch, m):
    """343 atoms, most rows cut inside a shell of exactly tied images (M = 12: the 12 at
    a sqrt 2, M = 20: the 8 at a sqrt 3); seeded and unseeded, all rows and a subset: the
    compiled cell lists and the batched image brute force give the same arrays."""
    frames = [crystal(7, 2.0, 0.2, seed) for seed in range(3)]
    coords = np.stack([x for x, _ in frames])
    lattices = np.stack([lat for _, lat in frames])
    seeds = np.array([11, 12, 13])
    rows = np.array([5, 0, 342, 100, 17])
    results = {}
    for path in ("cells", "images"):
        monkeypatch.setattr(graph_search, "SMALL_WORK", 10**12 if path == "images" else 0)
        search = NeighbourSearch(m)
        results[path] = (
            search.frames(coords, lattices, None, seeds),
            search.frames(coords, lattices, None, None),
            search.frames(coords, lattices, rows, seeds),
        )
    for got, ref in zip(results["cells"], results["images"], strict=True):
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    seeded, by_id = results["cells"][0][0], results["cells"][1][0]
    assert (seeded != by_id).any(axis=2).mean() > 0.3  # ties at the cut are common here
