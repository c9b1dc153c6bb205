"""Checks that come early and say enough (issue 26): lag pairs of every split window and lag
labels at DAG build, a too-short validation window before any epoch, dead seeds on data
that are too short."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gdyn import config as gc
from gdyn.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import _cli, two_trajectory_split
from test_train_seeds import _dying

ROOT = Path(__file__).resolve().parents[1]


def _tiny() -> dict:
    # tiny.yaml: frame 0.1 ps, 60 ps per Li = 600 frames, lags 1 and 2 ps (10, 20 frames);
    # val: li003 [0, 0.5) = 300 frames.
    return gc.load_yaml(ROOT / "tests" / "e2e" / "tiny.yaml")


def _problem(mutate) -> str:
    cfg = _tiny()
    gc.check(cfg)
    mutate(cfg["systems"]["toy"])
    with pytest.raises(InputError) as err:
        gc.check(cfg)
    return str(err.value)


def test_validation_window_without_two_lag_pairs_is_refused_at_dag_build() -> None:
    # val [289, 300) of 600 frames: 11 frames, one (t, t + 10) pair, none at 20 frames.
    msg = _problem(lambda s: s["split"]["val"][0].update(start=0.4817, stop=0.5))
    assert ("systems/toy/train/lags_ps[0] = 1: leaves 1 (t, t + lag) pair in the val window "
            "of li003 (split/val[0]: 11 frames, 1 ps); every window needs at least 2") in msg
    assert "systems/toy/train/lags_ps[1] = 2: leaves 0 (t, t + lag) pairs in the val window" in msg
    # Exactly two pairs pass: 12 frames at lag 10 frames (val [288, 300)).
    cfg = _tiny()
    cfg["systems"]["toy"]["split"]["val"][0].update(start=0.48, stop=0.5)
    cfg["systems"]["toy"]["train"]["lags_ps"] = [1]
    gc.check(cfg)


def test_train_window_and_stride_grid_pairs_are_counted() -> None:
    # frame_stride 10: the 300-frame train windows hold 30 grid frames; a 29 ps lag (290
    # frames, 29 grid steps) leaves one pair on the grid.
    def mutate(s: dict) -> None:
        s["train"].update(lags_ps=[1, 29], frame_stride=10)
        s["split"]["test"][0].update(start=0.5, stop=1.0)
        s["koopman"]["ck_steps"] = 2

    msg = _problem(mutate)
    assert ("systems/toy/train/lags_ps[1] = 29: leaves 1 (t, t + lag) pair on the "
            "frame_stride 10 grid in the train window of li000") in msg


def test_lags_with_one_label_are_refused() -> None:
    msg = _problem(lambda s: s["train"].__setitem__("lags_ps", [1, 1.00000000001]))
    assert msg == ("systems/toy/train/lags_ps[1] = 1.00000000001: same label 1ps as "
                   "train/lags_ps[0] = 1 (lags name the model directories: give distinct "
                   "lags)")


def test_short_validation_pieces_fail_before_any_epoch(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    from gdyn.cli import main

    long = two_trajectory_split(tmp_path / "long", 400, seed=3)
    short = two_trajectory_split(tmp_path / "short", 22, seed=5)  # 11-frame halves
    toy = {"parts": dict(long["parts"], val=short["parts"]["val"]),
           "graphs": dict(long["graphs"], val=short["graphs"]["val"])}
    args = _cli(toy, tmp_path / "m", {"epochs": 1, "batch_size": 16})[1:]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("gdyn train: error: --val: expected at least 2 (t, t + 1 ps) pairs within "
                   "the validation pieces, got 1 (pieces of [11] frames, lag 10 frames): the "
                   "validation window is too short for this lag; lengthen split/val or "
                   "shorten train/lags_ps")
    assert not (tmp_path / "m" / "metrics.csv").exists()


def test_all_seeds_dead_on_short_data_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    from gdyn.cli import main

    long = two_trajectory_split(tmp_path / "long", 400, seed=3)
    short = two_trajectory_split(tmp_path / "short", 30, seed=5)  # 15 frames: 5 pairs
    toy = {"parts": dict(long["parts"], val=short["parts"]["val"]),
           "graphs": dict(long["graphs"], val=short["graphs"]["val"])}
    _dying(monkeypatch, {0})
    assert main(_cli(toy, tmp_path / "m", {"epochs": 1, "batch_size": 16, "seed": 0})[1:]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "every seed is dead" in err and "learning_rate" not in err
    assert ("the data are too short: the validation pieces ([15] frames) hold 5 (t, t + 1 ps) "
            "pairs x 1 target sets, fewer than 10 per state of 2") in err
    # On long data the advice stays with seeds and learning rate.
    assert main(_cli(long, tmp_path / "n", {"epochs": 1, "batch_size": 16, "seed": 0})[1:]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "try other train.seeds, another learning_rate" in err and "too short" not in err


# ----------------------------------------------------------------------------- gdyn import


def test_import_with_too_few_species_says_so(tmp_path: Path) -> None:
    from test_importers import frames, write_dump

    from gdyn.importers import import_trajectory

    pos, cells = frames(2)
    path = tmp_path / "dump.lammpstrj"
    write_dump(path, pos, cells, columns="id type x y z")  # types 1..4: Li, S, O, H
    with pytest.raises(InputError) as err:
        import_trajectory(path, tmp_path / "x.npz", "element:Li", fmt="lammps-dump-text",
                          species=["Li", "S", "O"], progress=False)
    assert str(err.value) == (
        f"{path}: --species: expected one element per LAMMPS atom type (types 1, 2, 3, 4 in "
        "frame 0, so at least 4 elements, type n = the n-th), got 3: Li,S,O")
    assert not (tmp_path / "x.npz").exists()


# ----------------------------------------------------------------------------- gdyn check


def _write(path: Path, coords, lattices) -> Path:
    import numpy as np

    np.savez(path, traj_coords=np.asarray(coords, np.float64),
             lattices=np.asarray(lattices, np.float64), atom_types=np.array([3, 16]),
             target_index=np.array([0]))
    return path


def test_check_refuses_absurd_cells_and_coordinates(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    import numpy as np

    from gdyn.cli import main
    from gdyn.trajectory import MAX_CELLS_AWAY, MIN_FACE_WIDTH_A

    assert (MIN_FACE_WIDTH_A, MAX_CELLS_AWAY) == (0.5, 100.0)  # the documented thresholds
    coords = np.tile([[0.5, 0.5, 0.5], [2.0, 2.0, 2.0]], (3, 1, 1))
    cells = np.tile(np.eye(3) * 5.0, (3, 1, 1))
    assert main(["check", str(_write(tmp_path / "ok.npz", coords, cells))]) == 0
    # A 0.001 A thick cell in frame 1 (a right-handed, non-singular one).
    thin = cells.copy()
    thin[1, 2, 2] = 0.001
    assert main(["check", str(_write(tmp_path / "thin.npz", coords, thin))]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "key 'lattices': expected a cell at least 0.5 A wide between opposite faces, frame 1 "
        "is 0.001 A wide (lattice vectors in Angstrom, rows a, b, c?)")
    # A sheared cell whose vectors are long but whose faces are 0.4 A apart.
    sheared = cells.copy()
    sheared[2] = [[5, 0, 0], [0, 5, 0], [3, 3, 0.4]]
    assert main(["check", str(_write(tmp_path / "s.npz", coords, sheared))]) == 2
    assert "frame 2 is 0.4 A wide" in capsys.readouterr().err
    # Just above the threshold passes.
    edge = cells.copy()
    edge[:, 2, 2] = 0.51
    assert main(["check", str(_write(tmp_path / "e.npz", coords * 0.1, edge))]) == 0
    capsys.readouterr()
    # 1e12 A coordinates; and 101 cell lengths away (505 A in a 5 A cell), but not 99.
    far = coords.copy()
    far[2, 1] = [1e12, 0, 0]
    assert main(["check", str(_write(tmp_path / "far.npz", far, cells))]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "key 'traj_coords': expected atoms within 100 cell lengths of the cell, frame 2 has "
        "atom 1 at 2e+11 cell lengths along lattice vector a ([1000000000000.0, 0.0, 0.0] A)")
    far[2, 1] = [2.0, -505.5, 0]
    assert main(["check", str(_write(tmp_path / "f2.npz", far, cells))]) == 2
    assert "at -101 cell lengths along lattice vector b" in capsys.readouterr().err
    far[2, 1] = [2.0, -495.0, 2.0]
    assert main(["check", str(_write(tmp_path / "f3.npz", far, cells))]) == 0


# ----------------------------------------------------------------------------- read-only


def _read_only(cmd: list[str], ro: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with directory ``ro`` read-only: by its mode for a normal user, by a
    read-only bind mount in a user namespace for root (whom modes do not stop)."""
    if os.geteuid() != 0:
        ro.chmod(0o555)
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300)
        finally:
            ro.chmod(0o755)
    if shutil.which("unshare") is None:
        pytest.skip("root without unshare: no way to make a directory read-only")
    script = (f"mount --bind {shlex.quote(str(ro))} {shlex.quote(str(ro))} && "
              f"mount -o remount,ro,bind {shlex.quote(str(ro))} && exec {shlex.join(cmd)}")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no user namespaces: no way to make a directory read-only as root")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("where", ["results", "results/models/toy"])
def test_read_only_results_stop_the_run_in_one_line(tmp_path: Path, where: str) -> None:
    work = tmp_path / "work"
    (work / "results" / "models" / "toy").mkdir(parents=True)
    cmd = [sys.executable, "-m", "snakemake", "all", "--cores", "1", "-s",
           str(ROOT / "Snakefile"), "-d", str(work), "--configfile",
           str(ROOT / "tests" / "e2e" / "tiny.yaml")]
    proc = _read_only(cmd, work / where, ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out and "Job stats" not in out, out
    assert f"{where}: not writable (" in out
    assert "every output is written under results/: make it writable" in out


# ----------------------------------------------------------------------------- docs


def _fmt(value: object) -> str:
    """A value as the YAML config writes it."""
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_training_defaults_in_the_readme_are_the_schemas() -> None:
    # The schema's `default:` is where a training default is written (gdyn.settings; the
    # API's gdyn.train.DEFAULTS are read from it, tests/test_settings.py); the README
    # quotes some of them.
    from gdyn.settings import default

    readme = (ROOT / "README.md").read_text()
    for key in ("epochs", "learning_rate", "batch_size", "max_pairs_per_epoch", "seed"):
        assert f"`{key}: {_fmt(default('train', key))}`" in readme, key


def own_data_section() -> tuple[list[list[str]], dict]:
    """The README's own-data walkthrough: its gdyn commands (split into words) and config."""
    import yaml

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Bring your own trajectory"):]
    section = section[:section.index("\n## ", 5)]
    blocks = section.split("```")
    commands = [shlex.split(line) for b in blocks[1::2] if b.startswith("bash")
                for line in b.splitlines()[1:] if line.startswith("gdyn ")]
    configs = [yaml.safe_load(b.removeprefix("yaml")) for b in blocks[1::2] if b.startswith("yaml")]
    assert len(configs) == 1
    return commands, configs[0]


def test_readme_own_data_paths_are_one_path() -> None:
    commands, config = own_data_section()
    (name, system), = config["systems"].items()
    path = system["files"]["run1"]["path"]
    imports = [c for c in commands if c[1] == "import"]
    checks = [c for c in commands if c[1] == "check"]
    assert imports and checks
    assert {c[3] for c in imports} == {c[2] for c in checks} == {path}
    # The workflow's own copy must not be the user's file (a rule would read its output).
    from gdyn.layout import raw

    assert Path(path) != Path(raw(name, "run1")) and not path.startswith("results/")
    gc.validate(config)


# ----------------------------------------------------------------------------- graph stores


def _store(tmp_path: Path) -> Path:
    from test_graph_store import toy_piece

    from gdyn.graph import build_store
    from gdyn.trajectory import load_trajectory

    piece, _, _ = toy_piece(tmp_path, 12, 0)
    build_store(load_trajectory(piece), tmp_path / "store", 12, progress=False)
    return tmp_path / "store"


@pytest.mark.parametrize("damage", ["delete", "truncate", "reshape", "meta"])
def test_a_damaged_store_is_named_and_only_a_store_is_discarded(tmp_path: Path,
                                                                damage: str) -> None:
    import numpy as np

    from gdyn.graph import DamagedStore, discard_store, open_store
    from gdyn.graph.store import verify_store

    store = _store(tmp_path)
    meta = verify_store(store)
    assert meta["n_frames"] == 12 and open_store(store).index.shape == (12, 5, 12)
    if damage == "delete":
        (store / "index.npy").unlink()
        problem = "index.npy missing"
    elif damage == "truncate":
        f = store / "distance.npy"
        size = f.stat().st_size
        os.truncate(f, size - 7)
        problem = f"distance.npy is {size - 7} bytes, its header says {size} (cut short)"
    elif damage == "reshape":
        np.save(store / "rows.npy", np.arange(4))
        problem = "rows.npy has shape (4,), meta.json says (5,)"
    else:
        (store / "meta.json").write_text("{")
        problem = "meta.json unreadable"
    with pytest.raises(DamagedStore) as err:
        open_store(store)
    assert str(err.value).startswith(f"{store}: damaged graph store: {problem}")
    assert str(err.value).endswith("rebuild it (gdyn graphs; the workflow rebuilds a missing "
                                   "store)")
    # Only a directory of store files is ever removed.
    (store / "notes.txt").write_text("mine")
    assert not discard_store(store) and store.is_dir()
    (store / "notes.txt").unlink()
    from gdyn.graph.store import store_damage

    assert store_damage(store).startswith(problem)
    assert discard_store(store) and not store.exists()
    assert store_damage(store) is None
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(InputError, match="not a graph store") as err:
        verify_store(other)
    assert not isinstance(err.value, DamagedStore)


def test_training_on_a_damaged_store_removes_it_and_says_rerun(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from gdyn.cli import main

    toy = two_trajectory_split(tmp_path / "toy", 200, seed=3)
    store = toy["graphs"]["val"][0]
    (store / "index.npy").unlink()
    assert main(_cli(toy, tmp_path / "m", {"epochs": 1, "batch_size": 16})[1:]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"gdyn train: error: {store}: damaged graph store: index.npy missing; "
                   "removed it: run the workflow again to rebuild it")
    assert not store.exists()


def test_readme_python_snippet_states_its_cost() -> None:
    """The work the README's "From Python" code does, as its text states it, follows from
    the snippet's own settings and the default config's toy run."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    prose = " ".join(section[:section.index("```python")].split())
    args = dict(re.findall(r"(\w+)=([\d_.e-]+)", code))
    toy = gc.load_yaml(ROOT / "config" / "config.yaml")["systems"]["toy"]
    frames = round(toy["simulate"]["duration_ps"] / toy["frame_interval_ps"])
    n_li, half = toy["simulate"]["n_li"], frames // 2
    stride, batch = int(args["frame_stride"]), int(args["batch_size"])
    steps = int(args["epochs"]) * int(args["max_pairs_per_epoch"].replace("_", "")) // batch
    assert "run Quick start command 1 first" in prose
    assert f"every {stride}th frame of the {n_li} first halves ({n_li * half // stride:,} " \
           "frames)" in prose
    assert f"{steps} steps of {batch} lag pairs" in prose
    assert f"predicts all {n_li * half:,} frames of the second halves" in prose
