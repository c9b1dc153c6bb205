"""Memberships export (issue 25): extended XYZ with per-atom state probabilities that ASE
(and OVITO, when installed) reads back as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gdyn.analysis.inputs import Piece
from gdyn.export import export_stride, membership_frames, write_memberships


def _piece(n_frames: int = 25) -> Piece:
    rng = np.random.default_rng(0)
    n_atoms = 6
    coords = rng.random((n_frames, n_atoms, 3)) * 5.0
    lattices = np.broadcast_to(np.eye(3) * 5.0, (n_frames, 3, 3)).copy()
    sets = np.array([[0], [3]])  # two target atoms
    p = rng.dirichlet(np.ones(3), size=(n_frames, 2))
    return Piece("results/split/x/test/a.npz", Path("a.npz"), coords, lattices,
                 np.array([3, 16, 16, 3, 16, 16]), sets, p, 1.0, 100)  # fmt: skip


def test_stride_rule() -> None:
    assert export_stride(1000) == 1 and export_stride(1001) == 2 and export_stride(25, 10) == 3
    assert len(membership_frames(_piece(25), max_frames=10)) == 9  # frames 0, 3, ..., 24


def test_extxyz_round_trips_through_ase(tmp_path: Path) -> None:
    ase_io = pytest.importorskip("ase.io")
    piece = _piece()
    path = tmp_path / "m.extxyz"
    assert write_memberships(path, piece, max_frames=10) == 9
    back = ase_io.read(path, index=":", format="extxyz")
    assert len(back) == 9
    for k, atoms in enumerate(back):
        f = 3 * k
        np.testing.assert_allclose(atoms.get_positions(), piece.coords[f], atol=1e-8)
        np.testing.assert_allclose(atoms.cell[:], piece.lattices[f], atol=1e-8)
        assert atoms.info["frame"] == 100 + f and atoms.info["stride"] == 3
        for i in range(3):
            got = atoms.arrays[f"state_prob_{i}"]
            # extxyz stores 8 decimals: equal to within half of 1e-8
            np.testing.assert_allclose(got[[0, 3]], piece.probs[f, :, i], rtol=0, atol=5.1e-9)
            assert np.all(np.isnan(got[[1, 2, 4, 5]]))
        np.testing.assert_array_equal(atoms.arrays["state"][[0, 3]],
                                      piece.probs[f].argmax(axis=1))  # fmt: skip
        assert np.all(atoms.arrays["state"][[1, 2, 4, 5]] == -1)


def test_ovito_reads_the_states(tmp_path: Path) -> None:
    io = pytest.importorskip("ovito.io", reason="OVITO not installed")
    piece = _piece(5)
    path = tmp_path / "m.extxyz"
    write_memberships(path, piece)
    pipeline = io.import_file(str(path))
    assert pipeline.source.num_frames == 5
    data = pipeline.compute(2)
    np.testing.assert_array_equal(np.asarray(data.particles["state"])[[0, 3]],
                                  piece.probs[2].argmax(axis=1))  # fmt: skip
