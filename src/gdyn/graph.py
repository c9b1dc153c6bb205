"""Periodic M-nearest-neighbour graphs of every frame (stage ``gdyn graphs``).

Every atom is joined to its M nearest neighbours under periodic boundary conditions
(orthogonal or triclinic cells). Periodic images are distinct neighbours, so in a cell
smaller than the neighbour shell an atom may list the same atom, or its own images, several
times; the atom itself at zero shift is never listed.

Ordering is fully deterministic and defined on the stored values: each row is M of all
(distance, neighbour id) over every image, sorted by float32 distance, then by neighbour
id. Two images of the same neighbour at the same float32 distance give identical entries,
so no further tie-break can change the order. Which candidates are kept only needs a rule
when the cut falls inside a group of exactly tied (same float32 distance) candidates, as
in the toy, where each S has 12 S images at exactly a/sqrt(2) and a nearby Li pushes one
out. Without a seed the smallest ids are kept; but then *which* S is dropped depends on
atom ids, so symmetry-equivalent sites get different graphs that a deep model can tell
apart. ``gdyn graphs`` therefore seeds the choice with the raw frame index: the kept tied
candidates are drawn by a hash of (frame, row atom, neighbour, occurrence), see
:func:`_break_ties`, reproducible yet uniform over frames.

Candidate pairs within a cutoff come from vesin's cell list (C, called directly through
its C API, one thread per frame, GIL released) while worker threads take contiguous
ranges of frames. Tiny cells (the toy: 5 atoms, where images dominate) instead use a
brute force over an explicit box of images, vectorised over a block of frames. The
cutoff adapts: a frame starts from the previous frame's largest M-th distance times a
margin and grows until every needed row has M neighbours strictly inside it. The M best
of each row are then picked with one integer sort per row (:func:`_select`).

Receptive-field pruning: with ``n_conv = K`` the store keeps rows only for atoms within
K - 1 hops (along neighbour edges) of a target in *some* frame, found exactly by a first
pass that computes the neighbour lists of the BFS frontier only; see :func:`receptive_field`.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import operator
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.errors import InputError

if TYPE_CHECKING:
    from gdyn.trajectory import Trajectory

# Output + input bytes held in RAM per chunk of frames (bounds peak memory for any F).
CHUNK_BYTES = 32 * 2**20
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
# Frames per work item (and progress-bar update) of a worker thread.
PROGRESS_BLOCK = 64
# Temporary memory of one brute-force batch.
SMALL_BATCH_BYTES = 16 * 2**20
# |det| below this fraction of |a||b||c| is a degenerate (flat) cell.
SINGULAR_RTOL = 1e-8

_MAX_KEY = np.uint64(np.iinfo(np.uint64).max)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
# splitmix64 constants (hash of the seeded tie rule, see _break_ties).
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_M1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_M2 = np.uint64(0x94D049BB133111EB)
_MIX_S1, _MIX_S2, _MIX_S3 = np.uint64(30), np.uint64(27), np.uint64(31)


# --------------------------------------------------------------------------------------
# Checks


def check_lattice(lattice: np.ndarray, where: str = "lattice") -> None:
    """Raise :class:`InputError` unless ``lattice`` is a finite, non-degenerate 3x3 cell."""
    lat = np.asarray(lattice, dtype=np.float64)
    if lat.shape != (3, 3):
        raise InputError(f"{where}: expected a (3, 3) lattice (rows = vectors), got {lat.shape}")
    if not np.isfinite(lat).all():
        raise InputError(f"{where}: expected finite lattice vectors, got {lat.tolist()}")
    det = float(np.linalg.det(lat))
    scale = float(np.prod(np.linalg.norm(lat, axis=1)))
    if not abs(det) > SINGULAR_RTOL * scale:
        raise InputError(
            f"{where}: expected a non-degenerate cell, got det = {det:.3g} "
            f"(lattice vectors coplanar or zero: {lat.tolist()})"
        )


def _check_frames(coords: np.ndarray, lattices: np.ndarray, first: int, where: str) -> None:
    """Finite coordinates and usable cells for a chunk of frames starting at ``first``."""
    finite = np.isfinite(coords).all(axis=(1, 2))
    if not finite.all():
        f = first + int(np.argmin(finite))
        raise InputError(
            f"{where}: key 'traj_coords': expected finite coordinates, frame {f} has NaN or inf"
        )
    # Vectorised screen; the per-frame check names the first bad frame.
    with np.errstate(invalid="ignore"):
        det = np.abs(np.linalg.det(lattices))
        scale = np.prod(np.linalg.norm(lattices, axis=2), axis=1)
    bad = ~(np.isfinite(lattices).all(axis=(1, 2)) & (det > SINGULAR_RTOL * scale))
    if bad.any():
        k = int(np.argmax(bad))
        check_lattice(lattices[k], f"{where}: key 'lattices': frame {first + k}")


def _check_counts(n_atoms: int, n_neighbors: int, where: str) -> None:
    from gdyn.trajectory import min_atoms_for_neighbors

    if n_neighbors < 1:
        raise InputError(f"{where}: n_neighbors: expected M >= 1, got {n_neighbors}")
    need = min_atoms_for_neighbors(n_neighbors)
    if n_atoms < need:
        raise InputError(
            f"{where}: key 'traj_coords': {n_atoms} atoms per cell cannot give M = "
            f"{n_neighbors} neighbours (expected at least {need}; periodic images count)"
        )


# --------------------------------------------------------------------------------------
# One frame


def initial_cutoff(n_atoms: int, lattice: np.ndarray, n_neighbors: int) -> float:
    """First cutoff to try: a bit more than the radius holding M atoms at the mean density."""
    volume = abs(float(np.linalg.det(lattice)))
    radius = (3.0 * n_neighbors * volume / (4.0 * math.pi * n_atoms)) ** (1.0 / 3.0)
    return INITIAL_FACTOR * radius


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


def face_widths(lattices: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of each cell, (..., 3) for lattices (..., 3, 3).

    Column k of inv(lattice) is the reciprocal vector b_k (a_i . b_k = delta_ik), whose
    length is 1 / (distance between the faces spanned by the other two vectors).
    """
    return 1.0 / np.linalg.norm(np.linalg.inv(lattices), axis=-2)


def _image_range(cutoff: float, min_width: float) -> int:
    """Half-width R of the image box [-R, R]^3 that holds every point within ``cutoff``.

    With coordinates wrapped into the cell (fractions in [0, 1)), a point within distance
    rho has integer shift |S_k| < rho / width_k + 1 along each axis, so R = ceil(rho /
    width) suffices; the tiny relative pad covers rounding in the wrap.
    """
    return max(1, math.ceil(cutoff * (1 + 1e-6) / min_width))


def _image_pairs(
    coords: np.ndarray, lattices: np.ndarray, rows: np.ndarray | None, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed pairs (row, j, d) with d < cutoff for a batch of small frames (B, N, 3).

    Brute force over the image box of :func:`_image_range`, vectorised over frames, so
    tiny cells (the toy: 5 atoms) cost microseconds per frame instead of one library call
    each. Row ids are flattened as frame * R + row. The squared-distance expansion only
    screens candidates; kept distances are recomputed from the displacement itself.
    """
    b, n = coords.shape[:2]
    inverse = np.linalg.inv(lattices)
    xw = coords - np.matmul(np.floor(np.matmul(coords, inverse)), lattices)
    row_ids = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    r = _image_range(cutoff, float((1.0 / np.linalg.norm(inverse, axis=-2)).min()))
    grid = np.arange(-r, r + 1, dtype=np.float64)
    shifts = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    # Drop whole images that cannot come within the cutoff: fractional displacements to
    # image S have |f| >= |max(|S| - 1, 0)|, and |f @ lattice| >= sigma_min * |f|.
    sigma_min = float(np.linalg.svd(lattices, compute_uv=False)[:, -1].min())
    reach = np.sqrt((np.maximum(np.abs(shifts) - 1.0, 0.0) ** 2).sum(-1)) * sigma_min
    shifts = shifts[reach < cutoff * (1 + 1e-6)]
    zero = int(np.flatnonzero((shifts == 0).all(axis=1))[0])
    images = np.matmul(shifts, lattices)  # (B, S, 3)
    delta = (xw[:, None, :, :] - xw[:, row_ids, None, :]).reshape(b, -1, 3)  # (B, R*N, 3)
    n_img = shifts.shape[0]
    # |delta + image|^2 = [delta, |delta|^2, 1] . [2 image, 1, |image|^2]: one matmul.
    left = np.empty((b, delta.shape[1], 5))
    left[..., :3] = delta
    left[..., 3] = np.einsum("bpk,bpk->bp", delta, delta)
    left[..., 4] = 1.0
    right = np.empty((b, 5, n_img))
    right[:, :3] = 2.0 * images.transpose(0, 2, 1)
    right[:, 3] = 1.0
    right[:, 4] = np.einsum("bsk,bsk->bs", images, images)
    d2 = np.matmul(left, right)  # (B, R*N, S)
    # flatnonzero + arithmetic is ~20x faster than nonzero on a 3-d array.
    flat = np.flatnonzero(d2 < cutoff * cutoff * (1 + 1e-9) + 1e-12)
    fbp, fs = np.divmod(flat, n_img)
    fb, frn = np.divmod(fbp, delta.shape[1])
    vec = delta[fb, frn] + images[fb, fs]
    d = np.sqrt(np.einsum("pk,pk->p", vec, vec))
    fr, fj = np.divmod(frn, n)
    # Drop the atom itself at zero shift and anything the screen let through beyond cutoff.
    keep = (d < cutoff) & ~((fs == zero) & (row_ids[fr] == fj))
    return (fb * row_ids.size + fr)[keep], fj[keep], d[keep]


class _ArrayView:
    """Exposes foreign memory to numpy through the array interface (no ctypes types)."""

    def __init__(self, address: int, shape: tuple[int, ...], typestr: str) -> None:
        self.__array_interface__ = {
            "data": (address, True),
            "shape": shape,
            "typestr": typestr,
            "version": 3,
        }


class _VesinHalfList:
    """vesin's CPU cell list called through its C API: half list, one thread.

    vesin's Python wrapper (0.6) turns each result into numpy via
    ``np.ctypeslib.as_array``, which creates a ctypes array type per distinct pair count;
    ctypes caches those types forever, so memory grew with the number of frames (about
    10 KiB per frame), and the wrapper cost ~0.2 ms per call. Results are views into
    vesin's buffers, valid until the next call. Older vesin falls back to the wrapper.
    """

    def __init__(self) -> None:
        import ctypes

        from vesin._c_api import VesinCPU, VesinDevice, VesinNeighborList, VesinOptions
        from vesin._c_lib import get_library

        self._ctypes = ctypes
        self._lib = get_library()
        self._neighbors = VesinNeighborList()
        self._device = VesinDevice(VesinCPU, 0)
        self._options = VesinOptions()
        self._options.full = False
        self._options.sorted = False
        self._options.algorithm = 0  # auto: the cell list on CPU
        self._options.skin = 0.0
        self._options.n_threads = 1
        self._options.return_shifts = False
        self._options.return_distances = True
        self._options.return_vectors = False
        self._periodic = np.ones(3, dtype=np.bool_)
        self._double_p = ctypes.POINTER(ctypes.c_double)

    @staticmethod
    def create() -> Any:
        """The direct caller for vesin >= 0.6, else vesin's own wrapper (same results)."""
        import vesin

        major, minor = (int(x) for x in vesin.__version__.split(".")[:2])
        if (major, minor) >= (0, 6):
            return _VesinHalfList()
        return _VesinWrapper()

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is not None:
            lib.vesin_free(self._ctypes.byref(self._neighbors))

    def __call__(
        self, coords: np.ndarray, lattice: np.ndarray, cutoff: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ct = self._ctypes
        xyz = np.ascontiguousarray(coords, dtype=np.float64)
        box = np.ascontiguousarray(lattice, dtype=np.float64)
        self._options.cutoff = float(cutoff)
        error = ct.c_char_p()
        status = self._lib.vesin_neighbors(
            xyz.ctypes.data_as(self._double_p),
            xyz.shape[0],
            box.ctypes.data_as(self._double_p),
            self._periodic.ctypes.data_as(ct.POINTER(ct.c_bool)),
            self._device,
            self._options,
            ct.byref(self._neighbors),
            ct.byref(error),
        )
        if status != 0:
            raise RuntimeError(f"vesin: {(error.value or b'').decode()}")
        n = int(self._neighbors.length)
        if n == 0:
            return np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.float64)
        pairs_at = ct.cast(self._neighbors.pairs, ct.c_void_p).value
        dist_at = ct.cast(self._neighbors.distances, ct.c_void_p).value
        size_t = f"<u{ct.sizeof(ct.c_size_t)}"
        pairs = np.asarray(_ArrayView(pairs_at, (n, 2), size_t))
        distances = np.asarray(_ArrayView(dist_at, (n,), "<f8"))
        return pairs[:, 0], pairs[:, 1], distances


class _VesinWrapper:
    """The same half list through vesin's public Python API (older vesin)."""

    def __init__(self) -> None:
        import vesin

        try:
            self._calc = vesin.NeighborList(cutoff=1.0, full_list=False, n_threads=1)
        except TypeError:  # no n_threads before vesin 0.5 (single-threaded anyway)
            self._calc = vesin.NeighborList(cutoff=1.0, full_list=False)

    def __call__(
        self, coords: np.ndarray, lattice: np.ndarray, cutoff: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._calc.cutoff = float(cutoff)
        return self._calc.compute(coords, lattice, True, "ijd", copy=False)


class NeighbourSearch:
    """Reusable per-thread searcher: one vesin calculator plus the adapted cutoff.

    Not thread-safe; give each worker thread its own instance. Consecutive frames of a
    trajectory start from the previous frame's largest M-th distance times a margin; the
    margin widens after a frame that needed a retry and slowly narrows otherwise, so
    retries stay rare without inflating the pair search.
    """

    def __init__(self, n_neighbors: int) -> None:
        self.n_neighbors = int(n_neighbors)
        self.cutoff: float | None = None
        self.margin = CUTOFF_MARGIN
        self.max_distance = 0.0  # largest M-th neighbour distance seen (Angstrom)
        self.n_retries = 0  # searches repeated with a larger cutoff or image box
        self._calc: Any = None

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

    # -- cell lists (vesin) ------------------------------------------------------------

    def _pairs(
        self, coords: np.ndarray, lattice: np.ndarray, cutoff: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Directed pairs (i, j, d) with d < cutoff over all images, i == j only if shifted."""
        if self._calc is None:
            self._calc = _VesinHalfList.create()
        # vesin filters a full cell-pair loop either way; the half list writes half as
        # many pairs and mirroring it is a cheap copy.
        hi, hj, hd = self._calc(coords, lattice, cutoff)
        i = np.concatenate((hi, hj), dtype=np.int64, casting="unsafe")
        j = np.concatenate((hj, hi), dtype=np.int64, casting="unsafe")
        d = np.concatenate((hd, hd))
        return i, j, d

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
        row_of: np.ndarray | None,
        n_rows: int,
        salts: _Salts | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        cutoff = start = self._start_cutoff(coords.shape[0], lattice)
        retried = False
        while True:
            i, j, d = self._pairs(coords, lattice, cutoff)
            picked = _select(i, j, d, self.n_neighbors, row_of, n_rows, salts)
            if picked is not None and self._inside(picked[1], cutoff):
                self._learn(float(picked[1][:, -1].max()) if n_rows else 0.0, retried)
                return picked
            retried = True
            cutoff = self._grow(cutoff, start)

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
        row_of = None
        if rows is not None:
            row_of = np.full(n_atoms, -1, dtype=np.int64)
            row_of[rows] = np.arange(n_rows)
        index = np.empty((b, n_rows, m), np.int32)
        dist = np.empty((b, n_rows, m), np.float32)
        for f in range(b):
            salts = None if seeds is None else _Salts(seeds[f : f + 1], atoms)
            index[f], dist[f] = self._one(
                np.ascontiguousarray(coords[f]),
                np.ascontiguousarray(lattices[f]),
                row_of,
                n_rows,
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
        atoms are the neighbours of hop h atoms (edges i -> its M nearest). With cell
        lists only the frontier's neighbour lists are selected, so a frame costs about
        one pair search.
        """
        b, n_atoms = coords.shape[:2]
        union = np.zeros(n_atoms, dtype=bool)
        union[targets] = True
        if hops <= 0 or b == 0:
            return union
        if self._use_images(n_atoms, n_atoms, lattices):
            tables, _ = self.frames(coords, lattices, None, tie_seeds)
            for table in tables:
                union |= _bfs(lambda front, t=table: t[front], n_atoms, targets, hops)
            return union
        seeds = None if tie_seeds is None else np.asarray(tie_seeds, dtype=np.int64).reshape(-1)
        if seeds is not None and seeds.size != b:
            raise ValueError(f"tie_seeds: expected {b} seeds (one per frame), got {seeds.size}")
        for f in range(b):
            union |= self._reach_one(
                np.ascontiguousarray(coords[f]),
                np.ascontiguousarray(lattices[f]),
                targets,
                hops,
                None if seeds is None else int(seeds[f]),
            )
        return union

    def _reach_one(
        self,
        coords: np.ndarray,
        lattice: np.ndarray,
        targets: np.ndarray,
        hops: int,
        seed: int | None,
    ) -> np.ndarray:
        n_atoms = coords.shape[0]
        cutoff = start = self._start_cutoff(n_atoms, lattice)
        retried = False
        while True:
            pairs = self._pairs(coords, lattice, cutoff)
            worst = [0.0]
            step = functools.partial(self._frontier, pairs, n_atoms, cutoff, worst, seed)
            reached = _bfs(step, n_atoms, targets, hops)
            if reached is not None:
                self._learn(worst[0], retried)
                return reached
            retried = True
            cutoff = self._grow(cutoff, start)

    def _frontier(
        self,
        pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
        n_atoms: int,
        cutoff: float,
        worst: list[float],
        seed: int | None,
        front: np.ndarray,
    ) -> np.ndarray | None:
        """Neighbour ids of the ``front`` atoms, or None if the cutoff is too small."""
        row_of = np.full(n_atoms, -1, dtype=np.int64)
        row_of[front] = np.arange(front.size)
        salts = None if seed is None else _Salts(np.array([seed]), front)
        picked = _select(*pairs, self.n_neighbors, row_of, front.size, salts)
        if picked is None or not self._inside(picked[1], cutoff):
            return None
        worst[0] = max(worst[0], float(picked[1][:, -1].max()))
        return picked[0]


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


# --------------------------------------------------------------------------------------
# Many frames


def _release_pages(arr: np.ndarray) -> None:
    """Drop a memory-mapped array's pages from this process's resident set.

    The kernel keeps them in its page cache; without this, scanning a long trajectory
    through one mapping makes the resident set grow with the trajectory length.
    """
    import mmap

    mm = getattr(arr, "_mmap", None)
    if isinstance(mm, mmap.mmap) and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass  # a closed map or an unsupported platform only costs memory


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc: nothing to trim


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc).

    Per-frame temporaries of slightly different sizes fragment glibc's heap: free but
    resident pages then pile up slowly, so without this the peak resident set kept
    creeping up with the number of frames (~15 MiB per 1000 frames of 2,000 atoms).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


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
) -> None:
    """Run ``work(searcher, coords, lattices, first, chunk_start)`` on blocks of frames.

    ``coords`` (B, N, 3) and ``lattices`` (B, 3, 3) hold frames first .. first + B - 1.
    Each chunk is read (and checked) in one go and split into one contiguous range per
    worker thread, so each searcher sees consecutive frames; ``finish_chunk(lo, hi)`` runs
    before the next chunk is read.
    """
    from tqdm import tqdm

    n_frames = traj.traj_coords.shape[0]
    threads = len(searchers)
    bar = tqdm(total=n_frames, desc=desc, unit="frame", file=sys.stderr, disable=not progress)

    def run(part: int, coords: np.ndarray, lattices: np.ndarray, lo: int, a: int, b: int) -> None:
        for f in range(a, b, PROGRESS_BLOCK):
            g = min(b, f + PROGRESS_BLOCK)
            work(searchers[part], coords[f - lo : g - lo], lattices[f - lo : g - lo], f, lo)
            _trim_heap()
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
) -> np.ndarray:
    """Sorted atom ids within ``hops`` neighbour hops of any target atom in any frame.

    A K-layer model needs hops = K - 1: an atom at hop h feeds the target's layer-K
    embedding through its own layer-(K - h) embedding, so atoms at hop K only enter
    through their (fixed) initial embeddings and need no neighbour list. Hops follow the
    graph :func:`build_store` writes (ties at the cut seeded by the raw frame index).
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
        traj, where, chunks, searchers, work, lambda lo, hi: None, "receptive field", progress
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
) -> dict[str, Any]:
    """Write the graph store of ``traj`` to ``outdir`` atomically; returns its metadata.

    ``n_conv`` None builds all rows; otherwise rows = :func:`receptive_field` with
    K - 1 hops. Output is computed and written in chunks of frames, so memory does not
    grow with the trajectory length (memory-mapped input pages are released per chunk).
    Frame f is built with ``tie_seed`` = its raw frame index, frame_offset + f (see
    :func:`nearest_neighbours`), so the store does not depend on chunks or threads.
    """
    from gdyn.files import atomic_dir

    where = where or str(traj.path or "trajectory")
    n_frames, n_atoms = (int(x) for x in traj.traj_coords.shape[:2])
    m = int(n_neighbors)
    threads = max(1, int(threads))
    if n_conv is None:
        rows = np.arange(n_atoms, dtype=np.int64)
    else:
        if int(n_conv) < 1:
            raise InputError(f"{where}: n_conv: expected K >= 1, got {n_conv}")
        rows = receptive_field(traj, m, int(n_conv) - 1, threads, progress, where)
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

            _for_frames(traj, where, chunks, searchers, work, finish, "graphs", progress)
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


# --------------------------------------------------------------------------------------
# CLI


def _import_vesin_without_torch() -> None:
    """Import vesin with its optional torch/cupy array support switched off.

    vesin tries ``import torch`` at import time only to recognise torch tensors; in the
    ``gdyn graphs`` process (numpy only) that costs ~1 s and ~200 MiB of resident memory
    per job. Blocking the two imports while vesin loads, then unblocking them, leaves
    later ``import torch`` working normally.
    """
    if "vesin" in sys.modules or "torch" in sys.modules:
        return
    blocked = [name for name in ("torch", "cupy") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import vesin  # noqa: F401
    finally:
        for name in blocked:
            del sys.modules[name]


def _cmd_graphs(args: argparse.Namespace) -> int:
    import dataclasses

    from gdyn.trajectory import load_trajectory, validate_trajectory

    _import_vesin_without_torch()

    where = str(args.split)
    # Validate structure on one frame only: the full scan happens chunk by chunk while
    # building, so a long trajectory is read once and never held whole in memory.
    traj = load_trajectory(args.split, mmap=True, validate=False)
    head = dataclasses.replace(traj, traj_coords=traj.traj_coords[:1], lattices=traj.lattices[:1])
    if traj.traj_coords.ndim != 3 or traj.traj_coords.shape[0] < 1:
        raise InputError(
            f"{where}: key 'traj_coords': expected shape (F, N, 3) with F >= 1, "
            f"got {tuple(traj.traj_coords.shape)}"
        )
    validate_trajectory(head, where, n_neighbors=args.n_neighbors)
    if traj.lattices.shape[0] != traj.traj_coords.shape[0]:
        raise InputError(
            f"{where}: key 'lattices': expected {traj.traj_coords.shape[0]} frames (as "
            f"traj_coords), got {traj.lattices.shape[0]}"
        )
    meta = build_store(
        traj,
        args.outdir,
        n_neighbors=args.n_neighbors,
        n_conv=None if args.all_rows else args.n_conv,
        threads=args.threads,
        progress=not args.quiet,
        where=where,
    )
    print(
        f"{args.outdir}: {meta['n_frames']} frames, {meta['n_rows']}/{meta['n_atoms']} rows, "
        f"M = {meta['n_neighbors']}, largest M-th distance "
        f"{meta['max_neighbor_distance_A']:.3f} A",
        file=sys.stderr,
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdyn graphs`` to the CLI."""
    p = subparsers.add_parser(
        "graphs",
        help="periodic M-nearest-neighbour graph of every frame of a split piece",
        description="Build the graph store (index.npy, distance.npy (F, N', M), rows.npy, "
        "meta.json) of one split piece: the M nearest neighbours of each atom under "
        "periodic boundaries, images included, for every frame.",
    )
    p.add_argument("split", type=Path, help="split piece .npz (results/split/...)")
    p.add_argument("outdir", type=Path, help="output store directory (written atomically)")
    p.add_argument(
        "--n-neighbors", type=int, required=True, metavar="M", help="neighbours per atom"
    )
    rows = p.add_mutually_exclusive_group(required=True)
    rows.add_argument(
        "--n-conv",
        type=int,
        metavar="K",
        help="keep rows within K-1 hops of a target (K convolution layers)",
    )
    rows.add_argument("--all-rows", action="store_true", help="keep every atom's row")
    p.add_argument(
        "--threads", type=int, default=1, metavar="T", help="worker threads over frames (default 1)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_graphs)
