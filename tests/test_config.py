"""Config validation: the schema stops bad configs before any job, naming the key."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gdyn import config as gc
from gdyn.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def _default() -> dict:
    return gc.load_yaml(ROOT / "config" / "config.yaml")


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    gc.validate(gc.load_yaml(ROOT / "config" / name))


def test_misspelt_key_is_named() -> None:
    cfg = _default()
    cfg["systems"]["toy"]["train"]["epoch"] = 3  # typo for "epochs"
    with pytest.raises(InputError, match=r"systems/toy/train.*'epoch' was unexpected"):
        gc.validate(cfg)


def test_negative_lag_is_named() -> None:
    cfg = _default()
    cfg["systems"]["toy"]["train"]["lags_ps"] = [10, -5]
    with pytest.raises(InputError, match=r"systems/toy/train/lags_ps/1"):
        gc.validate(cfg)


def test_wrong_type_is_named() -> None:
    cfg = _default()
    cfg["systems"]["toy"]["graph"]["n_neighbors"] = "twelve"
    with pytest.raises(InputError, match=r"systems/toy/graph/n_neighbors"):
        gc.validate(cfg)


def _snakemake_dry_run(cfg: dict, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "all", "--configfile", str(path),
         "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "work")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c["systems"]["toy"]["train"].__setitem__("epoch", 3), "epoch"),
        (lambda c: c["systems"]["toy"]["train"].__setitem__("lags_ps", [-1]), "lags_ps"),
    ],
    ids=["misspelt-key", "negative-lag"],
)
def test_snakemake_stops_before_any_job(tmp_path: Path, mutate, needle: str) -> None:
    cfg = copy.deepcopy(_default())
    mutate(cfg)
    proc = _snakemake_dry_run(cfg, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert needle in out
    assert "Job stats" not in out  # failed at validation, before the DAG was built


def test_good_config_dry_run_lists_the_dag(tmp_path: Path) -> None:
    proc = _snakemake_dry_run(_default(), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    for rule in ("simulate_toy", "split", "graphs", "train_gdynet", "train_vampnet", "koopman"):
        assert rule in out


@pytest.mark.parametrize(
    ("lag", "label"), [(10, "10ps"), (0.5, "0.5ps"), (800.0, "800ps"), (3000, "3000ps")]
)
def test_lag_labels_round_trip(lag: float, label: str) -> None:
    assert gc.lag_label(lag) == label
    assert gc.parse_lag(label) == pytest.approx(lag)


def test_lag_to_frames() -> None:
    assert gc.lag_to_frames(10.0, 0.1) == 100
    assert gc.lag_to_frames(3000, 20.0) == 150
    with pytest.raises(InputError, match="whole multiple"):
        gc.lag_to_frames(0.25, 0.1)
    with pytest.raises(InputError):
        gc.parse_lag("-3ps")


def test_split_pieces_resolve_ranges_and_names() -> None:
    toy = _default()["systems"]["toy"]
    names = gc.trajectory_names(toy)
    assert len(names) == toy["simulate"]["n_li"]
    test = gc.split_pieces(toy, "test")
    assert list(test) == names
    paper = gc.load_yaml(ROOT / "config" / "paper.yaml")["systems"]["peo"]
    assert list(gc.split_pieces(paper, "test")) == [f"peo-traj-{c}" for c in "bcde"]
    bad = copy.deepcopy(paper)
    bad["split"]["test"][0]["trajectories"] = ["peo-traj-z"]
    with pytest.raises(InputError, match="peo-traj-z"):
        gc.split_pieces(bad, "test")


# --------------------------------------------------------------------------------------
# The config's meaning (gdyn.config.check): stops before any job, naming the key path


def _tiny() -> dict:
    return gc.load_yaml(ROOT / "tests" / "e2e" / "tiny.yaml")


def _toy(cfg: dict) -> dict:
    return cfg["systems"]["toy"]


# (mutation of the tiny toy system, expected message). tiny.yaml: frame 0.1 ps, 60 ps per
# Li = 600 frames, test windows [0.5, 1.0) = 300 frames (29.9 ps), tau* 1 ps, ck_steps 3.
SEMANTIC_CASES = {
    "lag-off-grid": (
        lambda s: s["train"].__setitem__("lags_ps", [1, 0.15]),
        "systems/toy/train/lags_ps[1] = 0.15: not a multiple of frame_interval_ps 0.1",
    ),
    "lag-off-stride": (
        lambda s: s["train"].update(lags_ps=[1, 1.5], frame_stride=10),
        "systems/toy/train/lags_ps[1] = 1.5: not a multiple of train/frame_stride = 10 frames",
    ),
    "lag-beyond-test-window": (
        lambda s: s["train"].__setitem__("lags_ps", [1, 30]),
        "systems/toy/train/lags_ps[1] = 30: longer than the test window of li000 "
        "(split/test[0]: 300 frames, 29.9 ps)",
    ),
    "ck-horizon-beyond-test-window": (
        lambda s: s["koopman"].update(tau_star_ps=2, ck_steps=15),
        "systems/toy/koopman/ck_steps = 15: the CK horizon tau_star_ps x ck_steps = 30 ps is "
        "longer than the test window of li000",
    ),
    "tau-star-off-grid": (
        lambda s: s["koopman"].__setitem__("tau_star_ps", 1.5),
        "systems/toy/koopman/tau_star_ps = 1.5: not one of train/lags_ps (1, 2)",
    ),
    "start-after-stop": (
        lambda s: s["split"]["val"][0].update(start=0.5, stop=0.2),
        "systems/toy/split/val[0]: start 0.5 >= stop 0.2",
    ),
    "overlapping-parts": (
        lambda s: s["split"]["test"][0].__setitem__("start", 0.4),
        "systems/toy/split/test[0] = [0.4, 1) overlaps split/train[0] = [0, 0.5) on "
        "trajectory li000, li001, li002",
    ),
    "range-past-the-end": (
        lambda s: s["split"]["val"][0]["trajectories"].__setitem__("to", 9),
        "systems/toy/split/val[0]/trajectories/to = 9: the system has only 4 trajectories",
    ),
    "n-states-not-trained": (
        lambda s: s["koopman"].__setitem__("n_states", 3),
        "systems/toy/koopman/n_states = 3: no trained model provides it "
        "(train/models/gdynet = [2])",
    ),
    "model-not-trained": (
        lambda s: s["train"]["models"].pop("gdynet"),
        "systems/toy/koopman/model = gdynet: not trained (train/models lists vampnet)",
    ),
    "unknown-model-kind": (
        lambda s: s["train"]["models"].__setitem__("gcn", [2]),
        "systems/toy/train/models/gcn: unknown model kind (gdyn.models.REGISTRY has "
        "gdynet, vampnet)",
    ),
    "charge-centre-without-rdf": (
        lambda s: s["structure"].__setitem__("charge", {"center": "N", "charges": {"Li": 1}}),
        "systems/toy/structure/charge/center = N: not in structure/rdf/elements (S)",
    ),
}


@pytest.mark.parametrize("case", list(SEMANTIC_CASES))
def test_check_names_the_key_path(case: str) -> None:
    mutate, needle = SEMANTIC_CASES[case]
    cfg = _tiny()
    gc.validate(cfg)
    gc.check(cfg)  # the tiny config itself is fine
    mutate(_toy(cfg))
    with pytest.raises(InputError) as err:
        gc.check(cfg)
    assert needle in str(err.value)


def test_shipped_configs_mean_something() -> None:
    for name in ("config/config.yaml", "config/paper.yaml", "tests/e2e/tiny.yaml"):
        gc.check(gc.load_yaml(ROOT / name))


def test_auto_state_count_is_valid_when_the_model_lists_counts() -> None:
    cfg = _tiny()
    _toy(cfg)["koopman"]["n_states"] = "auto"  # issue 16's key, checked here by meaning only
    gc.check(cfg)


def _write_raw(path: Path, n_frames: int, types: list[int], fi: float | None = None) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"traj_coords": np.zeros((n_frames, len(types), 3), np.float32),
              "lattices": np.tile(np.eye(3, dtype=np.float32) * 10, (n_frames, 1, 1)),
              "atom_types": np.array(types), "target_index": np.array([0])}
    if fi is not None:
        arrays["frame_interval_ps"] = np.float64(fi)
    np.savez(path, **arrays)


def _local_system(path: str) -> dict:
    return {
        "source": "local", "duration_ps": 800.0, "files": {"run1": {"path": path}},
        "split": {"train": [{"start": 0.0, "stop": 0.6}], "val": [{"start": 0.6, "stop": 0.7}],
                  "test": [{"start": 0.7, "stop": 1.0}]},
        "graph": {"n_neighbors": 8}, "train": {"lags_ps": [4, 8], "models": {"gdynet": [2]}},
        "koopman": {"n_states": 2, "tau_star_ps": 8, "ck_steps": 3},
        "structure": {"rdf": {"elements": ["O", "Au"]}, "q3": {"element": "Si"}},
    }


def test_file_headers_give_frames_interval_and_elements(tmp_path: Path) -> None:
    # A PEO-like local file: Li, O, C, H, N; 201 frames over duration_ps 800 -> 4 ps frames.
    _write_raw(tmp_path / "data" / "run1.npz", 201, [3, 8, 8, 6, 6, 1, 1, 1, 7])
    cfg = {"systems": {"peo": _local_system("data/run1.npz")}}
    gc.validate(cfg)
    with pytest.raises(InputError) as err:
        gc.check(cfg, root=tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0] == "2 problems in the config:"
    assert lines[1].strip() == (
        f"systems/peo/structure/rdf/elements[1] = Au: the system has no Au atoms (it has H, Li, "
        f"C, N, O; read from {tmp_path / 'data' / 'run1.npz'})"
    )
    assert lines[2].strip().startswith("systems/peo/structure/q3/element = Si: the system has no Si")
    # the same config without its file: nothing to read, nothing to complain about
    gc.check(cfg, root=tmp_path / "elsewhere")
    # the CK horizon 8 ps x 3 = 24 ps against a test window of 60 frames (236 ps): fine;
    # a lag of 6 ps is not on the 4 ps grid the header gives
    cfg["systems"]["peo"]["structure"] = {}
    cfg["systems"]["peo"]["train"]["lags_ps"] = [4, 6, 8]
    with pytest.raises(InputError, match=r"systems/peo/train/lags_ps\[1\] = 6: not a multiple of "
                                         r"the frame interval 4 ps of run1 \(duration_ps 800 over "
                                         r"201 frames\)"):
        gc.check(cfg, root=tmp_path)


def test_stored_frame_interval_must_agree(tmp_path: Path) -> None:
    _write_raw(tmp_path / "results" / "raw" / "toy" / "li000.npz", 600, [3, 16, 16, 16, 16],
               fi=0.2)
    with pytest.raises(InputError, match=r"systems/toy/frame_interval_ps = 0.1: "
                                         r".*li000.npz stores frame_interval_ps = 0.2"):
        gc.check(_tiny(), root=tmp_path)


def test_unreadable_file_is_left_to_the_job(tmp_path: Path) -> None:
    raw = tmp_path / "results" / "raw" / "toy" / "li000.npz"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"PK\x03\x04 truncated")
    gc.check(_tiny(), root=tmp_path)  # the split job that reads it names the problem


def test_dry_run_rejects_a_meaningless_config_naming_every_key(tmp_path: Path) -> None:
    """One `snakemake -n` on a config with every kind of problem (check reports them all)."""
    cfg = _tiny()
    toy = _toy(cfg)
    toy["train"]["lags_ps"] = [1, 2, 0.15, 40]
    toy["koopman"].update(n_states=3, tau_star_ps=2, ck_steps=20)
    toy["split"]["val"][0].update(start=0.5, stop=0.2)
    toy["split"]["test"][0]["start"] = 0.4  # test windows: 360 frames, 35.9 ps
    toy["structure"]["rdf"]["elements"] = ["S", "O"]
    work = tmp_path / "work"
    for i in range(4):  # the toy's raw files exist (a previous run): their headers are read
        _write_raw(work / "results" / "raw" / "toy" / f"li{i:03d}.npz", 600, [3, 16, 16, 16, 16])
    proc = _snakemake_dry_run(cfg, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Job stats" not in out and "Traceback" not in out
    for needle in [
        "systems/toy/train/lags_ps[2] = 0.15: not a multiple of frame_interval_ps 0.1",
        "systems/toy/train/lags_ps[3] = 40: longer than the test window of li000 "
        "(split/test[0]: 360 frames, 35.9 ps)",
        "systems/toy/koopman/ck_steps = 20: the CK horizon tau_star_ps x ck_steps = 40 ps is "
        "longer than the test window",
        "systems/toy/split/val[0]: start 0.5 >= stop 0.2",
        "systems/toy/split/test[0] = [0.4, 1) overlaps split/train[0] = [0, 0.5)",
        "systems/toy/structure/rdf/elements[1] = O: the system has no O atoms (it has Li, S;",
        "systems/toy/koopman/n_states = 3: no trained model provides it",
    ]:
        assert needle in out, needle
