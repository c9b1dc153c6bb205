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
