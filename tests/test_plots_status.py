"""The Koopman panels say what the tables alone cannot (issues 21, 22).

From a synthetic ``summary.json``: when the data give no tau* the timescale panel says
"no τ*" with the reason and the CK / eigenvector headers call the tables' lag a fallback;
lag models whose training hit ``train.epochs`` unconverged are marked "×" and named. Each
case has its control (a summary with tau* and converged models), so the marks cannot be
drawn unconditionally.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from gdyn.errors import InputError
from gdyn.plots import plot_ck, plot_eigen, plot_timescales
from gdyn.plots.figures import figure_supp_fig1
from gdyn.plots.panels_koopman import lag_header, no_tau_star_reason, unconverged_lags

matplotlib.use("Agg")

LAGS = [1.0, 2.0, 5.0]
REASON = ("no lag qualifies (converged resolved timescales, CK pass): 1ps (process 1: "
          "t=40 ps not converged: ...); 2ps (CK test fails at this lag); 5ps (CK test fails "
          "at this lag); no tau*: the tables describe 5ps (largest lag with a resolved, "
          "unflagged slowest process, else the smallest lag)")


def summary(tau_star: float | None, unconverged: list[str]) -> dict:
    """The keys of a Koopman summary.json the panels read (docs/contracts.md)."""
    return {"tau_star_ps": tau_star, "analysis_lag_ps": 5.0 if tau_star is None else tau_star,
            "tau_star_reason": REASON if tau_star is None else "set in config",
            "unconverged_models": unconverged}  # fmt: skip


NO_TAU = summary(None, ["gdynet-s2-lag2ps"])
GOOD = summary(5.0, [])


def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ts = pd.DataFrame({"lag_ps": LAGS * 2, "process": [1] * 3 + [2] * 3,
                       "timescale_ps": [40.0, 44.0, 47.0, 9.0, 9.5, 9.8],
                       "ci_low_ps": [35, 40, 43, 8, 8.5, 9], "ci_high_ps": [45, 48, 52, 10, 10.5, 11]})
    rows = [{"tau_ps": 5.0, "step": n, "lag_ps": 5.0 * n, "from_state": i, "to_state": j,
             "predicted": p, "predicted_ci_low": p - 0.01, "predicted_ci_high": p + 0.01,
             "estimated": p, "estimated_ci_low": p - 0.02, "estimated_ci_high": p + 0.02,
             "near_empty": False, "pass": True}
            for n in (1, 2) for i in range(2) for j in range(2)
            for p in [0.9 if i == j else 0.1]]  # fmt: skip
    eigen = pd.DataFrame({"tau_ps": 5.0, "process": [1, 1], "timescale_ps": 47.0, "state": [0, 1],
                          "component": [-0.5, 1.0], "ci_low": [-0.6, 0.9], "ci_high": [-0.4, 1.1],
                          "near_empty": False})  # fmt: skip
    return ts, pd.DataFrame(rows), eigen


def cross_marks(ax: matplotlib.axes.Axes) -> list[list[float]]:
    """x data of the "×" marks drawn on the timescale curves (legend proxies have none)."""
    return [list(np.asarray(ln.get_xdata(), float)) for ln in ax.get_lines()
            if ln.get_marker() == "x" and len(ln.get_xdata())]  # fmt: skip


def draw(s: dict | None) -> tuple[matplotlib.figure.Figure, matplotlib.axes.Axes, list]:
    import matplotlib.pyplot as plt

    ts, ck, eigen = tables()
    fig = plt.figure(figsize=(6, 9))
    grid = fig.add_gridspec(3, 1)
    ax = fig.add_subplot(grid[0])
    plot_timescales(ax, ts, 5.0, title="GDyNet", summary=s)
    eaxes = plot_eigen(fig, grid[1], eigen, summary=s)
    plot_ck(fig, grid[2], ck, summary=s)
    return fig, ax, eaxes


def test_no_tau_star_is_said_with_its_reason_and_unconverged_lags_are_marked() -> None:
    import matplotlib.pyplot as plt

    try:
        fig, ax, eaxes = draw(NO_TAU)
        title = ax.get_title().replace("\n", " ")
        assert title.startswith("GDyNet no τ*: no lag qualifies (converged resolved timescales, "
                                "CK pass) (tables at 5 ps)")
        assert [t.get_text() for t in ax.texts] == ["no τ*"]  # the fallback line, not "τ*"
        assert cross_marks(ax) == [[2.0], [2.0]]  # both processes at the unconverged 2 ps model
        assert "training unconverged" in ax.get_legend_handles_labels()[1]
        heads = [t.get_text() for t in fig.texts]
        assert "CK test at no τ* (fallback lag 5 ps): PASS" in heads
        assert eaxes[0].get_ylabel() == "eigenvector component\nat no τ* (fallback lag 5 ps)"
    finally:
        plt.close("all")


@pytest.mark.parametrize("s", [GOOD, None], ids=["tau-star", "no-summary"])
def test_a_run_with_tau_star_and_converged_models_draws_as_before(s: dict | None) -> None:
    import matplotlib.pyplot as plt

    try:
        fig, ax, eaxes = draw(s)
        assert ax.get_title() == "GDyNet"
        assert [t.get_text() for t in ax.texts] == ["τ*"]
        assert cross_marks(ax) == []
        assert "training unconverged" not in ax.get_legend_handles_labels()[1]
        assert "CK test at τ* = 5 ps: PASS" in [t.get_text() for t in fig.texts]
        assert eaxes[0].get_ylabel() == "eigenvector component\nat τ* = 5 ps"
    finally:
        plt.close("all")


def test_the_unconverged_tau_star_model_is_named_in_the_headers() -> None:
    s = summary(5.0, ["gdynet-s2-lag5ps", "gdynet-s2-lag1ps"])
    assert unconverged_lags(s) == [1.0, 5.0]
    assert lag_header(5.0, ("ps", 1.0), s) == "τ* = 5 ps, training unconverged"
    assert lag_header(2.0, ("ps", 1.0), s) == "τ* = 2 ps"
    assert lag_header(5000.0, ("ns", 1e-3), summary(None, [])) == "no τ* (fallback lag 5 ns)"
    assert no_tau_star_reason(NO_TAU) == ("no lag qualifies (converged resolved timescales, "
                                          "CK pass)")
    assert no_tau_star_reason(GOOD) is None and no_tau_star_reason(None) is None
    with pytest.raises(InputError, match=r"unconverged_models.*'gdynet'"):
        unconverged_lags({"unconverged_models": ["gdynet"]})


def test_figures_read_the_summary(tmp_path: Path) -> None:
    """Supp. Fig. 1 (no tau* drawn, as in the paper) still marks the unconverged models; a
    summary without tau_star_ps is refused by name."""
    import matplotlib.pyplot as plt

    ts, _, _ = tables()
    ts.to_csv(tmp_path / "timescales.csv", index=False)
    (tmp_path / "summary.json").write_text(json.dumps(NO_TAU))
    inputs = {"timescales": str(tmp_path / "timescales.csv"),
              "summary": str(tmp_path / "summary.json")}
    try:
        fig = figure_supp_fig1(inputs)
        (ax,) = fig.axes
        assert cross_marks(ax) == [[2.0], [2.0]]
        assert "no τ*" not in ax.get_title()  # the paper's panel has no tau* to miss
    finally:
        plt.close("all")
    (tmp_path / "summary.json").write_text(json.dumps({"model": "vampnet"}))
    with pytest.raises(InputError, match=r"summary\.json: Koopman summary: expected "
                                         r"key 'tau_star_ps'"):
        figure_supp_fig1(inputs)
