"""The graph store of a trajectory: build it chunk by chunk, prune rows, open it.

(Slightly over ~600 lines since the store verification of issue 26: building and
verifying read the same format description, so they stay together.)

``build_store`` writes ``index.npy``/``distance.npy`` (F', R, M), ``distance_scale.npy``,
``rows.npy`` and ``meta.json`` (docs/contracts.md) atomically, computing frames in chunks
of about :data:`CHUNK_BYTES`, each split into one contiguous range of frames per worker
thread (each thread keeps its own :class:`~gdyn.graph.search.NeighbourSearch` and its
adapted cutoff). Frame f is built with ``tie_seed`` = its raw frame index, so the store
depends on neither chunks nor threads.

Only the frames that are read are built: with ``frame_stride`` S the store holds the local
frames whose raw index is a multiple of S (the grid of ``gdyn.train``), F' of the piece's F.
The store is compact (format 2): neighbour ids as uint16 when the atom count allows
(int32 otherwise), distances as uint16 fixed point in steps of 2^-12 A (one step per
frame, larger only for a frame with a distance beyond 16 A), so the rounding error is at
most 1.2e-4 A (:func:`encode_distance`); ``distances="float32"`` keeps exact float32
distances. :func:`open_store` reads format 2 and the format-1 stores
of earlier versions (every frame, int32 and float32).

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
import shutil
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
# The store layout written by build_store (meta.json "format_version"); open_store reads
# every version up to this one.
FORMAT_VERSION = 2
# Distance encodings of build_store.
DISTANCE_FORMATS = ("uint16", "float32")
# uint16 distances: codes 0..DISTANCE_STEPS of DISTANCE_STEP_A (2^-12 A: up to 16 A;
# a frame with a larger distance uses a power-of-two multiple of it).
DISTANCE_STEPS = 65535
DISTANCE_STEP_A = 2.0**-12


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


def frame_grid(n_frames: int, frame_offset: int, frame_stride: int) -> np.ndarray:
    """Local frames whose raw index (``frame_offset`` + local) is a multiple of the stride.

    The grid of ``gdyn.train`` (``frame_stride``): aligned to raw frame numbers, so every
    part of a split, and every lag that is a multiple of the stride, use the same frames.
    """
    stride = int(frame_stride)
    return np.arange((-int(frame_offset)) % stride, int(n_frames), stride, dtype=np.int64)


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
    frames: np.ndarray,
    chunks: list[tuple[int, int]],
    searchers: list[NeighbourSearch],
    work: Callable[[NeighbourSearch, np.ndarray, np.ndarray, int, int], None],
    finish_chunk: Callable[[int, int], None],
    desc: str,
    progress: bool,
    after_block: Callable[[], None] | None = None,
) -> None:
    """Run ``work(searcher, coords, lattices, first, chunk_start)`` on blocks of frames.

    ``frames`` are the local frames to visit, an arithmetic progression (:func:`frame_grid`);
    chunks and blocks count positions in it. ``coords`` (B, N, 3) and ``lattices`` (B, 3,
    3) hold the frames at positions first .. first + B - 1. Each chunk is read (and
    checked) in one go and split into one contiguous range per worker thread, so each
    searcher sees consecutive frames; ``finish_chunk(lo, hi)`` runs before the next chunk
    is read; ``after_block()``, if given, after each block of ``PROGRESS_BLOCK`` frames, in
    the worker thread that ran it.
    """
    from tqdm import tqdm

    n_frames = len(frames)
    start = int(frames[0]) if n_frames else 0
    step = int(frames[1] - frames[0]) if n_frames > 1 else 1
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
            window = slice(start + lo * step, start + (hi - 1) * step + 1, step)
            np.copyto(coords, traj.traj_coords[window], casting="same_kind")
            np.copyto(lattices, traj.lattices[window], casting="same_kind")
            _release_pages(traj.traj_coords)
            _check_frames(coords, lattices, start + lo * step, where, step)
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
    frame_stride: int = 1,
) -> np.ndarray:
    """Sorted atom ids within ``hops`` neighbour hops of any target atom in any frame.

    A K-layer model needs hops = K - 1: an atom at hop h feeds the target's layer-K
    embedding through its own layer-(K - h) embedding, so atoms at hop K only enter
    through their (fixed) initial embeddings and need no neighbour list. Hops follow the
    graph :func:`build_store` writes (ties at the cut seeded by the raw frame index), over
    the frames of the ``frame_stride`` grid (:func:`frame_grid`). ``after_block`` as in
    :func:`build_store`.
    """
    targets = np.unique(np.asarray(traj.target_index, dtype=np.int64).reshape(-1))
    n_atoms = traj.traj_coords.shape[1]
    if hops <= 0:
        return targets
    searchers = [NeighbourSearch(n_neighbors) for _ in range(max(1, threads))]
    union = [np.zeros(n_atoms, dtype=bool) for _ in searchers]
    owner = {id(s): k for k, s in enumerate(searchers)}

    offset = frame_offset(traj)
    frames = frame_grid(traj.traj_coords.shape[0], offset, frame_stride)

    def work(s: NeighbourSearch, coords: np.ndarray, lattices: np.ndarray, f: int, lo: int) -> None:
        mine = union[owner[id(s)]]
        if mine.all():
            return  # every atom is reached already: no frame can add one
        seeds = offset + frames[f : f + coords.shape[0]]
        mine |= s.reach(coords, lattices, targets, hops, seeds)

    chunks = _frame_chunks(len(frames), n_atoms * 24, len(searchers))
    _for_frames(
        traj,
        where,
        frames,
        chunks,
        searchers,
        work,
        lambda lo, hi: None,
        "receptive field",
        progress,
        after_block,
    )
    return np.flatnonzero(np.logical_or.reduce(union)).astype(np.int64)


def encode_distance(distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint16 fixed point of float32 distances (B, R, M), one step per frame.

    Returns ``codes`` (B, R, M) uint16 = round(distance / step) and ``scale`` (B,) float32,
    the step of each frame in Angstrom: :data:`DISTANCE_STEP_A` (2^-12 A, distances up to
    16 A), doubled as often as needed for a frame with a larger distance. The step does
    not depend on which rows are stored, and codes * step is exact in float32, so
    :func:`decode_distance` is within half a step of the distance: 1.2e-4 A, 6e-4 of the
    Gaussian width 0.2 A. Rounding is monotone, so rows stay sorted.
    """
    b = distance.shape[0]
    top = distance.reshape(b, -1).max(axis=1, initial=0.0).astype(np.float64)
    doublings = np.ceil(np.log2(np.maximum(top / (DISTANCE_STEPS * DISTANCE_STEP_A), 1.0)))
    scale = (DISTANCE_STEP_A * np.exp2(doublings)).astype(np.float32)
    codes = np.rint(distance / scale.astype(np.float64)[:, None, None])
    return np.minimum(codes, DISTANCE_STEPS).astype(np.uint16), scale


def decode_distance(codes: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """float32 Angstrom from stored distances (B, R, M): uint16 codes times the (B,) scale
    of their frames, or float32 distances as they are (``scale`` None)."""
    if scale is None:
        return np.asarray(codes, dtype=np.float32)
    return np.asarray(codes, dtype=np.float32) * np.asarray(scale, dtype=np.float32)[:, None, None]


@dataclass
class GraphStore:
    """An opened graph store: memory-mapped arrays plus its metadata.

    ``index``/``distance`` hold the stored frames ``frames`` (local frame numbers of the
    piece, ascending) as written: :meth:`read` decodes any of them.
    """

    index: np.ndarray  # (F', R, M) uint16 or int32 neighbour atom ids
    distance: np.ndarray  # (F', R, M) uint16 codes (see distance_scale) or float32 Angstrom
    rows: np.ndarray  # (R,) int64 atom id of each row
    meta: dict[str, Any]
    frames: np.ndarray  # (F',) int64 local frame of each stored frame
    distance_scale: np.ndarray | None = None  # (F',) float32 Angstrom per uint16 step

    def positions(self, frames: np.ndarray) -> np.ndarray:
        """Store positions of local ``frames``; ValueError names frames it does not hold."""
        frames = np.asarray(frames, dtype=np.int64)
        pos = np.searchsorted(self.frames, frames)
        held = pos < len(self.frames)
        held[held] = self.frames[pos[held]] == frames[held]
        if not held.all():
            raise ValueError(
                f"graph store: frame {int(frames[~held][0])} is not stored (it holds every "
                f"{self.meta.get('frame_stride', 1)}-th frame from {self.meta.get('frame_start', 0)})"
            )
        return pos

    def read(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index int32, distance float32 Angstrom), (B, R, M), of the local ``frames``."""
        pos = self.positions(frames)
        scale = None if self.distance_scale is None else self.distance_scale[pos]
        return np.asarray(self.index[pos], dtype=np.int32), decode_distance(
            self.distance[pos], scale
        )


# Every file build_store writes (distance_scale.npy with uint16 distances only).
STORE_FILES = ("meta.json", "index.npy", "distance.npy", "rows.npy", "distance_scale.npy")
# Left in a directory output by Snakemake.
_FOREIGN_OK = (".snakemake_timestamp",)


class DamagedStore(InputError):
    """A graph store with a file missing, short or at odds with its ``meta.json``."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: damaged graph store: {problem}; rebuild it (gdyn graphs; "
                         "the workflow rebuilds a missing store)")


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from a .npy header, reading nothing else."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:  # 2.0 and 3.0 share the header layout
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        return tuple(int(x) for x in shape), np.dtype(dtype), fh.tell()


def verify_store(path: str | Path) -> dict[str, Any]:
    """Check that every file of the graph store ``path`` is there, whole and consistent.

    Cheap (headers and file sizes only): ``meta.json`` readable, ``index.npy``,
    ``distance.npy``, ``rows.npy`` (and ``distance_scale.npy`` for uint16 distances)
    present, each as long as its header says, with the shapes ``meta.json`` records.

    Returns
    -------
    dict
        The store's ``meta.json``.

    Raises
    ------
    InputError
        ``path`` is no graph store at all (no file of one in it).
    DamagedStore
        A file is missing, short, unreadable or does not match the others.
    """
    p = Path(path)
    present = {f.name for f in p.iterdir()} if p.is_dir() else set()
    if not present & set(STORE_FILES):
        raise InputError(f"{p}: not a graph store (expected {', '.join(STORE_FILES[:4])})")
    try:
        meta = json.loads((p / "meta.json").read_text())
    except FileNotFoundError:
        raise DamagedStore(p, "meta.json missing") from None
    except (OSError, ValueError) as exc:
        raise DamagedStore(p, f"meta.json unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise DamagedStore(p, "meta.json is not a JSON object")
    names = ["index.npy", "distance.npy", "rows.npy"]
    if meta.get("distance_encoding", "float32") == "uint16":
        names.append("distance_scale.npy")
    shapes = {}
    for name in names:
        f = p / name
        if not f.is_file():
            raise DamagedStore(p, f"{name} missing")
        try:
            shape, dtype, offset = _npy_header(f)
        except (OSError, ValueError, SyntaxError) as exc:
            raise DamagedStore(p, f"{name} unreadable ({exc})") from None
        need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = f.stat().st_size
        if size < need:
            raise DamagedStore(p, f"{name} is {size} bytes, its header says {need} (cut short)")
        shapes[name] = shape
    want = tuple(meta.get(k) for k in ("n_frames", "n_rows", "n_neighbors"))
    expected = {"index.npy": want, "distance.npy": want, "rows.npy": (want[1],),
                "distance_scale.npy": (want[0],)}
    for name, shape in shapes.items():
        wanted = expected[name]
        if all(isinstance(x, int) for x in wanted) and shape != wanted:
            raise DamagedStore(p, f"{name} has shape {shape}, meta.json says {wanted}")
    return meta


def store_damage(path: str | Path) -> str | None:
    """What is wrong with the directory ``path`` as a graph store (:func:`verify_store`),
    e.g. ``"index.npy missing"``, or None when it is whole or does not exist (the workflow
    checks every store this way at DAG build and rebuilds a damaged one)."""
    if not Path(path).is_dir():
        return None
    try:
        verify_store(path)
    except DamagedStore as exc:
        return exc.problem
    except InputError:
        return "no store file in it"
    return None


def discard_store(path: str | Path) -> bool:
    """Remove the directory of a damaged graph store so that the workflow rebuilds it.

    Only a directory holding nothing but store files is removed (never a directory
    given by mistake). Returns whether it was removed.
    """
    p = Path(path)
    if not p.is_dir() or p.is_symlink():
        return False
    if any(f.name not in STORE_FILES + _FOREIGN_OK or not f.is_file() for f in p.iterdir()):
        return False
    shutil.rmtree(p)
    return True


def open_store(path: str | Path) -> GraphStore:
    """Open a graph store written by :func:`build_store` (arrays memory-mapped read-only).

    Reads format 2 (this version) and format 1 (no ``format_version`` in meta.json: every
    frame, int32 ids, float32 distances); a newer format is an InputError, a file missing,
    short or inconsistent a :class:`DamagedStore` (:func:`verify_store`).
    """
    p = Path(path)
    meta = verify_store(p)
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise InputError(
            f"{p}/meta.json: key 'format_version': expected 1..{FORMAT_VERSION} (this "
            f"gdyn's formats), got {version!r}; rebuild the store with this gdyn"
        )
    index = np.load(p / "index.npy", mmap_mode="r")
    distance = np.load(p / "distance.npy", mmap_mode="r")
    rows = np.load(p / "rows.npy")
    scale = None
    if meta.get("distance_encoding", "float32") == "uint16":
        scale = np.load(p / "distance_scale.npy")
    n_stored = int(index.shape[0]) if index.ndim else 0
    if version == 1:  # every frame of the piece, as built before format 2
        meta = {"frame_start": 0, "frame_stride": 1, "n_piece_frames": n_stored, **meta}
    frames = (
        int(meta.get("frame_start", 0))
        + int(meta.get("frame_stride", 1)) * np.arange(n_stored, dtype=np.int64)
    )
    if scale is not None and scale.shape != (n_stored,):
        raise DamagedStore(p, f"distance_scale.npy has shape {scale.shape}, expected "
                           f"({n_stored},) (one scale per stored frame of index.npy)")
    return GraphStore(index=index, distance=distance, rows=rows, meta=meta, frames=frames,
                      distance_scale=scale)


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


def index_dtype(n_atoms: int) -> np.dtype:
    """The narrowest exact type of neighbour ids in [0, n_atoms): uint16 up to 65,536
    atoms, else int32."""
    return np.dtype(np.uint16 if n_atoms <= 2**16 else np.int32)


def build_store(
    traj: Trajectory,
    outdir: str | Path,
    n_neighbors: int,
    n_conv: int | None = None,
    threads: int = 1,
    progress: bool = True,
    where: str | None = None,
    after_block: Callable[[], None] | None = None,
    frame_stride: int = 1,
    distances: str = "uint16",
) -> dict[str, Any]:
    """Write the graph store of ``traj`` to ``outdir`` atomically; returns its metadata.

    Parameters
    ----------
    traj : Trajectory
        The split piece (memory-mapped is fine).
    outdir : str or Path
        The store directory, replaced atomically.
    n_neighbors : int
        M, neighbours per row.
    n_conv : int, optional
        None builds all rows; otherwise rows = :func:`receptive_field` with K - 1 hops.
    threads : int
        Worker threads over frames.
    progress : bool
        tqdm progress bars on stderr.
    where : str, optional
        Names the input in messages (default: its path).
    after_block : callable, optional
        Runs after each block of ``PROGRESS_BLOCK`` frames (in the worker thread, here and
        in the pruning pass): ``gdyn graphs`` passes a heap trim there, which is
        process-wide and so not the library's to do.
    frame_stride : int
        Build only the local frames whose raw index is a multiple of this
        (:func:`frame_grid`, the training grid of ``frame_stride``).
    distances : {"uint16", "float32"}
        uint16 fixed point, 2^-12 A steps (:func:`encode_distance`), or exact float32.

    Returns
    -------
    dict
        The store's meta.json (docs/contracts.md).

    Notes
    -----
    Output is computed and written in chunks of frames, so memory does not grow with the
    trajectory length (memory-mapped input pages are released per chunk). Frame f is
    built with ``tie_seed`` = its raw frame index, frame_offset + f (see
    :func:`~gdyn.graph.search.nearest_neighbours`), so the store does not depend on chunks,
    threads or the stride.
    """
    where = where or str(traj.path or "trajectory")
    n_piece, n_atoms = (int(x) for x in traj.traj_coords.shape[:2])
    m = int(n_neighbors)
    threads = max(1, int(threads))
    if int(frame_stride) < 1:
        raise InputError(f"{where}: frame_stride: expected an integer >= 1, got {frame_stride}")
    if distances not in DISTANCE_FORMATS:
        raise InputError(f"{where}: distances: expected one of {DISTANCE_FORMATS}, got {distances!r}")
    offset = frame_offset(traj)
    frames = frame_grid(n_piece, offset, frame_stride)
    if n_conv is None:
        rows = np.arange(n_atoms, dtype=np.int64)
    else:
        if int(n_conv) < 1:
            raise InputError(f"{where}: n_conv: expected K >= 1, got {n_conv}")
        rows = receptive_field(
            traj, m, int(n_conv) - 1, threads, progress, where, after_block, frame_stride
        )
    n_rows = int(rows.size)
    row_arg = None if n_rows == n_atoms else rows
    searchers = [NeighbourSearch(m) for _ in range(threads)]
    compact = distances == "uint16"
    id_type = index_dtype(n_atoms)
    dist_type = np.dtype(np.uint16 if compact else np.float32)
    n_frames = len(frames)
    scale = np.ones(n_frames, dtype=np.float32)
    errors = [0.0] * threads
    owner = {id(s): k for k, s in enumerate(searchers)}

    with atomic_dir(outdir) as tmp:
        shape = (n_frames, n_rows, m)
        index_off = _create_npy(tmp / "index.npy", id_type, shape)
        dist_off = _create_npy(tmp / "distance.npy", dist_type, shape)
        index_bytes = n_rows * m * id_type.itemsize
        dist_bytes = n_rows * m * dist_type.itemsize
        chunks = _frame_chunks(n_frames, n_atoms * 24 + n_rows * m * 8, threads)
        biggest = max((hi - lo for lo, hi in chunks), default=1)
        # One pair of output buffers, reused chunk after chunk.
        out_index = np.empty((biggest, n_rows, m), dtype=id_type)
        out_distance = np.empty((biggest, n_rows, m), dtype=dist_type)

        def work(
            s: NeighbourSearch, coords: np.ndarray, lattices: np.ndarray, f: int, lo: int
        ) -> None:
            b = coords.shape[0]
            block = slice(f - lo, f - lo + b)
            seeds = offset + frames[f : f + b]
            index, dist = s.frames(coords, lattices, row_arg, seeds)
            out_index[block] = index
            if compact:
                codes, scale[f : f + b] = encode_distance(dist)
                out_distance[block] = codes
                decoded = decode_distance(codes, scale[f : f + b])
                if dist.size:
                    k = owner[id(s)]
                    errors[k] = max(errors[k], float(np.abs(decoded - dist).max()))
            else:
                out_distance[block] = dist

        with open(tmp / "index.npy", "r+b") as fi, open(tmp / "distance.npy", "r+b") as fd:

            def finish(lo: int, hi: int) -> None:
                _pwrite_all(fi.fileno(), out_index[: hi - lo], index_off + lo * index_bytes)
                _pwrite_all(fd.fileno(), out_distance[: hi - lo], dist_off + lo * dist_bytes)

            _for_frames(
                traj, where, frames, chunks, searchers, work, finish, "graphs", progress,
                after_block,
            )
        np.save(tmp / "rows.npy", rows)
        if compact:
            np.save(tmp / "distance_scale.npy", scale)
        meta = {
            "format_version": FORMAT_VERSION,
            "n_frames": n_frames,
            "n_piece_frames": n_piece,
            "frame_start": int(frames[0]) if n_frames else 0,
            "frame_stride": int(frame_stride),
            "n_atoms": n_atoms,
            "n_rows": n_rows,
            "n_neighbors": m,
            "n_conv": None if n_conv is None else int(n_conv),
            "pruned": n_conv is not None,
            "source": _source_name(traj),
            "frame_offset": _scalar(traj.extras.get("frame_offset")),
            "index_dtype": id_type.name,
            "distance_encoding": distances,
            "distance_max_error_A": max(errors),
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
