"""Periodic M-nearest-neighbour graphs checked against brute force over explicit images."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import gdyn.graph as G
from gdyn.cli import main
from gdyn.errors import InputError
from gdyn.graph import NeighbourSearch, build_store, nearest_neighbours, open_store
from gdyn.trajectory import load_trajectory

# --------------------------------------------------------------------------------------
# Independent reference


def cell_widths(lattice: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of the cell."""
    a, b, c = lattice
    vol = abs(np.linalg.det(lattice))
    return vol / np.linalg.norm([np.cross(b, c), np.cross(c, a), np.cross(a, b)], axis=1)


def brute_force(coords, lattice, m):
    """M nearest (float32 distance, id) of every atom over an explicit box of images.

    The image box [-R, R]^3 of wrapped coordinates holds every point within
    (R - 1) * (smallest face distance); R grows until that covers the largest M-th distance
    found, so the answer certifies itself.
    """
    lat = np.asarray(lattice, dtype=np.float64)
    x = np.asarray(coords, dtype=np.float64)
    n = len(x)
    xw = x - np.floor(x @ np.linalg.inv(lat)) @ lat
    width = cell_widths(lat).min()
    r = 1
    while n * (2 * r + 1) ** 3 - 1 < m:
        r += 1
    while True:
        shifts = np.array(list(itertools.product(range(-r, r + 1), repeat=3)), dtype=np.float64)
        zero = int(np.flatnonzero((shifts == 0).all(axis=1))[0])
        pos = xw[None, :, None, :] + (shifts @ lat)[None, None]  # (1, n, S, 3)
        d = np.sqrt(((pos - xw[:, None, None, :]) ** 2).sum(-1))  # (n, n, S)
        d[np.arange(n), np.arange(n), zero] = np.inf
        d32 = d.astype(np.float32).reshape(n, -1)
        ids = np.broadcast_to(np.arange(n)[:, None], (n, len(shifts))).reshape(-1)
        index = np.empty((n, m), dtype=np.int32)
        dist = np.empty((n, m), dtype=np.float32)
        for a in range(n):
            order = np.lexsort((ids, d32[a]))[:m]
            index[a], dist[a] = ids[order], d32[a][order]
        if (r - 1) * width >= float(dist[:, -1].max()) * (1 + 1e-9):
            return index, dist
        r += 1


def random_cell(rng, kind: str, scale: float) -> np.ndarray:
    if kind == "orthogonal":
        return np.diag(rng.uniform(0.7, 1.3, 3) * scale)
    lat = np.diag(rng.uniform(0.8, 1.2, 3) * scale)
    lat[1, 0], lat[2, 0], lat[2, 1] = rng.uniform(-0.45, 0.45, 3) * scale
    return lat


def random_frame(rng, n, kind, scale):
    """Random atoms, each moved by a random lattice vector (coordinates are not wrapped)."""
    lat = random_cell(rng, kind, scale)
    frac = rng.random((n, 3)) + rng.integers(-2, 3, (n, 3))
    return frac @ lat, lat


def hop_reach(index: np.ndarray, targets: np.ndarray, hops: int) -> set[int]:
    """Atoms within ``hops`` edges (i -> its neighbours) of a target, by plain BFS."""
    seen = set(int(t) for t in targets)
    frontier = set(seen)
    for _ in range(hops):
        frontier = {int(j) for i in frontier for j in index[i]} - seen
        seen |= frontier
    return seen


def save_split(path, coords, lattices, targets, **extras):
    np.savez(
        path,
        traj_coords=coords,
        lattices=lattices,
        atom_types=np.full(coords.shape[1], 8, dtype=np.int64),
        target_index=np.asarray(targets),
        **extras,
    )


@pytest.fixture(params=["cells", "images", "wrapper"])
def path(request, monkeypatch):
    """Run a test through vesin cell lists (called directly, or through vesin's own Python
    wrapper as with older vesin) and through the batched image brute force."""
    monkeypatch.setattr(G, "SMALL_WORK", 10**12 if request.param == "images" else 0)
    if request.param == "wrapper":
        monkeypatch.setattr(G._VesinHalfList, "create", staticmethod(G._VesinWrapper))
    return request.param


# --------------------------------------------------------------------------------------
# One frame against brute force


def test_toy_cell_gives_twelve_neighbours_with_image_distances(path):
    """The paper's toy: 5 atoms in a 6.5 A cube, M = 12 > N - 1, so images fill the rows."""
    rng = np.random.default_rng(7)
    lat = np.eye(3) * 6.5
    x = rng.random((5, 3)) * 6.5
    index, dist = nearest_neighbours(x, lat, 12)
    assert index.shape == (5, 12) and index.dtype == np.int32 and dist.dtype == np.float32
    ref_index, ref_dist = brute_force(x, lat, 12)
    np.testing.assert_array_equal(index, ref_index)
    np.testing.assert_array_equal(dist, ref_dist)
    assert (dist > 0).all() and np.isfinite(dist).all()


def test_single_atom_sees_its_own_images_in_shells(path):
    lat = np.eye(3) * 3.0
    index, dist = nearest_neighbours(np.array([[3.0, 0.0, 1.5]]), lat, 18)
    assert (index == 0).all()
    np.testing.assert_allclose(dist[0, :6], 3.0, rtol=1e-6)  # 6 face images
    np.testing.assert_allclose(dist[0, 6:], 3.0 * np.sqrt(2), rtol=1e-6)  # 12 edge images


@pytest.mark.parametrize("kind", ["orthogonal", "triclinic"])
@pytest.mark.parametrize(
    ("n", "m", "scale"),
    [
        (1, 7, 4.0),
        (2, 12, 4.0),
        (4, 25, 4.0),  # few atoms, many neighbours: images two cells away count
        (5, 12, 6.5),
        (9, 20, 5.0),
        (40, 12, 9.0),
        (60, 20, 10.0),
    ],
)
def test_matches_brute_force_on_random_cells(kind, n, m, scale, path):
    rng = np.random.default_rng(1000 * n + m + (kind == "triclinic"))
    for _ in range(3):
        x, lat = random_frame(rng, n, kind, scale)
        index, dist = nearest_neighbours(x, lat, m)
        ref_index, ref_dist = brute_force(x, lat, m)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(index, ref_index)


@pytest.mark.parametrize("kind", ["orthogonal", "triclinic"])
def test_atoms_exactly_on_the_cell_boundary(kind, path):
    """Fractional coordinates 0, 1/2 and exactly 1 (the far face): symmetric ties by id."""
    lat = (
        np.eye(3) * 4.0
        if kind == "orthogonal"
        else np.array([[4.0, 0, 0], [1.0, 4.0, 0], [-1.0, 1.0, 4.0]])
    )
    frac = np.array(
        [[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.5, 1.0, 1.0], [0.0, 0.5, 0.5], [1.0, 1.0, 0.5]]
    )
    x = frac @ lat
    for m in (6, 12, 19):
        index, dist = nearest_neighbours(x, lat, m)
        ref_index, ref_dist = brute_force(x, lat, m)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(index, ref_index)
        # Rows are sorted by (distance, id): ties are broken by the smaller atom id.
        for row_i, row_d in zip(index, dist, strict=True):
            keys = list(zip(row_d.tolist(), row_i.tolist(), strict=True))
            assert keys == sorted(keys)


def test_coincident_atoms_are_neighbours_at_distance_zero(path):
    lat = np.array([[5.0, 0, 0], [1.0, 5.0, 0], [0.5, 0.5, 5.0]])
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [3.0, 3.0, 0.5]])
    index, dist = nearest_neighbours(x, lat, 4)
    assert index[0, 0] == 1 and index[1, 0] == 0 and dist[0, 0] == dist[1, 0] == 0.0
    ref_index, ref_dist = brute_force(x, lat, 4)
    np.testing.assert_array_equal(index, ref_index)
    np.testing.assert_array_equal(dist, ref_dist)


def test_rows_subset_equals_the_full_graph_rows(path):
    rng = np.random.default_rng(3)
    x, lat = random_frame(rng, 30, "triclinic", 8.0)
    full_i, full_d = nearest_neighbours(x, lat, 12)
    rows = np.array([29, 3, 17])
    sub_i, sub_d = nearest_neighbours(x, lat, 12, rows=rows)
    np.testing.assert_array_equal(sub_i, full_i[rows])
    np.testing.assert_array_equal(sub_d, full_d[rows])


def test_adapted_cutoff_stays_exact_when_density_jumps(path):
    """One searcher over frames whose scale changes 3x: the cutoff must grow and shrink."""
    rng = np.random.default_rng(5)
    search = NeighbourSearch(12)
    for scale in (12.0, 4.0, 12.0, 30.0, 5.0):
        x, lat = random_frame(rng, 20, "triclinic", scale)
        index, dist = search(np.ascontiguousarray(x), lat)
        ref_index, ref_dist = brute_force(x, lat, 12)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(index, ref_index)
    if path != "images":
        assert search.n_retries >= 1  # the 12 -> 4 A jump needs a larger relative cutoff


def test_candidate_just_beyond_the_cutoff_still_wins_a_float32_tie(monkeypatch):
    """Atom 1 lies 1e-12 A beyond the cutoff but rounds to the same float32 distance as
    atom 2 inside it; the (distance, id) order must still pick atom 1."""
    monkeypatch.setattr(G, "SMALL_WORK", 0)  # the cell-list path has a cutoff to miss by
    lat = np.eye(3) * 20.0
    x = np.array([[0.0, 0.0, 0.0], [2.0 + 1e-12, 0.0, 0.0], [0.0, 2.0, 0.0]])
    search = NeighbourSearch(1)
    search.cutoff = 2.0 + 5e-13
    index, dist = search(x, lat, rows=np.array([0]))
    assert index.tolist() == [[1]] and dist.tolist() == [[2.0]]
    assert search.n_retries == 1


def test_search_grows_from_a_far_too_small_cutoff(path):
    """Few atoms, many neighbours, a 0.01 A starting cutoff: both paths must grow it."""
    rng = np.random.default_rng(9)
    frames = [random_frame(rng, 3, "triclinic", 5.0) for _ in range(4)]
    search = NeighbourSearch(40)
    search.cutoff = 0.01
    index, dist = search.frames(
        np.stack([x for x, _ in frames]), np.stack([lat for _, lat in frames])
    )
    assert search.n_retries >= 1
    for f, (x, lat) in enumerate(frames):
        ref_index, ref_dist = brute_force(x, lat, 40)
        np.testing.assert_array_equal(dist[f], ref_dist)
        np.testing.assert_array_equal(index[f], ref_index)


# --------------------------------------------------------------------------------------
# Invariances


@pytest.mark.parametrize("kind", ["orthogonal", "triclinic"])
def test_distances_invariant_under_translation_and_permutation(kind, path):
    rng = np.random.default_rng(11 if kind == "orthogonal" else 12)
    x, lat = random_frame(rng, 50, kind, 9.0)
    index, dist = nearest_neighbours(x, lat, 16)

    shifted = x + rng.normal(0, 20.0, 3)
    _, dist_t = nearest_neighbours(shifted, lat, 16)
    np.testing.assert_allclose(dist_t, dist, rtol=1e-5)
    # A lattice translation of single atoms changes nothing but rounding.
    hopped = x + rng.integers(-3, 4, (50, 3)) @ lat
    index_h, dist_h = nearest_neighbours(hopped, lat, 16)
    np.testing.assert_allclose(dist_h, dist, rtol=1e-5)

    perm = rng.permutation(50)
    index_p, dist_p = nearest_neighbours(x[perm], lat, 16)
    np.testing.assert_array_equal(dist_p, dist[perm])
    # Relabelled neighbours: same multiset of (distance, atom) per row.
    for k in range(50):
        got = sorted(zip(dist_p[k].tolist(), perm[index_p[k]].tolist(), strict=True))
        ref = sorted(zip(dist[perm[k]].tolist(), index[perm[k]].tolist(), strict=True))
        assert [d for d, _ in got] == [d for d, _ in ref]
    np.testing.assert_array_equal(index_h, index)


# --------------------------------------------------------------------------------------
# Store, pruning, CLI


def make_trajectory(rng, n_frames, n_atoms, kind, scale):
    lat = random_cell(rng, kind, scale)
    lattices = np.repeat(lat[None], n_frames, axis=0)
    lattices = lattices * rng.uniform(0.97, 1.03, (n_frames, 1, 1))  # a breathing cell
    base = rng.random((n_atoms, 3))
    steps = rng.normal(0, 0.05, (n_frames, n_atoms, 3)).cumsum(axis=0)
    coords = np.einsum("fnk,fkl->fnl", base[None] + steps, lattices)
    return coords, lattices


@pytest.mark.parametrize("threads", [1, 2])
def test_store_round_trip_in_chunks(tmp_path, monkeypatch, threads, path):
    rng = np.random.default_rng(21)
    coords, lattices = make_trajectory(rng, 9, 24, "triclinic", 7.0)
    path = tmp_path / "piece.npz"
    save_split(path, coords, lattices, [0, 5], source=np.array("traj7"), frame_offset=np.array(40))
    # Force several chunks so chunk boundaries and buffer reuse are exercised.
    monkeypatch.setattr(G, "CHUNK_BYTES", 24 * 12 * 8 * 2)
    meta = build_store(
        load_trajectory(path), tmp_path / "store", 12, threads=threads, progress=False
    )
    store = open_store(tmp_path / "store")
    assert isinstance(store.index, np.memmap) and store.index.shape == (9, 24, 12)
    assert store.index.dtype == np.int32 and store.distance.dtype == np.float32
    np.testing.assert_array_equal(store.rows, np.arange(24))
    for f in range(9):
        ref_index, ref_dist = brute_force(coords[f], lattices[f], 12)
        np.testing.assert_array_equal(store.index[f], ref_index)
        np.testing.assert_array_equal(store.distance[f], ref_dist)
    on_disk = json.loads((tmp_path / "store" / "meta.json").read_text())
    assert on_disk == meta
    assert meta["n_frames"] == 9 and meta["n_atoms"] == 24 and meta["n_neighbors"] == 12
    assert meta["pruned"] is False and meta["n_conv"] is None
    assert meta["source"] == "traj7" and meta["frame_offset"] == 40
    assert meta["max_neighbor_distance_A"] == pytest.approx(
        float(np.asarray(store.distance[:, :, -1]).max())
    )
    assert not list(tmp_path.glob(".store.*"))  # no temporary directory left behind


@pytest.mark.parametrize(("n_conv", "targets"), [(1, [3]), (2, [0, 7]), (3, [[4, 9]])])
def test_pruned_rows_hold_every_atom_within_k_minus_1_hops(tmp_path, n_conv, targets, path):
    rng = np.random.default_rng(31 + n_conv)
    coords, lattices = make_trajectory(rng, 6, 70, "orthogonal", 11.0)
    path = tmp_path / "piece.npz"
    save_split(path, coords, lattices, targets)
    m = 6
    build_store(
        load_trajectory(path), tmp_path / "store", m, n_conv=n_conv, threads=2, progress=False
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


def test_function_rejects_bad_input():
    lat = np.eye(3) * 5.0
    with pytest.raises(InputError, match="M >= 1"):
        nearest_neighbours(np.zeros((3, 3)), lat, 0)
    with pytest.raises(InputError, match="0 atoms per cell"):
        nearest_neighbours(np.zeros((0, 3)), lat, 4)
    with pytest.raises(InputError, match="atom 1 has NaN"):
        nearest_neighbours(np.array([[0.0, 0, 0], [np.nan, 0, 0]]), lat, 4)
    with pytest.raises(InputError, match="non-degenerate"):
        nearest_neighbours(np.zeros((2, 3)), np.array([[1.0, 0, 0], [0, 1, 0], [2, 2, 0]]), 4)
    with pytest.raises(InputError, match="distinct atom ids"):
        nearest_neighbours(np.zeros((3, 3)) + np.arange(3)[:, None], lat, 2, rows=[1, 1])
    with pytest.raises(InputError, match=r"shape \(N, 3\)"):
        nearest_neighbours(np.zeros((4, 2)), lat, 4)
