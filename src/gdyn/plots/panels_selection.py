"""The model-selection figure: VAMP-2 against lag and state count, CK verdicts marked.

``results/figures/{system}_selection.pdf|png`` (``gdyn select`` draws it from the
``selection.csv`` and ``selection.json`` it writes; docs/contracts.md):

* (a) validation VAMP-2 of the kept seed against the lag, one line per state count, bars
  from the lowest to the highest live seed, the test VAMP-2 as open diamonds;
* (b) the same against the state count, one line per lag (a count that adds nothing
  adds little VAMP-2);
* markers: filled circle = CK passes at a converged lag, open circle = CK passes but the
  timescales have not converged there, cross = CK fails, grey square = every seed's model
  dead (kept with ``all_seeds_dead: keep``); a star rings the selection.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.errors import InputError
from gdyn.files import read_json
from gdyn.plots import style

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "SELECTION_TITLE",
    "figure_selection",
    "plot_vamp2_vs_lag",
    "plot_vamp2_vs_states",
    "read_selection",
    "render_selection",
]

SELECTION_TITLE = "Model selection: n_states and tau* by the CK criterion"
REQUIRED = ("n_states", "lag_ps", "val_vamp2", "val_vamp2_min", "val_vamp2_max", "test_vamp2",
            "ck_pass", "converged", "selected")


def read_selection(csv: str | Path, json_path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``selection.csv`` (checked for its columns) and ``selection.json``."""
    import pandas as pd

    try:
        table = pd.read_csv(csv)
    except FileNotFoundError:
        raise InputError(f"{csv}: file not found") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise InputError(f"{csv}: column {missing[0]!r}: missing (expected the selection "
                         f"table of docs/contracts.md)")
    return table, read_json(json_path)


def _as_bool(x: Any) -> np.ndarray:
    """A CSV column of True/False (bool, or strings after a NaN) as a bool array."""
    return np.asarray(x).astype(str) == "True"


def _verdict_markers(ax: Axes, x: np.ndarray, y: np.ndarray, ck: np.ndarray,
                     conv: np.ndarray, color: str) -> None:
    ok = ck & conv
    ax.plot(x[ok], y[ok], "o", color=color, ms=4.5, zorder=3)
    ax.plot(x[ck & ~conv], y[ck & ~conv], "o", mfc="white", mec=color, ms=4.5, zorder=3)
    ax.plot(x[~ck], y[~ck], "x", color=color, ms=5, mew=1.2, zorder=3)


def _dead(ax: Axes, x: np.ndarray, y: np.ndarray, dead: np.ndarray) -> None:
    ax.plot(x[dead], y[dead], "s", mfc="none", mec="0.45", ms=7, mew=0.8, zorder=2)


def _selected(ax: Axes, x: float, y: float) -> None:
    ax.plot([x], [y], marker="*", ms=13, mfc="none", mec="black", mew=0.9, zorder=4)


def plot_vamp2_vs_lag(ax: Axes, table: pd.DataFrame) -> None:
    """Panel (a): validation VAMP-2 vs lag per state count (seed range, test, CK)."""
    counts = sorted(table["n_states"].unique())
    for i, n in enumerate(counts):
        rows = table[table["n_states"] == n].sort_values("lag_ps")
        color = style.state_color(i)
        x = rows["lag_ps"].to_numpy(float)
        y = rows["val_vamp2"].to_numpy(float)
        err = style.ci_yerr(y, rows["val_vamp2_min"], rows["val_vamp2_max"])
        ax.errorbar(x, y, yerr=err, color=color, lw=1.0, capsize=2, label=f"{n} states")
        ax.plot(x, rows["test_vamp2"].to_numpy(float), "D", mfc="none", mec=color, ms=3.5,
                lw=0)
        _verdict_markers(ax, x, y, _as_bool(rows["ck_pass"]), _as_bool(rows["converged"]), color)
        if "kept_dead" in rows:
            _dead(ax, x, y, _as_bool(rows["kept_dead"]))
        sel = _as_bool(rows["selected"])
        if sel.any():
            _selected(ax, float(x[sel][0]), float(y[sel][0]))
    ax.set_xscale("log")
    ax.set_xticks(sorted(table["lag_ps"].unique()))
    style.plain_log_ticks(ax.xaxis)
    ax.set_xlabel("lag time τ (ps)")
    ax.set_ylabel("VAMP-2")
    ax.legend(loc="best")


def plot_vamp2_vs_states(ax: Axes, table: pd.DataFrame) -> None:
    """Panel (b): validation VAMP-2 vs state count, one line per lag."""
    import matplotlib as mpl

    lags = sorted(table["lag_ps"].unique())
    cmap = mpl.colormaps["viridis"]
    counts = np.array(sorted(table["n_states"].unique()), dtype=float)
    for i, lag in enumerate(lags):
        rows = table[np.isclose(table["lag_ps"], lag)].sort_values("n_states")
        color = mpl.colors.to_hex(cmap(i / max(len(lags) - 1, 1) * 0.9))
        x = rows["n_states"].to_numpy(float)
        y = rows["val_vamp2"].to_numpy(float)
        ax.plot(x, y, "-", color=color, lw=0.9, label=f"τ = {lag:g} ps")
        _verdict_markers(ax, x, y, _as_bool(rows["ck_pass"]), _as_bool(rows["converged"]), color)
        if "kept_dead" in rows:
            _dead(ax, x, y, _as_bool(rows["kept_dead"]))
        sel = _as_bool(rows["selected"])
        if sel.any():
            _selected(ax, float(x[sel][0]), float(y[sel][0]))
    ax.set_xticks(counts)
    ax.set_xlabel("number of states")
    ax.set_ylabel("VAMP-2")
    ax.legend(loc="best", ncol=2 if len(lags) > 4 else 1)


def figure_selection(table: pd.DataFrame, selection: Mapping[str, Any]) -> Figure:
    """Both panels side by side, the marker key and the selection's reason below."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig = plt.figure(figsize=(style.DOUBLE_COLUMN_IN, 3.6))
    grid = fig.add_gridspec(1, 2, wspace=0.3, left=0.08, right=0.98, top=0.86, bottom=0.3)
    ax_a = fig.add_subplot(grid[0, 0])
    plot_vamp2_vs_lag(ax_a, table)
    style.panel_letter(ax_a, "a")
    ax_b = fig.add_subplot(grid[0, 1])
    plot_vamp2_vs_states(ax_b, table)
    style.panel_letter(ax_b, "b")
    key = [
        Line2D([], [], marker="o", color="0.3", lw=0, label="CK passes (converged lag)"),
        Line2D([], [], marker="o", mfc="white", mec="0.3", lw=0,
               label="CK passes (timescales not converged)"),
        Line2D([], [], marker="x", color="0.3", lw=0, label="CK fails"),
        Line2D([], [], marker="D", mfc="none", mec="0.3", lw=0, label="test VAMP-2"),
        Line2D([], [], marker="*", mfc="none", mec="black", ms=10, lw=0, label="selected"),
    ]
    if "kept_dead" in table and _as_bool(table["kept_dead"]).any():
        key.append(Line2D([], [], marker="s", mfc="none", mec="0.45", ms=7, lw=0,
                          label="every seed dead"))
    fig.legend(handles=key, loc="lower center", ncol=len(key), bbox_to_anchor=(0.5, 0.13),
               fontsize=6)
    n, tau = selection.get("n_states"), selection.get("tau_star_ps")
    verdict = "" if selection.get("passed", True) else " (criterion not met)"
    fig.suptitle(f"Selected: {n} states, τ* = {tau:g} ps{verdict}" if tau is not None
                 else f"Selected: {n} states", fontsize=8, y=0.98)
    reason = textwrap.fill(str(selection.get("reason", "")), 150)
    fig.text(0.02, 0.08, reason, fontsize=5.5, va="top", ha="left", color="0.25")
    return fig


def render_selection(
    csv: str | Path, json_path: str | Path, pdf: str | Path, png: str | Path | None = None,
    data_label: str = "", dpi: int = style.PNG_DPI,
) -> None:
    """Draw the selection figure from ``selection.csv`` / ``.json`` and write PDF (and PNG)."""
    table, sel = read_selection(csv, json_path)
    with style.paper_style():
        fig = figure_selection(table, sel)
        style.data_footer(fig, data_label)
        style.save_figure(fig, pdf, png, dpi=dpi, title=SELECTION_TITLE, data_label=data_label)
