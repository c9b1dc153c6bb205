"""Atomic file output: nothing half-written survives a crash.

Every writer goes to a temporary file in the destination's directory and renames it into
place only when complete (``os.replace`` is atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.errors import InputError

# errno values that mean "the file system is full" (disk or quota)
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # elsewhere: the only portable way is to set it and restore it
    os.umask(umask)
    return umask


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError``: the path, the reason, and the free space when full."""
    where = exc.filename if exc.filename is not None else "<unknown path>"
    reason = exc.strerror or str(exc)
    text = f"{where}: {reason}"
    if exc.errno in _FULL:
        free = free_bytes(where) if exc.filename is not None else None
        if free is not None:
            text += f" ({free / 2**20:.1f} MiB free on its file system; free space and rerun)"
    return text


def unwritable_dir(root: str | os.PathLike[str]) -> str | None:
    """The first directory at or under ``root`` that cannot be written, as a one-line
    reason, or None (also when ``root`` does not exist yet).

    The workflow writes (and replaces) every output under ``results/``: a read-only
    directory or file system there would otherwise surface as a traceback from Snakemake
    when it first removes or creates an output. Symbolic links are not followed.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    for here, dirs, _ in os.walk(root):
        if not os.access(here, os.W_OK | os.X_OK):
            ro = False
            with contextlib.suppress(OSError):
                ro = bool(os.statvfs(here).f_flag & os.ST_RDONLY)
            why = "on a read-only file system" if ro else "a read-only directory"
            return (f"{here}: not writable ({why}); every output is written under {root}/: "
                    f"make it writable (e.g. chmod -R u+w {root}) or run in another "
                    "directory (snakemake -d DIR)")
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(here, d))]
    return None


def _blame(exc: BaseException, dest: Path, tmp: Path) -> BaseException:
    """An OSError about the temporary file, renamed to the destination the user knows."""
    if not isinstance(exc, OSError):
        return exc
    if exc.filename in (str(tmp), tmp) or (exc.filename is None and exc.errno in _FULL):
        return OSError(exc.errno, exc.strerror or str(exc), str(dest))
    return exc


def _mode(tmp: Path) -> None:
    # mkstemp / mkdtemp create 0600 / 0700; results are shared (clusters): honour the umask
    base = 0o777 if tmp.is_dir() else 0o666
    os.chmod(tmp, base & ~current_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception the temporary file (or directory) is removed and ``path`` is left
    untouched. ``suffix`` defaults to the destination's suffix so that libraries that
    dispatch on the extension (numpy, matplotlib) behave. The result gets the permissions
    the umask gives a new file. An ``OSError`` while writing (disk full, no permission)
    names ``path``, not the temporary file.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sfx = dest.suffix if suffix is None else suffix
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{sfx}",
                                        dir=dest.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(dest)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            _mode(tmp)
        os.replace(tmp, dest)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        blamed = _blame(exc, dest, tmp)
        if blamed is exc:
            raise
        raise blamed from exc


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; it replaces ``path`` on success.

    The directory gets the permissions the umask gives a new directory (0755 under umask
    022), like a file written with :func:`atomic_path`; an ``OSError`` names ``path``.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(dest)) from None
    try:
        yield tmp
        _mode(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        blamed = _blame_dir(exc, dest, tmp)
        if blamed is exc:
            raise
        raise blamed from exc


def _blame_dir(exc: BaseException, dest: Path, tmp: Path) -> BaseException:
    """An OSError about a file inside the temporary directory, named inside ``dest``."""
    if not isinstance(exc, OSError):
        return exc
    name = exc.filename
    if name is None:
        if exc.errno in _FULL:
            return OSError(exc.errno, exc.strerror or str(exc), str(dest))
        return exc
    try:
        rel = Path(name).relative_to(tmp)
    except ValueError:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(dest / rel))


def save_npz(path: str | os.PathLike[str], compressed: bool = False, **arrays: Any) -> None:
    """Write arrays to ``path`` (.npz) atomically; uncompressed by default (memory-mappable)."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON object file; a missing, malformed or non-object file raises
    :class:`gdyn.errors.InputError` naming ``path``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike[str], frame: Any) -> None:
    """Write a pandas DataFrame to ``path`` (no index) atomically."""
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
