"""gdyn.graph.cell.pairs_within: periodic centre -> point search within a radius.

Checked bit for bit against the pre-refactor RDF search (``image_shifts`` +
``pair_distances``, copied below from gdyn.structure (layout reformatted only) before the refactor moved
the search here) and, independently, against a plain loop over a wide box of images.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gdyn.graph.cell as graph_cell
from gdyn.errors import InputError
from gdyn.graph import image_shifts, pairs_within

# --------------------------------------------------------------------------------------
# References


def _plane_spacings(lattices: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(lattices)
    return 1.0 / np.linalg.norm(inv, axis=-2)


def old_image_shifts(lattices: np.ndarray, r_max: float) -> np.ndarray:
    """Pre-refactor gdyn.structure.image_shifts before the refactor."""
    h = _plane_spacings(np.asarray(lattices, dtype=np.float64).reshape(-1, 3, 3)).min(axis=0)
    n = np.floor(r_max / h + 0.5).astype(int)
    grid = np.stack(np.meshgrid(*(np.arange(-k, k + 1) for k in n), indexing="ij"), -1)
    grid = grid.reshape(-1, 3)
    return grid[np.argsort(np.abs(grid).sum(axis=1), kind="stable")]


def old_pair_distances(centres, points, lattices, shifts, exclude=None):
    """Pre-refactor gdyn.structure.pair_distances before the refactor."""
    inv = np.linalg.inv(lattices)  # (T, 3, 3)
    frac = (
        np.einsum("tmj,tjk->tmk", points, inv)[:, None]
        - np.einsum("tnj,tjk->tnk", centres, inv)[:, :, None]
    )
    frac -= np.floor(frac + 0.5)
    base = np.einsum("tnmj,tjk->tnmk", frac, lattices)  # (T, n, m, 3)
    offsets = np.einsum("ij,tjk->tik", shifts.astype(np.float64), lattices)  # (T, n_img, 3)
    cart = base[:, :, :, None, :] + offsets[:, None, None]
    d = np.sqrt(np.einsum("...k,...k->...", cart, cart))
    if exclude is not None and exclude.any():
        ci, mi = np.nonzero(exclude)
        sub = d[:, ci, mi]  # (T, n_ex, n_img)
        closest = np.argmin(sub, axis=-1)
        np.put_along_axis(sub, closest[..., None], np.inf, axis=-1)
        d[:, ci, mi] = sub
    return d


def old_hits(centres, points, lattices, r_max, exclude=None, shifts=None):
    """What the pre-refactor RDF did with a chunk of frames: nonzero(d < r_max)."""
    if shifts is None:
        shifts = old_image_shifts(lattices, r_max)
    d = old_pair_distances(centres, points, lattices, shifts, exclude)
    t, c, p, _ = np.nonzero(d < r_max)
    return t, c, p, d[d < r_max]


def loop_hits(centres, points, lattices, r_max, exclude=None):
    """Independent: every image in a box wide enough for r_max, one (c, p) pair at a
    time, own atoms' closest image dropped. Sorted (frame, centre, point, distance)."""
    out = []
    for t, lat in enumerate(lattices):
        widths = 1.0 / np.linalg.norm(np.linalg.inv(lat), axis=0)
        r = int(np.ceil(r_max / widths.min())) + 1
        shifts = np.array(list(itertools.product(range(-r, r + 1), repeat=3)), dtype=float)
        inv = np.linalg.inv(lat)
        for c, centre in enumerate(centres[t]):
            for p, point in enumerate(points[t]):
                frac = (point - centre) @ inv
                frac -= np.floor(frac)  # in [0, 1): the box [-r, r]^3 then holds r_max
                d = np.linalg.norm((frac + shifts) @ lat, axis=1)
                if exclude is not None and exclude[c, p]:
                    d[np.argmin(d)] = np.inf
                out += [(t, c, p, x) for x in d[d < r_max]]
    return sorted(out)


def triclinic_frames(rng, n_frames, n, m, scale):
    lat = np.diag(rng.uniform(0.8, 1.2, 3) * scale)
    lat[1, 0], lat[2, 0], lat[2, 1] = rng.uniform(-0.45, 0.45, 3) * scale
    lattices = lat[None] * rng.uniform(0.95, 1.05, (n_frames, 1, 1))  # a breathing cell
    frac_p = rng.random((n_frames, m, 3)) + rng.integers(-2, 3, (n_frames, m, 3))
    points = np.einsum("tmj,tjk->tmk", frac_p, lattices)
    # Centres: the first n points, slightly moved (as a set's centre sits near its atoms).
    centres = points[:, :n] + rng.normal(0, 0.2, (n_frames, n, 3))
    exclude = np.zeros((n, m), dtype=bool)
    exclude[np.arange(n), np.arange(n)] = True
    return centres, points, lattices, exclude


def assert_same_hits(got, ref):
    assert [a.dtype for a in got] == [np.int64, np.int64, np.int64, np.float64]
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("r_max", [1.3, 4.0, 9.5])
@pytest.mark.parametrize("use_exclude", [False, True])
def test_same_hits_as_the_old_rdf_search_on_a_triclinic_cell(r_max, use_exclude):
    """Cell widths ~3 A: r_max up to three cells, so points hit a centre many times."""
    rng = np.random.default_rng(int(r_max * 10) + use_exclude)
    centres, points, lattices, exclude = triclinic_frames(rng, 4, 3, 6, 3.5)
    ex = exclude if use_exclude else None
    got = pairs_within(centres, points, lattices, r_max, ex)
    assert_same_hits(got, old_hits(centres, points, lattices, r_max, ex))
    ref = loop_hits(centres, points, lattices, r_max, ex)
    mine = sorted(zip(*(a.tolist() for a in got), strict=True))
    assert [h[:3] for h in mine] == [h[:3] for h in ref]
    np.testing.assert_allclose([h[3] for h in mine], [h[3] for h in ref], rtol=1e-12)
    if r_max > 4:
        _, counts = np.unique(np.stack(got[:3]), axis=1, return_counts=True)
        assert counts.max() > 10  # many images of one point around one centre


def test_shift_superset_and_frame_blocks_do_not_change_the_hits(monkeypatch):
    """The old RDF took its shifts from the whole trajectory and searched chunks of
    frames; pairs_within sees one chunk (its own, smaller shift box) or blocks frames
    itself: same hits, in the same order."""
    rng = np.random.default_rng(5)
    centres, points, lattices, exclude = triclinic_frames(rng, 9, 4, 7, 4.0)
    lattices[5] *= 0.6  # one small cell: the trajectory's shift box is bigger than most
    r_max = 7.0
    all_shifts = old_image_shifts(lattices, r_max)
    for lo, hi in [(0, 3), (3, 7), (7, 9)]:
        sl = slice(lo, hi)
        ref = old_hits(centres[sl], points[sl], lattices[sl], r_max, exclude, all_shifts)
        assert_same_hits(pairs_within(centres[sl], points[sl], lattices[sl], r_max, exclude), ref)
    assert len(image_shifts(lattices[:3], r_max)) < len(all_shifts)
    whole = old_hits(centres, points, lattices, r_max, exclude, all_shifts)
    monkeypatch.setattr(graph_cell, "PAIRS_BLOCK", 1)  # one frame per block
    assert_same_hits(pairs_within(centres, points, lattices, r_max, exclude), whole)


def test_exclude_drops_only_the_own_atoms_closest_image():
    """A centre exactly on its own atom: distance 0 is dropped, the atom's periodic
    images (the lattice vectors) are kept; other points are unaffected."""
    lat = np.array([[3.0, 0.0, 0.0], [0.8, 3.2, 0.0], [-0.5, 0.6, 2.9]])
    points = np.array([[[0.3, 0.2, 0.1], [1.7, 1.1, 1.4]]])
    centres = points[:, :1].copy()
    exclude = np.array([[True, False]])
    r_max = 3.5
    _, _, p, d = pairs_within(centres, points, lat[None], r_max, exclude)
    _, _, p0, d0 = pairs_within(centres, points, lat[None], r_max)
    own = d0[p0 == 0]
    assert own.min() == 0.0 and (d[p == 0] > 0).all()
    np.testing.assert_array_equal(d[p == 0], own[own > 0])
    np.testing.assert_array_equal(d[p == 1], d0[p0 == 1])
    # The own atom's other images sit at the nonzero lattice translations within r_max.
    box = np.array(list(itertools.product(range(-3, 4), repeat=3)), dtype=float) @ lat
    norms = np.linalg.norm(box, axis=1)
    np.testing.assert_allclose(np.sort(d[p == 0]), np.sort(norms[(norms > 0) & (norms < r_max)]))


def test_empty_inputs_and_bad_shapes():
    lat = np.eye(3)[None] * 4.0
    x = np.zeros((1, 2, 3))
    for got in (
        pairs_within(np.zeros((1, 0, 3)), x, lat, 2.0),
        pairs_within(x, np.zeros((1, 0, 3)), lat, 2.0),
        pairs_within(np.zeros((0, 2, 3)), np.zeros((0, 2, 3)), np.zeros((0, 3, 3)), 2.0),
    ):
        assert [a.size for a in got] == [0, 0, 0, 0]
        assert [a.dtype for a in got] == [np.int64, np.int64, np.int64, np.float64]
    with pytest.raises(InputError, match=r"centres: expected shape \(T, n, 3\)"):
        pairs_within(np.zeros((2, 3)), x, lat, 2.0)
    with pytest.raises(InputError, match=r"points: expected shape \(1, m, 3\)"):
        pairs_within(x, np.zeros((2, 2, 3)), lat, 2.0)
    with pytest.raises(InputError, match=r"lattices: expected shape \(1, 3, 3\)"):
        pairs_within(x, x, np.eye(3), 2.0)
    with pytest.raises(InputError, match="r_max"):
        pairs_within(x, x, lat, 0.0)
    with pytest.raises(InputError, match=r"exclude: expected shape \(2, 2\)"):
        pairs_within(x, x, lat, 2.0, np.ones((2, 3), dtype=bool))
