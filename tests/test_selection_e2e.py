"""`koopman.n_states: auto` end to end on the tiny toy config (issue 16).

tests/e2e/tiny.yaml with two GDyNet state counts, two seeds and ``n_states: auto``: every
model trains both seeds and aligns its states to the first lag's model, ``gdyn select``
chooses the state count and tau*, ``gdyn select-koopman`` writes the selected Koopman
outputs, and the analyses and figures read them (a static DAG). The tiny models learn
little (seconds of training), so ``all_seeds_dead: keep``: this checks the wiring, the
selection logic is tested on a known chain in tests/test_selection.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import check_png
from test_report_e2e import TINY, planned_jobs, snakemake

from gdyn import layout as L

COUNTS = [2, 3]
ROOT_CONFIG = TINY.parents[2] / "config" / "config.yaml"


def auto_config(path: Path) -> Path:
    """tiny.yaml with n_states: auto over two GDyNet state counts and two seeds."""
    config = yaml.safe_load(TINY.read_text())
    toy = config["systems"]["toy"]
    toy["train"]["models"]["gdynet"] = COUNTS
    toy["train"]["seeds"] = [0, 1]
    toy["train"]["all_seeds_dead"] = "keep"
    toy["koopman"]["n_states"] = "auto"
    toy["koopman"]["tau_star_ps"] = None
    path.write_text(yaml.safe_dump(config))
    return path


def test_auto_dag_is_static_and_default_dag_unchanged(tmp_path: Path) -> None:
    cfg = auto_config(tmp_path / "auto.yaml")
    jobs = planned_jobs(tmp_path, "all", "--configfile", str(cfg))
    assert jobs["select"] == 1 and jobs["select_koopman"] == 1
    assert jobs["train_gdynet"] == 2 * len(COUNTS) and jobs["koopman"] == 4
    # The default and the tiny configs train one GDyNet count: no selection jobs.
    for configfile in (ROOT_CONFIG, TINY):
        jobs = planned_jobs(tmp_path, "all", "--configfile", str(configfile))
        assert "select" not in jobs and "select_koopman" not in jobs


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("e2e-auto")
    cfg = auto_config(work / "auto.yaml")
    run = snakemake(work, "--configfile", str(cfg), "--cores", "2", "all", timeout=1800)
    if run.returncode != 0:
        logs = sorted((work / "results" / "logs").rglob("*.log"))
        tails = "\n".join(f"--- {p.relative_to(work)}\n{p.read_text()[-800:]}" for p in logs[-5:])
        pytest.fail(f"snakemake all failed:\n{run.stderr[-4000:]}\n{tails}")
    rep = snakemake(work, "--configfile", str(cfg), "--report", "results/report.html",
                    timeout=600)
    assert rep.returncode == 0, rep.stderr[-4000:]
    return work


@pytest.mark.e2e
@pytest.mark.slow
def test_auto_selects_and_downstream_uses_the_selection(auto_run: Path) -> None:
    res = auto_run / "results"
    sel = json.loads((auto_run / L.selection("toy", "json")).read_text())
    assert sel["n_states"] in COUNTS and sel["model"] == "gdynet" and sel["reason"]
    table = pd.read_csv(auto_run / L.selection("toy", "csv"))
    assert len(table) == len(COUNTS) * 2 and table["selected"].sum() == 1
    assert (table["n_seeds"] == 2).all()
    check_png(auto_run / L.selection_figure("toy", "png"))
    assert (auto_run / L.selection_figure("toy", "pdf")).stat().st_size > 5000
    # The selected candidate's Koopman outputs at the selected tau*.
    summary = json.loads((auto_run / L.koopman_summary("toy", "gdynet", "auto")).read_text())
    n, tau = sel["n_states"], sel["tau_star_ps"]
    assert summary["n_states"] == n and summary["tau_star_ps"] == tau
    assert summary["probs_test"] == L.probs("toy", "gdynet", n, tau, "test")
    # The analyses read it: n state-weighted RDF curves, fig2 drawn from it.
    rdf = pd.read_csv(res / "structure" / "toy" / "rdf.csv")
    assert sorted(rdf["state"].unique()) == list(range(n))
    pos = pd.read_csv(auto_run / L.positions("toy", "gdynet", "auto"))
    assert [c for c in pos.columns if c.startswith("p")] == [f"p{i}" for i in range(n)]
    check_png(res / "figures" / "fig2.png")
    html = (res / "report.html").read_text(errors="replace")
    assert "toy_selection.png" in html


@pytest.mark.e2e
@pytest.mark.slow
def test_every_model_is_aligned_and_keeps_its_best_seed(auto_run: Path) -> None:
    for n in COUNTS:
        ref = L.probs("toy", "gdynet", n, 1.0, "val")
        for lag in (1.0, 2.0):
            d = auto_run / L.model_dir("toy", "gdynet", n, lag)
            al = json.loads((d / "alignment.json").read_text())
            cfg = json.loads((d / "config.json").read_text())
            assert sorted(al["permutation"]) == list(range(n))
            assert al["reference"] == (None if lag == 1.0 else ref)
            assert [r["seed"] for r in cfg["seeds"]] == [0, 1]
            metrics = pd.read_csv(d / "metrics.csv")
            assert sorted(metrics["seed"].unique()) == [0, 1]
            live = [r for r in cfg["seeds"] if not r["dead"]] or cfg["seeds"]
            best = max(live, key=lambda r: r["val_vamp2"])
            assert cfg["seed"] == best["seed"]
            with np.load(d / "probs_val.npz") as z:
                assert z["probs"].shape[-1] == n
