"""The figure/table DAG and a tiny end-to-end run that ends in the report.

The dry-run tests check the wiring (each figure needs only its own inputs; `all` holds
exactly the figures the config lists). The ``e2e`` tests run the whole toy workflow on
tests/e2e/tiny.yaml (a few hundred frames, one epoch) in a temporary directory, then
``snakemake --report``, and validate every figure, table and the report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import check_png, pdf_pages, pdf_subject

from gdyn import config as gc
from gdyn.compare.roles import NOT_RUN

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "e2e" / "tiny.yaml"


def _env() -> dict[str, str]:
    # Rules call the `gdyn` console script: make this interpreter's one first on PATH.
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        *args,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=workdir
    )


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """``{rule: count}`` of a dry run."""
    proc = snakemake(workdir, *args, "-n", "--quiet", "rules", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", text, re.M)}


# ----------------------------------------------------------------------------- DAG wiring


def test_one_figure_needs_only_its_inputs(tmp_path: Path) -> None:
    jobs = planned_jobs(tmp_path, "results/figures/supp_fig1.pdf", "--configfile", str(TINY))
    assert jobs.get("figure_supp_fig1") == 1
    # Supp. Fig. 1 is the largest global VAMPnet's timescales: no GDyNet, graphs or structure.
    assert not {"train_gdynet", "graphs", "rdf", "figure_fig2", "paper_comparison"} & set(jobs)
    assert jobs.get("koopman") == 1


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/paper.yaml"])
def test_all_holds_exactly_the_configured_figures(tmp_path: Path, configfile: str) -> None:
    systems = gc.load_yaml(ROOT / configfile)["systems"]
    listed = {f for s in systems.values() for f in s.get("figures", [])}
    jobs = planned_jobs(tmp_path, "all", "--configfile", str(ROOT / configfile))
    made = {r.split("_", 1)[1] for r in jobs if r.startswith(("figure_", "table_"))}
    assert made == listed
    assert jobs.get("paper_comparison") == 1


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("e2e")
    run = snakemake(work, "--configfile", str(TINY), "--cores", "2", "all", timeout=1800)
    if run.returncode != 0:
        logs = (
            sorted((work / "results" / "logs").rglob("*.log"))
            if (work / "results").exists()
            else []
        )
        tails = "\n".join(f"--- {p.relative_to(work)}\n{p.read_text()[-800:]}" for p in logs[-5:])
        pytest.fail(f"snakemake all failed:\n{run.stderr[-4000:]}\n{tails}")
    rep = snakemake(work, "--configfile", str(TINY), "--report", "results/report.html", timeout=600)
    assert rep.returncode == 0, rep.stderr[-4000:]
    return work


def _tiny_systems() -> dict:
    return gc.load_yaml(TINY)["systems"]


@pytest.mark.e2e
@pytest.mark.slow
def test_every_toy_figure_is_a_valid_pdf_and_png(tiny_run: Path) -> None:
    systems = _tiny_systems()
    figures = [f for s in systems.values() for f in s["figures"] if not f.startswith("supp_table")]
    assert figures
    label = systems["toy"]["data_label"]
    for name in figures:
        pdf = tiny_run / "results" / "figures" / f"{name}.pdf"
        png = tiny_run / "results" / "figures" / f"{name}.png"
        assert pdf_pages(pdf) == 1
        check_png(png)
        assert pdf_subject(pdf) == f"Data: {label}"


@pytest.mark.e2e
@pytest.mark.slow
def test_tables_match_the_csvs_they_come_from(tiny_run: Path) -> None:
    systems = _tiny_systems()
    res = tiny_run / "results"
    for name in (f for s in systems.values() for f in s["figures"] if f.startswith("supp_table")):
        assert (res / "tables" / f"{name}.csv").stat().st_size > 0
        assert (res / "tables" / f"{name}.md").read_text().startswith("# Supplementary Table")
    table = pd.read_csv(res / "tables" / "paper_comparison.csv")
    expected = {"role", "quantity", "paper_value", "system", "run_value", "run_ci_low",
                "run_ci_high", "run_data", "status", "paper_data"}  # fmt: skip
    assert expected <= set(table.columns)
    rows = table.set_index("quantity")
    summary = json.loads((res / "koopman/toy/gdynet-s2/summary.json").read_text())
    gdy = rows.loc["GDyNet relaxation timescale (2 states)"]
    assert gdy["paper_value"] == pytest.approx(42.3)
    assert gdy["run_value"] == pytest.approx(summary["timescales_ps"][0])
    vamp = json.loads((res / "koopman/toy/vampnet-s2/summary.json").read_text())
    assert rows.loc["global VAMPnet relaxation timescale (2 states)", "run_value"] == pytest.approx(
        vamp["timescales_ps"][0]
    )
    vamp3 = json.loads((res / "koopman/toy/vampnet-s3/summary.json").read_text())
    big = rows.loc["slowest timescale of the 8-state global VAMPnet"]
    assert big["run_value"] == pytest.approx(vamp3["timescales_ps"][0])
    assert "largest: 3" in big["note"]
    # Si-Au and PEO are not in the tiny config, and the toy is flagged as simulated.
    other = table[table["role"] != "toy"]
    assert (other["status"] == NOT_RUN).all()
    assert table.loc[table["role"] == "toy", "run_data"].str.contains("simulated").all()
    md = (res / "tables" / "paper_comparison.md").read_text()
    assert "different potential parametrisation" in md and "not run in this config" in md


@pytest.mark.e2e
@pytest.mark.slow
def test_report_holds_every_figure_and_table(tiny_run: Path) -> None:
    report = tiny_run / "results" / "report.html"
    html = report.read_text(errors="replace")
    assert report.stat().st_size > 50_000 and "<html" in html.lower()
    systems = _tiny_systems()
    names = [f for s in systems.values() for f in s["figures"]]
    for name in names:
        ext = "csv" if name.startswith("supp_table") else "png"
        assert f"{name}.{ext}" in html, f"{name} missing from the report"
    assert "paper_comparison.csv" in html
    # The captions are rendered (their text, with the data label filled in).
    assert "Chapman-Kolmogorov" in html
    assert systems["toy"]["data_label"] in html
