"""Periodic M-nearest-neighbour graphs checked against brute force over explicit images."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import gdyn.cli.graphs as cli_graphs
import gdyn.graph.kernel as graph_kernel
import gdyn.graph.search as graph_search
import gdyn.graph.store as graph_store
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


@pytest.fixture(params=["cells", "images", "tight"])
def path(request, monkeypatch):
    """Run a test through the compiled cell-list kernel (with its sorting network; or
    "tight": tiny candidate lists and no network, so that the list regrowth and the
    insertion sort run) and through the batched image brute force."""
    monkeypatch.setattr(graph_search, "SMALL_WORK", 10**12 if request.param == "images" else 0)
    if request.param == "tight":
        monkeypatch.setattr(graph_search, "CAPACITY_FACTOR", 0)
        monkeypatch.setattr(graph_kernel, "network_size", lambda n_keep, width, typical=None: 1)
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
    monkeypatch.setattr(graph_search, "SMALL_WORK", 0)  # the cell-list path has a cutoff to miss by
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
# Exact ties at the cut: the toy's frozen S lattice

TOY_A = 6.5
# Atom 0 is the Li, atoms 1-4 the S (the toy cell's order); atomic numbers.
TOY_TYPES = np.array([3, 16, 16, 16, 16])
S_FRAC = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
OCT_FRAC = np.array([[0.5, 0.5, 0.5], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]])
TET_FRAC = np.array(list(itertools.product([0.25, 0.75], repeat=3)))


def toy_coords(li: np.ndarray) -> np.ndarray:
    """(..., 5, 3): the Li at ``li`` (..., 3) and the 4 S exactly on their lattice sites."""
    li = np.asarray(li, dtype=np.float64)
    s = np.broadcast_to(S_FRAC * TOY_A, (*li.shape[:-1], 4, 3))
    return np.concatenate([li[..., None, :], s], axis=-2)


def image_distances(x: np.ndarray, lat: np.ndarray, r: int = 2) -> np.ndarray:
    """float32 distances (N, N, (2r+1)^3) from each atom to every image of every atom
    (wrapped coordinates, image box [-r, r]^3; the atom itself at zero shift is inf)."""
    xw = x - np.floor(x @ np.linalg.inv(lat)) @ lat
    shifts = np.array(list(itertools.product(range(-r, r + 1), repeat=3)), dtype=np.float64)
    pos = xw[None, :, None, :] + (shifts @ lat)[None, None]
    d = np.sqrt(((pos - xw[:, None, None, :]) ** 2).sum(-1))
    d[np.arange(len(x)), np.arange(len(x)), len(shifts) // 2] = np.inf
    return d.astype(np.float32)


def tie_drops(d32: np.ndarray, index: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(N, N) dropped[i, j]: images of atom j at row i's cut distance that row i left out.

    Images of one atom at one distance are identical entries, so a dropped candidate is
    seen as its atom id listed fewer times than it has images at the cut.
    """
    n = index.shape[0]
    out = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        cut = dist[i, -1]
        tied = (d32[i] == cut).sum(axis=1)
        kept = np.bincount(index[i][dist[i] == cut], minlength=n)
        assert (kept <= tied).all()  # kept at the cut: a sub-multiset of the tied
        out[i] = tied - kept
    return out


def symmetry_op(site0: np.ndarray, site: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(R, t, perm): x -> R x + t (fractional) maps ``site0`` to ``site`` and the S lattice
    onto itself, S_k to S_perm[k] (an FCC translation, or inversion then translation)."""
    for rot in (np.eye(3), -np.eye(3)):
        t = site - rot @ site0
        moved = (S_FRAC @ rot.T + t) % 1.0
        perm = [
            np.flatnonzero(np.isclose((S_FRAC - p + 0.5) % 1.0 - 0.5, 0.0).all(axis=1)).tolist()
            for p in moved
        ]
        if all(len(k) == 1 for k in perm):
            return rot, t, [k[0] for k in perm]
    raise AssertionError(f"no symmetry maps {site0} to {site}")


def toy_li_positions() -> np.ndarray:
    """Li exactly on and near every octahedral and tetrahedral site, and anywhere."""
    rng = np.random.default_rng(61)
    sites = np.vstack([OCT_FRAC, TET_FRAC]) * TOY_A
    return np.vstack([sites, sites + rng.normal(0, 0.15, sites.shape), rng.random((8, 3)) * TOY_A])


def test_toy_ties_at_the_cut_keep_a_subset_of_the_tied_candidates(path):
    """Each S has 12 S images at exactly a/sqrt(2); a Li inside that shell pushes some
    out. Seeded: distances are the brute force's exactly, everything closer than the cut
    is the brute force's, and the kept entries at the cut are tied candidates."""
    lat = np.eye(3) * TOY_A
    cut_in_tie = 0
    for li in toy_li_positions():
        x = toy_coords(li)
        ref_index, ref_dist = brute_force(x, lat, 12)
        d32 = image_distances(x, lat)
        for seed in (0, 7, 2**40 + 3, -5):
            index, dist = nearest_neighbours(x, lat, 12, tie_seed=seed)
            np.testing.assert_array_equal(dist, ref_dist)
            closer = dist < dist[:, -1:]
            np.testing.assert_array_equal(index[closer], ref_index[closer])
            cut_in_tie += int((tie_drops(d32, index, dist) > 0).any(axis=1).sum())
            for row_i, row_d in zip(index, dist, strict=True):
                keys = list(zip(row_d.tolist(), row_i.tolist(), strict=True))
                assert keys == sorted(keys)  # (distance, id) order within the kept set
            rows = np.array([3, 0, 1])
            sub_i, sub_d = nearest_neighbours(x, lat, 12, rows=rows, tie_seed=seed)
            np.testing.assert_array_equal(sub_i, index[rows])
            np.testing.assert_array_equal(sub_d, dist[rows])
        # Without a seed: unchanged, the smallest ids win.
        old_index, old_dist = nearest_neighbours(x, lat, 12)
        np.testing.assert_array_equal(old_index, ref_index)
        np.testing.assert_array_equal(old_dist, ref_dist)
    assert cut_in_tie > 100  # most S rows have the Li inside their tied shell


def test_seeded_ties_agree_across_search_paths(monkeypatch):
    """Cell lists (with and without the sorting network), batched images and per-frame
    calls: same arrays."""
    lat = np.eye(3) * TOY_A
    x = toy_coords(toy_li_positions())  # (F, 5, 3)
    lattices = np.repeat(lat[None], len(x), axis=0)
    seeds = np.arange(len(x)) * 31 + 4
    results = []
    for param in ("cells", "images", "tight"):
        with monkeypatch.context() as mp:
            mp.setattr(graph_search, "SMALL_WORK", 10**12 if param == "images" else 0)
            if param == "tight":
                mp.setattr(graph_search, "CAPACITY_FACTOR", 0)
                mp.setattr(graph_kernel, "network_size", lambda n_keep, width, typical=None: 1)
            if param == "images":
                mp.setattr(graph_search, "SMALL_BATCH_BYTES", 1)  # one frame per batch
            batch = NeighbourSearch(12).frames(x, lattices, tie_seeds=seeds)
            single = [
                nearest_neighbours(x[f], lat, 12, tie_seed=int(seeds[f])) for f in range(len(x))
            ]
            np.testing.assert_array_equal(batch[0], np.stack([i for i, _ in single]))
            np.testing.assert_array_equal(batch[1], np.stack([d for _, d in single]))
            results.append(batch)
    for index, dist in results[1:]:
        np.testing.assert_array_equal(index, results[0][0])
        np.testing.assert_array_equal(dist, results[0][1])


@pytest.mark.parametrize("site", ["tet", "oct"])
def test_seeded_ties_are_reproducible_and_uniform_over_frames(site, path):
    """Near a tetrahedral site each S row drops 1 of its 12 tied S images, near an
    octahedral site 2 (two Li images inside): over 200 frames every tied atom is dropped,
    as often as its share of the tied images (chi-square), which the id rule cannot do;
    the dropped pair is a uniformly random pair of tied images."""
    from scipy.stats import chi2

    lat = np.eye(3) * TOY_A
    li = (TET_FRAC[0] if site == "tet" else OCT_FRAC[0]) * TOY_A + [0.11, -0.07, 0.04]
    x = toy_coords(li)
    d32 = image_distances(x, lat)
    n_frames = 200
    dropped = np.zeros((5, 5), dtype=np.int64)
    same_atom = 0  # S rows whose two dropped images are images of one atom
    for f in range(n_frames):
        index, dist = nearest_neighbours(x, lat, 12, tie_seed=f)
        again = nearest_neighbours(x, lat, 12, tie_seed=f)  # same inputs, same seed
        np.testing.assert_array_equal(again[0], index)
        np.testing.assert_array_equal(again[1], dist)
        drops = tie_drops(d32, index, dist)
        dropped += drops
        same_atom += int((drops == 2).sum())
    old = tie_drops(d32, *nearest_neighbours(x, lat, 12)) * n_frames
    assert (dropped.sum(axis=1) == old.sum(axis=1)).all()  # same number dropped per row
    rows = np.flatnonzero(dropped.sum(axis=1))
    assert len(rows) == (4 if site == "tet" else 3)  # S rows with the Li inside a/sqrt(2)
    bound = chi2.ppf(0.999, 2)
    for i in rows:
        tied = (d32[i] == dist[i, -1]).sum(axis=1)
        assert tied.tolist() == [0] + [4 * (j != i) for j in range(1, 5)]  # 3 atoms x 4
        js = np.flatnonzero(tied)
        expect = dropped[i].sum() * tied[js] / tied[js].sum()
        assert (dropped[i, js] >= 1).all()  # every tied atom is dropped in some frame
        assert ((dropped[i, js] - expect) ** 2 / expect).sum() < bound
        # The id rule drops the largest tied ids in every frame.
        assert ((old[i, js] - expect) ** 2 / expect).sum() > 10 * bound
    if site == "oct":
        # A uniformly random pair of the 12 tied images (3 atoms x 4) falls on one atom
        # with probability 3 C(4, 2) / C(12, 2) = 18/66 (the id rule: always).
        pairs = n_frames * len(rows)
        share = 18 / 66
        assert abs(same_atom - pairs * share) < 5 * np.sqrt(pairs * share * (1 - share))


@pytest.mark.parametrize("site", ["oct", "tet"])
def test_seeded_ties_treat_equivalent_sites_alike(site, path):
    """The Li at each of the 4 octahedral (8 tetrahedral) sites, with the same small
    displacements mapped by the symmetry that relates the sites. Row by row the
    (neighbour type, distance) lists agree, and the histogram of which S is dropped from
    which S row, relative to the Li, is the same at every site (chi-square homogeneity
    over sites, different frames = seeds per site). The id rule fails: its choice is
    site dependent."""
    from scipy.stats import chi2_contingency

    lat = np.eye(3) * TOY_A
    sites = OCT_FRAC if site == "oct" else TET_FRAC
    n_frames = 200
    delta = np.random.default_rng(71).normal(0, 0.1, (n_frames, 3))
    lattices = np.repeat(lat[None], n_frames, axis=0)
    hist = {"seeded": [], "ids": []}
    near_share = {"seeded": [], "ids": []}
    ref_rows = None
    for s, where in enumerate(sites):
        rot, _, perm = symmetry_op(sites[0], where)
        x = toy_coords(where * TOY_A + delta @ rot.T)
        rowmap = [0] + [1 + k for k in perm]  # site s's row for reference row r
        # Li-S minimum-image distance of each S (near: the Li sits against it).
        li_s = image_distances(x[0], lat)[0, 1:].min(axis=1)
        for rule, seeds in (("seeded", 1000 * s + np.arange(n_frames)), ("ids", None)):
            index, dist = NeighbourSearch(12).frames(x, lattices, tie_seeds=seeds)
            drops = np.zeros((5, 5), dtype=np.int64)
            for f in range(n_frames):
                drops += tie_drops(image_distances(x[f], lat), index[f], dist[f])
            assert drops[0].sum() == 0 and drops[:, 0].sum() == 0  # only S-S ties
            hist[rule].append(drops[np.ix_(rowmap, rowmap)].ravel())
            near = drops[:, 1:].sum(axis=0)[li_s < 4.4].sum() if site == "oct" else 0
            near_share[rule].append(near / drops.sum())
            if rule == "seeded":
                rows = (TOY_TYPES[index[:, rowmap]], dist[:, rowmap])
                if ref_rows is None:
                    ref_rows = rows
                np.testing.assert_array_equal(rows[0], ref_rows[0])
                np.testing.assert_allclose(rows[1], ref_rows[1], atol=2e-5)
    for rule in ("seeded", "ids"):
        table = np.array(hist[rule])
        table = table[:, table.sum(axis=0) > 0]
        p = chi2_contingency(table).pvalue
        if rule == "seeded":
            assert p > 1e-3, table
        else:
            assert p < 1e-30, table
    if site == "oct":
        # 3 S rows hold 2 Li images; their tied S are 2 near the Li + 1 far, so 2/3 near.
        np.testing.assert_allclose(near_share["seeded"], 2 / 3, atol=0.1)
        assert max(near_share["ids"]) - min(near_share["ids"]) > 0.9  # all near vs all far


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


@pytest.mark.parametrize("distances", ["float32", "uint16"])
@pytest.mark.parametrize("threads", [1, 2])
def test_store_round_trip_in_chunks(tmp_path, monkeypatch, threads, path, distances):
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
def test_pruned_rows_hold_every_atom_within_k_minus_1_hops(tmp_path, n_conv, targets, path):
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
    tmp_path, monkeypatch, threads, chunk_frames, block, path
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


def test_pruning_follows_the_seeded_tie_choice(tmp_path, path):
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
