"""Stage ``gdyn train``: one GDyNet (or global VAMPnet) per system x state count x lag time.

Reads split pieces (memory-mapped ``.npz``) and, for GDyNet, their graph stores
(memory-mapped ``.npy``), and maximises VAMP-2 (paper Eq. 5) over (t, t + lag) pairs drawn
within one piece. Batches are streamed from the memmaps; the per-epoch shuffle is a seeded
bijection evaluated index by index (:class:`PairPermutation`), so memory does not grow
with trajectory length (except the output probabilities themselves).

``frame_stride`` s > 1 uses only raw frames that are multiples of s (aligned to raw frame
numbers, so every part and every lag agree), for training pairs, validation and the written
probabilities alike; every lag must be a multiple of s. The toy uses s = 10 (1 ps).

Each epoch ends with the full-data validation VAMP-2; the best epoch's weights are kept.
A checkpoint (``OUTDIR/checkpoint.pt``) is written after every epoch and every
``checkpoint_every_s`` seconds; a killed run started again resumes from it and finishes
with bit-identical weights on CPU (everything random is a pure function of seed, epoch and
batch index). Outputs (atomic, see docs/contracts.md): ``model.pt``, ``config.json``,
``metrics.csv``, ``probs_{train,val,test}.npz``.

torch and the model are imported inside functions so that ``gdyn --help`` stays fast.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.config import PARTS, lag_to_frames, parse_lag
from gdyn.errors import InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MODEL_KINDS: tuple[str, ...] = ("gdynet", "vampnet")
CHECKPOINT = "checkpoint.pt"

# Settings of the `train` config section (workflow/schemas/config.schema.yaml) and their
# defaults: the original GDyNet code's (atom_fea_len 16, 3 convolutions, Adam 5e-4, batch 16,
# 10 epochs). `lags_ps` and `models` belong to the workflow, not to one training run.
# VAMP regularisation: 'regularize' with epsilon 1e-3 (C + eps I). VAMP-2 is invariant to
# affine maps of the features, so Adam lets softmax outputs drift into a narrow, fuzzy band;
# with 'trunc' the band's variance eventually falls below epsilon and the score drops to 1
# with zero gradient (a dead model). eps = 1e-3 penalises a band narrower than ~0.1 and
# drives the outputs to crisp states; for two crisp states of populations pi, 1 - pi it
# shrinks rho^2 = VAMP-2 - 1 by a fraction ~eps / (pi (1 - pi)) (BENCHMARKS.md, "Training").
DEFAULTS: dict[str, Any] = {
    "atom_fea_len": 16,
    "n_conv": 3,
    "batch_norm": False,
    "learning_rate": 5.0e-4,
    "batch_size": 16,
    "epochs": 10,
    "max_pairs_per_epoch": None,
    "seed": 0,
    "frame_stride": 1,
    "vamp_epsilon": 1.0e-3,
    "vamp_mode": "regularize",
    "vampnet_hidden": [64, 64],
    "checkpoint_every_s": 600.0,
}
WORKFLOW_KEYS = frozenset({"lags_ps", "models"})

# Edges (rows x M) per prediction chunk: bounds memory whatever the system size.
PREDICT_EDGES = 2**16


# --------------------------------------------------------------------------------------
# Settings


def resolve_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``settings`` over :data:`DEFAULTS`, type-checked; unknown keys raise InputError."""
    from gdyn.vamp import MODES

    out = dict(DEFAULTS)
    for key, value in (settings or {}).items():
        if key in WORKFLOW_KEYS:
            continue
        if key not in DEFAULTS:
            raise InputError(
                f"--settings: key {key!r}: unknown training setting (expected one of "
                f"{', '.join(sorted(DEFAULTS))})"
            )
        out[key] = value

    def need(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise InputError(f"--settings: key {key!r}: expected {expected}, got {out[key]!r}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for key, low in (("atom_fea_len", 1), ("n_conv", 0), ("batch_size", 2), ("epochs", 1),
                     ("seed", 0), ("frame_stride", 1)):
        need(key, is_int(out[key]) and out[key] >= low, f"an integer >= {low}")
    need("batch_norm", isinstance(out["batch_norm"], bool), "true or false")
    for key in ("learning_rate", "vamp_epsilon"):
        v = out[key]
        need(key, isinstance(v, int | float) and not isinstance(v, bool) and v > 0
             and math.isfinite(v), "a positive number")
    v = out["checkpoint_every_s"]
    need("checkpoint_every_s", isinstance(v, int | float) and v >= 0, "a number >= 0")
    v = out["max_pairs_per_epoch"]
    need("max_pairs_per_epoch", v is None or (is_int(v) and v >= 1), "null or an integer >= 1")
    need("vamp_mode", out["vamp_mode"] in MODES, f"one of {', '.join(MODES)}")
    v = out["vampnet_hidden"]
    need("vampnet_hidden", isinstance(v, list | tuple) and all(is_int(h) and h >= 1 for h in v),
         "a list of positive integers")
    out["vampnet_hidden"] = [int(h) for h in v]
    return out


# --------------------------------------------------------------------------------------
# Inputs: split pieces and graph stores


@dataclass
class Piece:
    """One split piece (one trajectory's frames in one part), memory-mapped."""

    path: Path
    source: str
    frame_offset: int
    frame_interval_ps: float
    coords: np.ndarray  # (F, N, 3) memmap
    lattices: np.ndarray  # (F, 3, 3) memmap
    atom_types: np.ndarray  # (N,) int64
    target_sets: np.ndarray  # (n, k) int64 atom ids
    graph_dir: Path | None = None
    index: np.ndarray | None = None  # (F, N', M) int32 memmap
    distance: np.ndarray | None = None  # (F, N', M) float32 memmap
    rows: np.ndarray | None = None  # (N',) int64 atom ids
    target_rows: np.ndarray | None = None  # (n, k) positions of the target atoms in rows
    meta: dict[str, Any] = field(default_factory=dict)  # the graph store's meta.json
    grid: tuple[int, int] = (0, 1)  # (first local frame, stride) of the frames used

    @property
    def n_frames(self) -> int:
        return int(self.coords.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.coords.shape[1])

    @property
    def identity_rows(self) -> bool:
        """True when every atom is a row in id order (an unpruned store)."""
        return self.rows is not None and len(self.rows) == self.n_atoms and bool(
            np.array_equal(self.rows, np.arange(self.n_atoms))
        )

    def grid_frames(self) -> np.ndarray:
        """Local frame indices used (every ``stride``-th raw frame)."""
        start, stride = self.grid
        return np.arange(start, self.n_frames, stride, dtype=np.int64)


def _scalar(arrays: Mapping[str, np.ndarray], key: str) -> Any:
    value = arrays.get(key)
    return None if value is None else np.asarray(value).reshape(()).item()


def load_piece(path: Path, graph_dir: Path | None, n_conv: int) -> Piece:
    """Open a split piece (and its graph store) memory-mapped; check they agree."""
    from gdyn.trajectory import load_trajectory

    traj = load_trajectory(path, mmap=True, validate=False)
    if traj.traj_coords.ndim != 3 or traj.traj_coords.shape[2] != 3:
        raise InputError(
            f"{path}: key 'traj_coords': expected shape (F, N, 3), got {traj.traj_coords.shape}"
        )
    fi = traj.frame_interval_ps
    if fi is None:
        raise InputError(f"{path}: key 'frame_interval_ps': missing (expected a scalar in ps)")
    offset = _scalar(traj.extras, "frame_offset")
    source = _scalar(traj.extras, "source")
    piece = Piece(
        path=path,
        source=str(source) if source is not None else path.stem,
        frame_offset=int(offset) if offset is not None else 0,
        frame_interval_ps=float(fi),
        coords=traj.traj_coords,
        lattices=traj.lattices,
        atom_types=np.asarray(traj.atom_types, dtype=np.int64),
        target_sets=traj.target_sets,
    )
    if graph_dir is not None:
        _attach_graphs(piece, graph_dir, n_conv)
    return piece


def _attach_graphs(piece: Piece, graph_dir: Path, n_conv: int) -> None:
    where = str(graph_dir)
    try:
        meta = json.loads((graph_dir / "meta.json").read_text())
    except FileNotFoundError:
        raise InputError(f"{where}/meta.json: file not found (expected a graph store)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}/meta.json: not valid JSON ({exc})") from None
    try:
        index = np.load(graph_dir / "index.npy", mmap_mode="r")
        distance = np.load(graph_dir / "distance.npy", mmap_mode="r")
        rows = np.asarray(np.load(graph_dir / "rows.npy"), dtype=np.int64)
    except FileNotFoundError as exc:
        raise InputError(f"{where}: {Path(exc.filename).name}: file not found") from None
    except ValueError as exc:
        raise InputError(f"{where}: unreadable .npy ({exc})") from None
    f, n = piece.n_frames, piece.n_atoms
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
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise InputError(
            f"{where}/rows.npy: expected atom ids in [0, {n}), got {rows.min()}..{rows.max()}"
        )
    if meta.get("pruned") and int(meta.get("n_conv", 0)) < n_conv:
        raise InputError(
            f"{where}/meta.json: key 'n_conv': expected >= {n_conv} (the model's convolutions; "
            f"a store pruned for fewer layers misses atoms), got {meta.get('n_conv')}"
        )
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    target_rows = position[piece.target_sets]
    if (target_rows < 0).any():
        missing = int(piece.target_sets[target_rows < 0][0])
        raise InputError(
            f"{where}/rows.npy: expected every target atom as a row, atom {missing} is missing"
        )
    piece.graph_dir, piece.meta = graph_dir, meta
    piece.index, piece.distance, piece.rows, piece.target_rows = index, distance, rows, target_rows


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


def _set_grid(pieces: Sequence[Piece], stride: int) -> None:
    # The grid is aligned to raw frame numbers, so lag pairs and probs rows of every part
    # fall on the same raw frames whatever the split boundaries.
    for p in pieces:
        p.grid = ((-p.frame_offset) % stride, stride)


def max_distance(pieces: Sequence[Piece], chunk: int = 2**22) -> float:
    """Largest neighbour distance in the graph stores (from meta.json when the store records
    it, else streamed from distance.npy in bounded memory)."""
    best = 0.0
    for p in pieces:
        recorded = p.meta.get("max_neighbor_distance_A")
        if isinstance(recorded, int | float) and math.isfinite(recorded):
            best = max(best, float(recorded))
            continue
        flat = p.distance.reshape(-1) if p.distance is not None else np.empty(0)
        for lo in range(0, flat.shape[0], chunk):
            best = max(best, float(np.max(flat[lo : lo + chunk])))
    if not math.isfinite(best):
        raise InputError("graph stores: distance.npy contains NaN or inf")
    return best


# --------------------------------------------------------------------------------------
# Pairs


class PairPermutation:
    """A seeded pseudo-random bijection of ``[0, n)`` evaluated index by index (O(1) memory).

    A 4-round Feistel network on the smallest even number of bits covering ``n``, restricted
    to ``[0, n)`` by cycle walking: a shuffle of billions of pairs without an index array.
    """

    _C1 = np.uint64(0x9E3779B97F4A7C15)
    _C2 = np.uint64(0xBF58476D1CE4E5B9)

    def __init__(self, n: int, seed: int) -> None:
        self.n = int(n)
        bits = max(2, (max(self.n, 1) - 1).bit_length())
        bits += bits % 2
        self.half = np.uint64(bits // 2)
        self.mask = np.uint64((1 << (bits // 2)) - 1)
        self.keys = np.random.default_rng(seed).integers(0, 2**63, size=4, dtype=np.uint64)

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half, x & self.mask
        for key in self.keys:
            h = (right ^ key) * self._C1
            h ^= h >> np.uint64(31)
            h *= self._C2
            h ^= h >> np.uint64(29)
            left, right = right, left ^ (h & self.mask)
        return (left << self.half) | right

    def __call__(self, i: np.ndarray) -> np.ndarray:
        """Images of the indices ``i`` (each in ``[0, n)``) as int64."""
        x = self._encrypt(np.asarray(i, dtype=np.uint64))
        bad = x >= self.n
        while bad.any():
            x[bad] = self._encrypt(x[bad])
            bad = x >= self.n
        return x.astype(np.int64)


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


def epoch_batches(n_pairs: int, settings: Mapping[str, Any]) -> list[tuple[int, int]]:
    """``[lo, hi)`` positions in the epoch's permutation of each batch.

    A remainder shorter than a batch joins the last batch, so no step sees a covariance
    estimated from a handful of pairs.
    """
    cap = settings["max_pairs_per_epoch"]
    used = n_pairs if cap is None else min(n_pairs, int(cap))
    size = int(settings["batch_size"])
    n_batches = max(1, used // size)
    bounds = [(b * size, (b + 1) * size) for b in range(n_batches)]
    bounds[-1] = (bounds[-1][0], used)
    return bounds


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of one epoch's shuffle: a pure function, so a resumed run replays it."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 7919]).generate_state(1)[0])


# --------------------------------------------------------------------------------------
# Batches


def graph_batch(pieces: Sequence[Piece], piece_ids: np.ndarray, frames: np.ndarray) -> Any:
    """Flattened :class:`gdyn.model.GraphBatch` of the given frames, in the given order."""
    import torch

    from gdyn.model import GraphBatch

    piece_ids = np.asarray(piece_ids, dtype=np.int64)
    frames = np.asarray(frames, dtype=np.int64)
    n_rows = np.array([len(pieces[i].rows) for i in piece_ids], dtype=np.int64)
    n_atoms = np.array([pieces[i].n_atoms for i in piece_ids], dtype=np.int64)
    n_sets = np.array([pieces[i].target_rows.shape[0] for i in piece_ids], dtype=np.int64)
    k = pieces[piece_ids[0]].target_rows.shape[1]
    m = pieces[piece_ids[0]].index.shape[2]
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
        if p.index.shape[2] != m or p.target_rows.shape[1] != k:
            raise InputError(
                f"{p.graph_dir}: expected M = {m} neighbours and k = {k} atoms per target set "
                f"(as the other pieces), got {p.index.shape[2]} and {p.target_rows.shape[1]}"
            )
        identity &= p.identity_rows
        sel = np.flatnonzero(piece_ids == pid)
        order = np.argsort(frames[sel], kind="stable")  # sorted reads are kinder to disks
        sel = sel[order]
        fr = frames[sel]
        dest_rows = (row_start[sel][:, None] + np.arange(len(p.rows))).reshape(-1)
        a0 = atom_start[sel]
        index = np.asarray(p.index[fr], dtype=np.int64)
        nbr[dest_rows] = (index + a0[:, None, None]).reshape(-1, m)
        dist[dest_rows] = np.asarray(p.distance[fr]).reshape(-1, m)
        types[(a0[:, None] + np.arange(p.n_atoms)).reshape(-1)] = np.tile(p.atom_types, len(sel))
        rows[dest_rows] = (a0[:, None] + p.rows).reshape(-1)
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


def vampnet_batch(pieces: Sequence[Piece], piece_ids: np.ndarray, frames: np.ndarray) -> Any:
    """Input tensor of the VAMPnet baseline for the given frames, in the given order."""
    import torch

    piece_ids = np.asarray(piece_ids, dtype=np.int64)
    frames = np.asarray(frames, dtype=np.int64)
    n_sets = np.array([pieces[i].target_sets.shape[0] for i in piece_ids], dtype=np.int64)
    width = 3 * pieces[piece_ids[0]].target_sets.shape[1]
    set_start = np.concatenate([[0], np.cumsum(n_sets)])
    out = np.empty((int(set_start[-1]), width), dtype=np.float32)
    for pid in np.unique(piece_ids):
        p = pieces[pid]
        if 3 * p.target_sets.shape[1] != width:
            raise InputError(f"{p.path}: key 'target_index': expected {width // 3} atoms per set")
        sel = np.flatnonzero(piece_ids == pid)
        dest = (set_start[sel][:, None] + np.arange(p.target_sets.shape[0])).reshape(-1)
        out[dest] = fractional_targets(p, frames[sel])
    return torch.from_numpy(out)


# --------------------------------------------------------------------------------------
# Model construction and loading


def build_model(kind: str, n_states: int, settings: Mapping[str, Any], dims: Mapping[str, Any]):
    """A fresh model (seeded by the caller) from settings and data dimensions."""
    from gdyn.model import GDyNet, VAMPNet

    if kind == "gdynet":
        return GDyNet(
            n_states=n_states,
            n_gauss=int(dims["n_gaussians"]),
            atom_fea_len=int(settings["atom_fea_len"]),
            n_conv=int(settings["n_conv"]),
            batch_norm=bool(settings["batch_norm"]),
            gauss_step_A=float(dims["gauss_step_A"]),
            gauss_sigma_A=float(dims["gauss_sigma_A"]),
        )
    return VAMPNet(n_states, int(dims["n_inputs"]), tuple(settings["vampnet_hidden"]))


def load_model(model_dir: str | Path):
    """Rebuild a trained model from ``config.json`` + ``model.pt`` (eval mode, CPU)."""
    import torch

    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    model = build_model(cfg["model"], int(cfg["n_states"]), cfg["settings"], cfg["dims"])
    model.load_state_dict(torch.load(model_dir / "model.pt", weights_only=True, map_location="cpu"))
    model.eval()
    return model, cfg


# --------------------------------------------------------------------------------------
# Training


class Interrupted(RuntimeError):
    """Raised by the test hook ``stop_after_batches`` to simulate a crash mid-epoch."""


@dataclass
class Problem:
    """Everything one training run needs besides the settings."""

    kind: str
    n_states: int
    lag_ps: float
    lag_frames: int
    frame_interval_ps: float
    parts: dict[str, list[Piece]]
    dims: dict[str, Any]

    def batch(self, part: str, piece_ids: np.ndarray, frames: np.ndarray) -> Any:
        build = graph_batch if self.kind == "gdynet" else vampnet_batch
        return build(self.parts[part], piece_ids, frames)


def _fingerprint(problem: Problem, settings: Mapping[str, Any]) -> str:
    """Hash of everything that makes a checkpoint valid for this run."""
    files = []
    for part, pieces in problem.parts.items():
        for p in pieces:
            for f in [p.path] + ([p.graph_dir / "index.npy", p.graph_dir / "distance.npy"]
                                 if p.graph_dir else []):
                st = f.stat()
                files.append([part, str(f), st.st_size, st.st_mtime_ns])
    blob = json.dumps(
        [problem.kind, problem.n_states, problem.lag_frames, dict(settings), problem.dims, files],
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def tune_malloc() -> None:
    """Keep freed memory in glibc's heap instead of returning it to the OS.

    Every training step allocates and frees the same large activation tensors. glibc serves
    blocks above its mmap threshold (at most 32 MiB) with fresh mmaps and trims the heap
    eagerly, so each step page-faults its tensors in again: measured 2.5x slower steps on
    PEO-sized graphs (41 MB tensors) and 15% on the toy (BENCHMARKS.md, "Training"). A no-op
    off glibc. The process's RSS then stays at its peak, which a training job reaches anyway.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)  # M_MMAP_MAX: no mmap-backed blocks
        libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of free heap
    except (OSError, AttributeError):
        pass


def pick_device() -> torch.device:
    """CUDA when available (CUDA_VISIBLE_DEVICES, e.g. from Slurm, is respected), else CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def predict_part(
    model: Any, problem: Problem, part: str, device: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """State probabilities of every grid frame of every piece of ``part``.

    Returns ``probs`` (F, n_sets, n_states) float32, ``piece`` (F,) and local ``frame`` (F,).
    """
    import torch

    pieces = problem.parts[part]
    out_p, out_piece, out_frame = [], [], []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for pid, p in enumerate(pieces):
                frames = p.grid_frames()
                if problem.kind == "gdynet":
                    per_frame = len(p.rows) * p.index.shape[2]
                else:
                    per_frame = p.target_sets.size
                chunk = max(1, PREDICT_EDGES // max(per_frame, 1))
                for lo in range(0, len(frames), chunk):
                    fr = frames[lo : lo + chunk]
                    batch = problem.batch(part, np.full(len(fr), pid), fr).to(device)
                    probs = model(batch).float().cpu().numpy()
                    out_p.append(probs.reshape(len(fr), -1, problem.n_states))
                out_piece.append(np.full(len(frames), pid, dtype=np.int64))
                out_frame.append(frames)
    finally:
        model.train(was_training)
    n_sets = {a.shape[1] for a in out_p}
    if len(n_sets) > 1:
        raise InputError(
            f"--{part}: expected the same number of target sets in every piece, got "
            f"{sorted(n_sets)}"
        )
    return np.concatenate(out_p), np.concatenate(out_piece), np.concatenate(out_frame)


def score_probs(
    probs: np.ndarray, piece: np.ndarray, frame: np.ndarray, lag_frames: int,
    settings: Mapping[str, Any],
) -> float:
    """Full-data VAMP-2 of predicted probabilities over all lag pairs within each piece."""
    from gdyn.vamp import CovarianceAccumulator

    acc = CovarianceAccumulator(probs.shape[2])
    for pid in np.unique(piece):
        sel = np.flatnonzero(piece == pid)
        f = frame[sel]
        # Row of frame f + lag within this piece, if present (frames are sorted).
        j = np.searchsorted(f, f + lag_frames)
        ok = j < len(f)
        ok[ok] &= f[j[ok]] == f[ok] + lag_frames
        if ok.any():
            x = probs[sel[ok]].reshape(-1, probs.shape[2])
            y = probs[sel[j[ok]]].reshape(-1, probs.shape[2])
            acc.update(x, y)
    if acc.n < 2:
        return float("nan")
    return acc.score(settings["vamp_epsilon"], settings["vamp_mode"])


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    from gdyn.files import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    import torch

    if not path.exists():
        return None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # a damaged checkpoint only costs the time to redo it
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning("ignoring checkpoint %s: it belongs to other inputs or settings", path)
        return None
    return state


def fit(
    problem: Problem,
    settings: Mapping[str, Any],
    outdir: Path,
    device: Any = None,
    stop_after_batches: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, keeping the best validation epoch; resumes from ``outdir/checkpoint.pt``.

    Returns a dict with ``model`` (best weights loaded), ``metrics`` (list of rows),
    ``best_epoch``, ``best_val_vamp2`` and ``resumed`` (the epoch/batch it resumed at).
    ``stop_after_batches`` raises :class:`Interrupted` after that many optimiser steps in
    this call (a crash for the resume tests).
    """
    import torch
    from tqdm import tqdm

    from gdyn.vamp import vamp2_loss

    device = device or pick_device()
    eps, mode = float(settings["vamp_epsilon"]), str(settings["vamp_mode"])
    pairs = PairIndex(problem.parts["train"], problem.lag_frames)
    if pairs.n_pairs < 2:
        raise InputError(
            f"--train: expected at least 2 (t, t + {problem.lag_ps:g} ps) pairs within the "
            f"pieces, got {pairs.n_pairs} (pieces shorter than the lag?)"
        )
    val_pairs = PairIndex(problem.parts["val"], problem.lag_frames).n_pairs
    if val_pairs < 2:
        log.warning("validation pieces hold %d lag pairs: the last epoch is kept", val_pairs)

    torch.manual_seed(int(settings["seed"]))
    model = build_model(problem.kind, problem.n_states, settings, problem.dims).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(settings["learning_rate"]))
    fingerprint = _fingerprint(problem, settings)
    ckpt_path = outdir / CHECKPOINT
    state = _load_checkpoint(ckpt_path, fingerprint)
    metrics: list[dict[str, Any]] = []
    best_state, best_score, best_epoch = None, -math.inf, -1
    start_epoch, start_batch, run_sum, run_n, epoch_secs = 0, 0, 0.0, 0, 0.0
    resumed = None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        metrics = list(state["metrics"])
        best_state, best_score = state["best_state"], state["best_score"]
        best_epoch = state["best_epoch"]
        start_epoch, start_batch = int(state["epoch"]), int(state["batch"])
        run_sum, run_n = float(state["run_sum"]), int(state["run_n"])
        epoch_secs = float(state["epoch_secs"])
        resumed = (start_epoch, start_batch)
        log.info("resuming from %s at epoch %d, batch %d", ckpt_path, start_epoch + 1, start_batch)

    def checkpoint(epoch: int, batch: int) -> None:
        _save_checkpoint(ckpt_path, {
            "fingerprint": fingerprint, "epoch": epoch, "batch": batch,
            "model": model.state_dict(), "optimizer": opt.state_dict(), "metrics": metrics,
            "best_state": best_state, "best_score": best_score, "best_epoch": best_epoch,
            "run_sum": run_sum, "run_n": run_n, "epoch_secs": epoch_secs,
        })

    steps = 0
    every = float(settings["checkpoint_every_s"])
    n_epochs = int(settings["epochs"])
    model.train()
    for epoch in range(start_epoch, n_epochs):
        perm = PairPermutation(pairs.n_pairs, epoch_seed(settings["seed"], epoch))
        bounds = epoch_batches(pairs.n_pairs, settings)
        t0 = time.perf_counter()
        last_ckpt = t0
        bar = tqdm(range(start_batch, len(bounds)), total=len(bounds), initial=start_batch,
                   desc=f"epoch {epoch + 1}/{n_epochs}", file=sys.stderr, mininterval=2.0,
                   disable=not progress, leave=False)
        for b in bar:
            lo, hi = bounds[b]
            piece, t = pairs.lookup(perm(np.arange(lo, hi)))
            batch = problem.batch(
                "train", np.concatenate([piece, piece]), np.concatenate([t, t + problem.lag_frames])
            ).to(device)
            out = model(batch)
            half = out.shape[0] // 2
            loss = vamp2_loss(out[:half], out[half:], eps, mode)
            opt.zero_grad(set_to_none=True)
            ok = bool(torch.isfinite(loss))
            if ok:
                loss.backward()
                # eigh's gradient is infinite for degenerate eigenvalues: never feed Adam NaN.
                ok = bool(torch.isfinite(torch.stack(
                    [g.abs().max() for g in (q.grad for q in model.parameters()) if g is not None]
                )).all())
            if ok:
                opt.step()
                run_sum += -loss.item()
                run_n += 1
            else:  # a degenerate batch (e.g. every pair in one state): skip the step
                log.warning("epoch %d batch %d: non-finite VAMP-2 or gradient, step skipped",
                            epoch + 1, b)
            steps += 1
            if run_n:
                bar.set_postfix(vamp2=f"{run_sum / run_n:.4f}", refresh=False)
            if stop_after_batches is not None and steps >= stop_after_batches:
                raise Interrupted(f"stopped after {steps} batches (test hook)")
            now = time.perf_counter()
            if now - last_ckpt >= every and b + 1 < len(bounds):
                epoch_secs += now - t0
                t0 = last_ckpt = now
                checkpoint(epoch, b + 1)
        bar.close()
        probs, pid, fr = predict_part(model, problem, "val", device)
        val = score_probs(probs, pid, fr, problem.lag_frames, settings)
        train_score = run_sum / run_n if run_n else float("nan")
        epoch_secs += time.perf_counter() - t0
        metrics.append({"epoch": epoch + 1, "train_vamp2": train_score, "val_vamp2": val,
                        "seconds": round(epoch_secs, 3)})
        log.info("epoch %d/%d: train VAMP-2 %.4f, val VAMP-2 %.4f (%.1f s)",
                 epoch + 1, n_epochs, train_score, val, epoch_secs)
        if (math.isfinite(val) and val > best_score) or (
            not math.isfinite(best_score) and not math.isfinite(val)
        ):
            best_score = val if math.isfinite(val) else -math.inf
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            best_epoch = epoch + 1
        start_batch, run_sum, run_n, epoch_secs = 0, 0.0, 0, 0.0
        checkpoint(epoch + 1, 0)
    model.load_state_dict(best_state)
    return {
        "model": model,
        "metrics": metrics,
        "best_epoch": best_epoch,
        "best_val_vamp2": best_score if math.isfinite(best_score) else float("nan"),
        "resumed": resumed,
        "device": str(device),
    }


def prepare(
    kind: str,
    n_states: int,
    lag: str | float,
    part_paths: Mapping[str, Sequence[Path]],
    part_graphs: Mapping[str, Sequence[Path] | None],
    settings: Mapping[str, Any],
) -> Problem:
    """Open every input and derive lag frames, frame grid and model dimensions."""
    from gdyn.model import GAUSS_SIGMA_A, GAUSS_STEP_A, n_gaussians

    if kind not in MODEL_KINDS:
        raise InputError(f"model: expected one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    if int(n_states) < 2:
        raise InputError(f"--n-states: expected an integer >= 2, got {n_states}")
    lag_ps = parse_lag(lag) if isinstance(lag, str) else float(lag)
    parts: dict[str, list[Piece]] = {}
    for part in PARTS:
        graphs = part_graphs.get(part) if kind == "gdynet" else None
        if kind == "gdynet" and not graphs:
            raise InputError(f"--{part}-graphs: expected graph stores for gdynet, got none")
        parts[part] = load_part(part, [Path(p) for p in part_paths.get(part, [])], graphs,
                                int(settings["n_conv"]))
    intervals = {p.frame_interval_ps for ps in parts.values() for p in ps}
    fi = next(iter(intervals))
    if any(not math.isclose(x, fi, rel_tol=1e-6) for x in intervals):
        raise InputError(
            f"split pieces: key 'frame_interval_ps': expected one value for all pieces, got "
            f"{sorted(intervals)}"
        )
    lag_frames = lag_to_frames(lag_ps, fi)
    stride = int(settings["frame_stride"])
    if lag_frames % stride:
        raise InputError(
            f"--settings: key 'frame_stride': expected a divisor of the lag ({lag_frames} frames "
            f"= {lag_ps:g} ps), got {stride}"
        )
    for pieces in parts.values():
        _set_grid(pieces, stride)
    ks = {p.target_sets.shape[1] for ps in parts.values() for p in ps}
    if len(ks) > 1:
        raise InputError(
            f"split pieces: key 'target_index': expected one set size k, got {sorted(ks)}"
        )
    if kind == "gdynet":
        dmax = max_distance(parts["train"])
        dims = {"max_distance_A": dmax, "n_gaussians": n_gaussians(dmax),
                "gauss_step_A": GAUSS_STEP_A, "gauss_sigma_A": GAUSS_SIGMA_A,
                "n_neighbors": int(parts["train"][0].index.shape[2])}
    else:
        dims = {"n_inputs": 3 * ks.pop()}
    return Problem(kind, int(n_states), lag_ps, lag_frames, fi, parts, dims)


def write_outputs(
    outdir: Path, problem: Problem, settings: Mapping[str, Any], result: Mapping[str, Any]
) -> None:
    """``model.pt``, ``probs_{part}.npz``, ``metrics.csv``, ``config.json`` (config last)."""
    import pandas as pd
    import torch

    from gdyn.files import atomic_path, save_npz, write_csv, write_json

    model = result["model"]
    device = next(model.parameters()).device
    with atomic_path(outdir / "model.pt") as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    for part in PARTS:
        probs, piece, frame = predict_part(model, problem, part, device)
        pieces = problem.parts[part]
        save_npz(
            outdir / f"probs_{part}.npz",
            probs=probs.astype(np.float32),
            traj=piece.astype(np.int64),
            sources=np.array([p.source for p in pieces]),
            frame=np.array([p.frame_offset for p in pieces], dtype=np.int64)[piece] + frame,
            lag_ps=np.float64(problem.lag_ps),
            frame_interval_ps=np.float64(problem.frame_interval_ps),
        )
    columns = ["epoch", "train_vamp2", "val_vamp2", "seconds"]
    write_csv(outdir / "metrics.csv", pd.DataFrame(result["metrics"], columns=columns))
    write_json(outdir / "config.json", {
        "model": problem.kind,
        "n_states": problem.n_states,
        "lag_ps": problem.lag_ps,
        "lag_frames": problem.lag_frames,
        "frame_interval_ps": problem.frame_interval_ps,
        "frame_stride": int(settings["frame_stride"]),
        "seed": int(settings["seed"]),
        "best_epoch": result["best_epoch"],
        "best_val_vamp2": result["best_val_vamp2"],
        "settings": dict(settings),
        "dims": problem.dims,
        "device": result["device"],
        "torch_version": torch.__version__,
        "inputs": {part: [str(p.path) for p in ps] for part, ps in problem.parts.items()},
    })


def train(
    kind: str,
    outdir: str | Path,
    n_states: int,
    lag: str | float,
    part_paths: Mapping[str, Sequence[Path]],
    part_graphs: Mapping[str, Sequence[Path] | None] | None = None,
    settings: Mapping[str, Any] | None = None,
    threads: int | None = None,
    device: Any = None,
    stop_after_batches: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one model and write every output into ``outdir`` (see module docstring)."""
    import torch

    settings = resolve_settings(settings)
    if threads:
        torch.set_num_threads(int(threads))
    tune_malloc()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    problem = prepare(kind, n_states, lag, part_paths, part_graphs or {}, settings)
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cpu":
        # Bit-identical resumes need deterministic kernels (CPU ones all are; this guards).
        torch.use_deterministic_algorithms(True, warn_only=True)
    log.info("%s s%d lag %g ps (%d frames, stride %d) on %s: %d train pairs", kind, n_states,
             problem.lag_ps, problem.lag_frames, settings["frame_stride"], device,
             PairIndex(problem.parts["train"], problem.lag_frames).n_pairs)
    result = fit(problem, settings, outdir, device, stop_after_batches, progress)
    write_outputs(outdir, problem, settings, result)
    (outdir / CHECKPOINT).unlink(missing_ok=True)
    return result


# --------------------------------------------------------------------------------------
# CLI


def _cmd_train(args: argparse.Namespace) -> int:
    parts = {p: getattr(args, p) or [] for p in PARTS}
    graphs = {p: getattr(args, f"{p}_graphs") for p in PARTS}
    if args.model == "vampnet" and any(graphs.values()):
        log.info("vampnet ignores the graph stores")
    settings = args.settings if args.settings is not None else {}
    if not isinstance(settings, dict):
        raise InputError(f"--settings: expected a JSON object, got {type(settings).__name__}")
    train(args.model, args.outdir, args.n_states, args.lag, parts, graphs, settings, args.threads)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdyn train`` to the CLI."""
    from gdyn.cli import json_arg

    p = subparsers.add_parser(
        "train",
        help="train one GDyNet / VAMPnet at one lag time and write state probabilities",
        description="Maximise VAMP-2 over (t, t+lag) pairs of the training pieces; keep the "
        "epoch with the best validation VAMP-2; write model.pt, config.json, metrics.csv and "
        "probs_{train,val,test}.npz into OUTDIR. Resumes from OUTDIR/checkpoint.pt.",
    )
    p.add_argument("model", choices=MODEL_KINDS)
    p.add_argument("outdir", type=Path)
    p.add_argument("--n-states", type=int, required=True, metavar="S")
    p.add_argument("--lag", required=True, help="lag time, e.g. 10ps")
    for part in PARTS:
        p.add_argument(f"--{part}", nargs="+", type=Path, required=True, metavar="NPZ",
                       help=f"{part} split pieces")
        p.add_argument(f"--{part}-graphs", nargs="+", type=Path, default=None, metavar="DIR",
                       help=f"graph stores of the {part} pieces (gdynet), matched by name")
    p.add_argument("--settings", type=json_arg, default=None, metavar="JSON",
                   help="the system's `train` config section as JSON")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=_cmd_train)

