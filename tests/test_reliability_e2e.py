"""Reliability of whole workflow runs (issue 14), end to end with Snakemake.

One small run of two systems (the simulated toy and a PEO-like electrolyte of the user's own
files, ``source: local``) is shared: each test corrupts a copy of it (mtimes and Snakemake's
metadata kept) and checks that every rerun fails with the same named error and that every
result derived from the bad input stays out of date, never "Nothing to be done". Also:
Ctrl-C through Snakemake leaves a training checkpoint that the rerun resumes from, and a
download with a wrong md5 or an error page fails once, leaving nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from _data_http_server import Site, serve

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _env() -> dict[str, str]:
    env = dict(os.environ)  # the rules call this interpreter's `gdyn`
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _cmd(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
            "--configfile", str(work / "config.yaml"), "-d", str(work), *args]


def snakemake(work: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(work, *args), capture_output=True, text=True, timeout=timeout,
                          env=_env(), cwd=work)


def planned(work: Path, *targets: str) -> dict[str, int]:
    """``{rule: count}`` of what a dry run would run."""
    proc = snakemake(work, *(targets or ("all",)), "-n", "--quiet", "rules", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", text, re.M)}


# ----------------------------------------------------------------------------- the data


def electrolyte(n_frames: int, seed: int) -> dict[str, np.ndarray]:
    """A PEO/LiTFSI-like cell: 2 Li (targets) hopping between two O-rich sites among O, C,
    H, N, S; float32; lattice breathing a little (NPT-like)."""
    rng = np.random.default_rng(seed)
    box = 12.0
    types = np.array([3, 3] + [8] * 10 + [6] * 12 + [1] * 12 + [7] * 2 + [16] * 2)
    sites = np.array([[3.0, 3.0, 3.0], [9.0, 9.0, 9.0]])
    base = rng.random((types.size, 3)) * box
    shell = np.array([[2, 0, 0], [-2, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 2]], float)
    base[2:7], base[7:12] = sites[0] + shell, sites[1] + shell  # 5 O around each site
    state = rng.integers(0, 2, size=2)
    coords = np.empty((n_frames, types.size, 3), np.float32)
    for t in range(n_frames):
        flip = rng.random(2) < 0.05
        state = np.where(flip, 1 - state, state)
        coords[t] = base + rng.normal(0, 0.1, base.shape)
        coords[t, :2] = sites[state] + rng.normal(0, 0.3, (2, 3))
    scale = 1 + 0.002 * np.sin(np.arange(n_frames) / 7.0)
    lattices = (np.eye(3) * box)[None] * scale[:, None, None]
    return {"traj_coords": coords % box, "lattices": lattices.astype(np.float32),
            "atom_types": types, "target_index": np.array([0, 1]),
            "frame_interval_ps": np.float64(2.0)}


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


# One epoch of seconds learns nothing: keep the (flagged) model, as tests/e2e/tiny.yaml does;
# these tests are about stale and bad inputs, not about what the networks learn.
FAST_TRAIN = {"atom_fea_len": 8, "n_conv": 2, "batch_size": 64, "epochs": 1,
              "max_pairs_per_epoch": 1000, "seed": 0, "all_seeds_dead": "keep"}


def two_systems() -> dict:
    """The toy (simulated, 2 Li) and a local electrolyte (data/run-{a,b}.npz, relative to
    the working directory), each with the fewest jobs that still cover every stage."""
    toy = yaml.safe_load((ROOT / "tests" / "e2e" / "tiny.yaml").read_text())["systems"]["toy"]
    toy["simulate"].update(n_li=2, n_jobs=1, duration_ps=40)
    toy["split"] = {"train": [{"trajectories": ["li000"], "start": 0.0, "stop": 0.5}],
                    "val": [{"trajectories": ["li001"], "start": 0.0, "stop": 0.5}],
                    "test": [{"trajectories": "all", "start": 0.5, "stop": 1.0}]}
    toy["train"] = dict(FAST_TRAIN, lags_ps=[1], models={"vampnet": [2]})
    toy["koopman"] = {"model": "vampnet", "n_states": 2, "tau_star_ps": 1, "ck_steps": 2,
                      "ci": {"method": "chunks", "n": 2}}
    for key in ("structure", "conduction", "figures"):
        toy.pop(key, None)
    elec = {
        "source": "local", "data_label": "PEO-like test data", "frame_interval_ps": 2.0,
        "files": {"run-a": {"path": "data/run-a.npz"}, "run-b": {"path": "data/run-b.npz"}},
        "split": {"train": [{"trajectories": ["run-a"], "start": 0.0, "stop": 0.8}],
                  "val": [{"trajectories": ["run-a"], "start": 0.8, "stop": 1.0}],
                  "test": [{"trajectories": ["run-b"], "start": 0.0, "stop": 1.0}]},
        "graph": {"n_neighbors": 8, "prune": True},
        "train": dict(FAST_TRAIN, lags_ps=[2, 4], models={"gdynet": [2]}),
        "koopman": {"model": "gdynet", "n_states": 2, "tau_star_ps": 4, "ck_steps": 2,
                    "ci": {"method": "chunks", "n": 2}},
        "structure": {"rdf": {"elements": ["O", "N"], "r_max_A": 5.0, "n_bins": 50}},
    }
    return {"systems": {"toy": toy, "elec": elec}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory after a successful `snakemake all` on both systems."""
    work = tmp_path_factory.mktemp("reliable")
    data = work / "data"
    save(data / "run-a.npz", electrolyte(300, seed=1))
    save(data / "run-b.npz", electrolyte(300, seed=2))
    (work / "config.yaml").write_text(yaml.safe_dump(two_systems()))
    run = snakemake(work, "--cores", "2", "all")
    assert run.returncode == 0, run.stderr[-5000:]
    assert planned(work) == {}
    return work


def copy_of(finished: Path, dest: Path) -> Path:
    """The finished working directory, mtimes and Snakemake metadata included."""
    shutil.copytree(finished, dest, symlinks=True)  # copy2: keeps mtimes
    assert planned(dest) == {}
    return dest


# ----------------------------------------------------------------------------- item 1


def test_corrupt_simulated_trajectory_fails_on_every_rerun(finished: Path, tmp_path: Path) -> None:
    work = copy_of(finished, tmp_path / "w")
    raw = work / "results" / "raw" / "toy" / "li001.npz"
    with open(raw, "r+b") as fh:
        fh.truncate(raw.stat().st_size // 2)
    message = ("gdyn split: error: results/raw/toy/li001.npz: not a readable .npz trajectory "
               "(truncated or corrupt file?")
    runs = [snakemake(work, "--cores", "2", "all") for _ in range(2)]
    for attempt, run in enumerate(runs, 1):
        out = run.stdout + run.stderr
        assert "Nothing to be done" not in out, f"run {attempt} trusted the old results"
        assert run.returncode != 0, f"run {attempt} passed on a corrupt trajectory"
    for run in runs:  # the reason, each time, in the terminal (show-failed-logs)
        assert message in run.stdout + run.stderr, (run.stdout + run.stderr)[-3000:]
    # the old results are still there but out of date: nothing downstream is trusted
    assert (work / "results" / "koopman" / "toy" / "vampnet-s2" / "summary.json").exists()
    jobs = planned(work)
    assert jobs.get("split") == 2 and jobs.get("train_vampnet") == 1
    assert jobs.get("koopman") == 1 and jobs.get("paper_comparison") == 1
    assert "train_gdynet" not in jobs  # the electrolyte does not depend on it


def test_replaced_local_trajectory_fails_until_valid_again(finished: Path,
                                                           tmp_path: Path) -> None:
    work = copy_of(finished, tmp_path / "w")
    user_file = work / "data" / "run-b.npz"
    good = user_file.read_bytes()
    bad = electrolyte(300, seed=2)
    bad["traj_coords"][280, 17] = np.nan  # a late frame of the user's new file
    save(user_file, bad)
    message = ("gdyn check: error: data/run-b.npz: key 'traj_coords': expected finite "
               "coordinates, frame 280 has NaN or inf")
    runs = [snakemake(work, "--cores", "2", "all") for _ in range(2)]
    for attempt, run in enumerate(runs, 1):
        out = run.stdout + run.stderr
        assert "Nothing to be done" not in out, f"run {attempt} trusted the old results"
        assert run.returncode != 0, f"run {attempt} passed on a trajectory with NaN"
    for run in runs:
        assert message in run.stdout + run.stderr, (run.stdout + run.stderr)[-3000:]
    jobs = planned(work)
    for rule in ("local_trajectory", "split", "graphs", "train_gdynet", "koopman", "rdf"):
        assert rule in jobs, (rule, jobs)
    assert "train_vampnet" not in jobs  # the toy does not depend on it
    # valid data again (a new file, so a new mtime): one run replaces every derived result
    before = time.time()
    user_file.write_bytes(good)
    run = snakemake(work, "--cores", "2", "all")
    assert run.returncode == 0, run.stderr[-4000:]
    for path in ("results/raw/elec/run-b.npz", "results/koopman/elec/gdynet-s2/summary.json",
                 "results/structure/elec/rdf.csv"):
        assert (work / path).stat().st_mtime >= before - 1, path
    assert planned(work) == {}


# ----------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_keeps_the_checkpoint_and_the_rerun_resumes(tmp_path: Path) -> None:
    cfg = two_systems()
    del cfg["systems"]["elec"]
    # ~0.1 s per epoch: the interrupt (at epoch 4) lands well inside the training
    cfg["systems"]["toy"]["train"].update(epochs=80, batch_size=16, max_pairs_per_epoch=2000)
    work = tmp_path / "w"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    log = work / "results" / "logs" / "train_vampnet" / "toy" / "s2-lag1ps.log"
    # Ctrl-C signals the terminal's foreground process group: Snakemake and every job
    proc = subprocess.Popen(_cmd(work, "--cores", "2", "all"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env(), cwd=work,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        t0 = time.monotonic()
        while proc.poll() is None and not (log.exists() and "epoch 4/80" in log.read_text()):
            if time.monotonic() - t0 > 300:
                pytest.fail("training did not start within 300 s")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    model = work / "results" / "models" / "toy" / "vampnet-s2-lag1ps"
    assert proc.returncode != 0
    text = log.read_text()
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1] == "gdyn train: interrupted"
    assert "gdyn train: interrupted" in out  # shown in the terminal
    assert (model / "checkpoint.pt").exists() and not (model / "model.pt").exists()
    rerun = snakemake(work, "--cores", "2", "all")
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "resuming from" in log.read_text()
    assert (work / "results" / "koopman" / "toy" / "vampnet-s2" / "summary.json").exists()
    assert not (model / "checkpoint.pt").exists()


# ----------------------------------------------------------------------------- downloads


def test_bad_downloads_fail_once_and_leave_nothing(tmp_path: Path) -> None:
    good = io.BytesIO()
    np.savez(good, **electrolyte(50, seed=3))
    page = b"<html><body>Rate limited</body></html>\n"
    site = Site(files={"/x.npz": good.getvalue(), "/y.npz": page}, types={"/y.npz": "text/html"})
    wrong = hashlib.md5(b"something else").hexdigest()
    with serve(site) as base:
        cfg = two_systems()
        dl = cfg["systems"].pop("elec")
        dl.update(source="download", files={"x": {"url": f"{base}/x.npz", "md5": wrong},
                                            "y": {"url": f"{base}/y.npz", "md5": None}})
        dl["split"] = {p: [{"trajectories": ["x", "y"], "start": a, "stop": b}]
                       for p, a, b in (("train", 0, 0.6), ("val", 0.6, 0.8), ("test", 0.8, 1))}
        dl.pop("structure")
        cfg["systems"] = {"dl": dl}
        work = tmp_path / "w"
        work.mkdir()
        (work / "config.yaml").write_text(yaml.safe_dump(cfg))
        run = snakemake(work, "--cores", "1", "--keep-going", "results/raw/dl/x.npz",
                        "results/raw/dl/y.npz")
    out = run.stdout + run.stderr
    assert run.returncode != 0
    # a known, wrong checksum: downloaded once (no rule retries), said once per log
    assert [p for p, _ in site.requests].count("/x.npz") == 1
    assert out.count(f"md5: expected {wrong}, got {hashlib.md5(good.getvalue()).hexdigest()}") == 1
    # an error page served with status 200 and no md5 known: not kept as a trajectory
    assert f"could not download {base}/y.npz: received an HTML page, 39 bytes" in out
    assert [p for p, _ in site.requests].count("/y.npz") == 1
    raw = work / "results" / "raw" / "dl"
    assert not raw.exists() or list(raw.iterdir()) == []
