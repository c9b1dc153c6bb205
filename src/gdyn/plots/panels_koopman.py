"""Panels of the Koopman analysis: implied timescales, CK test grid, eigenvectors.

One function per panel, drawing into axes (or a subplot spec) it is given; the figures
in :mod:`gdyn.plots.figures` compose them. Matplotlib is imported inside the functions.

Imperfect models stay readable (issue 15): near-empty states (the ``near_empty`` column of
the Koopman tables) are named, not drawn; the CK grid says PASS or FAIL (the ``pass``
column) and shades the panels of failing elements; flagged timescales (complex or negative
eigenvalues) are drawn hollow; no axis range is set by an excluded state or a runaway
confidence interval. Tables without the new columns (older runs) draw as before.

With the Koopman ``summary.json`` (``summary=``, issues 21-22) the panels also say what the
tables alone cannot: when the data give no tau* (``tau_star_ps`` null) the timescale panel
says "no τ*" with the reason and marks the lag the tables fell back to, and the CK and
eigenvector headers name that lag as the fallback instead of calling it tau*; lag models
whose training hit ``train.epochs`` unconverged (``unconverged_models``) are marked "×"
and named, as near-empty states are.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.errors import InputError
from gdyn.layout import parse_lag
from gdyn.plots import style
from gdyn.plots.io import _states

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.gridspec import SubplotSpec

Unit = tuple[str, float]  # display unit of times and the factor from ps, e.g. ("ns", 1e-3)

# Error bars / CI bands longer than this many times the largest plotted value do not set
# the y range of an eigenvector or timescale panel (they run off the axes instead).
CI_RANGE_CAP = 3.0
FAIL_COLOR = "#fbe3e3"  # background of a CK panel with a failing element


def figure_unit(*frames: pd.DataFrame) -> Unit:
    """One time unit for a whole figure, from the longest lag any of its tables holds."""
    longest = max(float(f["lag_ps"].max()) for f in frames if "lag_ps" in f.columns)
    return style.time_unit(longest)


def _process_colors(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.0, 0.85, max(n, 1))]


def _flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A bool column of a Koopman table (all False when an older table lacks it)."""
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[column].fillna(False).astype(bool).to_numpy()


def near_empty_states(frame: pd.DataFrame, column: str = "state") -> list[int]:
    """States a Koopman table flags ``near_empty`` (``column``: ``state`` or ``from_state``)."""
    if "near_empty" not in frame.columns:
        return []
    if column == "from_state":  # ck.csv: a state is excluded when its own row is
        diag = frame[frame["from_state"] == frame["to_state"]]
        return sorted({int(s) for s in diag.loc[_flag(diag, "near_empty"), "from_state"]})
    return sorted({int(s) for s in frame.loc[_flag(frame, "near_empty"), column]})


Summary = Mapping[str, Any]  # a Koopman summary.json (docs/contracts.md)


def no_tau_star_reason(summary: Summary | None) -> str | None:
    """Why the Koopman stage found no tau* (None when it has one or there is no summary).

    The first clause of ``tau_star_reason`` (the rule that no lag met); the per-lag
    rejections and the fallback sentence stay in summary.json.
    """
    if summary is None or summary.get("tau_star_ps") is not None:
        return None
    reason = str(summary.get("tau_star_reason") or "see summary.json")
    return reason.split(": ", 1)[0].split("; ", 1)[0]


def unconverged_lags(summary: Summary | None) -> list[float]:
    """Lags (ps) of the grid whose model's training hit ``train.epochs`` unconverged.

    Read from ``unconverged_models`` (model directory names ``{model}-s{n}-lag{lag}``,
    :func:`gdyn.layout.model_dir`).
    """
    out = []
    for name in (summary or {}).get("unconverged_models") or []:
        head, sep, label = str(name).rpartition("-lag")
        if not sep or not head:
            raise InputError(f"summary.json: key 'unconverged_models': expected model "
                             f"directory names '{{model}}-s{{n}}-lag{{lag}}', got {name!r}")
        out.append(parse_lag(label))
    return sorted(out)


def lag_header(tau_ps: float, unit: Unit, summary: Summary | None) -> str:
    """``τ* = 10 ps``, or ``no τ* (fallback lag 40 ps)`` when the summary has no tau*, with
    ``, training unconverged`` when that lag's model hit ``train.epochs``."""
    name, scale = unit
    lag = f"{tau_ps * scale:g} {name}"
    text = f"τ* = {lag}" if no_tau_star_reason(summary) is None else f"no τ* (fallback lag {lag})"
    if any(np.isclose(tau_ps, u, rtol=1e-6) for u in unconverged_lags(summary)):
        text += ", training unconverged"
    return text


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=7,
            wrap=True)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def plot_timescales(
    ax: Axes,
    ts: pd.DataFrame,
    tau_star_ps: float | None = None,
    title: str | None = None,
    unit: Unit | None = None,
    summary: Summary | None = None,
) -> None:
    """Relaxation timescales t_i(tau) vs lag with 95% CI bands and the t = tau line.

    Points of complex or negative eigenvalues (``complex`` / ``negative`` columns) are
    hollow; lags where a process does not exist (fewer surviving states) are gaps.
    ``tau_star_ps`` is the lag the Koopman tables describe (None: no line). With the Koopman
    ``summary``, when it has no tau* that lag is its fallback: a dashed line instead of τ*,
    and the title says "no τ*" with the reason; points at lags whose model's training was
    unconverged get "×" (with or without ``tau_star_ps``).
    """
    name, scale = unit or figure_unit(ts)
    reason = None if tau_star_ps is None else no_tau_star_reason(summary)
    bad_lags = unconverged_lags(summary)
    processes = sorted(int(p) for p in set(ts["process"]) if int(p) >= 1)
    lags = np.sort(np.unique(ts["lag_ps"].to_numpy(float))) * scale
    points: list[float] = []
    bands: list[float] = []
    any_flagged = False
    for color, p in zip(_process_colors(len(processes)), processes, strict=True):
        g = ts[ts["process"] == p].sort_values("lag_ps")
        x = g["lag_ps"].to_numpy(float) * scale
        y = g["timescale_ps"].to_numpy(float) * scale
        lo = g["ci_low_ps"].to_numpy(float) * scale
        hi = g["ci_high_ps"].to_numpy(float) * scale
        flagged = _flag(g, "complex") | _flag(g, "negative")
        ok = np.isfinite(y) & (y > 0)
        if not ok.any():
            continue
        ax.plot(x[ok], y[ok], "-", color=color, label=f"process {p}")
        ax.plot(x[ok & ~flagged], y[ok & ~flagged], "o", color=color)
        if (ok & flagged).any():
            any_flagged = True
            ax.plot(x[ok & flagged], y[ok & flagged], "o", mfc="white", color=color)
        unconverged = ok & np.isin(g["lag_ps"].to_numpy(float), bad_lags)
        if unconverged.any():
            ax.plot(x[unconverged], y[unconverged], "x", color="k", ms=6, mew=1.0, zorder=5)
        band = ok & np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
        if band.any():
            ax.fill_between(x[band], lo[band], hi[band], color=color, alpha=0.25, lw=0)
        points += [float(v) for v in y[ok]]
        bands += [float(v) for v in np.concatenate([lo[band], hi[band]])]
    ax.set_yscale("log")
    positive = [v for v in list(lags) + points if v > 0]
    if points:
        # CI bands extend the range, but a runaway band does not set it.
        top, bottom = max(points) * CI_RANGE_CAP**2, min(points) / CI_RANGE_CAP**2
        positive += [v for v in bands if bottom <= v <= top]
    ymin, ymax = min(positive) / 2.0, max(positive) * 3.0
    # Timescales below t = tau decay within one lag and cannot be resolved (shaded).
    xs = np.linspace(0.0, lags.max() * 1.03, 100)
    ax.plot(xs, xs, color="k", lw=0.8)
    ax.fill_between(xs, ymin, np.maximum(xs, ymin), color=style.REFERENCE_COLOR, alpha=0.35, lw=0)
    if reason is None and tau_star_ps is not None and np.isfinite(tau_star_ps):
        ax.axvline(tau_star_ps * scale, color="k", ls=":", lw=0.8)
        ax.annotate(
            "τ*", (tau_star_ps * scale, ymax), xytext=(2, -2), textcoords="offset points",
            ha="left", va="top", fontsize=7,
        )  # fmt: skip
    elif reason is not None and tau_star_ps is not None:
        ax.axvline(tau_star_ps * scale, color=style.REFERENCE_COLOR, ls="--", lw=0.8)
        right = tau_star_ps * scale > 0.8 * lags.max()  # the fallback is often the last lag
        ax.annotate(
            "no τ*", (tau_star_ps * scale, ymax), xytext=(-2 if right else 2, -2),
            textcoords="offset points", ha="right" if right else "left", va="top", fontsize=7,
        )  # fmt: skip
    ax.set_ylim(ymin, ymax)
    ax.set_xlim(0.0, lags.max() * 1.03)
    style.plain_log_ticks(ax.yaxis)
    ax.set_xlabel(f"lag time τ ({name})")
    ax.set_ylabel(f"relaxation timescale ({name})")
    lines = [title] if title else []
    if reason is not None and tau_star_ps is not None:
        lines += textwrap.wrap(f"no τ*: {reason} (tables at {tau_star_ps * scale:g} {name})", 48)
    if lines:
        ax.set_title("\n".join(lines), fontsize=7 if reason is not None else None)
    if any_flagged:
        ax.plot([], [], "o", mfc="white", color="k", label="complex/negative λ")
    if bad_lags:
        ax.plot([], [], "x", color="k", label="training unconverged")
    n_items = len(ax.get_legend_handles_labels()[1])
    if n_items == 0:
        return
    if n_items <= 3:
        ax.legend(loc="lower right", handlelength=1.2)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), handlelength=1.2)


def ck_verdict_label(ck: pd.DataFrame) -> str:
    """``PASS`` / ``FAIL`` from the table's ``pass`` column ("" for older tables)."""
    if "pass" not in ck.columns:
        return ""
    tested = ck["pass"].dropna()
    if tested.empty:
        return "FAIL"
    values = tested.astype(str).str.lower().isin(["true", "1", "1.0"])
    return "PASS" if bool(values.all()) else "FAIL"


def plot_ck(
    fig: Figure,
    spec: SubplotSpec,
    ck: pd.DataFrame,
    title: str | None = None,
    letter: str | None = None,
    unit: Unit | None = None,
    summary: Summary | None = None,
) -> list[Axes]:
    """CK test grid: K(n tau*) predicted (line, CI band) vs estimated (points, CI bars).

    One panel per pair of surviving states (near-empty states are named in the header, not
    drawn); the header says PASS or FAIL, and panels with a failing element are shaded. The y range
    is that of a probability, whatever the numbers. With the Koopman ``summary`` the header
    says "no τ*" when the table's lag is the fallback, and "training unconverged" when that
    lag's model hit ``train.epochs`` (:func:`lag_header`).
    """
    from matplotlib.transforms import ScaledTranslation

    name, scale = unit or figure_unit(ck)
    tau = float(ck["tau_ps"].iloc[0])
    excluded = near_empty_states(ck, "from_state")
    states = [
        s for s in sorted(set(_states(ck, "from_state")) | set(_states(ck, "to_state")))
        if s not in excluded
    ]  # fmt: skip
    verdict = ck_verdict_label(ck)
    box = spec.get_position(fig)
    up = lambda pts: fig.transFigure + ScaledTranslation(0, pts / 72, fig.dpi_scale_trans)  # noqa: E731
    head = f"CK test at {lag_header(tau, (name, scale), summary)}"
    if verdict:
        head += f": {verdict}"
    if excluded:
        head += f" (near-empty state{'s' if len(excluded) > 1 else ''} "
        head += f"{', '.join(map(str, excluded))} excluded)"
    fig.text(
        0.5 * (box.x0 + box.x1), box.y1, f"{title}: {head}" if title else head,
        transform=up(24), ha="center", va="bottom",
    )  # fmt: skip
    if len(states) < 2:
        ax = fig.add_subplot(spec)
        _note(ax, f"{len(states)} state(s) survive the near-empty rule: the model is "
                  "collapsed and has no CK test")  # fmt: skip
        if letter:
            style.panel_letter(ax, letter, dy_in=24 / 72 + 0.02)
        return [ax]
    n = len(states)
    passed = "pass" in ck.columns
    grid = spec.subgridspec(n, n, wspace=0.1, hspace=0.35)
    axes: list[Axes] = []
    first: Axes | None = None
    for a, i in enumerate(states):
        for b, j in enumerate(states):
            ax = fig.add_subplot(grid[a, b], sharex=first, sharey=first)
            first = first or ax
            axes.append(ax)
            g = ck[(ck["from_state"] == i) & (ck["to_state"] == j)].sort_values("lag_ps")
            x = g["lag_ps"].to_numpy(float) * scale
            ax.plot(x, g["predicted"].to_numpy(float), color=style.PREDICTED_COLOR)
            ax.fill_between(
                x,
                g["predicted_ci_low"].to_numpy(float),
                g["predicted_ci_high"].to_numpy(float),
                color=style.PREDICTED_COLOR,
                alpha=0.25,
                lw=0,
            )
            ax.errorbar(
                x,
                g["estimated"].to_numpy(float),
                yerr=style.ci_yerr(g["estimated"], g["estimated_ci_low"], g["estimated_ci_high"]),
                fmt="o",
                color=style.ESTIMATED_COLOR,
                ms=2.5,
                capsize=1.5,
                elinewidth=0.7,
            )
            ax.set_title(f"{i}→{j}", fontsize=7, pad=2)
            if passed and (g["pass"].astype(str).str.lower() == "false").any():
                ax.set_facecolor(FAIL_COLOR)  # an element outside the estimate's CI
            if a < n - 1:
                ax.tick_params(labelbottom=False)
            if b > 0:
                ax.tick_params(labelleft=False)
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].set_yticks([0.0, 0.5, 1.0])
    axes[0].set_xlim(0.0, float(ck["lag_ps"].max()) * scale * 1.08)
    axes[(n - 1) * n + n // 2].set_xlabel(f"lag time ({name})")
    axes[(n // 2) * n].set_ylabel("transition probability")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=style.PREDICTED_COLOR, label="predicted K(τ*)ⁿ"),
        Line2D(
            [], [], color=style.ESTIMATED_COLOR, marker="o", ls="", ms=3, label="estimated K(nτ*)"
        ),
    ]
    fig.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5 * (box.x0 + box.x1), box.y1),
        bbox_transform=up(11), ncol=2, handlelength=1.5, borderaxespad=0.0, borderpad=0.0,
    )  # fmt: skip
    if letter:
        style.panel_letter(axes[0], letter, dy_in=24 / 72 + 0.02)
    return axes


def _eigen_limits(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[float, float]:
    """y range of the eigenvector panels: the components and zero, widened by CIs that are
    not runaway (at most ``CI_RANGE_CAP`` times the largest component)."""
    v = values[np.isfinite(values)]
    span = float(np.max(np.abs(v))) if v.size else 1.0
    span = span if span > 0 else 1.0
    cap = CI_RANGE_CAP * span
    ends = [0.0, *v.tolist()]
    ends += [float(x) for x in np.concatenate([low, high]) if np.isfinite(x) and abs(x) <= cap]
    lo, hi = min(ends), max(ends)
    pad = 0.08 * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


def plot_eigen(
    fig: Figure,
    spec: SubplotSpec,
    eigen: pd.DataFrame,
    letter: str | None = None,
    unit: Unit | None = None,
    summary: Summary | None = None,
) -> list[Axes]:
    """Eigenvectors of K(tau*) projected onto the states, one bar panel per relaxation.

    Right eigenvectors normalised to ``sum_j pi_j r_j^2 = 1`` (pi: stationary distribution
    of the surviving states), largest component positive. Near-empty states are marked
    "×" (no component); the shared y range is set by the components, not by runaway CIs.
    With the Koopman ``summary`` the axis label names a fallback lag as such
    (:func:`lag_header`).
    """
    processes = sorted(int(p) for p in set(eigen["process"]) if int(p) >= 1)
    name, scale = unit or style.time_unit(float(eigen["tau_ps"].iloc[0]))
    tau = float(eigen["tau_ps"].iloc[0])
    excluded = set(near_empty_states(eigen))
    if not processes:
        ax = fig.add_subplot(spec)
        _note(ax, "no relaxation process: fewer than two states survive the near-empty rule "
                  "(model collapsed)")  # fmt: skip
        if letter:
            style.panel_letter(ax, letter)
        return [ax]
    rel = eigen[eigen["process"] >= 1]
    ylim = _eigen_limits(
        rel["component"].to_numpy(float), rel["ci_low"].to_numpy(float),
        rel["ci_high"].to_numpy(float),
    )  # fmt: skip
    grid = spec.subgridspec(1, max(len(processes), 1), wspace=0.12)
    axes: list[Axes] = []
    for k, p in enumerate(processes):
        ax = fig.add_subplot(grid[0, k], sharey=axes[0] if axes else None)
        axes.append(ax)
        g = eigen[eigen["process"] == p].sort_values("state")
        states = g["state"].to_numpy(int)
        comp = g["component"].to_numpy(float)
        keep = np.array([s not in excluded for s in states]) & np.isfinite(comp)
        ax.bar(
            states[keep],
            comp[keep],
            color=[style.state_color(s) for s in states[keep]],
            yerr=style.ci_yerr(comp[keep], g["ci_low"].to_numpy(float)[keep],
                               g["ci_high"].to_numpy(float)[keep]),
            capsize=1.5,
            error_kw={"elinewidth": 0.7},
            width=0.7,
        )  # fmt: skip
        for s in states[~keep]:
            ax.plot([s], [0.0], marker="x", color=style.REFERENCE_COLOR, ms=5, ls="")
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_xticks(states)
        ax.set_xlabel("state" + (" (× near-empty)" if excluded and k == 0 else ""))
        t = float(g["timescale_ps"].iloc[0]) * scale
        ax.set_title(f"process {p}\nt = {t:.3g} {name}")
        if k > 0:
            ax.tick_params(labelleft=False)
    axes[0].set_ylim(*ylim)
    axes[0].set_ylabel(f"eigenvector component\nat {lag_header(tau, (name, scale), summary)}")
    if letter:
        style.panel_letter(axes[0], letter)
    return axes
