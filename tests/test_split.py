"""gdyn split: contiguous frame windows, frame interval resolution, memory-mapped reads."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

from gdyn.cli import main
from gdyn.errors import InputError
from gdyn.split import frame_window, resolve_frame_interval, split
from gdyn.trajectory import load_trajectory


def write_raw(path, F=10, N=6, **extra):
    rng = np.random.default_rng(1)
    arrays = {
        "traj_coords": rng.random((F, N, 3)) * 4.0,
        "lattices": np.tile(np.eye(3) * 4.0, (F, 1, 1)) + np.arange(F)[:, None, None] * 1e-3,
        "atom_types": np.array([3] * 2 + [16] * (N - 2)),
        "target_index": np.array([0, 1]),
        "site_label": rng.integers(0, 2, (F, 2)).astype(np.int8),
        "per_atom": np.arange(N),  # no frame axis: copied as is
    }
    arrays.update(extra)
    np.savez(path, **arrays)
    return arrays


def test_piece_is_the_window_with_its_bookkeeping(tmp_path):
    raw = tmp_path / "li2s-traj.npz"
    a = write_raw(raw, F=10)
    out = tmp_path / "val" / "li2s-traj.npz"
    split(raw, out, 0.4, 0.7, frame_interval_ps=0.1)
    p = load_trajectory(out)
    assert isinstance(p.traj_coords, np.memmap)  # the piece is memory-mappable
    np.testing.assert_array_equal(p.traj_coords, a["traj_coords"][4:7])
    np.testing.assert_array_equal(p.lattices, a["lattices"][4:7])
    np.testing.assert_array_equal(p.extras["site_label"], a["site_label"][4:7])
    np.testing.assert_array_equal(p.extras["per_atom"], a["per_atom"])
    np.testing.assert_array_equal(p.atom_types, a["atom_types"])
    np.testing.assert_array_equal(p.target_index, a["target_index"])
    assert int(p.extras["frame_offset"]) == 4
    assert str(p.extras["source"]) == "li2s-traj"
    assert p.frame_interval_ps == pytest.approx(0.1)


@pytest.mark.parametrize("F", [1, 7, 10, 37, 100, 1001])
def test_config_pieces_tile_the_trajectory(F):
    # toy / Si-Au: train [0, .4), val [.4, .5), test [.5, 1); PEO a: [0, .8), [.8, 1)
    for bounds in ([0.0, 0.4, 0.5, 1.0], [0.0, 0.8, 1.0], [0.0, 0.29, 0.3, 1.0]):
        windows = [frame_window(F, a, b) for a, b in itertools.pairwise(bounds)]
        frames = np.concatenate([np.arange(lo, hi) for lo, hi in windows])
        np.testing.assert_array_equal(frames, np.arange(F))  # no gap, no overlap, in order
    assert frame_window(10, 0.3, 0.7) == (3, 7)  # 0.3 * 10 = 3.0000000000000004
    assert frame_window(100, 0.29, 1.0) == (29, 100)  # 0.29 * 100 = 28.999999999999996
    assert frame_window(10, 0.4, 0.5) == (4, 5) and frame_window(10, 0.5, 1.0) == (5, 10)
    assert frame_window(7, 0.0, 0.5) == (0, 3)  # floor: 3.5 -> 3


def test_frame_interval_from_duration_and_conflicts(tmp_path):
    assert resolve_frame_interval(11, None, "x", duration_ps=5.0) == pytest.approx(0.5)
    assert resolve_frame_interval(11, 0.5, "x", duration_ps=5.0) == pytest.approx(0.5)
    assert resolve_frame_interval(11, 0.5, "x") == 0.5  # the file's own value
    with pytest.raises(InputError, match=r"file says 0\.1 ps but the config's frame_interval_ps = 0\.2"):
        resolve_frame_interval(11, 0.1, "x", frame_interval_ps=0.2)
    with pytest.raises(InputError, match=r"duration_ps = 5 over 11 frames gives 0\.5 ps"):
        resolve_frame_interval(11, 0.1, "x", duration_ps=5.0)
    with pytest.raises(InputError, match="not in the file and not given"):
        resolve_frame_interval(11, None, "x")
    with pytest.raises(InputError, match="at least 2 frames"):
        resolve_frame_interval(1, None, "x", duration_ps=5.0)

    raw = tmp_path / "r.npz"
    write_raw(raw, F=11, frame_interval_ps=np.array(0.5))
    p = split(raw, tmp_path / "p.npz", 0.0, 1.0, duration_ps=5.0)
    assert p.frame_interval_ps == pytest.approx(0.5) and p.n_frames == 11
    with pytest.raises(InputError, match=f"{raw}: key 'frame_interval_ps'"):
        split(raw, tmp_path / "q.npz", 0.0, 1.0, frame_interval_ps=0.1)
    assert not (tmp_path / "q.npz").exists()


def test_bad_windows(tmp_path):
    raw = tmp_path / "r.npz"
    write_raw(raw, F=3)
    for start, stop in [(0.5, 0.5), (0.6, 0.4), (-0.1, 0.5), (0.0, 1.5)]:
        with pytest.raises(InputError, match="expected 0 <= start < stop <= 1"):
            split(raw, tmp_path / "p.npz", start, stop, frame_interval_ps=1.0)
    with pytest.raises(InputError, match=r"is empty \(frames \[0, 0\)\)"):
        split(raw, tmp_path / "p.npz", 0.0, 0.2, frame_interval_ps=1.0)
    assert not (tmp_path / "p.npz").exists()


def test_only_the_window_is_read(tmp_path):
    F, N = 200, 5000
    raw = tmp_path / "big.npz"
    coords = np.random.default_rng(0).random((F, N, 3)) * 30.0
    coords[150] = np.nan  # outside the window: never read, so never noticed
    np.savez(raw, traj_coords=coords, lattices=np.tile(np.eye(3) * 30.0, (F, 1, 1)),
             atom_types=np.full(N, 8), target_index=np.arange(10))
    raw_bytes = coords.nbytes
    del coords
    tracemalloc.start()
    try:
        split(raw, tmp_path / "p.npz", 0.0, 0.1, frame_interval_ps=1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < raw_bytes / 4, (peak, raw_bytes)
    assert load_trajectory(tmp_path / "p.npz").n_frames == 20
    # named by its raw index (issue 14), not only its place in the piece
    with pytest.raises(InputError, match=r"frames \[100, 200\).*frame 150 \(raw frame index; "
                                         r"frame 50 of this piece\) has NaN"):
        split(raw, tmp_path / "t.npz", 0.5, 1.0, frame_interval_ps=1.0)


def test_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("gdyn.cli.STAGES", ("data",))
    raw = tmp_path / "peo-traj-a.npz"
    write_raw(raw, F=20)
    out = tmp_path / "split" / "train" / "peo-traj-a.npz"
    assert main(["split", str(raw), str(out), "--start", "0", "--stop", "0.8",
                 "--duration-ps", "19"]) == 0
    assert "frames [0, 16)" in capsys.readouterr().out
    p = load_trajectory(out)
    assert p.n_frames == 16 and p.frame_interval_ps == pytest.approx(1.0)
    assert main(["split", str(raw), str(tmp_path / "x.npz"), "--start", "0.9", "--stop",
                 "0.8", "--frame-interval-ps", "1"]) == 2
    assert "start < stop" in capsys.readouterr().err


def test_nan_names_the_raw_frame_not_the_pieces(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("gdyn.cli.STAGES", ("data",))
    raw = tmp_path / "run1.npz"
    coords = np.random.default_rng(3).random((10, 6, 3)) * 4.0
    coords[8, 4, 2] = np.nan  # raw frame 8 = frame 1 of the [0.7, 1.0) piece
    write_raw(raw, F=10, traj_coords=coords)
    out = tmp_path / "test" / "run1.npz"
    rc = main(["split", str(raw), str(out), "--start", "0.7", "--stop", "1.0",
               "--frame-interval-ps", "0.1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0] == (
        f"gdyn split: error: {raw} frames [7, 10): key 'traj_coords': expected finite "
        "coordinates, frame 8 (raw frame index; frame 1 of this piece) has NaN or inf"
    )
    assert not out.exists()
