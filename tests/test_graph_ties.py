"""Exact ties at the M-th neighbour distance: the toy's frozen S lattice, seeded tie-breaks
checked against brute force over explicit images."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _graph_reference import (
    OCT_FRAC,
    S_FRAC,
    TET_FRAC,
    TOY_A,
    TOY_TYPES,
    brute_force,
    toy_coords,
)

import gdyn.graph.kernel as graph_kernel
import gdyn.graph.search as graph_search
from gdyn.graph import NeighbourSearch
from gdyn.graph.search import nearest_neighbours

# --------------------------------------------------------------------------------------
# Exact ties at the cut: the toy's frozen S lattice


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


def test_toy_ties_at_the_cut_keep_a_subset_of_the_tied_candidates(search_path):
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
def test_seeded_ties_are_reproducible_and_uniform_over_frames(site, search_path):
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
def test_seeded_ties_treat_equivalent_sites_alike(site, search_path):
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

