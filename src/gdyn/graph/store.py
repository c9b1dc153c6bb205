"""The graph store of a trajectory: build it chunk by chunk, prune rows, open it.

``build_store`` writes ``index.npy``/``distance.npy`` (F, R, M), ``rows.npy`` and
``meta.json`` (docs/contracts.md) atomically, computing frames in chunks of about
:data:`CHUNK_BYTES`, each split into one contiguous range of frames per worker thread (each
thread keeps its own :class:`~gdyn.graph.search.NeighbourSearch` and its adapted cutoff).
Frame f is built with ``tie_seed`` = its raw frame index, so the store depends on neither
chunks nor threads.

Receptive-field pruning: with ``n_conv = K`` the store keeps rows only for atoms within
K - 1 hops (along neighbour edges) of a target in *some* frame, found exactly by a first
pass that computes the neighbour lists of the BFS frontier only; see
:func:`receptive_field`.
"""

from __future__ import annotations

import itertools
import json
import mmap
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.errors import InputError
from gdyn.files import atomic_dir
from gdyn.graph.cell import _check_frames
from gdyn.graph.search import NeighbourSearch
from gdyn.trajectory import Trajectory

# Output + input bytes held in RAM per chunk of frames (bounds peak memory for any F).
CHUNK_BYTES = 32 * 2**20
# Frames per work item (and progress-bar update) of a worker thread.
PROGRESS_BLOCK = 64


def _release_pages(arr: np.ndarray) -> None:
    """Drop a memory-mapped array's pages from this process's resident set.

    The kernel keeps them in its page cache; without this, scanning a long trajectory
    through one mapping makes the resident set grow with the trajectory length.
    """
    mm = getattr(arr, "_mmap", None)
    if isinstance(mm, mmap.mmap) and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass  # a closed map or an unsupported platform only costs memory


def _frame_chunks(n_frames: int, frame_bytes: int, threads: int) -> list[tuple[int, int]]:
    step = max(threads, CHUNK_BYTES // max(frame_bytes, 1), 1)
    return [(lo, min(n_frames, lo + step)) for lo in range(0, n_frames, step)]


def _split(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous sub-ranges of [lo, hi), so each worker keeps its adapted cutoff."""
    edges = np.linspace(lo, hi, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges.tolist()) if b > a]


def _for_frames(
    traj: Trajectory,
    where: str,
    chunks: list[tuple[int, int]],
    searchers: list[NeighbourSearch],
    work: Callable[[NeighbourSearch, np.ndarray, np.ndarray, int, int], None],
    finish_chunk: Callable[[int, int], None],
    desc: str,
    progress: bool,
    after_block: Callable[[], None] | None = None,
) -> None:
    """Run ``work(searcher, coords, lattices, first, chunk_start)`` on blocks of frames.

    ``coords`` (B, N, 3) and ``lattices`` (B, 3, 3) hold frames first .. first + B - 1.
    Each chunk is read (and checked) in one go and split into one contiguous range per
    worker thread, so each searcher sees consecutive frames; ``finish_chunk(lo, hi)`` runs
    before the next chunk is read; ``after_block()``, if given, after each block of
    ``PROGRESS_BLOCK`` frames, in the worker thread that ran it.
    """
    from tqdm import tqdm

    n_frames = traj.traj_coords.shape[0]
    threads = len(searchers)
    bar = tqdm(total=n_frames, desc=desc, unit="frame", file=sys.stderr, disable=not progress)

    def run(part: int, coords: np.ndarray, lattices: np.ndarray, lo: int, a: int, b: int) -> None:
        for f in range(a, b, PROGRESS_BLOCK):
            g = min(b, f + PROGRESS_BLOCK)
            work(searchers[part], coords[f - lo : g - lo], lattices[f - lo : g - lo], f, lo)
            if after_block is not None:
                after_block()
            bar.update(g - f)

    n_atoms = traj.traj_coords.shape[1]
    biggest = max((hi - lo for lo, hi in chunks), default=1)
    # Input buffers reused chunk after chunk: a fresh multi-MB array per chunk lets the
    # allocator's heap creep up with the number of chunks.
    coords_buf = np.empty((biggest, n_atoms, 3), dtype=np.float64)
    lattices_buf = np.empty((biggest, 3, 3), dtype=np.float64)
    with ThreadPoolExecutor(max_workers=threads) as pool, bar:
        for lo, hi in chunks:
            coords, lattices = coords_buf[: hi - lo], lattices_buf[: hi - lo]
            np.copyto(coords, traj.traj_coords[lo:hi], casting="same_kind")
            np.copyto(lattices, traj.lattices[lo:hi], casting="same_kind")
            _release_pages(traj.traj_coords)
            _check_frames(coords, lattices, lo, where)
            futures = [
                pool.submit(run, p, coords, lattices, lo, a, b)
                for p, (a, b) in enumerate(_split(lo, hi, threads))
            ]
            for fut in futures:
                fut.result()
            finish_chunk(lo, hi)


def receptive_field(
    traj: Trajectory,
    n_neighbors: int,
    hops: int,
    threads: int = 1,
    progress: bool = False,
    where: str = "trajectory",
    after_block: Callable[[], None] | None = None,
) -> np.ndarray:
    """Sorted atom ids within ``hops`` neighbour hops of any target atom in any frame.

    A K-layer model needs hops = K - 1: an atom at hop h feeds the target's layer-K
    embedding through its own layer-(K - h) embedding, so atoms at hop K only enter
    through their (fixed) initial embeddings and need no neighbour list. Hops follow the
    graph :func:`build_store` writes (ties at the cut seeded by the raw frame index).
    ``after_block`` as in :func:`build_store`.
    """
    targets = np.unique(np.asarray(traj.target_index, dtype=np.int64).reshape(-1))
    n_atoms = traj.traj_coords.shape[1]
    if hops <= 0:
        return targets
    searchers = [NeighbourSearch(n_neighbors) for _ in range(max(1, threads))]
    union = [np.zeros(n_atoms, dtype=bool) for _ in searchers]
    owner = {id(s): k for k, s in enumerate(searchers)}

    offset = frame_offset(traj)

    def work(s: NeighbourSearch, coords: np.ndarray, lattices: np.ndarray, f: int, lo: int) -> None:
        seeds = offset + f + np.arange(coords.shape[0], dtype=np.int64)
        union[owner[id(s)]] |= s.reach(coords, lattices, targets, hops, seeds)

    n_frames = traj.traj_coords.shape[0]
    chunks = _frame_chunks(n_frames, n_atoms * 24, len(searchers))
    _for_frames(
        traj,
        where,
        chunks,
        searchers,
        work,
        lambda lo, hi: None,
        "receptive field",
        progress,
        after_block,
    )
    return np.flatnonzero(np.logical_or.reduce(union)).astype(np.int64)


@dataclass
class GraphStore:
    """An opened graph store: memory-mapped arrays plus its metadata."""

    index: np.ndarray  # (F, R, M) int32 neighbour atom ids
    distance: np.ndarray  # (F, R, M) float32 Angstrom
    rows: np.ndarray  # (R,) int64 atom id of each row
    meta: dict[str, Any]


def open_store(path: str | Path) -> GraphStore:
    """Open a graph store written by :func:`build_store` (arrays memory-mapped read-only)."""
    p = Path(path)
    try:
        meta = json.loads((p / "meta.json").read_text())
        index = np.load(p / "index.npy", mmap_mode="r")
        distance = np.load(p / "distance.npy", mmap_mode="r")
        rows = np.load(p / "rows.npy")
    except FileNotFoundError as exc:
        raise InputError(f"{p}: not a graph store ({exc.filename} missing)") from None
    return GraphStore(index=index, distance=distance, rows=rows, meta=meta)


def _create_npy(path: Path, dtype: Any, shape: tuple[int, ...]) -> int:
    """Create a full-size .npy (sparse until written) and return its data offset."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    offset = int(mm.offset)
    del mm
    return offset


def _pwrite_all(fd: int, data: np.ndarray, offset: int) -> None:
    view = memoryview(np.ascontiguousarray(data)).cast("B")
    while view.nbytes:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def build_store(
    traj: Trajectory,
    outdir: str | Path,
    n_neighbors: int,
    n_conv: int | None = None,
    threads: int = 1,
    progress: bool = True,
    where: str | None = None,
    after_block: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Write the graph store of ``traj`` to ``outdir`` atomically; returns its metadata.

    ``n_conv`` None builds all rows; otherwise rows = :func:`receptive_field` with
    K - 1 hops. Output is computed and written in chunks of frames, so memory does not
    grow with the trajectory length (memory-mapped input pages are released per chunk).
    Frame f is built with ``tie_seed`` = its raw frame index, frame_offset + f (see
    :func:`~gdyn.graph.search.nearest_neighbours`), so the store does not depend on chunks
    or threads.

    ``after_block()``, if given, runs after each block of ``PROGRESS_BLOCK`` frames (in
    the worker thread, here and in the pruning pass): ``gdyn graphs`` passes a heap trim
    there, which is process-wide and so not the library's to do.
    """
    where = where or str(traj.path or "trajectory")
    n_frames, n_atoms = (int(x) for x in traj.traj_coords.shape[:2])
    m = int(n_neighbors)
    threads = max(1, int(threads))
    if n_conv is None:
        rows = np.arange(n_atoms, dtype=np.int64)
    else:
        if int(n_conv) < 1:
            raise InputError(f"{where}: n_conv: expected K >= 1, got {n_conv}")
        rows = receptive_field(traj, m, int(n_conv) - 1, threads, progress, where, after_block)
    n_rows = int(rows.size)
    all_rows = n_rows == n_atoms
    row_arg = None if all_rows else rows
    searchers = [NeighbourSearch(m) for _ in range(threads)]

    with atomic_dir(outdir) as tmp:
        shape = (n_frames, n_rows, m)
        index_off = _create_npy(tmp / "index.npy", np.int32, shape)
        dist_off = _create_npy(tmp / "distance.npy", np.float32, shape)
        frame_bytes = n_rows * m * 4
        chunks = _frame_chunks(n_frames, n_atoms * 24 + 2 * frame_bytes, threads)
        biggest = max((hi - lo for lo, hi in chunks), default=1)
        # One pair of output buffers, reused chunk after chunk.
        out_index = np.empty((biggest, n_rows, m), dtype=np.int32)
        out_distance = np.empty((biggest, n_rows, m), dtype=np.float32)

        offset = frame_offset(traj)

        def work(
            s: NeighbourSearch, coords: np.ndarray, lattices: np.ndarray, f: int, lo: int
        ) -> None:
            block = slice(f - lo, f - lo + coords.shape[0])
            seeds = offset + f + np.arange(coords.shape[0], dtype=np.int64)
            out_index[block], out_distance[block] = s.frames(coords, lattices, row_arg, seeds)

        with open(tmp / "index.npy", "r+b") as fi, open(tmp / "distance.npy", "r+b") as fd:

            def finish(lo: int, hi: int) -> None:
                _pwrite_all(fi.fileno(), out_index[: hi - lo], index_off + lo * frame_bytes)
                _pwrite_all(fd.fileno(), out_distance[: hi - lo], dist_off + lo * frame_bytes)

            _for_frames(
                traj, where, chunks, searchers, work, finish, "graphs", progress, after_block
            )
        np.save(tmp / "rows.npy", rows)
        meta = {
            "n_frames": n_frames,
            "n_atoms": n_atoms,
            "n_rows": n_rows,
            "n_neighbors": m,
            "n_conv": None if n_conv is None else int(n_conv),
            "pruned": n_conv is not None,
            "source": _source_name(traj),
            "frame_offset": _scalar(traj.extras.get("frame_offset")),
            "max_neighbor_distance_A": max(s.max_distance for s in searchers),
            "cutoff_retries": sum(s.n_retries for s in searchers),
            "tie_seed": "raw_frame_index",
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def _scalar(value: Any) -> Any:
    if value is None:
        return None
    return np.asarray(value).reshape(()).item()


def frame_offset(traj: Trajectory) -> int:
    """Raw-trajectory index of the first frame of ``traj`` (0 when not a split piece)."""
    value = _scalar(traj.extras.get("frame_offset"))
    return 0 if value is None else int(value)


def _source_name(traj: Trajectory) -> str:
    src = traj.extras.get("source")
    if src is not None:
        return str(_scalar(src))
    return Path(traj.path).stem if traj.path is not None else ""
