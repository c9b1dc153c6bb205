"""Pick the M best (distance, id) candidates of each row, with seeded ties at the cut.

Each candidate becomes one uint64 key, float32 distance bits << 32 | neighbour id:
non-negative float32 bit patterns order like the floats, so one integer sort per row gives
the (distance, id) order (:func:`_select`). When the cut falls inside a group of exactly
tied candidates (same float32 distance at the M-th and (M+1)-th place), the kept ones are
drawn by a hash of (frame seed, row atom, neighbour, occurrence) (:func:`_break_ties`),
reproducible yet uniform over frames; :func:`tie_salts` is the per-row part of that hash.
"""

from __future__ import annotations

import numpy as np

_MAX_KEY = np.uint64(np.iinfo(np.uint64).max)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
# splitmix64 constants (hash of the seeded tie rule, see _break_ties).
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_M1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_M2 = np.uint64(0x94D049BB133111EB)
_MIX_S1, _MIX_S2, _MIX_S3 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic): a cheap, well-mixed
    deterministic hash, identical on every platform."""
    z = z ^ (z >> _MIX_S1)
    z = z * _MIX_M1
    z = z ^ (z >> _MIX_S2)
    z = z * _MIX_M2
    return z ^ (z >> _MIX_S3)


def tie_salts(seeds: int | np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """uint64 hash salts of rows, from frame seeds and row atom ids (broadcast together).

    A row's salt depends only on its frame's seed and its own atom id, never on its row
    position, chunk or thread, so every search path and the pruning pass draw the same keys.
    """
    s = np.asarray(seeds, dtype=np.int64).view(np.uint64)
    a = np.asarray(atoms, dtype=np.int64).view(np.uint64)
    return _mix(_mix(s + _GOLDEN) + a * _GOLDEN)


class _Salts:
    """Salts of table rows on demand: row t is atom ``atoms[t % R]`` of frame ``t // R``
    (frame-major, as the batched image search flattens them), R = len(atoms). Only rows
    whose cut falls inside a tie are ever hashed."""

    def __init__(self, seeds: np.ndarray, atoms: np.ndarray) -> None:
        self.seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        self.atoms = np.asarray(atoms, dtype=np.int64).reshape(-1)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        frame, row = np.divmod(rows, self.atoms.size)
        return tie_salts(self.seeds[frame], self.atoms[row])


def _break_ties(sub: np.ndarray, salt: np.ndarray, n_neighbors: int) -> np.ndarray:
    """The M kept keys of rows whose M-th and (M+1)-th candidates tie in float32 distance.

    ``sub`` (T, W) holds every candidate key of each such row, sorted (padding
    ``_MAX_KEY``); ``salt`` (T,) their :func:`tie_salts`. All candidates closer than the
    cut distance D are kept; of the g candidates at exactly D, the ``need`` with the
    smallest pseudo-random draw are kept, the draw being a hash of (salt, neighbour id,
    occurrence), where occurrence numbers the images of one neighbour at D (0, 1, ...).
    Images of one neighbour at one float32 distance are identical entries, so numbering
    them instead of naming their shift makes the choice a uniformly random subset of the
    tied images that depends only on the stored (distance, id) values: every search path
    gives the same answer. Kept entries stay in (distance, id) order.
    """
    t, m = sub.shape[0], n_neighbors
    row = np.arange(t)[:, None]
    bits = sub >> _SHIFT32
    cut = bits[:, m - 1 : m]
    below = (bits < cut).sum(axis=1)  # kept outright
    size = (bits == cut).sum(axis=1)  # the tied group, columns below .. below + size - 1
    need = m - below  # 1 <= need < size
    width = int(size.max())
    k = np.arange(width, dtype=np.int64)
    valid = k[None, :] < size[:, None]
    cols = np.minimum(below[:, None] + k[None, :], sub.shape[1] - 1)
    group = sub[row, cols]  # (T, width), sorted by id
    # Occurrence of each key within its run of equal keys.
    new_run = np.ones((t, width), dtype=bool)
    new_run[:, 1:] = group[:, 1:] != group[:, :-1]
    occurrence = k[None, :] - np.maximum.accumulate(np.where(new_run, k[None, :], 0), axis=1)
    tag = ((group & _LOW32) << _SHIFT32) | occurrence.astype(np.uint64)
    draw = _mix(salt[:, None] + tag * _GOLDEN) >> np.uint64(1)
    # Low bits := column, so draws in a row are distinct and exactly ``need`` fall at or
    # below the need-th smallest; padding gets the largest key.
    low = np.uint64((1 << max(1, (width - 1).bit_length())) - 1)
    draw = np.where(valid, (draw & ~low) | k.astype(np.uint64)[None, :], _MAX_KEY)
    threshold = np.sort(draw, axis=1)[row[:, 0], need - 1]
    kept = draw <= threshold[:, None]
    out = sub[:, :m].copy()
    out[np.arange(m)[None, :] >= below[:, None]] = group[kept]
    return out


def _select(
    i: np.ndarray,
    j: np.ndarray,
    d: np.ndarray,
    n_neighbors: int,
    row_of: np.ndarray | None,
    n_rows: int,
    salts: _Salts | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The M best (distance, id) of each row from directed pairs; None if a row has < M.

    ``row_of`` maps atom id -> row (or -1 for atoms without a row); None means row = atom.
    Each candidate becomes one uint64 key (float32 distance bits << 32 | neighbour id):
    non-negative float32 bit patterns order like the floats, so one integer sort per row
    gives the (distance, id) order. Rows are gathered into a padded table with a radix
    argsort (16-bit row ids) and sorted along the short row axis, which is much cheaper
    than one global sort of all candidates.

    ``salts`` (row -> salt, :class:`_Salts`) switches on the seeded tie rule: a row whose
    (M+1)-th candidate has the same float32 distance as its M-th picks the kept ones of
    that tied group by :func:`_break_ties`; None keeps the smallest ids. Only such rows
    do extra work.
    """
    if row_of is not None:
        r = row_of[i]
        keep = r >= 0
        if not keep.all():
            r, j, d = r[keep], j[keep], d[keep]
    else:
        r = i
    counts = np.bincount(r, minlength=n_rows)
    if counts.size == 0 or int(counts.min()) < n_neighbors:
        return None
    key = d.astype(np.float32).view(np.uint32).astype(np.uint64)
    key <<= _SHIFT32
    key |= j.astype(np.uint64)
    # Radix sort applies to 16-bit keys only; larger row counts fall back to a merge sort.
    sortable = r.astype(np.uint16) if n_rows <= 2**16 else r
    order = np.argsort(sortable, kind="stable")
    width = int(counts.max())
    start = np.cumsum(counts) - counts
    rs = r[order]
    flat = rs * width + (np.arange(rs.size, dtype=np.int64) - start[rs])
    table = np.full(n_rows * width, _MAX_KEY, dtype=np.uint64)
    table[flat] = key[order]
    table = table.reshape(n_rows, width)
    m = n_neighbors
    if salts is None or width <= m:
        # No seeded rule, or no row has an (M+1)-th candidate: nothing can tie at the cut.
        if width > 2 * m:
            table = np.partition(table, m - 1, axis=1)[:, :m]
        table.sort(axis=1)
        best = table[:, :m]
    else:
        # One more column than needed shows whether the cut falls inside a tie.
        if width > 2 * m:
            head = np.partition(table, m, axis=1)[:, : m + 1]
            head.sort(axis=1)
        else:
            table.sort(axis=1)
            head = table
        tied = np.flatnonzero((head[:, m - 1] >> _SHIFT32) == (head[:, m] >> _SHIFT32))
        if tied.size:
            sub = table[tied]  # every candidate of the tied rows
            if head is not table:
                sub.sort(axis=1)
            head[tied, :m] = _break_ties(sub, salts(tied), m)
        best = head[:, :m]
    index = (best & _LOW32).astype(np.int32)
    distance = (best >> _SHIFT32).astype(np.uint32).view(np.float32)
    return index, distance
