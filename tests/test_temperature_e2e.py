"""Temperature series and memberships export through the workflow (issue 25).

The DAG checks (dry runs) show the new rules engage only on request: the default and tiny
configs plan no arrhenius, export or per-temperature job. The e2e run puts a tiny
two-temperature toy with ``export: [memberships]``, ``train.per_temperature`` and the
conduction per temperature through ``snakemake all`` and reads every new output back; its
models learn little (seconds of training): this checks the wiring, the science is tested
on known chains in tests/test_arrhenius.py and tests/test_temperature_series.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_report_e2e import TINY, planned_jobs, snakemake

from gdyn import layout as L

ROOT = TINY.parents[2]
TEMPS = [48.0, 96.0]


def series_config(path: Path, per_temperature: bool = False) -> Path:
    """tiny.yaml as a two-temperature series with the memberships export; with
    ``per_temperature`` also train.per_temperature and the conduction per temperature
    (every trajectory in every split part, so that each temperature has train and val)."""
    config = yaml.safe_load(TINY.read_text())
    toy = config["systems"]["toy"]
    sim = toy["simulate"]
    sim.pop("temperature_K", None)
    sim["temperatures_K"] = TEMPS
    toy["conduction"].pop("temperature_K")  # a series: each trajectory's temperature
    if not per_temperature:
        toy.pop("conduction")
    else:
        toy["train"]["per_temperature"] = True
        toy["split"] = {part: [{"trajectories": "all", "start": a, "stop": b}]
                        for part, a, b in (("train", 0.0, 0.3), ("val", 0.3, 0.5),
                                           ("test", 0.5, 1.0))}  # fmt: skip
    toy["export"] = ["memberships"]
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_new_rules_only_on_request(tmp_path: Path) -> None:
    new = {"arrhenius", "arrhenius_figure", "export_memberships", "train_per_temperature",
           "per_temperature"}  # fmt: skip
    for configfile in (ROOT / "config" / "config.yaml", TINY):
        jobs = planned_jobs(tmp_path, "all", "--configfile", str(configfile))
        assert not new & set(jobs)
    cfg = series_config(tmp_path / "series.yaml")
    jobs = planned_jobs(tmp_path, "all", "--configfile", str(cfg))
    n_li = yaml.safe_load(TINY.read_text())["systems"]["toy"]["simulate"]["n_li"]
    assert jobs["arrhenius"] == 1 and jobs["arrhenius_figure"] == 1
    assert jobs["export_memberships"] == n_li * len(TEMPS)
    assert jobs["toy_cell"] == n_li * len(TEMPS)
    assert not {"train_per_temperature", "per_temperature", "conduction"} & set(jobs)
    jobs = planned_jobs(tmp_path, "all", "--configfile",
                        str(series_config(tmp_path / "per_t.yaml", per_temperature=True)))
    assert jobs["train_per_temperature"] == len(TEMPS) and jobs["per_temperature"] == 1
    assert jobs["conduction"] == 1
    ts = planned_jobs(tmp_path, "all", "--configfile",
                      str(ROOT / "config" / "temperature-series.yaml"))
    assert ts["train_per_temperature"] == 5 and ts["per_temperature"] == 1


@pytest.mark.e2e
def test_series_run_end_to_end(tmp_path: Path) -> None:
    import ase.io

    cfg = series_config(tmp_path / "series.yaml", per_temperature=True)
    run = snakemake(tmp_path, "--configfile", str(cfg), "--cores", "2", "all", timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    raw = sorted((tmp_path / "results" / "raw" / "toy").glob("*.npz"))
    got = sorted({float(np.load(p)["temperature_K"]) for p in raw})
    assert got == TEMPS
    kdir = tmp_path / L.koopman_dir("toy", "gdynet", 2)
    kin = pd.read_csv(kdir / "kinetics.csv")
    assert kin.columns[0] == "temperature_K" and sorted(set(kin.temperature_K)) == TEMPS
    arr = pd.read_csv(kdir / "arrhenius.csv")
    assert list(arr.columns) == ["temperature_K", "from_state", "to_state", "rate_per_ps",
                                 "ci_low", "ci_high"]  # fmt: skip
    js = json.loads((kdir / "arrhenius.json").read_text())
    assert {(t["from_state"], t["to_state"]) for t in js["transitions"]} == {(0, 1), (1, 0)}
    assert "comparison" in js["toy_ground_truth"]
    drift = pd.read_csv(kdir / "per_temperature.csv")  # train.per_temperature
    assert drift.temperature_K.tolist() == TEMPS
    assert drift.lag_ps.tolist() == [js["lag_ps"]] * 2
    assert ((drift.membership_overlap > 0) & (drift.membership_overlap <= 1 + 1e-9)).all()
    assert ((drift.argmax_agreement >= 0) & (drift.argmax_agreement <= 1)).all()
    cond = pd.read_csv(tmp_path / L.structure_file("toy", "conduction.csv"))
    assert cond.columns[0] == "temperature_K"
    assert cond.temperature_K.tolist() == [TEMPS[0]] * 4 + [TEMPS[1]] * 4
    assert (tmp_path / L.figure("toy_arrhenius", "png")).stat().st_size > 0
    report = (tmp_path / L.table("paper_comparison", "md")).read_text()
    assert "activation energies of toy (Arrhenius)" in report
    xyz = sorted((tmp_path / "results" / "export" / "toy" / "memberships").glob("*.extxyz"))
    assert len(xyz) == len(raw)
    frames = ase.io.read(xyz[0], index=":")
    assert 0 < len(frames) <= 1000
    assert {"state_prob_0", "state_prob_1", "state"} <= set(frames[0].arrays)
