"""Periodic M-nearest-neighbour graphs checked against brute force over explicit images:
one frame, invariances, bad input (ties at the cut: test_graph_ties.py; the store, pruning
and the CLI: test_graph_build.py)."""

from __future__ import annotations

import numpy as np
import pytest
from _graph_reference import brute_force, random_frame

import gdyn.graph.search as graph_search
from gdyn.errors import InputError
from gdyn.graph import NeighbourSearch
from gdyn.graph.search import nearest_neighbours

# --------------------------------------------------------------------------------------
# One frame against brute force


def test_toy_cell_gives_twelve_neighbours_with_image_distances(search_path):
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


def test_single_atom_sees_its_own_images_in_shells(search_path):
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
def test_matches_brute_force_on_random_cells(kind, n, m, scale, search_path):
    rng = np.random.default_rng(1000 * n + m + (kind == "triclinic"))
    for _ in range(3):
        x, lat = random_frame(rng, n, kind, scale)
        index, dist = nearest_neighbours(x, lat, m)
        ref_index, ref_dist = brute_force(x, lat, m)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(index, ref_index)


@pytest.mark.parametrize("kind", ["orthogonal", "triclinic"])
def test_atoms_exactly_on_the_cell_boundary(kind, search_path):
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


def test_coincident_atoms_are_neighbours_at_distance_zero(search_path):
    lat = np.array([[5.0, 0, 0], [1.0, 5.0, 0], [0.5, 0.5, 5.0]])
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [3.0, 3.0, 0.5]])
    index, dist = nearest_neighbours(x, lat, 4)
    assert index[0, 0] == 1 and index[1, 0] == 0 and dist[0, 0] == dist[1, 0] == 0.0
    ref_index, ref_dist = brute_force(x, lat, 4)
    np.testing.assert_array_equal(index, ref_index)
    np.testing.assert_array_equal(dist, ref_dist)


def test_rows_subset_equals_the_full_graph_rows(search_path):
    rng = np.random.default_rng(3)
    x, lat = random_frame(rng, 30, "triclinic", 8.0)
    full_i, full_d = nearest_neighbours(x, lat, 12)
    rows = np.array([29, 3, 17])
    sub_i, sub_d = nearest_neighbours(x, lat, 12, rows=rows)
    np.testing.assert_array_equal(sub_i, full_i[rows])
    np.testing.assert_array_equal(sub_d, full_d[rows])


def test_adapted_cutoff_stays_exact_when_density_jumps(search_path):
    """One searcher over frames whose scale changes 3x: the cutoff must grow and shrink."""
    rng = np.random.default_rng(5)
    search = NeighbourSearch(12)
    for scale in (12.0, 4.0, 12.0, 30.0, 5.0):
        x, lat = random_frame(rng, 20, "triclinic", scale)
        index, dist = search(np.ascontiguousarray(x), lat)
        ref_index, ref_dist = brute_force(x, lat, 12)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(index, ref_index)
    if search_path != "images":
        assert search.n_retries >= 1  # the 12 -> 4 A jump needs a larger relative cutoff


def test_candidate_just_beyond_the_cutoff_still_wins_a_float32_tie(monkeypatch):
    """Atom 1 lies 1e-12 A beyond the cutoff but rounds to the same float32 distance as
    atom 2 inside it; the (distance, id) order must still pick atom 1."""
    monkeypatch.setattr(graph_search, "SMALL_WORK", 0)  # the cell-list path has a cutoff to miss by
    lat = np.eye(3) * 20.0
    x = np.array([[0.0, 0.0, 0.0], [2.0 + 1e-12, 0.0, 0.0], [0.0, 2.0, 0.0]])
    search = NeighbourSearch(1)
    search.cutoff = 2.0 + 5e-13
    index, dist = search(x, lat, rows=np.array([0]))
    assert index.tolist() == [[1]] and dist.tolist() == [[2.0]]
    assert search.n_retries == 1


def test_search_grows_from_a_far_too_small_cutoff(search_path):
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
def test_distances_invariant_under_translation_and_permutation(kind, search_path):
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
    with pytest.raises(InputError, match="tie_seed: expected an integer"):
        nearest_neighbours(np.zeros((3, 3)) + np.arange(3)[:, None], lat, 2, tie_seed=1.5)
    with pytest.raises(InputError, match="64-bit"):
        nearest_neighbours(np.zeros((3, 3)) + np.arange(3)[:, None], lat, 2, tie_seed=2**63)
