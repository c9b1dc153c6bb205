"""Exact periodic M-nearest-neighbour search: one frame, a block of frames, BFS reach.

Two paths give the same arrays. Frames with many atoms go through the compiled cell-list
kernel (:func:`gdyn.graph.kernel.cell_lists`: every row's candidates within a cutoff,
sorted, one frame per call, GIL released); tiny cells where images dominate (the toy: 5
atoms) go through a brute force over an explicit box of images vectorised over a block
of frames (:func:`gdyn.graph.cell._image_pairs`), whose M best per row are picked by
:func:`gdyn.graph.select._select`. The cutoff adapts: a frame starts from the previous
frame's largest M-th distance times a margin and grows until every needed row has M
neighbours strictly inside it. Ties at the cut are seeded the same way on both paths
(:func:`gdyn.graph.select._break_ties`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence

import numpy as np

from gdyn.errors import InputError
from gdyn.graph.cell import _image_pairs, _image_range, check_lattice, face_widths
from gdyn.graph.kernel import cell_lists
from gdyn.graph.select import _LOW32, _SHIFT32, _break_ties, _Salts, _select
from gdyn.trajectory import min_atoms_for_neighbors

# Next frame's cutoff = this frame's largest M-th distance times an adaptive margin that
# widens after a retry and narrows back towards CUTOFF_MARGIN (keeps retries to a few %).
CUTOFF_MARGIN = 1.02
MAX_MARGIN = 1.5
MARGIN_WIDEN = 1.05
MARGIN_NARROW = 0.998
# Cutoff growth when some row has fewer than M neighbours inside it, at most
# MAX_GROWTHS times per frame (x 1e4 in radius: only a bug could need more).
CUTOFF_GROWTH = 1.25
MAX_GROWTHS = 42
# Initial cutoff: this factor times the radius holding M atoms at the mean density.
INITIAL_FACTOR = 1.3
# Batched image brute force instead of cell lists when rows x atoms x images <= this.
SMALL_WORK = 30_000
# Temporary memory of one brute-force batch.
SMALL_BATCH_BYTES = 16 * 2**20
# Candidates held per atom by the cell-list kernel, as a multiple of the keys kept (it
# grows by itself when a frame needs more).
CAPACITY_FACTOR = 2


def _check_counts(n_atoms: int, n_neighbors: int, where: str) -> None:
    if n_neighbors < 1:
        raise InputError(f"{where}: n_neighbors: expected M >= 1, got {n_neighbors}")
    need = min_atoms_for_neighbors(n_neighbors)
    if n_atoms < need:
        raise InputError(
            f"{where}: key 'traj_coords': {n_atoms} atoms per cell cannot give M = "
            f"{n_neighbors} neighbours (expected at least {need}; periodic images count)"
        )


def initial_cutoff(n_atoms: int, lattice: np.ndarray, n_neighbors: int) -> float:
    """First cutoff to try: a bit more than the radius holding M atoms at the mean density."""
    volume = abs(float(np.linalg.det(lattice)))
    radius = (3.0 * n_neighbors * volume / (4.0 * math.pi * n_atoms)) ** (1.0 / 3.0)
    return INITIAL_FACTOR * radius


class NeighbourSearch:
    """Reusable per-thread searcher: the adapted cutoff and the kernel's list capacity.

    Not thread-safe; give each worker thread its own instance. Consecutive frames of a
    trajectory start from the previous frame's largest M-th distance times a margin; the
    margin widens after a frame that needed a retry and slowly narrows otherwise, so
    retries stay rare without inflating the candidate search.
    """

    def __init__(self, n_neighbors: int) -> None:
        self.n_neighbors = int(n_neighbors)
        self.cutoff: float | None = None
        self.margin = CUTOFF_MARGIN
        self.max_distance = 0.0  # largest M-th neighbour distance seen (Angstrom)
        self.n_retries = 0  # searches repeated with a larger cutoff or image box
        self._base_capacity = CAPACITY_FACTOR * (self.n_neighbors + 1) + 8
        self.capacity = self._base_capacity  # candidates held per atom by the kernel
        self._lists: np.ndarray | None = None  # the kernel's list buffer, reused
        self.typical: int | None = None  # candidates per row of the last frame (90th pct)

    # -- cutoff bookkeeping ------------------------------------------------------------

    def _start_cutoff(self, n_atoms: int, lattice: np.ndarray) -> float:
        if self.cutoff is None:
            return initial_cutoff(n_atoms, lattice, self.n_neighbors)
        return self.cutoff

    def _learn(self, worst: float, retried: bool) -> None:
        """Record a finished search whose largest M-th distance was ``worst``."""
        self.max_distance = max(self.max_distance, worst)
        if retried:
            self.margin = min(self.margin * MARGIN_WIDEN, MAX_MARGIN)
        else:
            self.margin = max(self.margin * MARGIN_NARROW, CUTOFF_MARGIN)
        self.cutoff = max(worst * self.margin, 1e-6)

    def _grow(self, cutoff: float, start: float) -> float:
        """The next, larger cutoff after a failed search (bounded, so bugs cannot spin)."""
        self.n_retries += 1
        if cutoff > start * CUTOFF_GROWTH**MAX_GROWTHS:
            raise RuntimeError(
                f"neighbour search: no {self.n_neighbors} neighbours within {cutoff:.3g} A "
                f"(started at {start:.3g} A)"
            )
        return cutoff * CUTOFF_GROWTH

    def _image_work(self, n_atoms: int, n_rows: int, lattices: np.ndarray) -> int:
        """Candidates per frame of the image brute force: rows x atoms x images."""
        cutoff = self._start_cutoff(n_atoms, lattices[0])
        r = _image_range(cutoff, float(face_widths(lattices).min()))
        return n_rows * n_atoms * (2 * r + 1) ** 3

    def _use_images(self, n_atoms: int, n_rows: int, lattices: np.ndarray) -> bool:
        """Whether the batched image brute force is cheaper than per-frame cell lists."""
        return self._image_work(n_atoms, n_rows, lattices) <= SMALL_WORK

    # -- cell lists (compiled kernel) -------------------------------------------------

    @staticmethod
    def _inside(distance: np.ndarray, cutoff: float) -> bool:
        """Every kept distance is safely inside the cutoff.

        A candidate beyond the cutoff has float32 distance >= float32(cutoff), so when the
        largest kept float32 distance is below that, nothing missing could tie or beat it.
        """
        return bool(distance.size == 0 or float(distance[:, -1].max()) < float(np.float32(cutoff)))

    def _one(
        self,
        coords: np.ndarray,
        lattice: np.ndarray,
        rows: np.ndarray,
        salts: _Salts | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(index, distance) (R, M) of the atoms ``rows`` of one frame, from the kernel."""
        m = self.n_neighbors
        n_keep = m + 1 if salts is not None else m  # one more shows a tie at the cut
        cutoff = start = self._start_cutoff(coords.shape[0], lattice)
        retried = False
        while True:
            keys, counts, lists, column = cell_lists(
                coords, lattice, rows, cutoff, n_keep, self.capacity, self.typical, self._lists
            )
            self._lists = lists
            if counts.size and int(counts.max()) > lists.shape[0]:
                self.capacity = int(counts.max()) + self.capacity  # same cutoff, more room
                continue
            worst = np.uint64(keys[:, m - 1].max() if counts.size else 0)
            worst_distance = np.array([worst >> _SHIFT32], np.uint32).view(np.float32)[0]
            if counts.size:
                # The next frame's sorting network fits 90 % of the rows; its lists hold
                # this frame's longest with 25 % to spare (never below the default).
                k = (9 * counts.size) // 10
                self.typical = int(np.partition(counts, k)[k])
                longest = int(counts.max())
                self.capacity = max(self._base_capacity, longest + max(8, longest // 4))
            # Every kept distance must be safely inside the cutoff: a candidate beyond it
            # has float32 distance >= float32(cutoff), so nothing missing could tie or beat.
            if counts.size == 0 or (
                int(counts.min()) >= m and float(worst_distance) < float(np.float32(cutoff))
            ):
                break
            retried = True
            cutoff = self._grow(cutoff, start)
        if salts is not None and counts.size:
            # Rows whose (M+1)-th candidate has the M-th's float32 distance: the kept ones
            # of that tied group are drawn from all of the row's candidates.
            tied = np.flatnonzero((keys[:, m - 1] >> _SHIFT32) == (keys[:, m] >> _SHIFT32))
            if tied.size:
                keys[tied, :m] = _break_ties(lists[:, column[tied]].T, salts(tied), m)
        best = keys[:, :m]
        index = (best & _LOW32).astype(np.int32)
        distance = (best >> _SHIFT32).astype(np.uint32).view(np.float32)
        self._learn(float(distance[:, -1].max()) if distance.size else 0.0, retried)
        return index, distance

    def _images(
        self,
        coords: np.ndarray,
        lattices: np.ndarray,
        rows: np.ndarray | None,
        n_rows: int,
        salts: _Salts | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        b, n_atoms = coords.shape[:2]
        cutoff = start = self._start_cutoff(n_atoms, lattices[0])
        retried = False
        while True:
            i, j, d = _image_pairs(coords, lattices, rows, cutoff)
            picked = _select(i, j, d, self.n_neighbors, None, b * n_rows, salts)
            if picked is not None and self._inside(picked[1], cutoff):
                index, dist = picked
                self._learn(float(dist[:, -1].max()) if dist.size else 0.0, retried)
                m = self.n_neighbors
                return index.reshape(b, n_rows, m), dist.reshape(b, n_rows, m)
            retried = True
            cutoff = self._grow(cutoff, start)

    # -- public ------------------------------------------------------------------------

    def frames(
        self,
        coords: np.ndarray,
        lattices: np.ndarray,
        rows: np.ndarray | None = None,
        tie_seeds: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(index (B, R, M) int32, distance (B, R, M) float32) for a block of frames.

        ``coords`` (B, N, 3) and ``lattices`` (B, 3, 3) float64, checked by the caller;
        ``rows`` atom ids to compute (all atoms if None); ``tie_seeds`` (B,) one integer
        per frame for the seeded tie rule at the M-th neighbour (see
        :func:`nearest_neighbours`), None for ties by atom id.
        """
        b, n_atoms = coords.shape[:2]
        n_rows = n_atoms if rows is None else len(rows)
        m = self.n_neighbors
        seeds = None
        if tie_seeds is not None:
            seeds = np.asarray(tie_seeds, dtype=np.int64).reshape(-1)
            if seeds.size != b:
                raise ValueError(f"tie_seeds: expected {b} seeds (one per frame), got {seeds.size}")
        atoms = np.arange(n_atoms) if rows is None else np.asarray(rows, dtype=np.int64)
        if b and self._use_images(n_atoms, n_rows, lattices):
            index, dist = np.empty((b, n_rows, m), np.int32), np.empty((b, n_rows, m), np.float32)
            # ~40 bytes of temporaries per (row, atom, image) candidate.
            step = max(1, SMALL_BATCH_BYTES // (40 * self._image_work(n_atoms, n_rows, lattices)))
            for lo in range(0, b, step):
                sl = slice(lo, lo + step)
                salts = None if seeds is None else _Salts(seeds[sl], atoms)
                index[sl], dist[sl] = self._images(coords[sl], lattices[sl], rows, n_rows, salts)
            return index, dist
        index = np.empty((b, n_rows, m), np.int32)
        dist = np.empty((b, n_rows, m), np.float32)
        for f in range(b):
            salts = None if seeds is None else _Salts(seeds[f : f + 1], atoms)
            index[f], dist[f] = self._one(
                np.ascontiguousarray(coords[f]),
                np.ascontiguousarray(lattices[f]),
                atoms,
                salts,
            )
        return index, dist

    def __call__(
        self,
        coords: np.ndarray,
        lattice: np.ndarray,
        rows: np.ndarray | None = None,
        tie_seed: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(index (R, M) int32, distance (R, M) float32) of one frame; see :meth:`frames`."""
        seeds = None if tie_seed is None else [tie_seed]
        index, dist = self.frames(coords[None], np.asarray(lattice)[None], rows, seeds)
        return index[0], dist[0]

    def reach(
        self,
        coords: np.ndarray,
        lattices: np.ndarray,
        targets: np.ndarray,
        hops: int,
        tie_seeds: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Boolean (N,) mask of atoms within ``hops`` hops of ``targets`` in any frame.

        ``coords`` (B, N, 3), ``lattices`` (B, 3, 3), ``tie_seeds`` as in :meth:`frames`
        (the graph whose hops are counted is the one :meth:`frames` gives). Hop h + 1
        atoms are the neighbours of hop h atoms (edges i -> its M nearest). A frame costs
        one search of all rows, then a breadth-first search over its table.
        """
        b, n_atoms = coords.shape[:2]
        union = np.zeros(n_atoms, dtype=bool)
        union[targets] = True
        if hops <= 0 or b == 0:
            return union
        tables, _ = self.frames(coords, lattices, None, tie_seeds)
        for table in tables:
            union |= _bfs(lambda front, t=table: t[front], n_atoms, targets, hops)
        return union


def _bfs(
    neighbours: Callable[[np.ndarray], np.ndarray | None],
    n_atoms: int,
    targets: np.ndarray,
    hops: int,
) -> np.ndarray | None:
    """Mask of atoms within ``hops`` hops of ``targets``; None if ``neighbours`` gives up.

    ``neighbours(frontier ids)`` returns their neighbour ids (any shape).
    """
    reached = np.zeros(n_atoms, dtype=bool)
    frontier = np.unique(np.asarray(targets, dtype=np.int64))
    reached[frontier] = True
    for _ in range(hops):
        found = neighbours(frontier)
        if found is None:
            return None
        new = np.unique(found)
        frontier = new[~reached[new]]
        if frontier.size == 0:
            break
        reached[frontier] = True
    return reached


def nearest_neighbours(
    coords: np.ndarray,
    lattice: np.ndarray,
    n_neighbors: int,
    rows: Sequence[int] | np.ndarray | None = None,
    tie_seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The M nearest neighbours of each atom of one frame under periodic boundaries.

    Parameters: ``coords`` (N, 3) Angstrom (need not be wrapped into the cell);
    ``lattice`` (3, 3), rows are lattice vectors (any shape of cell, not degenerate);
    ``n_neighbors`` M; ``rows`` optional atom ids to compute (default: all atoms);
    ``tie_seed`` optional integer per frame (``gdyn graphs`` passes the raw frame index).

    Returns ``index`` (R, M) int32 neighbour atom ids in [0, N) and ``distance`` (R, M)
    float32 Angstrom, each row sorted by (float32 distance, neighbour id). Periodic
    images are distinct neighbours (a 5-atom cell can give M = 12).

    Ties at the cut: when the M-th and (M+1)-th candidates of a row have the same float32
    distance, only some of that tied group fit. With ``tie_seed`` None the smallest
    neighbour ids are kept (the first M of the (distance, id) order). With a seed the kept
    ones are drawn by a deterministic hash of (seed, row atom, neighbour id, occurrence
    among that neighbour's tied images): reproducible for given inputs, but varying from
    seed to seed, so over frames every tied candidate is dropped equally often and the
    choice carries no atom-id (site) information. Distances, and everything closer than
    the cut, are the same either way.
    """
    xyz = np.ascontiguousarray(coords, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise InputError(f"coords: expected shape (N, 3), got {xyz.shape}")
    _check_counts(xyz.shape[0], int(n_neighbors), "coords")
    if not np.isfinite(xyz).all():
        bad = int(np.argmin(np.isfinite(xyz).all(axis=1)))
        raise InputError(f"coords: expected finite coordinates, atom {bad} has NaN or inf")
    lat = np.ascontiguousarray(lattice, dtype=np.float64)
    check_lattice(lat)
    row_ids = None
    if rows is not None:
        row_ids = np.asarray(rows, dtype=np.int64).reshape(-1)
        if row_ids.size and (row_ids.min() < 0 or row_ids.max() >= xyz.shape[0]):
            raise InputError(f"rows: expected atom ids in [0, {xyz.shape[0]}), got {row_ids}")
        if np.unique(row_ids).size != row_ids.size:
            raise InputError(f"rows: expected distinct atom ids, got {row_ids}")
    seed = None
    if tie_seed is not None:
        try:
            seed = operator.index(tie_seed)
        except TypeError:
            raise InputError(f"tie_seed: expected an integer or None, got {tie_seed!r}") from None
        if not -(2**63) <= seed < 2**63:
            raise InputError(f"tie_seed: expected a 64-bit signed integer, got {seed}")
    return NeighbourSearch(int(n_neighbors))(xyz, lat, row_ids, seed)
