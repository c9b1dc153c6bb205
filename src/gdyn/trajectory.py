"""The trajectory format (Materials Cloud schema): load memory-mapped, validate, save.

A trajectory is an ``.npz`` with ``traj_coords`` (F, N, 3) Angstrom, ``lattices`` (F, 3, 3)
with rows = lattice vectors, ``atom_types`` (N,) atomic numbers and ``target_index`` (n,)
or (n, k) (k atoms per target set, e.g. a water molecule). Every other member is kept in
``Trajectory.extras`` (``frame_interval_ps``, ``site_label``, ``frame_offset``, ``source``...).

Members of an uncompressed ``.npz`` (what ``np.savez`` and :func:`save_trajectory` write)
are memory-mapped straight out of the zip file, so a slice of a long trajectory costs only
the pages it touches. Compressed members cannot be mapped and are read whole.

``traj[a:b]`` is the trajectory of frames ``a .. b-1``: views of the same (memory-mapped)
arrays, per-frame extras sliced, ``frame_offset`` advanced by ``a`` so that frame ``f`` of the
slice is still frame ``frame_offset + f`` of the raw trajectory (docs/contracts.md).
"""

from __future__ import annotations

import math
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.cells import (
    MAX_CELLS_AWAY,
    MIN_FACE_WIDTH_A,
    check_far,
    check_finite,
    check_lattices,
)
from gdyn.errors import InputError
from gdyn.files import atomic_path, save_npz

__all__ = [
    "MAX_CELLS_AWAY",
    "MIN_FACE_WIDTH_A",
    "REQUIRED_KEYS",
    "Trajectory",
    "TrajectoryHeader",
    "check_trajectory",
    "copy_npz_uncompressed",
    "from_arrays",
    "is_compressed_npz",
    "load_trajectory",
    "min_atoms_for_neighbors",
    "read_header",
    "read_npz",
    "save_trajectory",
    "validate_trajectory",
]

REQUIRED_KEYS: tuple[str, ...] = ("traj_coords", "lattices", "atom_types", "target_index")

# Chunk size (bytes of coordinates) for the full-trajectory scans of the validator, so a
# memory-mapped trajectory of any length is checked in bounded memory.
_SCAN_BYTES = 64 * 2**20
_ZIP_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_ZIP_LOCAL_MAGIC = b"PK\x03\x04"
# Coordinates and lattices narrower than this (float16: ~3 significant digits) are refused.
_MIN_FLOAT_BYTES = 4



@dataclass
class Trajectory:
    """One MD trajectory in the Materials Cloud schema (arrays may be read-only memmaps)."""

    traj_coords: np.ndarray
    lattices: np.ndarray
    atom_types: np.ndarray
    target_index: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames F."""
        return int(self.traj_coords.shape[0])

    @property
    def n_atoms(self) -> int:
        """Number of atoms N per frame."""
        return int(self.traj_coords.shape[1])

    @property
    def target_sets(self) -> np.ndarray:
        """Target index as (n, k) int64: one row per target set (k = 1 for single atoms)."""
        t = np.asarray(self.target_index).astype(np.int64, copy=False)
        return t.reshape(-1, 1) if t.ndim == 1 else t

    @property
    def frame_interval_ps(self) -> float | None:
        """The stored ``frame_interval_ps`` extra, or None when the file has none."""
        value = self.extras.get("frame_interval_ps")
        return None if value is None else float(np.asarray(value).reshape(()))

    @property
    def frame_offset(self) -> int:
        """Index of frame 0 in the raw trajectory: the ``frame_offset`` extra, else 0."""
        return int(np.asarray(self.extras.get("frame_offset", 0)).reshape(()))

    def __getitem__(self, frames: slice) -> Trajectory:
        """The frames ``traj[a:b]`` as a Trajectory of views (no copy of memory-mapped data).

        Bounds follow Python slicing (negative, None, clipped to ``[0, F]``; ``b <= a`` gives
        an empty trajectory). Extras whose leading axis has F entries are sliced, the others
        kept as they are; ``frame_offset`` becomes ``old offset + a`` (always stored), and
        ``path`` is kept (the arrays still map that file).

        Raises
        ------
        TypeError
            For anything but a slice (use ``traj[i:i + 1]`` for one frame).
        ValueError
            For a step other than 1: ``frame_offset`` and ``frame_interval_ps`` describe
            consecutive frames of the raw trajectory, which a strided slice is not.
        """
        if not isinstance(frames, slice):
            raise TypeError(
                f"Trajectory: expected a slice of frames (traj[a:b]), got "
                f"{type(frames).__name__}; use traj[i:i + 1] for one frame"
            )
        n = self.n_frames
        lo, hi, step = frames.indices(n)
        if step != 1:
            raise ValueError(
                f"Trajectory: expected a frame slice with step 1, got step {step} "
                "(frame_offset and frame_interval_ps describe consecutive raw frames)"
            )
        window = slice(lo, max(lo, hi))
        extras: dict[str, np.ndarray] = {}
        for key, value in self.extras.items():
            if key == "frame_offset":
                extras[key] = np.asarray(self.frame_offset + lo, dtype=np.int64)
            elif np.ndim(value) >= 1 and np.shape(value)[0] == n:
                # the contract: an extra whose leading axis has F entries is per-frame
                extras[key] = value[window]
            else:
                extras[key] = value
        if "frame_offset" not in extras:
            extras["frame_offset"] = np.asarray(lo, dtype=np.int64)
        return Trajectory(
            traj_coords=self.traj_coords[window],
            lattices=self.lattices[window],
            atom_types=self.atom_types,
            target_index=self.target_index,
            extras=extras,
            path=self.path,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """All members (required keys first, then extras) as a name -> array dict."""
        out = {
            "traj_coords": self.traj_coords,
            "lattices": self.lattices,
            "atom_types": self.atom_types,
            "target_index": self.target_index,
        }
        out.update(self.extras)
        return out


# --------------------------------------------------------------------------------------
# Reading


def _memmap_member(path: Path, fh: Any, info: zipfile.ZipInfo) -> np.ndarray | None:
    """Memory-map one ZIP_STORED ``.npy`` member; None when it must be read normally."""
    fh.seek(info.header_offset)
    raw = fh.read(_ZIP_LOCAL_HEADER.size)
    if len(raw) != _ZIP_LOCAL_HEADER.size:
        raise InputError(f"{path}: member {info.filename!r}: truncated zip local header")
    fields = _ZIP_LOCAL_HEADER.unpack(raw)
    if fields[0] != _ZIP_LOCAL_MAGIC:
        raise InputError(f"{path}: member {info.filename!r}: bad zip local header (corrupt file)")
    # The local header's extra field can differ from the central directory's (zip64), so
    # the payload offset must come from the local header itself.
    name_len, extra_len = fields[-2], fields[-1]
    start = info.header_offset + _ZIP_LOCAL_HEADER.size + name_len + extra_len
    fh.seek(start)
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        return None
    if dtype.hasobject or len(shape) == 0 or math.prod(shape) == 0:
        return None
    offset = fh.tell()
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes > start + info.compress_size:
        raise InputError(
            f"{path}: member {info.filename!r}: expected {nbytes} bytes of data for shape "
            f"{shape}, the zip entry is shorter (truncated or corrupt file)"
        )
    return np.memmap(
        path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset
    )


def read_npz(path: str | Path, mmap: bool = True) -> dict[str, np.ndarray]:
    """All members of an ``.npz``; uncompressed ones memory-mapped (read-only) when ``mmap``.

    A truncated or corrupt file raises :class:`InputError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[: -len(".npy")]
                arr = None
                if mmap and info.compress_type == zipfile.ZIP_STORED:
                    arr = _memmap_member(path, fh, info)
                if arr is None:
                    with zf.open(info) as member:
                        arr = np.lib.format.read_array(member, allow_pickle=False)
                out[key] = arr
    except InputError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise InputError(
            f"{path}: not a readable .npz trajectory (truncated or corrupt file? {exc})"
        ) from None
    if not out:
        raise InputError(f"{path}: expected .npy members in the .npz archive, found none")
    return out


@dataclass(frozen=True)
class TrajectoryHeader:
    """What a trajectory file says about itself without reading its coordinates."""

    path: Path
    n_frames: int
    n_atoms: int
    atom_types: np.ndarray
    frame_interval_ps: float | None


def read_header(path: str | Path) -> TrajectoryHeader:
    """Frame and atom counts, atom types and frame interval of a trajectory ``.npz``.

    Reads only the ``.npy`` header of ``traj_coords`` (not its data, compressed or not) and
    the small ``atom_types`` and ``frame_interval_ps`` members, so it is cheap for a
    trajectory of any length (the config checks call it at DAG-build time).

    Raises
    ------
    InputError
        Naming ``path`` when the file is missing, not a readable ``.npz`` or lacks
        ``traj_coords`` / ``atom_types``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for key in ("traj_coords", "atom_types"):
                if f"{key}.npy" not in names:
                    raise InputError(f"{path}: key {key!r}: missing")
            with zf.open("traj_coords.npy") as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, _ = np.lib.format.read_array_header_1_0(fh)
                else:  # 2.0 and 3.0 share the header layout
                    shape, _, _ = np.lib.format.read_array_header_2_0(fh)
            with zf.open("atom_types.npy") as fh:
                types = np.lib.format.read_array(fh, allow_pickle=False)
            fi = None
            if "frame_interval_ps.npy" in names:
                with zf.open("frame_interval_ps.npy") as fh:
                    fi = float(np.asarray(np.lib.format.read_array(fh)).reshape(()))
    except InputError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise InputError(
            f"{path}: not a readable .npz trajectory (truncated or corrupt file? {exc})"
        ) from None
    if len(shape) != 3:
        raise InputError(f"{path}: key 'traj_coords': expected shape (F, N, 3), got {shape}")
    return TrajectoryHeader(path=path, n_frames=int(shape[0]), n_atoms=int(shape[1]),
                            atom_types=np.asarray(types).reshape(-1), frame_interval_ps=fi)


def _as_int(arr: np.ndarray, where: str, key: str) -> np.ndarray:
    """Integer view of a small index/type array; integral floats are accepted and cast."""
    a = np.asarray(arr)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64, copy=False)
    if np.issubdtype(a.dtype, np.floating) and a.size and np.all(np.isfinite(a)) and np.all(
        a == np.round(a)
    ):
        return a.astype(np.int64)
    if np.issubdtype(a.dtype, np.floating) and a.size == 0:
        return a.astype(np.int64)
    raise InputError(f"{where}: key {key!r}: expected integers, got dtype {a.dtype}")


def from_arrays(arrays: dict[str, np.ndarray], path: Path | None = None,
                name: str | None = None) -> Trajectory:
    """Build a :class:`Trajectory` from a member dict; missing required keys raise."""
    where = name or (str(path) if path else "<trajectory>")
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise InputError(
            f"{where}: key {missing[0]!r}: missing (expected keys {', '.join(REQUIRED_KEYS)}; "
            f"found {', '.join(sorted(arrays)) or 'none'})"
        )
    extras = {k: v for k, v in arrays.items() if k not in REQUIRED_KEYS}
    return Trajectory(
        traj_coords=arrays["traj_coords"],
        lattices=arrays["lattices"],
        atom_types=_as_int(arrays["atom_types"], where, "atom_types"),
        target_index=_as_int(arrays["target_index"], where, "target_index"),
        extras=extras,
        path=path,
    )


def load_trajectory(path: str | Path, mmap: bool = True, validate: bool = True) -> Trajectory:
    """Read a trajectory ``.npz`` (memory-mapped when uncompressed) and optionally validate it."""
    path = Path(path)
    traj = from_arrays(read_npz(path, mmap=mmap), path=path)
    if validate:
        validate_trajectory(traj, str(path))
    return traj


# --------------------------------------------------------------------------------------
# Validation


def _frame_chunks(n_frames: int, frame_bytes: int) -> range:
    step = max(1, _SCAN_BYTES // max(frame_bytes, 1))
    return range(0, n_frames, step)


def _check_real(arr: np.ndarray, name: str, key: str) -> None:
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name}: key {key!r}: expected real numbers, got dtype {arr.dtype}")


def min_atoms_for_neighbors(n_neighbors: int) -> int:
    """Fewest atoms per cell from which ``n_neighbors`` neighbours can be drawn.

    Under periodic boundary conditions every atom has infinitely many periodic images and
    images of the same atom (including an atom's own images) are distinct neighbours, so a
    single atom in a valid 3-D cell already supplies any M. Only an empty cell cannot.
    """
    return 1 if n_neighbors >= 1 else 0


def validate_trajectory(traj: Trajectory, name: str, n_neighbors: int | None = None) -> None:
    """Raise :class:`InputError` naming ``name``, the key and the offending value if invalid.

    Checks ranks and shapes, F/N consistency, at least float32 precision, finite
    coordinates and lattices (scanned in chunks so memmaps stay cheap), right-handed
    non-singular cells at least :data:`MIN_FACE_WIDTH_A` wide between opposite faces,
    atoms within :data:`MAX_CELLS_AWAY` cell lengths of the cell, integer atom types,
    target indices in range and unique, and that M = ``n_neighbors`` neighbours exist. Frames are named by their raw index
    (``frame_offset + f`` for a split piece).
    """
    coords, lat = traj.traj_coords, traj.lattices
    types, targets = np.asarray(traj.atom_types), np.asarray(traj.target_index)

    if coords.ndim != 3 or coords.shape[2] != 3:
        raise InputError(
            f"{name}: key 'traj_coords': expected shape (F, N, 3), got {tuple(coords.shape)}"
        )
    _check_real(coords, name, "traj_coords")
    _check_precision(coords, name, "traj_coords")
    n_frames, n_atoms = int(coords.shape[0]), int(coords.shape[1])
    if n_frames < 1:
        raise InputError(f"{name}: key 'traj_coords': expected at least 1 frame, got 0")
    if lat.ndim != 3 or lat.shape[1:] != (3, 3):
        raise InputError(f"{name}: key 'lattices': expected shape (F, 3, 3), got {tuple(lat.shape)}")
    _check_real(lat, name, "lattices")
    _check_precision(lat, name, "lattices")
    if lat.shape[0] != n_frames:
        raise InputError(
            f"{name}: key 'lattices': expected {n_frames} frames (as traj_coords), "
            f"got {lat.shape[0]}"
        )
    if types.ndim != 1:
        raise InputError(f"{name}: key 'atom_types': expected shape (N,), got {types.shape}")
    if types.shape[0] != n_atoms:
        raise InputError(
            f"{name}: key 'atom_types': expected {n_atoms} atoms (as traj_coords), "
            f"got {types.shape[0]}"
        )
    if not np.issubdtype(types.dtype, np.integer):
        raise InputError(f"{name}: key 'atom_types': expected integers, got dtype {types.dtype}")
    if n_atoms and (types.min() < 0 or types.max() > 118):
        bad = types[(types < 0) | (types > 118)][0]
        raise InputError(
            f"{name}: key 'atom_types': expected atomic numbers in [0, 118], got {int(bad)}"
        )

    if n_neighbors is not None:
        need = min_atoms_for_neighbors(int(n_neighbors))
        if int(n_neighbors) < 1:
            raise InputError(f"{name}: n_neighbors: expected M >= 1, got {n_neighbors}")
        if n_atoms < need:
            raise InputError(
                f"{name}: key 'traj_coords': {n_atoms} atoms per cell cannot give "
                f"M = {n_neighbors} neighbours (expected at least {need} atom, periodic "
                "images included)"
            )
    elif n_atoms < 1:
        raise InputError(f"{name}: key 'traj_coords': expected at least 1 atom, got 0")

    if targets.ndim not in (1, 2):
        raise InputError(
            f"{name}: key 'target_index': expected shape (n,) or (n, k), got {targets.shape}"
        )
    if not np.issubdtype(targets.dtype, np.integer):
        raise InputError(
            f"{name}: key 'target_index': expected integers, got dtype {targets.dtype}"
        )
    if targets.shape[0] < 1 or (targets.ndim == 2 and targets.shape[1] < 1):
        raise InputError(
            f"{name}: key 'target_index': expected at least one target, got shape {targets.shape}"
        )
    flat = targets.reshape(-1)
    out = (flat < 0) | (flat >= n_atoms)
    if out.any():
        raise InputError(
            f"{name}: key 'target_index': expected atom indices in [0, {n_atoms}), "
            f"got {int(flat[out][0])}"
        )
    uniq, counts = np.unique(flat, return_counts=True)
    if (counts > 1).any():
        raise InputError(
            f"{name}: key 'target_index': expected each atom at most once, "
            f"atom {int(uniq[counts > 1][0])} appears {int(counts[counts > 1][0])} times"
        )

    fi = traj.extras.get("frame_interval_ps")
    if fi is not None:
        fa = np.asarray(fi)
        if fa.size != 1 or not np.isfinite(fa.astype(float)).all() or float(fa.reshape(())) <= 0:
            raise InputError(
                f"{name}: key 'frame_interval_ps': expected one positive number, got {fa!r}"
            )

    # Frames are reported by their index in the raw trajectory (a split piece starts at
    # frame_offset), so that the message points at the frame in the user's own file.
    offset = traj.frame_offset
    frame_bytes = n_atoms * 3 * coords.dtype.itemsize
    for lo in _frame_chunks(n_frames, frame_bytes):
        hi = min(n_frames, lo + max(1, _SCAN_BYTES // max(frame_bytes, 1)))
        c = np.asarray(coords[lo:hi])
        check_finite(c, "traj_coords", "coordinates", lo, name, offset)
        cells = np.asarray(lat[lo:hi], dtype=np.float64)
        check_lattices(cells, lo, name, offset)
        check_far(c, cells, lo, name, offset)


def _check_precision(arr: np.ndarray, name: str, key: str) -> None:
    """Refuse floats narrower than float32: their rounding would move graph distances."""
    if np.issubdtype(arr.dtype, np.floating) and arr.dtype.itemsize < _MIN_FLOAT_BYTES:
        eps = float(np.finfo(arr.dtype).eps)
        raise InputError(
            f"{name}: key {key!r}: expected float32 or float64, got {arr.dtype} (relative "
            f"precision {eps:.1e}, e.g. {eps * 16:.3f} A steps at 20 A: too coarse for the "
            "neighbour distances of the graphs); store the file in float32 or float64"
        )


# --------------------------------------------------------------------------------------
# Writing


def is_compressed_npz(path: str | Path) -> bool:
    """True when some member of the zip ``path`` is compressed (so cannot be memory-mapped)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(i.compress_type != zipfile.ZIP_STORED for i in zf.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a readable .npz (truncated or corrupt file? {exc})") from None


class _ReadError(Exception):
    """A failure while reading the source archive (its fault, not the destination's)."""


def _read(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise _ReadError(exc) from exc


def copy_npz_uncompressed(src: str | Path, dest: str | Path) -> None:
    """Copy every member of ``src`` into ``dest`` uncompressed, streaming (bounded memory).

    ``dest`` is written in place (wrap it in :func:`gdyn.files.atomic_path`). The zip CRC of
    each member is checked while reading, so a corrupt ``src`` raises :class:`InputError`
    naming ``src``; a failure to write (no permission, disk full) raises the ``OSError``
    with ``dest`` as its file name, so the destination, not the source, is blamed.
    """
    chunk = 1 << 22
    try:
        zin = _read(zipfile.ZipFile, src)
        with zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED, allowZip64=True) as zout:
            for info in zin.infolist():
                with _read(zin.open, info) as fin, zout.open(info.filename, "w",
                                                             force_zip64=True) as fout:
                    while block := _read(fin.read, chunk):
                        fout.write(block)
    except _ReadError as wrapped:
        raise InputError(
            f"{src}: not a readable .npz trajectory (truncated or corrupt file? "
            f"{wrapped.args[0]})"
        ) from None
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(dest)) from None


def save_trajectory(path: str | Path, traj: Trajectory) -> None:
    """Write ``traj`` to ``path`` as an uncompressed (memory-mappable) ``.npz``, atomically."""
    save_npz(path, compressed=False, **traj.arrays())


# --------------------------------------------------------------------------------------
# Checking a file (``gdyn check``)


def check_trajectory(path: str | Path, n_neighbors: int | None = None,
                     copy_to: str | Path | None = None) -> Trajectory:
    """Validate the trajectory file ``path``; optionally store it uncompressed at ``copy_to``.

    Parameters
    ----------
    path
        Trajectory ``.npz`` (compressed or not).
    n_neighbors
        Also check that M = ``n_neighbors`` neighbours per atom exist.
    copy_to
        Where to write an uncompressed (memory-mappable) copy, atomically: the copy appears
        only when ``path`` is valid.

    Returns
    -------
    Trajectory
        The validated trajectory, memory-mapped from ``copy_to`` when given.
    """
    if copy_to is None:
        traj = load_trajectory(path, mmap=True, validate=False)
        validate_trajectory(traj, str(path), n_neighbors=n_neighbors)
        return traj
    # copy first (streaming, so a compressed input is never held in memory whole), then
    # validate the memory-mapped copy; atomic_path drops the copy if validation fails
    with atomic_path(copy_to, suffix=".npz") as tmp:
        copy_npz_uncompressed(path, tmp)
        traj = load_trajectory(tmp, mmap=True, validate=False)
        validate_trajectory(traj, str(path), n_neighbors=n_neighbors)
        del traj  # release the memmaps before the rename
    return load_trajectory(copy_to, mmap=True, validate=False)
