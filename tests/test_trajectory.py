"""Trajectory format: memory-mapped loading, validation errors, gdyn check."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

import gdyn.trajectory as T
from gdyn.cli import main
from gdyn.errors import InputError
from gdyn.trajectory import Trajectory, load_trajectory, save_trajectory, validate_trajectory


def make(F=4, N=5, seed=0, **over) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "traj_coords": rng.random((F, N, 3)) * 5.0,
        "lattices": np.tile(np.diag([5.0, 6.0, 7.0]), (F, 1, 1)),
        "atom_types": np.array([3, 3, 16, 16, 16][:N] + [8] * max(0, N - 5)),
        "target_index": np.array([0, 1][: min(N, 2)]),
    }
    arrays.update(over)
    return arrays


def traj_of(arrays) -> Trajectory:
    return T.from_arrays(arrays)


def test_roundtrip_is_memory_mapped_and_exact(tmp_path):
    a = make(F=6, N=7)
    a["lattices"][2] = [[5.0, 0, 0], [1.0, 6.0, 0], [0.5, 0.3, 7.0]]  # triclinic frame
    extras = {
        "frame_interval_ps": np.array(0.25),
        "source": np.array("li2s-traj"),
        "site_label": np.arange(12, dtype=np.int8).reshape(6, 2),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }
    path = tmp_path / "t.npz"
    save_trajectory(path, Trajectory(**{k: a[k] for k in T.REQUIRED_KEYS}, extras=extras))
    with zipfile.ZipFile(path) as zf:  # uncompressed, so it can be mapped
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    t = load_trajectory(path)
    assert isinstance(t.traj_coords, np.memmap) and not t.traj_coords.flags.writeable
    assert isinstance(t.lattices, np.memmap)
    ref = np.load(path)  # numpy's own reader as the independent reference
    for key in ref.files:
        got = t.arrays()[key]
        np.testing.assert_array_equal(got, ref[key])
        assert got.dtype == ref[key].dtype
    assert t.arrays()["fortran"].flags.f_contiguous
    assert t.n_frames == 6 and t.n_atoms == 7 and t.frame_interval_ps == 0.25
    assert str(t.extras["source"]) == "li2s-traj"
    assert t.path == path


def test_compressed_file_falls_back_to_full_load(tmp_path):
    a = make()
    path = tmp_path / "c.npz"
    np.savez_compressed(path, **a)
    t = load_trajectory(path)
    assert not isinstance(t.traj_coords, np.memmap)
    np.testing.assert_array_equal(t.traj_coords, a["traj_coords"])


def test_target_sets_shape():
    assert traj_of(make()).target_sets.tolist() == [[0], [1]]
    t = traj_of(make(target_index=np.array([[0, 2], [1, 3]])))
    assert t.target_sets.shape == (2, 2)
    assert traj_of(make()).frame_interval_ps is None


def _nan_coords():
    a = make()
    a["traj_coords"][2, 3, 1] = np.nan
    return a


def _inf_lattice():
    a = make()
    a["lattices"][3, 0, 0] = np.inf
    return a


def _singular():
    a = make()
    a["lattices"][1] = [[5.0, 0, 0], [0, 6.0, 0], [5.0, 6.0, 0]]
    return a


def _left_handed():
    a = make()
    a["lattices"][2] = a["lattices"][2][[1, 0, 2]]
    return a


def _without(key):
    a = make()
    del a[key]
    return a


BAD = {
    "missing traj_coords": (_without("traj_coords"), "key 'traj_coords': missing"),
    "missing lattices": (_without("lattices"), "key 'lattices': missing"),
    "missing atom_types": (_without("atom_types"), "key 'atom_types': missing"),
    "missing target_index": (_without("target_index"), "key 'target_index': missing"),
    "coords rank 2": (make(traj_coords=np.zeros((4, 15))), r"traj_coords'.*\(F, N, 3\), got \(4, 15\)"),
    "coords xy only": (make(traj_coords=np.zeros((4, 5, 2))), r"traj_coords'.*got \(4, 5, 2\)"),
    "zero frames": (make(traj_coords=np.zeros((0, 5, 3)), lattices=np.zeros((0, 3, 3))),
                    "at least 1 frame"),
    "lattice shape": (make(lattices=np.ones((4, 3))), r"lattices'.*\(F, 3, 3\), got \(4, 3\)"),
    "frame mismatch": (make(lattices=np.tile(np.eye(3) * 5, (3, 1, 1))),
                       "lattices'.*expected 4 frames.*got 3"),
    "atom mismatch": (make(atom_types=np.array([3, 3, 16, 16])), "atom_types'.*expected 5 atoms.*got 4"),
    "atom types 2-D": (make(atom_types=np.ones((5, 1), int)), r"atom_types'.*\(N,\)"),
    "atom types fractional": (make(atom_types=np.array([3, 3, 16, 16, 16.5])), "atom_types'.*integers"),
    "atom types negative": (make(atom_types=np.array([3, 3, 16, 16, -1])), r"atomic numbers.*got -1"),
    "nan coords": (_nan_coords(), "traj_coords'.*frame 2 has NaN or inf"),
    "inf lattice": (_inf_lattice(), "lattices'.*frame 3 has NaN or inf"),
    "singular lattice": (_singular(), "lattices'.*non-singular cell, frame 1"),
    "zero lattice": (make(lattices=np.zeros((4, 3, 3))), "non-singular cell, frame 0"),
    "left-handed lattice": (_left_handed(), r"right-handed cell \(det > 0\), frame 2 has det = -210"),
    "target out of range": (make(target_index=np.array([0, 5])), r"\[0, 5\), got 5"),
    "target negative": (make(target_index=np.array([-1, 2])), r"\[0, 5\), got -1"),
    "target repeated": (make(target_index=np.array([1, 1])), "atom 1 appears 2 times"),
    "target repeated across sets": (make(target_index=np.array([[0, 1], [1, 2]])),
                                    "atom 1 appears 2 times"),
    "target rank 3": (make(target_index=np.zeros((1, 1, 1), int)), r"\(n,\) or \(n, k\)"),
    "no targets": (make(target_index=np.zeros(0, int)), "at least one target"),
    "target float": (make(target_index=np.array([0.5])), "target_index'.*integers"),
    "bad frame interval": (make(frame_interval_ps=np.array(-0.1)), "frame_interval_ps'.*positive"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_input_has_its_own_error(case, tmp_path):
    arrays, pattern = BAD[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=pattern) as err:
        load_trajectory(path)
    assert str(path) in str(err.value)


def test_nan_found_in_a_later_scan_chunk(monkeypatch):
    monkeypatch.setattr(T, "_SCAN_BYTES", 5 * 3 * 8 * 2)  # two frames per chunk
    a = make(F=9)
    a["traj_coords"][7, 0, 0] = np.inf
    with pytest.raises(InputError, match="frame 7 has NaN"):
        validate_trajectory(traj_of(a), "x")
    b = make(F=9)
    b["lattices"][8] = b["lattices"][8][[2, 1, 0]]
    with pytest.raises(InputError, match="frame 8"):
        validate_trajectory(traj_of(b), "x")


def test_neighbour_count_counts_periodic_images():
    # 5 atoms with M = 12 and even a single atom are legal: periodic images are neighbours
    validate_trajectory(traj_of(make(N=5)), "x", n_neighbors=12)
    one = make(N=1, target_index=np.array([0]))
    validate_trajectory(traj_of(one), "x", n_neighbors=50)
    empty = make(traj_coords=np.zeros((4, 0, 3)), atom_types=np.zeros(0, int),
                 target_index=np.array([0]))
    with pytest.raises(InputError, match="0 atoms per cell cannot give M = 12"):
        validate_trajectory(traj_of(empty), "x", n_neighbors=12)
    with pytest.raises(InputError, match="expected M >= 1, got 0"):
        validate_trajectory(traj_of(make()), "x", n_neighbors=0)


def test_truncated_and_garbage_files(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, **make())
    data = good.read_bytes()
    for name, content in {"trunc.npz": data[: len(data) // 2], "junk.npz": b"\x00" * 100,
                          "empty.npz": b""}.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(InputError, match=f"{p}: not a readable .npz.*truncated or corrupt"):
            load_trajectory(p)
    with pytest.raises(InputError, match="file not found"):
        load_trajectory(tmp_path / "nope.npz")


def test_member_shorter_than_its_header_says(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros((4, 5, 3)))
    raw = buf.getvalue()[:-40]  # drop the last 5 floats, keep the header
    p = tmp_path / "short.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("traj_coords.npy", raw)
    with pytest.raises(InputError, match=r"traj_coords\.npy.*shorter.*truncated or corrupt"):
        load_trajectory(p)
    with pytest.raises(InputError, match="truncated or corrupt"):  # the non-mapped reader too
        load_trajectory(p, mmap=False)


def test_cli_check_and_copy(tmp_path, capsys, monkeypatch):
    # only this stage's subcommands: the test must not depend on other stages importing
    monkeypatch.setattr("gdyn.cli.STAGES", ("data",))
    src = tmp_path / "in.npz"
    np.savez_compressed(src, **make(), frame_interval_ps=np.array(0.1))
    out = tmp_path / "raw" / "copy.npz"
    assert main(["check", str(src), "--n-neighbors", "12", "--copy-to", str(out)]) == 0
    assert "4 frames, 5 atoms, 2 target sets of 1 atom(s), frame interval 0.1 ps" in (
        capsys.readouterr().out
    )
    t = load_trajectory(out)
    assert isinstance(t.traj_coords, np.memmap)
    np.testing.assert_array_equal(t.traj_coords, np.load(src)["traj_coords"])

    bad = tmp_path / "bad.npz"
    np.savez(bad, **make(target_index=np.array([9])))
    bad_out = tmp_path / "raw" / "bad.npz"
    assert main(["check", str(bad), "--copy-to", str(bad_out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gdyn check: error: ") and "target_index" in err[0]
    assert not bad_out.exists()


# --------------------------------------------------------------------------------------
# Slicing frames: traj[a:b]


def _saved(tmp_path, F=10, N=5, **extras) -> Trajectory:
    a = make(F=F, N=N)
    a["lattices"] = a["lattices"] + np.arange(F)[:, None, None] * 1e-3  # frames differ
    path = tmp_path / "s.npz"
    save_trajectory(path, Trajectory(**{k: a[k] for k in T.REQUIRED_KEYS}, extras=extras))
    return load_trajectory(path)


def test_slice_values_extras_and_offset(tmp_path):
    F = 10
    site = np.arange(F * 2, dtype=np.int8).reshape(F, 2)
    t = _saved(tmp_path, F=F, site_label=site, per_atom=np.arange(5),
               frame_interval_ps=np.array(0.5), source=np.array("raw"))
    s = t[2:7]
    assert isinstance(s, Trajectory) and s.n_frames == 5 and s.n_atoms == t.n_atoms
    np.testing.assert_array_equal(s.traj_coords, np.asarray(t.traj_coords)[2:7])
    np.testing.assert_array_equal(s.lattices, np.asarray(t.lattices)[2:7])
    np.testing.assert_array_equal(s.extras["site_label"], site[2:7])  # per-frame: sliced
    np.testing.assert_array_equal(s.extras["per_atom"], np.arange(5))  # not per-frame: kept
    assert s.frame_interval_ps == 0.5 and str(s.extras["source"]) == "raw"
    assert s.atom_types is t.atom_types and s.target_index is t.target_index
    assert s.path == t.path
    # frame f of the slice is raw frame frame_offset + f, also for a slice of a slice
    assert s.extras["frame_offset"].dtype == np.int64 and int(s.extras["frame_offset"]) == 2
    ss = s[1:3]
    assert ss.frame_offset == 3 and int(ss.extras["frame_offset"]) == 3
    np.testing.assert_array_equal(ss.traj_coords, np.asarray(t.traj_coords)[3:5])
    np.testing.assert_array_equal(ss.extras["site_label"], site[3:5])
    # an existing frame_offset keeps its place among the extras (member order of a file)
    assert list(ss.extras) == list(s.extras)
    assert t.frame_offset == 0 and "frame_offset" not in t.extras  # the original untouched


def test_slice_is_a_view_of_the_memory_map(tmp_path):
    t = _saved(tmp_path, site_label=np.zeros((10, 1), dtype=np.int8))
    s = t[3:8]
    for got, base in [(s.traj_coords, t.traj_coords), (s.lattices, t.lattices),
                      (s.extras["site_label"], t.extras["site_label"])]:
        assert isinstance(got, np.memmap) and np.shares_memory(got, base)
        assert not got.flags.writeable


def test_slice_bounds_follow_python(tmp_path):
    t = _saved(tmp_path, F=10)
    coords = np.asarray(t.traj_coords)
    cases = [(slice(None, None), 0, 10), (slice(-3, None), 7, 10), (slice(None, -4), 0, 6),
             (slice(2, 100), 2, 10), (slice(-100, 2), 0, 2), (slice(4, 4), 4, 4),
             (slice(8, 3), 8, 8), (slice(3, 8, 1), 3, 8)]
    for sl, lo, hi in cases:
        s = t[sl]
        assert s.n_frames == hi - lo, sl
        assert s.frame_offset == lo, sl
        np.testing.assert_array_equal(s.traj_coords, coords[lo:hi])
        assert s.lattices.shape[0] == hi - lo


def test_slice_errors(tmp_path):
    t = _saved(tmp_path, F=10)
    for step in (2, -1):
        with pytest.raises(ValueError, match=f"step 1, got step {step}"):
            t[::step]
    with pytest.raises(TypeError, match=r"expected a slice of frames.*traj\[i:i \+ 1\]"):
        t[3]
    with pytest.raises(TypeError, match="expected a slice of frames"):
        t[np.array([1, 2])]


def test_data_modules_import_no_heavy_libraries():
    import subprocess
    import sys

    code = (
        "import sys, gdyn.trajectory, gdyn.split, gdyn.download, gdyn.importers, "
        "gdyn.cli.data; heavy = {'torch', 'matplotlib', 'openmm', 'MDAnalysis', 'ase', "
        "'requests'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------------------
# Issue 14: precision, raw frame numbers, header, who is blamed


@pytest.mark.parametrize("key", ["traj_coords", "lattices"])
def test_floats_below_float32_are_refused(key, tmp_path):
    a = make(F=3)
    a[key] = a[key].astype(np.float16)
    path = tmp_path / "half.npz"
    np.savez(path, **a)
    with pytest.raises(InputError, match=rf"{path}: key '{key}': expected float32 or float64, "
                                         r"got float16 \(relative precision 9\.8e-04"):
        load_trajectory(path)
    a[key] = a[key].astype(np.float32)  # float32 is enough
    validate_trajectory(traj_of(a), "x")


def test_nan_in_a_window_names_the_raw_frame(tmp_path):
    a = make(F=10)
    a["traj_coords"][7, 2, 1] = np.nan
    a["lattices"][8] = a["lattices"][8][[2, 1, 0]]  # a left-handed cell later on
    path = tmp_path / "raw.npz"
    np.savez(path, **a)
    window = load_trajectory(path, validate=False)[5:10]
    with pytest.raises(InputError, match=r"frame 7 \(raw frame index; frame 2 of this piece\) "
                                         "has NaN or inf"):
        validate_trajectory(window, "w")
    a["traj_coords"][7, 2, 1] = 0.5
    np.savez(path, **a)
    with pytest.raises(InputError, match=r"right-handed.*frame 8 \(raw frame index; frame 1 "):
        validate_trajectory(load_trajectory(path, validate=False)[7:10], "w")


def test_read_header_reads_no_coordinates(tmp_path):
    a = make(F=6, N=7)
    plain, packed = tmp_path / "plain.npz", tmp_path / "packed.npz"
    np.savez(plain, **a, frame_interval_ps=np.array(0.25))
    np.savez_compressed(packed, **a)
    for path, fi in ((plain, 0.25), (packed, None)):
        h = T.read_header(path)
        assert (h.n_frames, h.n_atoms, h.frame_interval_ps) == (6, 7, fi)
        np.testing.assert_array_equal(h.atom_types, np.load(path)["atom_types"])
    # coordinates cut short after their header: the header still reads, the file does not
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros((4000, 5, 3)))
    short = tmp_path / "short.npz"
    with zipfile.ZipFile(short, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("traj_coords.npy", buf.getvalue()[:200])
        for key in ("lattices", "atom_types", "target_index"):
            b = io.BytesIO()
            np.lib.format.write_array(b, a[key])
            zf.writestr(f"{key}.npy", b.getvalue())
    h = T.read_header(short)
    assert (h.n_frames, h.n_atoms) == (4000, 5)
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_trajectory(short)
    with pytest.raises(InputError, match=f"{tmp_path / 'nope.npz'}: file not found"):
        T.read_header(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"<html></html>")
    with pytest.raises(InputError, match=r"not a readable \.npz"):
        T.read_header(tmp_path / "junk.npz")


def test_check_copy_to_blames_the_destination(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("gdyn.cli.STAGES", ("data",))
    src = tmp_path / "in.npz"
    np.savez_compressed(src, **make())
    blocker = tmp_path / "results"
    blocker.write_text("a file where a folder should be")
    out = blocker / "raw" / "copy.npz"
    assert main(["check", str(src), "--copy-to", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"gdyn check: error: {blocker}")
    assert str(src) not in err[0]


def _mount_tmpfs(path, *options: str) -> bool:
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join(options)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (a full disk for anything bigger); skipped where mount is not allowed."""
    import subprocess

    mnt = tmp_path / "disk"
    if not _mount_tmpfs(mnt, "size=64k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_check_copy_to_full_disk_names_destination_and_free_space(tmp_path, small_disk, capsys,
                                                                  monkeypatch):
    monkeypatch.setattr("gdyn.cli.STAGES", ("data",))
    src = tmp_path / "in.npz"
    np.savez_compressed(src, **make(F=2000, N=5))  # ~360 kB uncompressed: does not fit
    out = small_disk / "raw" / "copy.npz"
    assert main(["check", str(src), "--copy-to", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"gdyn check: error: {out}: No space left on device (")
    assert "MiB free on its file system" in err[0] and str(src) not in err[0]
    assert list((small_disk / "raw").iterdir()) == []  # nothing half-written left
