"""The tiny workflow with ``graph: {store: false}``: no graphs rule, no store, same models.

Runs ``snakemake all`` on tests/e2e/tiny.yaml with the graphs built on the fly, then trains
one of its GDyNets again from graph stores (``gdyn graphs`` + ``gdyn train``, as the
store-based workflow does) and checks the probabilities are identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_report_e2e import TINY, _env, planned_jobs, snakemake

from gdyn import layout as L


def _gdyn(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from gdyn.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=_env(), capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def live_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    cfg["systems"]["toy"]["graph"]["store"] = False
    path = tmp_path_factory.mktemp("cfg") / "tiny_on_the_fly.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_no_graphs_rule_without_a_store(tmp_path: Path, live_config: Path) -> None:
    jobs = planned_jobs(tmp_path, "all", "--configfile", str(live_config))
    assert "graphs" not in jobs
    assert jobs["train_gdynet"] == 2 and jobs["figure_fig2"] == 1
    assert planned_jobs(tmp_path, "all", "--configfile", str(TINY))["graphs"] == 8


@pytest.mark.e2e
@pytest.mark.slow
def test_tiny_workflow_on_the_fly_equals_the_store(tmp_path: Path, live_config: Path) -> None:
    run = snakemake(tmp_path, "--configfile", str(live_config), "--cores", "2", "all",
                    timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    res = tmp_path / "results"
    assert not (res / "graphs").exists()
    assert (res / "figures" / "fig2.pdf").stat().st_size > 0
    summary = json.loads((res / "koopman" / "toy" / "gdynet-s2" / "summary.json").read_text())
    assert np.isfinite(summary["timescales_ps"][0])

    # The same model from graph stores, as the store-based workflow trains it.
    cfg = yaml.safe_load(TINY.read_text())["systems"]["toy"]
    pieces = {part: sorted((res / "split" / "toy" / part).glob("*.npz")) for part in L.PARTS}
    args = ["train", "gdynet", str(tmp_path / "stored"), "--n-states", "2", "--lag-ps", "1.0",
            "--settings", json.dumps(cfg["train"])]
    for part, paths in pieces.items():
        stores = []
        for p in paths:
            store = tmp_path / "graphs" / part / p.stem
            made = _gdyn("graphs", str(p), str(store), "--n-neighbors", "12", "--n-conv", "3",
                         "--quiet")
            assert made.returncode == 0, made.stderr[-2000:]
            stores.append(str(store))
        args += [f"--{part}", *map(str, paths), f"--{part}-graphs", *stores]
    done = _gdyn(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    live = Path(L.model_dir("toy", "gdynet", 2, "1ps"))
    for part in L.PARTS:
        a = np.load(tmp_path / live / f"probs_{part}.npz")
        b = np.load(tmp_path / "stored" / f"probs_{part}.npz")
        assert all(np.array_equal(a[k], b[k]) for k in a.files), part
