"""The README's "Bring your own trajectory" walkthrough, end to end, on a real LAMMPS dump
(issue 26); and a damaged graph store is rebuilt by the next run.

The dump is written from a small OpenMM simulation of the paper's toy model (4 Li hopping
in the frozen S lattice of docs/toy.md, in one 2 x 2 x 1 supercell, frames every 0.1 ps) as
LAMMPS writes a text dump (``id type x y z``, atom types, wrapped coordinates). Then the
README's own commands and config, read from README.md: ``gdyn import`` (with the
walkthrough's ``--species``), ``gdyn check``, the ``mysys`` system, and ``snakemake all``.
Only what a 40 ps trajectory cannot have is changed: the frame interval, the lags and
tiny training (models learn little in seconds, so ``all_seeds_dead: keep``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_checks import own_data_section
from test_report_e2e import snakemake

from gdyn import layout as L
from gdyn.trajectory import load_trajectory

ROOT = Path(__file__).resolve().parents[1]
FRAME_PS = 0.1
CELLS = (2, 2, 1)


def write_lammps_dump(path: Path, n_frames: int) -> None:
    """A LAMMPS text dump of 4 simulated Li in a 2 x 2 x 1 supercell of the toy S lattice."""
    from gdyn.toy.md import simulate
    from gdyn.toy.potential import ToySettings, s_positions

    s = ToySettings(n_li=4, n_jobs=1, duration_ps=n_frames * FRAME_PS, equilibration_ps=2.0,
                    temperature_K=64.0, friction_per_ps=1.0, wall_r_A=2.404, seed=11)
    li = simulate(s, [0, 1, 2, 3], FRAME_PS, progress=False)["li_coords"].astype(np.float64)
    a = s.lattice_A
    shifts = np.array([[i, j, k] for i in range(CELLS[0]) for j in range(CELLS[1])
                       for k in range(CELLS[2])], dtype=np.float64) * a
    sulfur = (s_positions(a)[None] + shifts[:, None]).reshape(-1, 3)
    box = np.array(CELLS, dtype=np.float64) * a
    # Li k in supercell cell k: Li-Li is off in the model, so they are independent there too.
    li = li + shifts[None, : li.shape[1]]
    n_atoms = li.shape[1] + len(sulfur)
    lines = []
    for f in range(li.shape[0]):
        lines += ["ITEM: TIMESTEP", str(100 * f), "ITEM: NUMBER OF ATOMS", str(n_atoms),
                  "ITEM: BOX BOUNDS pp pp pp", *(f"0.0 {float(x)!r}" for x in box),
                  "ITEM: ATOMS id type x y z"]
        xyz = np.concatenate([np.mod(li[f], box), sulfur])
        types = [1] * li.shape[1] + [2] * len(sulfur)
        lines += [f"{i + 1} {t} {x:.6f} {y:.6f} {z:.6f}"
                  for i, (t, (x, y, z)) in enumerate(zip(types, xyz, strict=True))]
    path.write_text("\n".join(lines) + "\n")


def _run(work: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(argv, capture_output=True, text=True, cwd=work, env=env, timeout=600)


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("own-data")
    write_lammps_dump(work / "dump.lammpstrj", 400)
    commands, config = own_data_section()
    lammps = next(c for c in commands if c[1] == "import" and c[2] == "dump.lammpstrj")
    check = next(c for c in commands if c[1] == "check")
    # The README's commands, with this trajectory's frame interval.
    lammps = [str(FRAME_PS) if prev == "--frame-interval-ps" else w
              for prev, w in zip(["", *lammps[:-1]], lammps, strict=True)]
    ran = [_run(work, lammps), _run(work, check)]
    for proc in ran:
        assert proc.returncode == 0, proc.stderr[-3000:]
    (name, system), = config["systems"].items()
    system["frame_interval_ps"] = FRAME_PS
    system["train"].update(lags_ps=[1, 2], models={"gdynet": [2, 3]}, seeds=[0], epochs=1,
                           batch_size=64, max_pairs_per_epoch=500, all_seeds_dead="keep")
    system["koopman"].update(ci={"method": "chunks", "n": 2})
    (work / "my.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(work, "--cores", "2", "all", "--configfile", "my.yaml", timeout=1800)
    return {"work": work, "name": name, "system": system, "import": ran[0], "check": ran[1],
            "run": run}


@pytest.mark.e2e
@pytest.mark.slow
def test_readme_walkthrough_on_a_lammps_dump(walkthrough: dict) -> None:
    work, name, run = walkthrough["work"], walkthrough["name"], walkthrough["run"]
    assert run.returncode == 0, run.stderr[-5000:]
    assert "400 frames, 20 atoms, 4 target sets of 1 atom(s), frame interval 0.1 ps" in \
        walkthrough["import"].stdout
    user = load_trajectory(work / walkthrough["system"]["files"]["run1"]["path"])
    assert user.atom_types.tolist() == [3] * 4 + [16] * 16
    assert user.target_index.tolist() == [0, 1, 2, 3]
    # The workflow's own copy is the user's file, checked.
    copy = load_trajectory(work / L.raw(name, "run1"))
    np.testing.assert_array_equal(copy.traj_coords, user.traj_coords)
    sel = json.loads((work / L.selection(name, "json")).read_text())
    assert sel["n_states"] in (2, 3)
    summary = json.loads((work / L.koopman_summary(name, "gdynet", "auto")).read_text())
    assert summary["n_states"] == sel["n_states"]
    assert summary["tau_star_ps"] == sel["tau_star_ps"]
    # Snakemake has nothing left to do.
    again = snakemake(work, "-n", "all", "--configfile", "my.yaml", timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.e2e
@pytest.mark.slow
def test_a_damaged_graph_store_is_rebuilt(walkthrough: dict) -> None:
    work, name = walkthrough["work"], walkthrough["name"]
    assert walkthrough["run"].returncode == 0
    store = work / L.graph_store(name, "train", "run1")
    (store / "index.npy").unlink()
    # Snakemake alone sees nothing to do (a directory's mtime is its timestamp file, and
    # the split piece it is made from is unchanged): the Snakefile removes the store.
    plan = snakemake(work, "-n", "all", "--configfile", "my.yaml", timeout=300)
    planned = plan.stdout + plan.stderr
    assert (f"{L.graph_store(name, 'train', 'run1')}: damaged graph store (index.npy "
            "missing): removed it (also by a dry run); it is rebuilt when a job needs it"
            ) in planned
    assert not store.exists()
    assert "Nothing to be done" in planned  # every result is still from the whole store
    # A settings edit reruns training: the store is rebuilt first (the case, where
    # every rerun failed naming index.npy).
    config = yaml.safe_load((work / "my.yaml").read_text())
    config["systems"][name]["train"]["epochs"] = 2
    (work / "my.yaml").write_text(yaml.safe_dump(config))
    rerun = snakemake(work, "--cores", "2", "all", "--configfile", "my.yaml", timeout=1800)
    assert rerun.returncode == 0, rerun.stderr[-5000:]
    assert "rule graphs:" in rerun.stdout + rerun.stderr
    assert (store / "index.npy").is_file()
    again = snakemake(work, "-n", "all", "--configfile", "my.yaml", timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
