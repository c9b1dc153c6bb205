"""gdyn import round trips on files written by ASE, MDAnalysis and by hand (LAMMPS dump)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gdyn.cli import main
from gdyn.errors import InputError
from gdyn.importers import import_trajectory, select_targets
from gdyn.trajectory import load_trajectory

F = 4
SYMBOLS = ["Li", "S", "Li", "O", "H", "H", "O", "H", "H", "S"]
Z = np.array([3, 16, 3, 8, 1, 1, 8, 1, 1, 16])
RESNAMES = ["LI", "S", "LI", "SOL", "SOL", "SOL", "SOL", "SOL", "SOL", "S"]
RESNUMS = [1, 2, 3, 4, 4, 4, 5, 5, 5, 6]


def cell_from_parameters(a, b, c, alpha, beta, gamma):
    """Lattice rows from lengths and angles (a along x, b in the xy plane): the textbook formula."""
    al, be, ga = np.radians([alpha, beta, gamma])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    return np.array([[a, 0, 0], [b * np.cos(ga), b * np.sin(ga), 0],
                     [cx, cy, np.sqrt(c**2 - cx**2 - cy**2)]])


def frames(seed=0):
    rng = np.random.default_rng(seed)
    cells = [cell_from_parameters(10 + 0.1 * f, 11, 12, 80, 95, 100 + f) for f in range(F)]
    pos = [rng.random((len(SYMBOLS), 3)) @ c for c in cells]
    return np.array(pos), np.array(cells)


# --- extended XYZ (written by ASE) ----------------------------------------------------


@pytest.fixture
def extxyz(tmp_path):
    import ase.io
    from ase import Atoms

    pos, cells = frames()
    images = []
    for f in range(F):
        atoms = Atoms(SYMBOLS, positions=pos[f], cell=cells[f], pbc=True)
        atoms.set_array("residuenames", np.array(RESNAMES))
        atoms.set_array("residuenumbers", np.array(RESNUMS))
        atoms.info["time"] = 0.25 * f
        images.append(atoms)
    path = tmp_path / "traj.extxyz"
    ase.io.write(path, images, format="extxyz")
    return path, pos, cells


def test_extxyz_round_trip(extxyz, tmp_path):
    path, pos, cells = extxyz
    out = tmp_path / "raw" / "t.npz"
    t = import_trajectory(path, out, "element:Li", progress=False)
    np.testing.assert_allclose(t.traj_coords, pos, atol=1e-7)  # extxyz prints 8 decimals
    np.testing.assert_allclose(t.lattices, cells, atol=1e-7)
    np.testing.assert_array_equal(t.atom_types, Z)
    np.testing.assert_array_equal(t.target_index, [0, 2])
    assert t.frame_interval_ps == pytest.approx(0.25)  # from the frames' time stamps
    assert isinstance(load_trajectory(out).traj_coords, np.memmap)


def test_extxyz_residue_sets_and_index(extxyz, tmp_path):
    path, _, _ = extxyz
    t = import_trajectory(path, tmp_path / "w.npz", "residue:SOL", frame_interval_ps=0.25,
                          progress=False)
    np.testing.assert_array_equal(t.target_index, [[3, 4, 5], [6, 7, 8]])
    t = import_trajectory(path, tmp_path / "i.npz", "index:9,0-2", progress=False)
    np.testing.assert_array_equal(t.target_index, [9, 0, 1, 2])
    t = import_trajectory(path, tmp_path / "e.npz", "element:S,Li", progress=False)
    np.testing.assert_array_equal(t.target_index, [0, 1, 2, 9])


# --- LAMMPS dump (written by hand: ASE and MDAnalysis cannot write one) ------------------


def write_dump(path, pos, cells, columns="id element x y z", order=None):
    """A triclinic LAMMPS text dump (tilted box bounds as LAMMPS writes them)."""
    types = {"Li": 1, "S": 2, "O": 3, "H": 4}
    lines = []
    for f in range(len(pos)):
        (lx, _, _), (xy, ly, _), (xz, yz, lz) = cells[f].tolist()
        xlo, ylo, zlo = 1.5, -2.0, 0.25  # any origin: only the lattice vectors matter
        lines += [
            "ITEM: TIMESTEP", str(100 * f), "ITEM: NUMBER OF ATOMS", str(len(SYMBOLS)),
            "ITEM: BOX BOUNDS xy xz yz pp pp pp",
            f"{xlo + min(0, xy, xz, xy + xz)!r} {xlo + lx + max(0, xy, xz, xy + xz)!r} {xy!r}",
            f"{ylo + min(0, yz)!r} {ylo + ly + max(0, yz)!r} {xz!r}",
            f"{zlo!r} {zlo + lz!r} {yz!r}",
            f"ITEM: ATOMS {columns}",
        ]
        for i in order if order is not None else range(len(SYMBOLS)):
            x, y, z = (pos[f, i] + [xlo, ylo, zlo]).tolist()
            fields = {"id": str(i + 1), "element": SYMBOLS[i], "type": str(types[SYMBOLS[i]]),
                      "x": repr(x), "y": repr(y), "z": repr(z)}
            lines.append(" ".join(fields[c] for c in columns.split()))
    path.write_text("\n".join(lines) + "\n")


def test_lammps_dump_round_trip(tmp_path):
    pos, cells = frames(1)
    path = tmp_path / "dump.lammpstrj"
    # atoms listed out of id order, as parallel LAMMPS runs write them
    write_dump(path, pos, cells, order=np.random.default_rng(3).permutation(len(SYMBOLS)))
    t = import_trajectory(path, tmp_path / "d.npz", "element:Li", fmt="lammps-dump-text",
                          frame_interval_ps=0.1, progress=False)
    origin = np.array([1.5, -2.0, 0.25])
    # positions come back in the file's frame (shifted by the box origin), sorted by id
    np.testing.assert_allclose(t.traj_coords, pos + origin, atol=1e-12)
    np.testing.assert_allclose(t.lattices, cells, atol=1e-12)
    np.testing.assert_array_equal(t.atom_types, Z)
    np.testing.assert_array_equal(t.target_index, [0, 2])
    assert t.frame_interval_ps == 0.1


def test_lammps_dump_types_need_species(tmp_path):
    pos, cells = frames(2)
    path = tmp_path / "dump.lammpstrj"
    write_dump(path, pos, cells, columns="id type x y z")
    with pytest.raises(InputError, match=r"LAMMPS atom types \[1, 2, 3, 4\].*--species"):
        import_trajectory(path, tmp_path / "x.npz", "element:Li", fmt="lammps-dump-text",
                          progress=False)
    assert not (tmp_path / "x.npz").exists()
    t = import_trajectory(path, tmp_path / "y.npz", "element:Li", fmt="lammps-dump-text",
                          species=["Li", "S", "O", "H"], progress=False)
    np.testing.assert_array_equal(t.atom_types, Z)
    assert t.frame_interval_ps is None  # a dump has steps, not times


# --- XTC + topology (written by MDAnalysis) ---------------------------------------------


@pytest.fixture
def xtc(tmp_path):
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    n = len(SYMBOLS)
    resindex = np.array(RESNUMS) - 1
    u = mda.Universe.empty(n, n_residues=6, atom_resindex=resindex, trajectory=True)
    u.add_TopologyAttr("names", ["LI", "S", "LI", "OW", "HW1", "HW2", "OW", "HW1", "HW2", "S"])
    u.add_TopologyAttr("resnames", ["LI", "S", "LI", "SOL", "SOL", "S"])
    u.add_TopologyAttr("resids", np.arange(1, 7))
    u.add_TopologyAttr("elements", SYMBOLS)
    rng = np.random.default_rng(4)
    dims = np.array([[20.0 + f, 21.0, 22.0, 80.0, 95.0, 100.0] for f in range(F)])
    coords = rng.random((F, n, 3)) * 20.0
    u.load_new(coords.astype(np.float32), format=MemoryReader,
               dimensions=dims.astype(np.float32), dt=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.atoms.write(tmp_path / "top.pdb")
        u.atoms.write(tmp_path / "top.gro")
        with mda.Writer(str(tmp_path / "t.xtc"), n) as w:
            for _ in u.trajectory:
                w.write(u.atoms)
    return tmp_path / "t.xtc", coords, dims


@pytest.mark.parametrize("top", ["top.pdb", "top.gro"])  # GRO: elements guessed from names
def test_xtc_round_trip(xtc, top, tmp_path):
    path, coords, dims = xtc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = import_trajectory(path, tmp_path / "x.npz", "residue:SOL",
                              topology=tmp_path / top, progress=False)
    np.testing.assert_allclose(t.traj_coords, coords, atol=0.006)  # XTC keeps 0.001 nm
    expected = np.array([cell_from_parameters(*d) for d in dims])
    np.testing.assert_allclose(t.lattices, expected, atol=2e-4)
    np.testing.assert_array_equal(t.atom_types, Z)
    np.testing.assert_array_equal(t.target_index, [[3, 4, 5], [6, 7, 8]])
    assert t.frame_interval_ps == pytest.approx(0.5)  # XTC frame times


# --- target specs and errors ----------------------------------------------------------


def test_select_targets_errors():
    names = np.array(RESNAMES)
    ids = np.array(RESNUMS)
    with pytest.raises(InputError, match="element Na, found none"):
        select_targets("element:Na", Z)
    with pytest.raises(InputError, match="expected an element symbol, got 'Xx'"):
        select_targets("element:Xx", Z)
    with pytest.raises(InputError, match=r"\[0, 10\), got 10"):
        select_targets("index:1,10", Z)
    with pytest.raises(InputError, match="got 'a'"):
        select_targets("index:1,a", Z)
    with pytest.raises(InputError, match="no residue information"):
        select_targets("residue:SOL", Z)
    with pytest.raises(InputError, match="residues named 'WAT', found none"):
        select_targets("residue:WAT", Z, names, ids)
    odd = names.copy()
    odd[9] = "SOL"  # a one-atom SOL residue next to three-atom ones
    with pytest.raises(InputError, match=r"same number of atoms, got sizes \[1, 3\]"):
        select_targets("molecule:SOL", Z, odd, ids)
    with pytest.raises(InputError, match="expected element:, index: or residue:"):
        select_targets("name:OW", Z)
    with pytest.raises(InputError, match="expected element:SYMBOL"):
        select_targets("Li", Z)


def test_cli_import(extxyz, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("gdyn.cli.STAGES", ("data",))
    path, pos, _ = extxyz
    out = tmp_path / "c.npz"
    assert main(["import", str(path), str(out), "--targets", "element:Li",
                 "--format", "extxyz"]) == 0
    assert "4 frames, 10 atoms, 2 target sets of 1 atom(s), frame interval 0.25 ps" in (
        capsys.readouterr().out
    )
    np.testing.assert_allclose(load_trajectory(out).traj_coords, pos, atol=1e-7)
    assert main(["import", str(path), str(tmp_path / "n.npz"), "--targets", "element:Na"]) == 2
    assert "found none" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "missing.xyz"), str(out), "--targets", "index:0"]) == 2
    assert "file not found" in capsys.readouterr().err
