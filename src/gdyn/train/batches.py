"""Lag pairs, the per-epoch shuffle and model batches of opened pieces.

Lag pairs ``(t, t + lag)`` on each piece's frame grid never straddle pieces
(:class:`PairIndex`). The per-epoch shuffle is a seeded permutation array
(:func:`epoch_permutation`, 8 bytes per pair), a pure function of seed and epoch. A batch
is the model input of a list of (piece, local frame) pairs: a
:class:`gdyn.models.gdynet.GraphBatch` gathered from the pieces' graph sources
(:func:`graph_batch`, whatever the source: a store, graphs in memory or graphs built on
the fly) or the VAMPnet's wrapped target positions (:func:`vampnet_batch`).
It reads :class:`gdyn.train.data.Piece` objects (one direction: data does not import it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gdyn.errors import InputError
from gdyn.models.gdynet import GraphBatch
from gdyn.train.data import Piece
from gdyn.train.settings import TrainSettings

__all__ = [
    "BATCH_BUILDERS",
    "PairIndex",
    "epoch_batches",
    "epoch_permutation",
    "epoch_seed",
    "fractional_targets",
    "frame_size",
    "graph_batch",
    "make_batch",
    "vampnet_batch",
]

# Largest per-piece cache of VAMPnet inputs (every grid frame's wrapped target positions).
POSITIONS_CACHE_BYTES = 256 * 2**20


# --------------------------------------------------------------------------------------
# Pairs


def epoch_permutation(n_pairs: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the lag pairs: a permutation of
    ``[0, n_pairs)`` as int64.

    ``np.random.default_rng(epoch_seed(seed, epoch)).permutation(n_pairs)``: a pure
    function of seed and epoch, so a run resumed mid-epoch replays the same order and
    finishes bit-identically. It costs 8 bytes per pair (8 MB per million pairs, for the
    epoch's duration; BENCHMARKS.md, "Pair shuffle").
    """
    return np.random.default_rng(epoch_seed(seed, epoch)).permutation(int(n_pairs))


@dataclass
class PairIndex:
    """Lag pairs ``(t, t + lag)`` on the frame grid of every piece, numbered 0..n_pairs-1."""

    pieces: Sequence[Piece]
    lag_frames: int

    def __post_init__(self) -> None:
        counts = []
        for p in self.pieces:
            start, stride = p.grid
            n_grid = len(range(start, p.n_frames, stride))
            counts.append(max(0, n_grid - self.lag_frames // stride))
        self.counts = np.asarray(counts, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)])

    @property
    def n_pairs(self) -> int:
        return int(self.starts[-1])

    def lookup(self, pair_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(piece index, local frame t) of each pair id."""
        piece = np.searchsorted(self.starts, pair_ids, side="right") - 1
        first = np.array([p.grid[0] for p in self.pieces], dtype=np.int64)
        stride = np.array([p.grid[1] for p in self.pieces], dtype=np.int64)
        t = first[piece] + (pair_ids - self.starts[piece]) * stride[piece]
        return piece.astype(np.int64), t


def epoch_batches(n_pairs: int, settings: TrainSettings) -> list[tuple[int, int]]:
    """``[lo, hi)`` positions in the epoch's permutation of each batch.

    A remainder shorter than a batch joins the last batch, so no step sees a covariance
    estimated from a handful of pairs.
    """
    cap = settings.max_pairs_per_epoch
    used = n_pairs if cap is None else min(n_pairs, int(cap))
    size = int(settings.batch_size)
    n_batches = max(1, used // size)
    bounds = [(b * size, (b + 1) * size) for b in range(n_batches)]
    bounds[-1] = (bounds[-1][0], used)
    return bounds


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of one epoch's shuffle: a pure function, so a resumed run replays it."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 7919]).generate_state(1)[0])


# --------------------------------------------------------------------------------------
# Batches


def graph_batch(
    pieces: Sequence[Piece], piece_ids: np.ndarray, frames: np.ndarray
) -> GraphBatch:
    """Flattened :class:`gdyn.models.gdynet.GraphBatch` of the given frames, in the given order."""
    piece_ids = np.asarray(piece_ids, dtype=np.int64)
    frames = np.asarray(frames, dtype=np.int64)
    n_rows = np.array([len(pieces[i].graphs.rows) for i in piece_ids], dtype=np.int64)
    n_atoms = np.array([pieces[i].n_atoms for i in piece_ids], dtype=np.int64)
    n_sets = np.array([pieces[i].target_rows.shape[0] for i in piece_ids], dtype=np.int64)
    k = pieces[piece_ids[0]].target_rows.shape[1]
    m = pieces[piece_ids[0]].graphs.n_neighbors
    row_start = np.concatenate([[0], np.cumsum(n_rows)])
    atom_start = np.concatenate([[0], np.cumsum(n_atoms)])
    set_start = np.concatenate([[0], np.cumsum(n_sets)])
    r_total, a_total, s_total = int(row_start[-1]), int(atom_start[-1]), int(set_start[-1])
    nbr = np.empty((r_total, m), dtype=np.int64)
    dist = np.empty((r_total, m), dtype=np.float32)
    types = np.empty(a_total, dtype=np.int64)
    rows = np.empty(r_total, dtype=np.int64)
    targets = np.empty((s_total, k), dtype=np.int64)
    identity = True
    for pid in np.unique(piece_ids):
        p = pieces[pid]
        g = p.graphs
        if g.n_neighbors != m or p.target_rows.shape[1] != k:
            raise InputError(
                f"{g.where}: expected M = {m} neighbours and k = {k} atoms per target set "
                f"(as the other pieces), got {g.n_neighbors} and {p.target_rows.shape[1]}"
            )
        identity &= p.identity_rows
        sel = np.flatnonzero(piece_ids == pid)
        order = np.argsort(frames[sel], kind="stable")  # sorted reads are kinder to disks
        sel = sel[order]
        fr = frames[sel]
        dest_rows = (row_start[sel][:, None] + np.arange(len(g.rows))).reshape(-1)
        a0 = atom_start[sel]
        index, distance = g.take(fr)
        index = np.asarray(index, dtype=np.int64)
        nbr[dest_rows] = (index + a0[:, None, None]).reshape(-1, m)
        dist[dest_rows] = np.asarray(distance).reshape(-1, m)
        types[(a0[:, None] + np.arange(p.n_atoms)).reshape(-1)] = np.tile(p.atom_types, len(sel))
        rows[dest_rows] = (a0[:, None] + g.rows).reshape(-1)
        dest_sets = (set_start[sel][:, None] + np.arange(p.target_rows.shape[0])).reshape(-1)
        targets[dest_sets] = (row_start[sel][:, None, None] + p.target_rows).reshape(-1, k)
    rows_t = None if identity else torch.from_numpy(rows)
    types_t = torch.from_numpy(types)
    return GraphBatch(
        atom_types=types_t,
        rows=rows_t,
        row_types=types_t if rows_t is None else types_t[rows_t],
        nbr=torch.from_numpy(nbr),
        dist=torch.from_numpy(dist),
        targets=torch.from_numpy(targets),
    )


def fractional_targets(p: Piece, frames: np.ndarray) -> np.ndarray:
    """Wrapped fractional positions of the target sets, (len(frames) * n, 3k) float32."""
    flat = p.target_sets.reshape(-1)
    coords = np.asarray(p.coords[frames][:, flat], dtype=np.float64)  # (b, n k, 3)
    lat = np.asarray(p.lattices[frames], dtype=np.float64)  # (b, 3, 3), rows = vectors
    # r = f L  =>  f = r L^-1, batched over frames.
    frac = np.linalg.solve(np.transpose(lat, (0, 2, 1)), np.transpose(coords, (0, 2, 1)))
    frac = np.transpose(frac, (0, 2, 1)) % 1.0
    n, k = p.target_sets.shape
    return frac.reshape(len(frames) * n, 3 * k).astype(np.float32)


def vampnet_batch(
    pieces: Sequence[Piece], piece_ids: np.ndarray, frames: np.ndarray
) -> torch.Tensor:
    """Input tensor of the VAMPnet baseline for the given frames, in the given order."""
    piece_ids = np.asarray(piece_ids, dtype=np.int64)
    frames = np.asarray(frames, dtype=np.int64)
    n_sets = np.array([pieces[i].target_sets.shape[0] for i in piece_ids], dtype=np.int64)
    width = 3 * pieces[piece_ids[0]].target_sets.shape[1]
    set_start = np.concatenate([[0], np.cumsum(n_sets)])
    out = np.empty((int(set_start[-1]), width), dtype=np.float32)
    for pid in np.unique(piece_ids):
        p = pieces[pid]
        if 3 * p.target_sets.shape[1] != width:
            raise InputError(f"{p.where}: key 'target_index': expected {width // 3} atoms per set")
        sel = np.flatnonzero(piece_ids == pid)
        dest = (set_start[sel][:, None] + np.arange(p.target_sets.shape[0])).reshape(-1)
        out[dest] = _positions(p, frames[sel])
    return torch.from_numpy(out)


def _positions(p: Piece, frames: np.ndarray) -> np.ndarray:
    """:func:`fractional_targets` of ``frames``, from the piece's grid cache when possible.

    The inputs of every grid frame are computed once per piece (at most
    :data:`POSITIONS_CACHE_BYTES`) instead of once per batch and epoch: gathering a few
    coordinates per frame from a memory-mapped piece costs far more than the small MLP that
    reads them. Values are bit-identical to the direct computation (each frame is solved
    on its own).
    """
    start, stride = p.grid
    n_grid = len(range(start, p.n_frames, stride))
    if p.positions is None or p.positions[0] != p.grid:
        if n_grid * p.target_sets.size * 12 > POSITIONS_CACHE_BYTES:
            return fractional_targets(p, frames)
        grid = p.grid_frames()
        step = max(1, 2**24 // (24 * p.target_sets.size))  # ~16 MB of float64 per block
        cache = np.concatenate([fractional_targets(p, grid[lo : lo + step])
                                for lo in range(0, len(grid), step)]
                               or [np.empty((0, 3 * p.target_sets.shape[1]), np.float32)])
        p.positions = (p.grid, cache.reshape(n_grid, -1, cache.shape[-1]))
    on_grid = (frames >= start) & ((frames - start) % stride == 0)
    if not on_grid.all():
        return fractional_targets(p, frames)
    cache = p.positions[1]
    return cache[(frames - start) // stride].reshape(-1, cache.shape[-1])


# The batch builder of each input kind (gdyn.models.INPUT_KINDS).
BATCH_BUILDERS = {"graphs": graph_batch, "positions": vampnet_batch}


def make_batch(
    inputs: str, pieces: Sequence[Piece], piece_ids: np.ndarray, frames: np.ndarray
) -> Any:
    """The model input of the given frames for input kind ``inputs``."""
    return BATCH_BUILDERS[inputs](pieces, piece_ids, frames)


def frame_size(inputs: str, piece: Piece) -> int:
    """Work per frame of ``piece`` (edges for graphs, coordinates for positions)."""
    if inputs == "graphs":
        return len(piece.graphs.rows) * piece.graphs.n_neighbors
    return int(piece.target_sets.size)
