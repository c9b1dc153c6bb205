"""Graphs built on the fly (``graph.store: false``): no graph store at all.

Each batch's neighbour lists are searched when the batch is assembled, inside training and
prediction (:class:`OnTheFlyGraphs`, a graph source with the interface of
:class:`gdyn.train.data.Graphs`); :func:`gdyn.train.loop.ahead` assembles the next batch
in a worker thread while the model works on the current one. Memory no longer grows with
the trajectory: a huge trajectory needs neither a store on disk nor its graphs in RAM.

The graphs equal the store's (``gdyn graphs``): the same search
(:class:`gdyn.graph.NeighbourSearch`, the compiled cell-list kernel of :mod:`gdyn.graph`)
with the tie seed of frame f = its raw frame index, ``frame_offset + f``; distances rounded
as the store's uint16 encoding (:func:`gdyn.graph.encode_distance`, then decoded); rows =
the receptive field of the targets (atoms within ``n_conv - 1`` hops in some frame,
:func:`gdyn.graph.receptive_field`'s definition) over the frames in use, i.e. the piece's
frame grid, which is what a store built with ``--frame-stride`` = ``train.frame_stride``
(the ``graphs`` rule) holds; and the training pieces' largest (exact) M-th neighbour
distance, which sets the model's Gaussian grid, over the same frames. Rows and distance
come from one survey pass before training (:func:`survey`). So every batch tensor, and the
trained weights, equal those read from the workflow's store (``tests/test_onthefly.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gdyn.errors import InputError
from gdyn.graph import NeighbourSearch, check_lattice, decode_distance, encode_distance
from gdyn.train.data import Piece, target_rows

__all__ = ["OnTheFlyGraphs", "as_stored", "on_the_fly", "survey"]

# Bytes of neighbour tables held by one survey block (bounds the survey's memory).
SURVEY_BLOCK_BYTES = 16 * 2**20


def _read_frames(piece: Piece, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 coordinates and lattices of ``frames``, checked (names the raw frame)."""
    coords = np.asarray(piece.coords[frames], dtype=np.float64)
    lattices = np.asarray(piece.lattices[frames], dtype=np.float64)
    finite = np.isfinite(coords).all(axis=(1, 2))
    if not finite.all():
        f = int(frames[np.argmin(finite)])
        raise InputError(
            f"{piece.where}: key 'traj_coords': expected finite coordinates, frame {f} has NaN "
            "or inf"
        )
    # Vectorised screen (check_lattice's test); check_lattice names the first bad frame.
    with np.errstate(invalid="ignore"):
        det = np.abs(np.linalg.det(lattices)) if len(frames) else np.empty(0)
        scale = np.prod(np.linalg.norm(lattices, axis=2), axis=1)
    bad = ~(np.isfinite(lattices).all(axis=(1, 2)) & (det > 1e-8 * scale))
    for k in np.flatnonzero(bad)[:1]:
        check_lattice(lattices[k], f"{piece.where}: key 'lattices': frame {int(frames[k])}")
    return coords, lattices


def as_stored(distance: np.ndarray) -> np.ndarray:
    """float32 distances (B, R, M) as a uint16 graph store gives them back (encoded with one
    step per frame, then decoded): what a model reads from the workflow's stores."""
    return decode_distance(*encode_distance(distance))


def _reach(tables: np.ndarray, targets: np.ndarray, hops: int) -> np.ndarray:
    """(N,) mask of atoms within ``hops`` hops of ``targets`` in any frame of ``tables``.

    ``tables`` (B, N, M) neighbour ids of every atom (edges i -> its M nearest); the BFS
    runs for all frames at once.
    """
    b, n_atoms, _ = tables.shape
    reached = np.zeros((b, n_atoms), dtype=bool)
    reached[:, targets] = True
    frontier = reached.copy()
    for _ in range(hops):
        f_idx, a_idx = np.nonzero(frontier)
        nxt = np.zeros_like(reached)
        nxt[np.repeat(f_idx, tables.shape[2]), tables[f_idx, a_idx].reshape(-1)] = True
        frontier = nxt & ~reached
        if not frontier.any():
            break
        reached |= frontier
    return reached.any(axis=0)


def survey(
    piece: Piece,
    n_neighbors: int,
    n_conv: int | None,
    need_distance: bool,
    search: NeighbourSearch | None = None,
    keep: bool = False,
) -> tuple[np.ndarray, float | None, tuple[np.ndarray, np.ndarray] | None]:
    """Rows and largest M-th neighbour distance of the piece's graphs over its grid frames.

    Rows: atoms within ``n_conv - 1`` hops of a target in some grid frame (every atom when
    ``n_conv`` is None). Distance (None unless ``need_distance``): the largest M-th
    neighbour distance over those rows and frames, what a store's meta records as
    ``max_neighbor_distance_A``. Without ``need_distance`` the pass stops as soon as every
    atom is a row. With ``need_distance`` and ``keep`` the graphs of every grid frame
    (restricted to the rows, exact distances) are returned too, else None.
    """
    n_atoms = piece.n_atoms
    frames = piece.grid_frames()
    search = search or NeighbourSearch(n_neighbors)
    targets = np.unique(piece.target_sets.reshape(-1))
    all_rows = n_conv is None
    union = np.ones(n_atoms, dtype=bool) if all_rows else np.zeros(n_atoms, dtype=bool)
    union[targets] = True
    hops = 0 if all_rows else int(n_conv) - 1
    if not need_distance and (all_rows or hops <= 0):
        return np.flatnonzero(union), None, None
    atom_max = np.zeros(n_atoms, dtype=np.float32)  # each atom's largest M-th distance
    step = max(1, SURVEY_BLOCK_BYTES // (n_atoms * n_neighbors * 8))
    offset = piece.frame_offset
    keep = keep and need_distance
    if keep:  # every atom's lists of every grid frame, cut down to the rows at the end
        shape = (len(frames), n_atoms, n_neighbors)
        kept = (np.empty(shape, np.int32), np.empty(shape, np.float32))
    for lo in range(0, len(frames), step):
        fr = frames[lo : lo + step]
        coords, lattices = _read_frames(piece, fr)
        if need_distance:
            tables, dist = search.frames(coords, lattices, None, offset + fr)
            np.maximum(atom_max, dist[:, :, -1].max(axis=0), out=atom_max)
            if hops > 0:
                union |= _reach(tables, targets, hops)
            if keep:
                kept[0][lo : lo + len(fr)], kept[1][lo : lo + len(fr)] = tables, dist
        else:
            union |= search.reach(coords, lattices, targets, hops, offset + fr)
            if union.all():
                break
    rows = np.flatnonzero(union)
    best = float(atom_max[rows].max()) if need_distance and len(frames) else None
    graphs = None
    if keep:
        # A row's neighbours do not depend on which other rows are computed.
        graphs = kept if len(rows) == n_atoms else (kept[0][:, rows], kept[1][:, rows])
    return rows, best, graphs


class OnTheFlyGraphs:
    """The neighbour lists of one piece, searched whenever frames are asked for.

    The interface of :class:`gdyn.train.data.Graphs` (``rows``, ``meta``, ``where``,
    ``files``, ``n_neighbors``, ``take``); each thread has its own
    :class:`gdyn.graph.NeighbourSearch` (and adapted cutoff). ``take(frames)`` gives
    what a store built with ``gdyn graphs`` holds for those frames, decoded.
    """

    def __init__(
        self,
        piece: Piece,
        rows: np.ndarray,
        n_neighbors: int,
        n_conv: int | None,
        max_distance_A: float | None,
    ) -> None:
        self.piece = piece
        self.rows = np.asarray(rows, dtype=np.int64)
        self._m = int(n_neighbors)
        self._row_arg = None if len(self.rows) == piece.n_atoms else self.rows
        self._local = threading.local()
        self._kept: tuple[np.ndarray, np.ndarray] | None = None  # every grid frame's graphs
        self.where = f"{piece.where} (graphs on the fly)"
        self.files: tuple = ()
        self.frames = None
        self.meta: dict[str, Any] = {
            "n_frames": piece.n_frames,
            "n_atoms": piece.n_atoms,
            "n_rows": len(self.rows),
            "n_neighbors": self._m,
            "n_conv": None if n_conv is None else int(n_conv),
            "pruned": n_conv is not None,
            "source": piece.source,
            "frame_offset": piece.frame_offset,
            "max_neighbor_distance_A": max_distance_A,
            "tie_seed": "raw_frame_index",
            "on_the_fly": True,
        }

    @property
    def n_neighbors(self) -> int:
        """M, neighbours per row."""
        return self._m

    def _search(self) -> NeighbourSearch:
        search = getattr(self._local, "search", None)
        if search is None:
            search = self._local.search = NeighbourSearch(self._m)
        return search

    def _searched(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        coords, lattices = _read_frames(self.piece, frames)
        index, dist = self._search().frames(coords, lattices, self._row_arg,
                                            self.piece.frame_offset + frames)
        return index, as_stored(dist)

    def take(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index (B, R, M) int32, distance (B, R, M) float32) of the given local frames."""
        frames = np.asarray(frames, dtype=np.int64)
        if self._kept is not None:
            start, stride = self.piece.grid
            on_grid = (frames >= start) & ((frames - start) % stride == 0)
            if on_grid.all():
                pos = (frames - start) // stride
                return self._kept[0][pos], self._kept[1][pos]
        return self._searched(frames)

    @property
    def nbytes(self) -> int:
        """Memory held by the graphs kept for the grid frames (0 when searched per batch)."""
        return 0 if self._kept is None else self._kept[0].nbytes + self._kept[1].nbytes

    def keep(self, graphs: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Hold the graphs of every grid frame in memory (``graphs``: the survey's, with
        exact distances, rounded here in place; or searched now): later :meth:`take` calls
        on grid frames read them instead of searching."""
        frames = self.piece.grid_frames()
        step = max(1, SURVEY_BLOCK_BYTES // max(1, len(self.rows) * self._m * 8))
        if graphs is None:
            shape = (len(frames), len(self.rows), self._m)
            graphs = (np.empty(shape, np.int32), np.empty(shape, np.float32))
            for lo in range(0, len(frames), step):
                fr = frames[lo : lo + step]
                graphs[0][lo : lo + len(fr)], graphs[1][lo : lo + len(fr)] = self._searched(fr)
        else:
            for lo in range(0, len(frames), step):
                graphs[1][lo : lo + step] = as_stored(graphs[1][lo : lo + step])
        self._kept = graphs


def on_the_fly(
    train: Sequence[Piece],
    n_neighbors: int,
    n_conv: int | None,
    cache_bytes: int = 0,
) -> Callable[[Piece], None]:
    """``attach(piece)`` giving a piece an :class:`OnTheFlyGraphs` source.

    For the ``attach`` hook of :func:`gdyn.train.loop.assemble`, which calls it once the
    frame grid is set. The survey of the ``train`` pieces also measures their largest
    neighbour distance (the model's Gaussian grid); ``n_conv`` None keeps every atom as a
    row (no pruning).

    ``cache_bytes``: pieces (in attach order) whose grid graphs fit in what is left of
    this budget are searched once and kept in memory (training reads every grid frame
    several times and predicts each once), the others search each batch's frames.
    """
    m = int(n_neighbors)
    if isinstance(n_neighbors, bool) or m < 1:
        raise InputError(f"graph: key 'n_neighbors': expected an integer >= 1, got {n_neighbors}")
    search = NeighbourSearch(m)
    train_ids = {id(p) for p in train}
    left = [int(cache_bytes)]

    def attach(p: Piece) -> None:
        n_grid = len(p.grid_frames())
        is_train = id(p) in train_ids
        keep = is_train and n_grid * p.n_atoms * m * 8 <= left[0]
        rows, dmax, kept = survey(p, m, n_conv, need_distance=is_train, search=search, keep=keep)
        graphs = OnTheFlyGraphs(p, rows, m, n_conv, dmax)
        if n_grid * len(rows) * m * 8 <= left[0]:
            graphs.keep(kept)
            left[0] -= graphs.nbytes
        p.graphs = graphs
        p.target_rows = target_rows(p, rows, graphs.where)

    return attach
