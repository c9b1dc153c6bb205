"""The compiled cell-list search of :class:`~gdyn.graph.search.NeighbourSearch` (numba).

One frame at a time: atoms are binned into a grid of cells of side >= the cutoff
(fractional coordinates, so any triclinic cell works), surrounded by ghost layers of
shifted copies, every unordered pair of atom images closer than the cutoff is found once
from a half stencil of cells (a few contiguous runs of memory per atom), and its key
(float32 distance bits << 32 | neighbour id, the order of :mod:`gdyn.graph.select`) is
appended to the candidate lists of both of its atoms. The lists are then sorted in place
by a fixed sorting network applied to all atoms at once (vectorised across atoms; rows
longer than the network are finished by an insertion sort), and the first ``n_keep``
keys of each requested row are returned. Candidates are kept in float64 until the
distance is rounded to float32, exactly as the brute force does.

Why hand-written: no library gives the exact, sorted M nearest images at this speed
(BENCHMARKS.md, "Graph construction": vesin's pair list alone, the previous version's
basis, is about 2x slower than this kernel's whole search; scipy's and freud's k-nearest
queries are slower still). The two
kernels are plain Python functions compiled on first use by :func:`compiled` (numba,
``cache=True``, ``nogil=True`` so worker threads run in parallel); importing this module
does not import numba, so processes that never search with cell lists (training, the
toy's image path) do not pay for it.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

# Padding key: larger than every real key.
MAX_KEY = np.uint64(0xFFFFFFFFFFFFFFFF)
# Cells of the grid: at most this many per atom (a far too small cutoff would otherwise
# ask for a huge, nearly empty grid).
CELLS_PER_ATOM = 2
# The search radius is the cutoff inflated by this factor, so that every candidate left
# out is certainly at or beyond the cutoff.
RADIUS_PAD = 1e-9


def _half_lists(xw, frac, lattice, prow, radius, n_cells, reach, lists, counts, order):
    """Append every candidate closer than ``radius`` to the lists of its row atoms.

    ``xw`` (N, 3) wrapped coordinates, ``frac`` (N, 3) their fractional coordinates in
    [0, 1]; ``prow`` (N,) row of each atom or -1; ``n_cells``/``reach`` (3,) grid shape and
    stencil half-width per axis. Fills ``order`` (N,): the atom at each grid position p;
    ``lists`` (C, N) column p: candidate keys of the atom at position p (first
    ``counts[p]`` slots, unsorted; slots beyond C are dropped but counted); the caller
    fills ``lists`` with :data:`MAX_KEY` and ``counts`` with 0 beforehand.

    Atoms are sorted by cell; an extended grid with ``reach`` ghost layers holds every
    cell's image at each ghost position (extended cell e <-> cell (e - reach) mod n,
    shifted by floor((e - reach) / n) lattice vectors), so the forward half of an atom's
    stencil is a few contiguous runs of the extended arrays: the rest of its own cell and
    the cells after it in its (a, b) row, then every later (a, b) row, 2 reach + 1 cells
    each. Each unordered pair of images is met once and filed under both atoms.
    """
    n = xw.shape[0]
    na, nb, nc = n_cells[0], n_cells[1], n_cells[2]
    ra, rb, rc = reach[0], reach[1], reach[2]
    n_cell = na * nb * nc
    cell = np.empty(n, np.int64)
    start = np.zeros(n_cell + 1, np.int64)
    for i in range(n):
        a = min(max(math.floor(frac[i, 0] * na), 0), na - 1)
        b = min(max(math.floor(frac[i, 1] * nb), 0), nb - 1)
        c = min(max(math.floor(frac[i, 2] * nc), 0), nc - 1)
        k = (a * nb + b) * nc + c
        cell[i] = k
        start[k + 1] += 1
    for k in range(n_cell):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    sx = np.empty(n, np.float64)
    sy = np.empty(n, np.float64)
    sz = np.empty(n, np.float64)
    for i in range(n):
        p = fill[cell[i]]
        fill[cell[i]] += 1
        sx[p] = xw[i, 0]
        sy[p] = xw[i, 1]
        sz[p] = xw[i, 2]
        order[p] = i
    prow_p = np.empty(n, np.int64)
    for p in range(n):
        prow_p[p] = prow[order[p]]
    # The extended grid: cell sizes first, then the shifted copies.
    ea_n, eb_n, ec_n = na + 2 * ra, nb + 2 * rb, nc + 2 * rc
    n_ext = ea_n * eb_n * ec_n
    estart = np.empty(n_ext + 1, np.int64)
    total = 0
    biggest = 0
    for ea in range(ea_n):
        a = (ea - ra) % na
        for eb in range(eb_n):
            b = (eb - rb) % nb
            for ec in range(ec_n):
                k = (a * nb + b) * nc + (ec - rc) % nc
                estart[(ea * eb_n + eb) * ec_n + ec] = total
                total += start[k + 1] - start[k]
                biggest = max(biggest, start[k + 1] - start[k])
    estart[n_ext] = total
    ex = np.empty(total, np.float64)
    ey = np.empty(total, np.float64)
    ez = np.empty(total, np.float64)
    ep = np.empty(total, np.int64)
    q = 0
    for ea in range(ea_n):
        sa = (ea - ra) // na
        a = ea - ra - sa * na
        for eb in range(eb_n):
            sb = (eb - rb) // nb
            b = eb - rb - sb * nb
            for ec in range(ec_n):
                sc = (ec - rc) // nc
                c = ec - rc - sc * nc
                i0 = sa * lattice[0, 0] + sb * lattice[1, 0] + sc * lattice[2, 0]
                i1 = sa * lattice[0, 1] + sb * lattice[1, 1] + sc * lattice[2, 1]
                i2 = sa * lattice[0, 2] + sb * lattice[1, 2] + sc * lattice[2, 2]
                k = (a * nb + b) * nc + c
                for p in range(start[k], start[k + 1]):
                    ex[q] = sx[p] + i0
                    ey[q] = sy[p] + i1
                    ez[q] = sz[p] + i2
                    ep[q] = p
                    q += 1
    run = 2 * rc + 1
    cap = biggest * (ra + 1) * (2 * rb + 1) * run + 1
    r2s = np.empty(cap, np.float64)
    hits = np.empty(cap, np.int64)
    r2max = radius * radius
    f32 = np.empty(1, np.float32)
    u32 = f32.view(np.uint32)
    width = lists.shape[0]
    shift32 = np.uint64(32)
    for ha in range(na):
        for hb in range(nb):
            for hc in range(nc):
                h = (ha * nb + hb) * nc + hc
                home = ((ha + ra) * eb_n + hb + rb) * ec_n + hc + rc
                for pi in range(start[h], start[h + 1]):
                    ti = prow_p[pi]
                    x0, x1, x2 = sx[pi], sy[pi], sz[pi]
                    # Candidate runs: the rest of the home row, then the later rows.
                    nn = 0
                    for da in range(0, ra + 1):
                        for db in range(-rb if da > 0 else 0, rb + 1):
                            if da == 0 and db == 0:
                                lo = estart[home] + (pi - start[h]) + 1
                                hi = estart[home + rc + 1]
                            else:
                                row = ((ha + ra + da) * eb_n + hb + rb + db) * ec_n + hc
                                lo = estart[row]
                                hi = estart[row + run]
                            # Distances (vectorised), then the indices of those inside
                            # the radius, branch-free.
                            for qq in range(lo, hi):
                                d0 = ex[qq] - x0
                                d1 = ey[qq] - x1
                                d2 = ez[qq] - x2
                                r2s[qq - lo] = d0 * d0 + d1 * d1 + d2 * d2
                            for qq in range(lo, hi):
                                hits[nn] = qq
                                nn += r2s[qq - lo] < r2max
                    for w in range(nn):
                        qq = hits[w]
                        pj = ep[qq]
                        tj = prow_p[pj]
                        if ti < 0 and tj < 0:
                            continue
                        d0 = ex[qq] - x0
                        d1 = ey[qq] - x1
                        d2 = ez[qq] - x2
                        f32[0] = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
                        bits = np.uint64(u32[0]) << shift32
                        if ti >= 0:
                            c = counts[pi]
                            if c < width:
                                lists[c, pi] = bits | np.uint64(order[pj])
                            counts[pi] = c + 1
                        if tj >= 0:
                            c = counts[pj]
                            if c < width:
                                lists[c, pj] = bits | np.uint64(order[pi])
                            counts[pj] = c + 1


def _sort_lists(lists, counts, network, order, prow, keys):
    """Sort every list (column) of ``lists`` in place; copy each row's first keys.

    ``network`` (K, 2): comparators of a sorting network on the first S slots, applied
    to all columns at once; columns with more than S candidates are then sorted by
    insertion. ``keys`` (R, n_keep) receives the first n_keep slots of each row's column.
    """
    width, n = lists.shape
    n_net = 1
    for k in range(network.shape[0]):
        n_net = max(n_net, network[k, 1] + 1)
        la = lists[network[k, 0]]
        lb = lists[network[k, 1]]
        for p in range(n):
            x = la[p]
            y = lb[p]
            la[p] = min(x, y)
            lb[p] = max(x, y)
    col = np.empty(width, np.uint64)
    n_keep = keys.shape[1]
    for p in range(n):
        c = min(counts[p], width)
        if c > n_net:
            for u in range(c):
                col[u] = lists[u, p]
            for u in range(1, c):
                v = col[u]
                w = u
                while w > 0 and col[w - 1] > v:
                    col[w] = col[w - 1]
                    w -= 1
                col[w] = v
            for u in range(c):
                lists[u, p] = col[u]
        t = prow[order[p]]
        if t >= 0:
            for q in range(n_keep):
                keys[t, q] = lists[q, p]


@functools.cache
def compiled() -> tuple[Any, Any]:
    """The two kernels compiled by numba (cached on disk; imported on first use)."""
    import numba

    jit = numba.njit(nogil=True, cache=True)
    return jit(_half_lists), jit(_sort_lists)


@functools.cache
def sorting_network(n: int) -> np.ndarray:
    """Comparators (K, 2) of Batcher's odd-even merge sort for ``n`` inputs.

    Built for the next power of two; comparators that touch a slot >= n are dropped,
    which is exact when those slots hold the largest keys (the padding).
    """
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def network_size(n_keep: int, width: int, typical: int | None = None) -> int:
    """Slots sorted by the network: ``typical`` candidates per atom (default: the keys
    kept plus the usual surplus inside the cutoff), rounded up to a multiple of 4 (few
    distinct networks), at least ``n_keep``, at most ``width``; longer lists use insertion."""
    want = n_keep + max(8, n_keep // 2) if typical is None else max(int(typical), n_keep)
    return min(width, -(-want // 4) * 4)


def grid(lattice: np.ndarray, radius: float, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """(cells per axis, stencil half-width per axis) for a search within ``radius``.

    Cells are at least ``radius`` wide across (face widths of the cell), at most
    :data:`CELLS_PER_ATOM` per atom; a point within ``radius`` of an atom lies at most
    ``reach`` cells away along each axis (fractional offsets are bounded by radius /
    face width).
    """
    widths = 1.0 / np.linalg.norm(np.linalg.inv(lattice), axis=0)
    n_cells = np.maximum(1, np.floor(widths / radius)).astype(np.int64)
    limit = max(1, CELLS_PER_ATOM * n_atoms)
    if int(np.prod(n_cells)) > limit:
        scale = (limit / float(np.prod(n_cells))) ** (1.0 / 3.0)
        n_cells = np.maximum(1, np.floor(n_cells * scale)).astype(np.int64)
    reach = np.ceil(n_cells * radius / widths).astype(np.int64)
    return n_cells, reach


def cell_lists(
    coords: np.ndarray,
    lattice: np.ndarray,
    rows: np.ndarray,
    cutoff: float,
    n_keep: int,
    capacity: int,
    typical: int | None = None,
    lists: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every row's sorted candidates closer than ``cutoff`` (all periodic images).

    Parameters: ``coords`` (N, 3) and ``lattice`` (3, 3) float64 (checked by the caller);
    ``rows`` (R,) distinct atom ids; ``n_keep`` keys returned per row; ``capacity`` C,
    candidates held per atom (rows with more are counted but truncated: rerun with a
    larger capacity when ``counts.max() > capacity``); ``typical`` candidates per atom, the
    length the sorting network is built for (:func:`network_size`); ``lists`` a (C, N)
    uint64 buffer to reuse (the previous call's), else one is allocated.

    Returns ``keys`` (R, n_keep) uint64, the first keys of each row in (float32 distance,
    id) order, padded with :data:`MAX_KEY`; ``counts`` (R,) candidates of each row;
    ``lists`` (C, N) every row's sorted candidates, column ``column[r]`` for row r, and
    ``column`` (R,). Candidates within ``cutoff`` are all present; some up to
    ``cutoff * (1 + RADIUS_PAD)`` may be too.
    """
    half_lists, sort_lists = compiled()
    n = coords.shape[0]
    inv = np.linalg.inv(lattice)
    s = coords @ inv
    whole = np.floor(s)
    xw = coords - whole @ lattice
    frac = s - whole
    radius = float(cutoff) * (1.0 + RADIUS_PAD)
    n_cells, reach = grid(lattice, radius, n)
    prow = np.full(n, -1, dtype=np.int64)
    prow[rows] = np.arange(rows.size)
    width = max(int(capacity), n_keep)
    if lists is None or lists.shape != (width, n):
        lists = np.empty((width, n), dtype=np.uint64)
    lists.fill(MAX_KEY)
    counts_p = np.zeros(n, dtype=np.int64)
    order = np.empty(n, dtype=np.int64)
    half_lists(xw, frac, np.ascontiguousarray(lattice), prow, radius, n_cells, reach, lists,
               counts_p, order)
    keys = np.empty((rows.size, n_keep), dtype=np.uint64)
    network = sorting_network(network_size(n_keep, width, typical))
    sort_lists(lists, counts_p, network, order, prow, keys)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    column = position[rows]
    return keys, counts_p[column], lists, column
