"""Periodic nearest-neighbour graphs by brute force over explicit images, and the test
systems the graph tests share (random cells, the toy cell with its S frozen on their sites)."""

from __future__ import annotations

import itertools

import numpy as np


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



def make_trajectory(rng, n_frames, n_atoms, kind, scale):
    lat = random_cell(rng, kind, scale)
    lattices = np.repeat(lat[None], n_frames, axis=0)
    lattices = lattices * rng.uniform(0.97, 1.03, (n_frames, 1, 1))  # a breathing cell
    base = rng.random((n_atoms, 3))
    steps = rng.normal(0, 0.05, (n_frames, n_atoms, 3)).cumsum(axis=0)
    coords = np.einsum("fnk,fkl->fnl", base[None] + steps, lattices)
    return coords, lattices


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

