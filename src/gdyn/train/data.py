"""Training data: split pieces and their graphs (lag pairs and batches: :mod:`.batches`).

A :class:`Piece` is one trajectory's frames in one part (train, val or test), memory-mapped.
Models with graph inputs also need its neighbour lists, a :class:`Graphs`: either an opened
graph store (the workflow, :func:`load_piece`) or arrays built in memory for the frames in
use with :class:`gdyn.graph.NeighbourSearch`, exactly as :func:`gdyn.graph.build_store`
builds them (the API, :func:`graphs_in_memory`), or a source that searches each batch's
frames when it is assembled (``graph.store: false``, :mod:`gdyn.train.onthefly`); the batch
code does not care which.

Lag pairs, the epoch shuffle and the batch builders are in :mod:`gdyn.train.batches`
(which reads pieces; this module does not import it).

``frame_stride`` s > 1 uses only raw frames that are multiples of s (``Piece.grid``, aligned
to raw frame numbers, so every part and every lag agree).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.errors import InputError
from gdyn.graph import (
    DamagedStore,
    NeighbourSearch,
    decode_distance,
    encode_distance,
    frame_grid,
    open_store,
    receptive_field,
)
from gdyn.trajectory import Trajectory, load_trajectory

__all__ = [
    "Graphs",
    "Piece",
    "attach_graphs",
    "check_grid",
    "data_summary",
    "graphs_in_memory",
    "load_part",
    "load_piece",
    "max_distance",
    "open_graphs",
    "piece_from_trajectory",
    "set_grid",
    "target_rows",
]

# Frames per neighbour search call when graphs are built in memory (bounds temporaries).
SEARCH_BLOCK = 64


# --------------------------------------------------------------------------------------
# Graphs: an opened store or arrays built in memory


@dataclass
class Graphs:
    """Neighbour lists of one piece's frames (the graph store contract, docs/contracts.md).

    ``index``/``distance`` hold one entry per frame of ``frames`` (local frame indices,
    ascending), or per frame of the piece when ``frames`` is None. A store's distances
    may be uint16 codes with a per-frame ``distance_scale``; :meth:`take` decodes them.
    """

    index: np.ndarray  # (F', R, M) int neighbour atom ids (memmap for a store)
    distance: np.ndarray  # (F', R, M) float32 Angstrom, or uint16 codes (distance_scale)
    rows: np.ndarray  # (R,) int64 atom id of each row, ascending
    meta: dict[str, Any]  # the store's meta.json (or its in-memory equivalent)
    where: str  # names the source in messages (the store directory)
    files: tuple[Path, ...] = ()  # backing files (checkpoint fingerprint); () in memory
    frames: np.ndarray | None = None
    distance_scale: np.ndarray | None = None  # (F',) float32 A per uint16 step, or None

    @property
    def n_neighbors(self) -> int:
        """M, neighbours per row."""
        return int(self.index.shape[2])

    def take(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index, distance float32 Angstrom) of the given local frames, (B, R, M) each."""
        if self.frames is None:
            pos = np.asarray(frames)
        else:
            pos = np.searchsorted(self.frames, frames)
            if (pos >= len(self.frames)).any() or not np.array_equal(self.frames[pos], frames):
                raise ValueError(f"{self.where}: graphs of some requested frames were not built")
        scale = None if self.distance_scale is None else self.distance_scale[pos]
        return self.index[pos], decode_distance(self.distance[pos], scale)


def open_graphs(graph_dir: Path) -> Graphs:
    """Open a graph store (:func:`gdyn.graph.open_store`) with file-naming errors."""
    where = str(graph_dir)
    if not graph_dir.is_dir():
        raise InputError(f"{where}: directory not found (expected a graph store)")
    # A file missing, short or inconsistent is a DamagedStore (open_store verifies).
    try:
        store = open_store(graph_dir)
    except InputError:
        raise
    except ValueError as exc:
        raise DamagedStore(graph_dir, f"unreadable .npy ({exc})") from None
    names = ("index.npy", "distance.npy") + ("distance_scale.npy",) * (
        store.distance_scale is not None)
    return Graphs(
        index=store.index,
        distance=store.distance,
        rows=np.asarray(store.rows, dtype=np.int64),
        meta=store.meta,
        where=where,
        files=tuple(graph_dir / name for name in names),
        frames=store.frames,
        distance_scale=store.distance_scale,
    )


def graphs_in_memory(
    traj: Trajectory,
    frames: np.ndarray,
    n_neighbors: int,
    n_conv: int | None,
    frame_offset: int,
    where: str,
) -> Graphs:
    """The graphs :func:`gdyn.graph.build_store` would store, for ``frames`` only.

    Rows are :func:`gdyn.graph.receptive_field` with ``n_conv - 1`` hops over the frames
    a pruned store holds (the stride grid when ``frames`` is one, else every frame of
    ``traj``), or every atom when ``n_conv`` is None. Frame f is
    searched with tie seed ``frame_offset + f`` (its raw frame index) and its distances
    rounded as the store's (:func:`gdyn.graph.encode_distance`), so each entry equals the
    store's. ``traj`` is expected valid (:func:`gdyn.trajectory.validate_trajectory`).
    """
    frames = np.unique(np.asarray(frames, dtype=np.int64))
    n_atoms, m = traj.n_atoms, int(n_neighbors)
    if n_conv is None:
        rows = np.arange(n_atoms, dtype=np.int64)
    else:
        step = int(frames[1] - frames[0]) if len(frames) > 1 else 1
        grid = frame_grid(traj.traj_coords.shape[0], frame_offset, step)
        stride = step if np.array_equal(frames, grid) else 1
        rows = np.asarray(receptive_field(traj, m, int(n_conv) - 1, frame_stride=stride),
                          dtype=np.int64)
    row_arg = None if rows.size == n_atoms else rows
    search = NeighbourSearch(m)
    index = np.empty((len(frames), rows.size, m), dtype=np.int32)
    distance = np.empty((len(frames), rows.size, m), dtype=np.float32)
    for lo in range(0, len(frames), SEARCH_BLOCK):
        fr = frames[lo : lo + SEARCH_BLOCK]
        coords = np.asarray(traj.traj_coords[fr], dtype=np.float64)
        lattices = np.asarray(traj.lattices[fr], dtype=np.float64)
        index[lo : lo + len(fr)], exact = search.frames(
            coords, lattices, row_arg, frame_offset + fr
        )
        # The store's uint16 distances, decoded, so a model sees the same inputs.
        distance[lo : lo + len(fr)] = decode_distance(*encode_distance(exact))
    meta = {
        "n_frames": len(frames),
        "n_atoms": n_atoms,
        "n_rows": int(rows.size),
        "n_neighbors": m,
        "n_conv": None if n_conv is None else int(n_conv),
        "pruned": n_conv is not None,
        "frame_offset": int(frame_offset),
        "max_neighbor_distance_A": search.max_distance,
        "tie_seed": "raw_frame_index",
    }
    return Graphs(index=index, distance=distance, rows=rows, meta=meta,
                  where=f"{where} (graphs in memory)", frames=frames)


# --------------------------------------------------------------------------------------
# Pieces


@dataclass
class Piece:
    """One trajectory's frames in one part, memory-mapped, with its graphs if any."""

    path: Path | None  # the split piece file (None for a trajectory built in memory)
    source: str
    frame_offset: int
    frame_interval_ps: float
    coords: np.ndarray  # (F, N, 3) memmap
    lattices: np.ndarray  # (F, 3, 3) memmap
    atom_types: np.ndarray  # (N,) int64
    target_sets: np.ndarray  # (n, k) int64 atom ids
    graphs: Graphs | None = None
    target_rows: np.ndarray | None = None  # (n, k) positions of the target atoms in rows
    grid: tuple[int, int] = (0, 1)  # (first local frame, stride) of the frames used
    trajectory: Trajectory | None = field(default=None, repr=False)
    split_piece: bool = False  # a whole split piece file (load_piece): its file identifies it
    # VAMPnet inputs of the grid frames, computed once (vampnet_batch): (grid, array) or None
    positions: tuple[tuple[int, int], np.ndarray] | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        return int(self.coords.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.coords.shape[1])

    @property
    def where(self) -> str:
        """The piece in messages: its file, else its source name."""
        return str(self.path) if self.path is not None else self.source

    @property
    def identity_rows(self) -> bool:
        """True when every atom is a row in id order (an unpruned store)."""
        rows = None if self.graphs is None else self.graphs.rows
        return rows is not None and len(rows) == self.n_atoms and bool(
            np.array_equal(rows, np.arange(self.n_atoms))
        )

    def grid_frames(self) -> np.ndarray:
        """Local frame indices used (every ``stride``-th raw frame)."""
        start, stride = self.grid
        return np.arange(start, self.n_frames, stride, dtype=np.int64)


def _scalar(arrays: Mapping[str, np.ndarray], key: str) -> Any:
    value = arrays.get(key)
    return None if value is None else np.asarray(value).reshape(()).item()


def piece_from_trajectory(
    traj: Trajectory,
    where: str,
    name: str,
    frame_interval_ps: float | None = None,
    hint: str = "",
) -> Piece:
    """A :class:`Piece` of ``traj`` (no graphs yet).

    ``frame_interval_ps`` is used when the trajectory stores none; ``source`` and
    ``frame_offset`` come from its extras, else ``name`` and 0. ``hint`` is appended to the
    missing-interval message.
    """
    if traj.traj_coords.ndim != 3 or traj.traj_coords.shape[2] != 3:
        raise InputError(
            f"{where}: key 'traj_coords': expected shape (F, N, 3), got {traj.traj_coords.shape}"
        )
    fi = traj.frame_interval_ps
    if fi is None:
        fi = frame_interval_ps
    if fi is None:
        raise InputError(
            f"{where}: key 'frame_interval_ps': missing (expected a scalar in ps){hint}"
        )
    offset = _scalar(traj.extras, "frame_offset")
    source = _scalar(traj.extras, "source")
    return Piece(
        path=None if traj.path is None else Path(traj.path),
        source=str(source) if source is not None else name,
        frame_offset=int(offset) if offset is not None else 0,
        frame_interval_ps=float(fi),
        coords=traj.traj_coords,
        lattices=traj.lattices,
        atom_types=np.asarray(traj.atom_types, dtype=np.int64),
        target_sets=traj.target_sets,
        trajectory=traj,
    )


def load_piece(path: Path, graph_dir: Path | None, n_conv: int) -> Piece:
    """Open a split piece (and its graph store) memory-mapped; check they agree."""
    traj = load_trajectory(path, mmap=True, validate=False)
    piece = piece_from_trajectory(traj, str(path), path.stem)
    piece.path, piece.split_piece = path, True
    if graph_dir is not None:
        attach_graphs(piece, open_graphs(graph_dir), n_conv)
    return piece


def attach_graphs(piece: Piece, graphs: Graphs, n_conv: int) -> None:
    """Check ``graphs`` against ``piece`` (frames, atoms, rows, depth) and attach them."""
    where = graphs.where
    index, distance, rows, meta = graphs.index, graphs.distance, graphs.rows, graphs.meta
    f = piece.n_frames if graphs.frames is None else len(graphs.frames)
    n = piece.n_atoms
    if index.ndim != 3 or index.shape[0] != f or index.shape[1] != len(rows):
        raise InputError(
            f"{where}/index.npy: expected shape ({f}, {len(rows)}, M) (frames of {piece.path}, "
            f"rows of rows.npy), got {index.shape}"
        )
    if distance.shape != index.shape:
        raise InputError(
            f"{where}/distance.npy: expected shape {index.shape} (as index.npy), got "
            f"{distance.shape}"
        )
    if not np.issubdtype(index.dtype, np.integer):
        raise InputError(f"{where}/index.npy: expected integers, got dtype {index.dtype}")
    if meta.get("n_atoms", n) != n:
        raise InputError(
            f"{where}/meta.json: key 'n_atoms': expected {n} (atoms of {piece.path}), got "
            f"{meta.get('n_atoms')}"
        )
    if graphs.files and meta.get("n_piece_frames", piece.n_frames) != piece.n_frames:
        raise InputError(
            f"{where}/meta.json: key 'n_piece_frames': expected {piece.n_frames} (frames of "
            f"{piece.path}), got {meta.get('n_piece_frames')}"
        )
    offset = meta.get("frame_offset")
    if graphs.files and offset is not None and int(offset) != piece.frame_offset:
        raise InputError(
            f"{where}/meta.json: key 'frame_offset': expected {piece.frame_offset} (raw index "
            f"of the first frame of {piece.path}), got {offset}"
        )
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise InputError(
            f"{where}/rows.npy: expected atom ids in [0, {n}), got {rows.min()}..{rows.max()}"
        )
    if meta.get("pruned") and int(meta.get("n_conv", 0)) < n_conv:
        raise InputError(
            f"{where}/meta.json: key 'n_conv': expected >= {n_conv} (the model's convolutions; "
            f"a store pruned for fewer layers misses atoms), got {meta.get('n_conv')}"
        )
    piece.graphs, piece.target_rows = graphs, target_rows(piece, rows, f"{where}/rows.npy")


def target_rows(piece: Piece, rows: np.ndarray, where: str) -> np.ndarray:
    """(n, k) positions in ``rows`` of the target atoms of ``piece`` (every one must be a row)."""
    position = np.full(piece.n_atoms, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    out = position[piece.target_sets]
    if (out < 0).any():
        missing = int(piece.target_sets[out < 0][0])
        raise InputError(f"{where}: expected every target atom as a row, atom {missing} is missing")
    return out


def load_part(
    part: str,
    paths: Sequence[Path],
    graph_dirs: Sequence[Path] | None,
    n_conv: int,
) -> list[Piece]:
    """All pieces of one part; graph stores are matched to pieces by trajectory name."""
    if not paths:
        raise InputError(f"--{part}: expected at least one split piece, got none")
    by_name: dict[str, Path] = {}
    if graph_dirs is not None:
        for d in graph_dirs:
            by_name[Path(d).name] = Path(d)
        if len(by_name) != len(graph_dirs):
            raise InputError(f"--{part}-graphs: expected one store per trajectory, got duplicates")
    pieces = []
    for p in paths:
        p = Path(p)
        gdir = None
        if graph_dirs is not None:
            gdir = by_name.pop(p.stem, None)
            if gdir is None:
                raise InputError(
                    f"--{part}-graphs: expected a graph store named {p.stem!r} for {p}, got "
                    f"{', '.join(Path(d).name for d in graph_dirs)}"
                )
        pieces.append(load_piece(p, gdir, n_conv))
    if by_name:
        raise InputError(
            f"--{part}-graphs: store {next(iter(by_name))!r} has no split piece in --{part}"
        )
    return pieces


def set_grid(pieces: Sequence[Piece], stride: int) -> None:
    """Use every ``stride``-th raw frame of each piece; its graphs must hold those frames."""
    # The grid is aligned to raw frame numbers, so lag pairs and probs rows of every part
    # fall on the same raw frames whatever the split boundaries.
    for p in pieces:
        p.grid = ((-p.frame_offset) % stride, stride)
        if p.graphs is not None:
            check_grid(p)


def check_grid(piece: Piece) -> None:
    """InputError unless ``piece``'s graphs hold every frame of its grid.

    A store built with ``--frame-stride`` S holds the raw multiples of S, so it serves
    training strides that are multiples of S.
    """
    g = piece.graphs
    if g is None:
        return
    grid = piece.grid_frames()
    missing = grid[~np.isin(grid, np.arange(g.index.shape[0]) if g.frames is None else g.frames)]
    if missing.size:
        stride = piece.grid[1]
        built = g.meta.get("frame_stride", 1)
        raise InputError(
            f"{g.where}/meta.json: key 'frame_stride': expected a divisor of the training "
            f"frame_stride {stride} (the store must hold every raw frame that is a multiple "
            f"of {stride}), got {built}: local frame {int(missing[0])} of {piece.where} is not "
            f"stored; rebuild the store with `gdyn graphs ... --frame-stride {stride}`"
        )


def max_distance(pieces: Sequence[Piece], chunk: int = 2**22) -> float:
    """Largest neighbour distance in the graphs (from their meta when it records it, else
    streamed from distance.npy in bounded memory)."""
    best = 0.0
    for p in pieces:
        recorded = p.graphs.meta.get("max_neighbor_distance_A") if p.graphs else None
        if isinstance(recorded, int | float) and math.isfinite(recorded):
            best = max(best, float(recorded))
            continue
        if p.graphs is None:
            continue
        g = p.graphs
        held = np.arange(g.index.shape[0]) if g.frames is None else g.frames
        step = max(1, chunk // max(1, int(np.prod(g.index.shape[1:]))))
        for lo in range(0, len(held), step):
            best = max(best, float(np.max(g.take(held[lo : lo + step])[1], initial=0.0)))
    if not math.isfinite(best):
        raise InputError("graph stores: distance.npy contains NaN or inf")
    return best


def data_summary(inputs: str, pieces: Sequence[Piece]) -> dict[str, Any]:
    """What a model's ``dims_from_data`` reads: ``set_size`` k, and for graph inputs
    ``max_distance_A`` and ``n_neighbors`` (see :mod:`gdyn.models`)."""
    out: dict[str, Any] = {"set_size": int(pieces[0].target_sets.shape[1])}
    if inputs == "graphs":
        out["max_distance_A"] = max_distance(pieces)
        out["n_neighbors"] = pieces[0].graphs.n_neighbors
    return out
