"""Reliability (issue 14): permissions, full disks, interrupted training, missing elements.

The workflow-level cases (a corrupt or replaced trajectory failing on every rerun, Ctrl-C
through Snakemake, a download rule that is not retried) are in test_reliability_e2e.py.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gdyn import train as gt
from gdyn.analysis import state_weighted_rdf
from gdyn.errors import InputError
from gdyn.files import atomic_dir, atomic_path, describe_os_error
from gdyn.trajectory import Trajectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import toy_trajectory, write_piece

GDYN = str(Path(sys.executable).parent / "gdyn")  # this interpreter's console script

# --------------------------------------------------------------------------------------
# Permissions: results are shared (clusters), directories like files


def _in_child_with_umask(umask: int, code: str) -> None:
    """Run ``code`` in a fresh interpreter under ``umask`` (the umask is process-wide)."""
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", f"import os; os.umask({umask:#o}); {code}"],
                   check=True, env=env, timeout=60)


@pytest.mark.parametrize(("umask", "dir_mode", "file_mode"),
                         [(0o022, 0o755, 0o644), (0o002, 0o775, 0o664), (0o077, 0o700, 0o600)])
def test_atomic_dir_and_file_follow_the_umask(tmp_path: Path, umask: int, dir_mode: int,
                                              file_mode: int) -> None:
    code = (
        "from pathlib import Path; from gdyn.files import atomic_dir, write_text\n"
        f"root = Path({str(tmp_path)!r})\n"
        "with atomic_dir(root / 'graphs' / 'li000') as tmp:\n"
        "    (tmp / 'index.npy').write_bytes(b'x')\n"
        "write_text(root / 'summary.json', '{}')"
    )
    _in_child_with_umask(umask, code)
    store = tmp_path / "graphs" / "li000"
    assert stat.S_IMODE(store.stat().st_mode) == dir_mode
    assert stat.S_IMODE((store / "index.npy").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == file_mode


def test_failed_atomic_writes_name_the_destination(tmp_path: Path) -> None:
    dest = tmp_path / "out.csv"
    with pytest.raises(OSError) as err, atomic_path(dest) as tmp:
        raise OSError(28, "No space left on device", str(tmp))
    assert err.value.filename == str(dest) and not dest.exists()
    assert list(tmp_path.iterdir()) == []
    store = tmp_path / "store"
    with pytest.raises(OSError) as err, atomic_dir(store) as tmp:
        raise OSError(28, "No space left on device", str(tmp / "distance.npy"))
    assert err.value.filename == str(store / "distance.npy")
    assert list(tmp_path.iterdir()) == []
    msg = describe_os_error(err.value)
    assert msg.startswith(f"{store / 'distance.npy'}: No space left on device (")
    assert "MiB free on its file system" in msg


# --------------------------------------------------------------------------------------
# A full disk: one line naming the path and the free space, nothing left behind


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 64 KiB tmpfs: full for anything bigger. Skipped where mount is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                        capture_output=True).returncode == 0
    if not ok:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_split_onto_a_full_disk_is_one_line(tmp_path: Path, small_disk: Path) -> None:
    raw = tmp_path / "run1.npz"
    f, n = 400, 40  # 400 frames of 40 atoms: ~200 kB of float32 coordinates per piece
    rng = np.random.default_rng(0)
    np.savez(raw, traj_coords=(rng.random((f, n, 3)) * 10).astype(np.float32),
             lattices=np.tile(np.eye(3, dtype=np.float32) * 10, (f, 1, 1)),
             atom_types=np.array([3] * 4 + [8] * (n - 4)), target_index=np.arange(4))
    out = small_disk / "split" / "test" / "run1.npz"
    proc = subprocess.run([GDYN, "split", str(raw), str(out),
                           "--start", "0", "--stop", "1", "--frame-interval-ps", "2"],
                          capture_output=True, text=True, timeout=120)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1, proc.stderr
    assert err[0].startswith(f"gdyn split: error: {out}: No space left on device (")
    assert err[0].endswith("MiB free on its file system; free space and rerun)")
    assert list(out.parent.iterdir()) == []  # no temporary file, no partial piece


# --------------------------------------------------------------------------------------
# Ctrl-C / SIGTERM in a training job: one line, a checkpoint, a bit-identical resume


@pytest.fixture(scope="module")
def pieces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("pieces")
    parts: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for i, name in enumerate(["li000", "li001"]):
        coords, label = toy_trajectory(1200, seed=20 + i)
        first = "train" if i == 0 else "val"
        for part, lo, hi in ((first, 0, 600), ("test", 600, 1200)):
            s, _ = write_piece(root, part, name, coords[lo:hi], label[lo:hi], lo)
            parts[part].append(s)
    return parts


# 30 epochs of 8 batches: the signal (sent at the first checkpoint) lands early in it
LONG = {"batch_size": 32, "epochs": 30, "max_pairs_per_epoch": 256, "learning_rate": 0.01,
        "seed": 5}


def _cli(pieces: dict[str, list[Path]], outdir: Path) -> list[str]:
    args = [GDYN, "train", "vampnet", str(outdir), "--n-states", "2", "--lag-ps", "1.0"]
    for part, paths in pieces.items():
        args += [f"--{part}", *map(str, paths)]
    return [*args, "--settings", json.dumps(LONG), "--threads", "1"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_training_keeps_a_checkpoint_and_resumes_bit_identically(
        pieces: dict[str, list[Path]], tmp_path: Path, sig: signal.Signals) -> None:
    torch.set_num_threads(1)
    gt.train("vampnet", tmp_path / "ref", 2, "1ps", pieces, None, LONG, progress=False)
    run = tmp_path / "run"
    # SIGINT's default handler: a child of a shell's background job would inherit SIG_IGN
    proc = subprocess.Popen(_cli(pieces, run), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        t0 = time.monotonic()
        while proc.poll() is None and not (run / "checkpoint.pt").exists():
            if time.monotonic() - t0 > 120:
                pytest.fail("no checkpoint after 120 s")
            time.sleep(0.01)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    name = "" if sig == signal.SIGINT else " (SIGTERM)"
    assert stderr.strip().splitlines()[-1] == f"gdyn train: interrupted{name}"
    # (a checkpoint at the interrupt, or the last one when it hit a half-done step)
    assert f"{run / 'checkpoint.pt'}" in stderr and "the same command resumes from it" in stderr
    assert (run / "checkpoint.pt").exists() and not (run / "model.pt").exists()
    rerun = subprocess.run(_cli(pieces, run), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from" in rerun.stderr
    ref = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)
    got = torch.load(run / "model.pt", weights_only=True)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert not (run / "checkpoint.pt").exists()


# --------------------------------------------------------------------------------------
# An analysed element the trajectory lacks: an error, never a NaN table with exit 0


def test_rdf_of_an_absent_element_fails_naming_it(tmp_path: Path) -> None:
    f = 20
    rng = np.random.default_rng(1)
    traj = Trajectory(
        traj_coords=(rng.random((f, 9, 3)) * 10).astype(np.float32),
        lattices=np.tile(np.eye(3, dtype=np.float32) * 10, (f, 1, 1)),
        atom_types=np.array([3, 3, 8, 8, 8, 6, 6, 1, 1]), target_index=np.array([0, 1]),
        extras={"frame_interval_ps": np.float64(2.0)}, path=tmp_path / "peo-traj-b.npz",
    )
    probs = np.full((f, 2, 2), 0.5)
    table = state_weighted_rdf([traj], [probs], ["O"], r_max_A=4.0, n_bins=8)
    assert np.isfinite(table["g"]).any()
    with pytest.raises(InputError, match=r"expected Au atoms \(structure/rdf/elements\), got "
                                         r"atomic numbers \[1, 3, 6, 8\] only"):
        state_weighted_rdf([traj], [probs], ["O", "Au"], r_max_A=4.0, n_bins=8)
