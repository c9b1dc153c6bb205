"""``gdyn import``: convert an MD trajectory that ASE or MDAnalysis reads into the format.

ASE reads extended XYZ, LAMMPS dumps (``lammps-dump-text``) and every other format it
knows; MDAnalysis reads XTC/TRR/DCD/... together with a topology (PDB, GRO, ...). Frames
are streamed into a temporary file next to the output, so memory stays at a few frames
whatever the trajectory length; the result is validated and written atomically.

Targets (``--targets``):

- ``element:Li`` (or ``element:Li,Na``): every atom of those elements, shape (n,);
- ``index:0,5,7`` (ranges ``10-19`` inclusive allowed): those atoms, shape (n,);
- ``residue:SOL`` (alias ``molecule:SOL``): one target set per residue of that name, shape
  (n, k). Residues come from the MDAnalysis topology, or from the per-atom arrays
  ``residuenames``/``residuenumbers`` that ASE reads from PDB and extended XYZ files.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdyn.errors import InputError
from gdyn.trajectory import Trajectory, load_trajectory, save_trajectory, validate_trajectory

__all__ = ["MDA_SUFFIXES", "Source", "atomic_numbers", "import_trajectory", "open_source",
           "select_targets"]

log = logging.getLogger(__name__)

# File suffixes (lower case) that only MDAnalysis reads: coordinates without a topology.
MDA_SUFFIXES = {".xtc", ".trr", ".dcd", ".nc", ".ncdf", ".netcdf", ".trj", ".mdcrd", ".tng"}
_TIME_RTOL = 1e-4


@dataclass
class Source:
    """What an importer needs from a reader: fixed topology plus a stream of frames."""

    atom_types: np.ndarray  # (N,) atomic numbers
    resnames: np.ndarray | None  # (N,) residue name of each atom
    residue_ids: np.ndarray | None  # (N,) one value per residue (unique per residue)
    frames: Iterator[tuple[np.ndarray, np.ndarray, float | None]]  # positions, cell, time_ps
    n_frames: int | None = None


def atomic_numbers(symbols: Sequence[str], where: str) -> np.ndarray:
    """Atomic numbers of element symbols (case-insensitive); InputError for unknown ones."""
    from ase.data import atomic_numbers as table

    out = np.empty(len(symbols), dtype=np.int64)
    for i, s in enumerate(symbols):
        key = str(s).strip().capitalize()
        if key not in table:
            raise InputError(
                f"{where}: atom {i}: expected an element symbol, got {s!r} "
                "(give the topology elements, or --species for LAMMPS types)"
            )
        out[i] = table[key]
    return out


# --------------------------------------------------------------------------------------
# Readers


def _ase_source(path: Path, fmt: str | None, species: list[str] | None) -> Source:
    import ase.io

    kwargs = {}
    if species:
        _check_species(path, fmt, species)
        kwargs["specorder"] = species
    try:
        frames = ase.io.iread(str(path), index=":", format=fmt, **kwargs)
        first = next(frames)
    except StopIteration:
        raise InputError(f"{path}: expected at least one frame, found none") from None
    except Exception as exc:  # ASE raises many types for unreadable input
        raise InputError(f"{path}: ASE could not read it as {fmt or 'auto'}: {exc}") from None
    if "type" in first.arrays and not species and np.array_equal(first.numbers,
                                                                  first.arrays["type"]):
        raise InputError(
            f"{path}: LAMMPS atom types {sorted(set(first.arrays['type'].tolist()))} are not "
            "elements: pass --species (e.g. --species Li,S for types 1,2) or dump an "
            "'element' column"
        )
    numbers = first.numbers.astype(np.int64)
    resnames = residue_ids = None
    if "residuenames" in first.arrays:
        resnames = np.array([str(s).strip() for s in first.arrays["residuenames"]])
        nums = first.arrays.get("residuenumbers", np.zeros(len(first), int))
        # residue numbers repeat (wrap at 9999, restart per chain): a residue is a run of
        # atoms with the same (name, number)
        change = np.ones(len(first), dtype=bool)
        change[1:] = (resnames[1:] != resnames[:-1]) | (nums[1:] != nums[:-1])
        residue_ids = np.cumsum(change)

    def stream() -> Iterator[tuple[np.ndarray, np.ndarray, float | None]]:
        atoms = first
        i = 0
        while True:
            if len(atoms) != len(numbers) or not np.array_equal(atoms.numbers, numbers):
                raise InputError(
                    f"{path}: frame {i}: expected the same {len(numbers)} atoms as frame 0, "
                    f"got {len(atoms)} atoms / different elements"
                )
            time = atoms.info.get("time")
            yield (atoms.get_positions(), np.asarray(atoms.get_cell()),
                   None if time is None else float(time))
            try:
                atoms = next(frames)
            except StopIteration:
                return
            i += 1

    return Source(numbers, resnames, residue_ids, stream())


def _check_species(path: Path, fmt: str | None, species: list[str]) -> None:
    """One element per LAMMPS atom type: ``--species`` must name types 1..max type."""
    import ase.io

    try:
        first = next(ase.io.iread(str(path), index=":", format=fmt))
    except Exception:  # unreadable without species too: the read with them says why
        return
    types = first.arrays.get("type")
    if types is None or not len(types):
        return  # not typed atoms (e.g. an element column): species are not used
    present = sorted({int(t) for t in types})
    if present[-1] > len(species) or present[0] < 1:
        raise InputError(
            f"{path}: --species: expected one element per LAMMPS atom type (types "
            f"{', '.join(map(str, present))} in frame 0, so at least {present[-1]} "
            f"elements, type n = the n-th), got {len(species)}: {','.join(species)}"
        )


def _mda_source(path: Path, topology: Path | None, fmt: str | None) -> Source:
    import MDAnalysis as mda
    from MDAnalysis.lib.mdamath import triclinic_vectors

    args = [str(topology), str(path)] if topology else [str(path)]
    kwargs = {"format": fmt} if fmt else {}
    try:
        u = mda.Universe(*args, **kwargs)
    except Exception as exc:  # MDAnalysis raises many types for unreadable input
        raise InputError(
            f"{path}: MDAnalysis could not read it (topology {topology}): {exc}"
        ) from None
    atoms = u.atoms
    if not hasattr(atoms, "elements") or any(not str(e).strip() for e in atoms.elements):
        u.guess_TopologyAttrs(to_guess=["elements"], force_guess=["elements"])
    numbers = atomic_numbers(list(u.atoms.elements), f"{topology or path}: elements")
    resnames = np.array([str(r) for r in atoms.resnames]) if hasattr(atoms, "resnames") else None
    residue_ids = np.asarray(atoms.resindices) if resnames is not None else None

    def stream() -> Iterator[tuple[np.ndarray, np.ndarray, float | None]]:
        for i, ts in enumerate(u.trajectory):
            if ts.dimensions is None:
                raise InputError(f"{path}: frame {i}: expected a periodic box, got none")
            cell = triclinic_vectors(np.asarray(ts.dimensions, dtype=np.float64),
                                     dtype=np.float64)
            yield ts.positions.astype(np.float64), cell, float(ts.time)

    return Source(numbers, resnames, residue_ids, stream(), n_frames=len(u.trajectory))


def open_source(path: str | Path, topology: str | Path | None = None, fmt: str | None = None,
                species: Sequence[str] | None = None) -> Source:
    """Pick the reader: MDAnalysis with a topology or for XTC-like files, ASE otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if topology is not None and not Path(topology).exists():
        raise InputError(f"{topology}: topology file not found")
    mda_fmt = fmt is not None and f".{fmt.lower()}" in MDA_SUFFIXES
    if topology is not None or mda_fmt or path.suffix.lower() in MDA_SUFFIXES:
        return _mda_source(path, Path(topology) if topology else None, fmt)
    return _ase_source(path, fmt, list(species) if species else None)


# --------------------------------------------------------------------------------------
# Targets


def _parse_indices(text: str, where: str) -> list[int]:
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m and int(m.group(2)) >= int(m.group(1)):
            out.extend(range(int(m.group(1)), int(m.group(2)) + 1))
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise InputError(
                f"{where}: expected atom indices like 0,5,7 or 10-19, got {part!r}"
            ) from None
    return out


def select_targets(spec: str, atom_types: np.ndarray, resnames: np.ndarray | None = None,
                   residue_ids: np.ndarray | None = None) -> np.ndarray:
    """``target_index`` for a ``--targets`` spec: (n,) for atoms, (n, k) for residues."""
    where = f"--targets {spec!r}"
    kind, sep, value = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or not value.strip():
        raise InputError(f"{where}: expected element:SYMBOL, index:LIST or residue:NAME")
    if kind == "element":
        wanted = atomic_numbers([s for s in value.split(",") if s.strip()], where)
        idx = np.flatnonzero(np.isin(atom_types, wanted))
        if idx.size == 0:
            present = sorted(set(atom_types.tolist()))
            raise InputError(
                f"{where}: expected atoms of element {value}, found none "
                f"(atomic numbers present: {present})"
            )
        return idx.astype(np.int64)
    if kind == "index":
        idx = np.array(_parse_indices(value, where), dtype=np.int64)
        n = len(atom_types)
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise InputError(f"{where}: expected atom indices in [0, {n}), got {int(bad[0])}")
        return idx
    if kind in ("residue", "molecule"):
        if resnames is None or residue_ids is None:
            raise InputError(
                f"{where}: the input has no residue information (use a topology with "
                "residues, e.g. PDB/GRO, or an extended XYZ with residuenames/residuenumbers)"
            )
        name = value.strip()
        members = np.flatnonzero(resnames == name)
        if members.size == 0:
            raise InputError(
                f"{where}: expected residues named {name!r}, found none "
                f"(residue names: {', '.join(sorted(set(resnames.tolist()))[:20])})"
            )
        ids = residue_ids[members]
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        order = np.argsort(first)  # residues in order of appearance
        sets = [members[inverse == j] for j in order]
        sizes = {len(s) for s in sets}
        if len(sizes) != 1:
            raise InputError(
                f"{where}: expected every {name!r} residue to have the same number of atoms, "
                f"got sizes {sorted(sizes)}"
            )
        return np.stack(sets).astype(np.int64)
    raise InputError(f"{where}: expected element:, index: or residue: (molecule:), got {kind!r}")


# --------------------------------------------------------------------------------------
# Conversion


def _frame_interval(times: list[float | None], given: float | None, path: Path) -> float | None:
    known = [t for t in times if t is not None]
    file_dt = None
    if len(known) == len(times) and len(known) >= 2:
        steps = np.diff(np.asarray(known, dtype=np.float64))
        if steps[0] > 0 and np.allclose(steps, steps[0], rtol=_TIME_RTOL, atol=1e-9):
            file_dt = float(steps[0])
    if given is not None:
        if file_dt is not None and not np.isclose(file_dt, given, rtol=_TIME_RTOL):
            log.warning("%s: the file's frame times step by %g ps, --frame-interval-ps says %g;"
                        " using %g", path, file_dt, given, given)
        return float(given)
    return file_dt


def import_trajectory(inp: str | Path, out: str | Path, targets: str, *,
                      topology: str | Path | None = None, fmt: str | None = None,
                      frame_interval_ps: float | None = None,
                      species: Sequence[str] | None = None,
                      progress: bool = True) -> Trajectory:
    """Convert ``inp`` to the trajectory format at ``out``; return the saved Trajectory."""
    from tqdm import tqdm

    inp, out = Path(inp), Path(out)
    src = open_source(inp, topology, fmt, species)
    target_index = select_targets(targets, src.atom_types, src.resnames, src.residue_ids)
    n_atoms = len(src.atom_types)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".coords", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        lattices: list[np.ndarray] = []
        times: list[float | None] = []
        with os.fdopen(fd, "wb") as fh:
            for pos, cell, time in tqdm(src.frames, total=src.n_frames, unit="frame",
                                        disable=not progress, desc=inp.name):
                fh.write(np.ascontiguousarray(pos, dtype=np.float64).tobytes())
                lattices.append(np.asarray(cell, dtype=np.float64))
                times.append(time)
        n_frames = len(lattices)
        if n_frames == 0:
            raise InputError(f"{inp}: expected at least one frame, found none")
        coords = np.memmap(tmp, dtype=np.float64, mode="r", shape=(n_frames, n_atoms, 3))
        extras = {}
        dt = _frame_interval(times, frame_interval_ps, inp)
        if dt is not None:
            extras["frame_interval_ps"] = np.asarray(dt)
        traj = Trajectory(coords, np.stack(lattices), src.atom_types, target_index, extras)
        validate_trajectory(traj, f"{inp} (imported)")
        save_trajectory(out, traj)
    finally:
        tmp.unlink(missing_ok=True)
    return load_trajectory(out, validate=False)
