"""Every headline number of the paper and how this run's value is read from its outputs."""


from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn import config as gc
from gdyn import layout
from gdyn.analysis import summary_lag_ps
from gdyn.koopman import parse_ci, spectrum
from gdyn.plots import charge_per_state

if TYPE_CHECKING:
    import pandas as pd
from gdyn.compare.roles import MISSING_MODEL, Context, Headline, Value, toy_models

# ----------------------------------------------------------------------------- extraction


def _near(a: Any, b: float) -> Any:
    return np.isclose(np.asarray(a, dtype=float), b, rtol=1e-6, atol=1e-9)


def _at_tau(frame: pd.DataFrame, column: str, tau: float | None) -> pd.DataFrame:
    """Rows at tau* when the table has several lags (a single lag is tau* by contract)."""
    if tau is None or frame[column].nunique() <= 1:
        return frame
    return frame[_near(frame[column], tau)]


def timescale(model_key: str, process: int, scale: float = 1.0) -> Callable[[Context], Value]:
    """Timescale of relaxation ``process`` at tau* (summary.json), CI from timescales.csv."""

    def extract(ctx: Context) -> Value:
        if model_key == "analysed":
            model, n = gc.analysed(ctx.settings)
        else:
            found = toy_models(ctx.settings).get(model_key)
            if found is None:
                return Value(status=MISSING_MODEL[model_key])
            model, n = found
        summary = ctx.json(f"{model}-s{n}:summary.json")
        if summary is None:
            return Value(status="not computed")
        ts = list(summary.get("timescales_ps", []))
        if process > len(ts):
            return Value(status=f"{model} has {n} states: no process {process}")
        tau = float(summary_lag_ps(summary))
        flags = list(summary.get("timescale_flags") or [])
        flag = flags[process - 1] if process <= len(flags) else "resolved"
        if ts[process - 1] is None:
            return Value(status=f"no process {process} at τ* ({flag.replace('_', ' ')}: "
                                f"near-empty states {summary.get('near_empty_states')})")
        out = Value(value=float(ts[process - 1]) * scale)
        table = ctx.csv(f"{model}-s{n}:timescales.csv", "timescales")
        if table is not None:
            row = table[_near(table["lag_ps"], tau) & (table["process"] == process)]
            if not row.empty:
                out.ci_low = float(row["ci_low_ps"].iloc[0]) * scale
                out.ci_high = float(row["ci_high_ps"].iloc[0]) * scale
        unit, s = ("ns", 1e-3) if tau >= 1000 else ("ps", 1.0)
        out.note = f"{model}, {n} states, {_lag_note(summary, f'{tau * s:g} {unit}')}"
        if model_key == "vampnet_max" and n != 8:
            out.note += f" (paper: 8 states, this config's largest: {n})"
        if flag != "resolved":
            out.note += f"; flagged {flag.replace('_', ' ')}"
        if summary.get("near_empty_states"):
            out.note += f"; near-empty states {summary['near_empty_states']} excluded"
        if summary.get("ck_pass") is False:
            out.note += "; CK FAIL"
        return out

    return extract


def global_timescale_from_local(
    k_local: np.ndarray, tau_ps: float, n_oct: int = 4, n_tet: int = 8
) -> float:
    """Slowest relaxation (ps) of the 12-site global model built from the 2-state one.

    Supp. Note 2, Eq. 2: an octahedral site keeps p_o and sends (1 - p_o)/n_tet to each
    tetrahedral site; a tetrahedral site keeps p_t and sends (1 - p_t)/n_oct to each
    octahedral site. Which learned state is octahedral does not change the slowest
    timescale (the spectrum is {1, p_o + p_t - 1, p_o, p_t} up to multiplicity).
    """
    p_o, p_t = float(k_local[0, 0]), float(k_local[1, 1])
    n = n_oct + n_tet
    k = np.zeros((n, n))
    k[:n_oct, :n_oct] = np.eye(n_oct) * p_o
    k[:n_oct, n_oct:] = (1.0 - p_o) / n_tet
    k[n_oct:, :n_oct] = (1.0 - p_t) / n_oct
    k[n_oct:, n_oct:] = np.eye(n_tet) * p_t
    mags = np.sort(np.abs(np.linalg.eigvals(k)))[::-1]
    slowest = mags[1]
    if not 0.0 < slowest < 1.0:
        return math.inf if slowest >= 1.0 else math.nan
    return -tau_ps / math.log(slowest)


def local_koopman_matrix(t1_ps: float, populations: list[float], tau_ps: float) -> np.ndarray:
    """The 2-state K(tau) with stationary ``populations`` and relaxation time ``t1_ps``.

    A 2-state stochastic matrix is fixed by its stationary distribution pi and its second
    eigenvalue lambda: the off-diagonals are pi_1 (1 - lambda) and pi_0 (1 - lambda).
    """
    lam = math.exp(-tau_ps / t1_ps)
    pi0, pi1 = populations[0], populations[1]
    return np.array(
        [[1.0 - pi1 * (1.0 - lam), pi1 * (1.0 - lam)], [pi0 * (1.0 - lam), 1.0 - pi0 * (1.0 - lam)]]
    )


def rebuilt_global_timescales(k_local: np.ndarray, tau_ps: float) -> np.ndarray:
    """The rebuilt global timescale (:func:`global_timescale_from_local`, ps) of each
    (R, 2, 2) local K, through its relaxation time and populations as for the point value
    (NaN where K has no real positive second eigenvalue)."""
    out = np.full(len(k_local), np.nan)
    for r, k in enumerate(np.asarray(k_local, dtype=float)):
        if not np.all(np.isfinite(k)):
            continue
        spec = spectrum(k)
        t1 = float(spec.timescales(tau_ps)[0])
        if math.isfinite(t1) and t1 > 0:
            pops = [float(p) for p in spec.stationary]
            out[r] = global_timescale_from_local(local_koopman_matrix(t1, pops, tau_ps), tau_ps)
    return out


def rebuilt_global_interval(
    k_replicates: np.ndarray, tau_ps: float, ci: Mapping[str, Any] | None
) -> tuple[float, float]:
    """Interval of the rebuilt global timescale from the 2-state K on the uncertainty
    engine's replicates (``replicates.csv``): the rebuild evaluated on every resample and
    the run's own interval rule (``ci``: ``{"method", "level"}`` from summary.json;
    percentile for the bootstrap, geometric Student-t for CI groups)."""
    settings = parse_ci(ci, "summary.json key 'ci")
    lo, hi = settings.interval(rebuilt_global_timescales(k_replicates, tau_ps)[:, None],
                               log_scale=True)  # fmt: skip
    return float(lo[0]), float(hi[0])


def _replicate_matrices(table: pd.DataFrame, tau: float) -> np.ndarray | None:
    """(R, s, s) K of every replicate in ``replicates.csv`` at tau* (None when absent)."""
    rows = table[_near(table["tau_ps"], tau)]
    if rows.empty:
        return None
    r, i, j = (rows[c].to_numpy(int) for c in ("replicate", "from_state", "to_state"))
    k = np.full((r.max() + 1, i.max() + 1, j.max() + 1), np.nan)
    k[r, i, j] = rows["value"].to_numpy(float)
    return k


def global_from_local(ctx: Context) -> Value:
    """Supp. Note 2: the slowest global timescale rebuilt from the 2-state GDyNet model.

    The interval is the rebuild evaluated on each of the uncertainty engine's replicates of
    the GDyNet's K(tau*) (``replicates.csv``, the resamples behind its timescale and
    population intervals), under the run's interval rule (:func:`rebuilt_global_interval`),
    so the correlation of the relaxation time and the population is kept.
    """
    if "gdynet2" not in toy_models(ctx.settings):
        return Value(status="no 2-state GDyNet in this config")
    summary = ctx.json("gdynet-s2:summary.json")
    if summary is None:
        return Value(status="not computed")
    tau = float(summary_lag_ps(summary))
    if summary["timescales_ps"][0] is None or None in summary["populations"][:2]:
        return Value(status="the 2-state GDyNet has a near-empty state: no global model")
    t1 = float(summary["timescales_ps"][0])
    pops = [float(p) for p in summary["populations"]]
    if not (math.isfinite(t1) and t1 > 0):
        return Value(status=f"GDyNet timescale at τ* is {t1}: no global model")
    k_local = local_koopman_matrix(t1, pops, tau)
    out = Value(
        value=global_timescale_from_local(k_local, tau),
        note=f"from the 2-state GDyNet K(τ* = {tau:g} ps): p_00 = {k_local[0, 0]:.4f}, p_11 = {k_local[1, 1]:.4f}",
    )
    table = ctx.csv("gdynet-s2:replicates.csv", "replicates")
    k_reps = None if table is None else _replicate_matrices(table, tau)
    if k_reps is not None and k_reps.shape[1:] == (2, 2):
        ci = {"method": summary.get("ci_method", "bootstrap")}
        if summary.get("ci_level") is not None:
            ci["level"] = float(summary["ci_level"])
        out.ci_low, out.ci_high = rebuilt_global_interval(k_reps, tau, ci)
        out.note += f"; CI: the rebuild on the {len(k_reps)} replicates of K(τ*)"
    return out


def toy_tet_population(ctx: Context) -> Value:
    """Population (percent) of the 2-state GDyNet's less populated (tetrahedral) state at tau*."""
    if "gdynet2" not in toy_models(ctx.settings):
        return Value(status="no 2-state GDyNet in this config")
    summary = ctx.json("gdynet-s2:summary.json")
    table = ctx.csv("gdynet-s2:populations.csv", "populations") if summary else None
    if summary is None or table is None:
        return Value(status="not computed")
    tau = float(summary_lag_ps(summary))
    rows = _at_tau(table, "tau_ps", tau)
    row = rows[rows["state"] == 1]  # states are ordered by decreasing population
    if row.empty:
        return Value(status="state 1 missing from populations.csv")
    return Value(
        value=100.0 * float(row["population"].iloc[0]),
        ci_low=100.0 * float(row["ci_low"].iloc[0]),
        ci_high=100.0 * float(row["ci_high"].iloc[0]),
        note=f"gdynet, 2 states, less populated state, {_lag_note(summary, f'{tau:g} ps')}",
    )


def population(state: int) -> Callable[[Context], Value]:
    """Stationary population of ``state`` (percent) at tau* with its CI."""

    def extract(ctx: Context) -> Value:
        model, n = gc.analysed(ctx.settings)
        if n != layout.AUTO and state >= n:
            return Value(status=f"{model} has {n} states: no state {state}")
        summary = ctx.json(f"{model}-s{n}:summary.json")
        table = ctx.csv(f"{model}-s{n}:populations.csv", "populations") if summary else None
        if summary is None or table is None:
            return Value(status="not computed")
        if n == layout.AUTO:  # koopman.n_states: auto: the selected count
            n = int(summary["n_states"])
            if state >= n:
                return Value(status=f"{model} has {n} states (selected): no state {state}")
        tau = float(summary_lag_ps(summary))
        rows = _at_tau(table, "tau_ps", tau)
        row = rows[rows["state"] == state]
        if row.empty:
            return Value(status=f"state {state} missing from populations.csv")
        if "near_empty" in row.columns and bool(row["near_empty"].iloc[0]):
            return Value(status=f"state {state} is near-empty: excluded from the Koopman model")
        return Value(
            value=100.0 * float(row["population"].iloc[0]),
            ci_low=100.0 * float(row["ci_low"].iloc[0]),
            ci_high=100.0 * float(row["ci_high"].iloc[0]),
            note=f"{model}, {n} states, {_lag_note(summary, f'{tau:g} ps')}",
        )

    return extract


def _lag_note(summary: dict[str, Any], lag: str) -> str:
    """The lag of a row's numbers: tau*, or the lag the tables fell back to when the Koopman
    stage found no tau*; and the lag models whose training hit train.epochs unconverged."""
    note = f"τ* = {lag}" if summary.get("tau_star_ps") is not None else (
        f"no τ* (tables at {lag}: {summary.get('tau_star_reason', 'see summary.json')})")
    if summary.get("unconverged_models"):
        note += f"; training unconverged: {', '.join(summary['unconverged_models'])}"
    return note


def _tau_star(ctx: Context) -> float | None:
    model, n = gc.analysed(ctx.settings)
    summary = ctx.json(f"{model}-s{n}:summary.json")
    return None if summary is None else float(summary_lag_ps(summary))


def conduction_share(i: int, j: int) -> Callable[[Context], Value]:
    """Percent of the conduction carried by transition i -> j (Fig. 5)."""

    def extract(ctx: Context) -> Value:
        table = ctx.csv("conduction.csv", "conduction")
        if table is None:
            return Value(status="no conduction analysis in this config")
        if "temperature_K" in table:
            return Value(status="conduction per temperature (a temperature series): no "
                                "single share")  # fmt: skip
        rows = _at_tau(table, "tau_ps", _tau_star(ctx)) if "tau_ps" in table else table
        row = rows[(rows["from_state"] == i) & (rows["to_state"] == j)]
        if row.empty:
            return Value(status=f"transition {i}→{j} missing from conduction.csv")
        return Value(
            value=float(row["percent"].iloc[0]),
            ci_low=float(row["ci_low_percent"].iloc[0]),
            ci_high=float(row["ci_high_percent"].iloc[0]),
        )

    return extract


def state_charge(state: int) -> Callable[[Context], Value]:
    """Charge of ``state`` within its first solvation shell r* (Supp. Table 1)."""

    def extract(ctx: Context) -> Value:
        table = ctx.csv("charge.csv", "charge")
        if table is None:
            return Value(status="no charge analysis in this config")
        per_state = charge_per_state(table, ctx.path("charge.csv") or "charge.csv")
        row = per_state[per_state["state"] == state]
        if row.empty:
            return Value(status=f"state {state} missing from charge.csv")
        return Value(
            value=float(row["charge_e"].iloc[0]),
            note=f"r* = {float(row['r_star_A'].iloc[0]):.2f} Å",
        )

    return extract


def diffusion(i: int, j: int) -> Callable[[Context], Value]:
    """D_ij at tau* in 1e-7 cm^2/s (Supp. Table 2)."""

    def extract(ctx: Context) -> Value:
        table = ctx.csv("diffusion.csv", "diffusion")
        if table is None:
            return Value(status="no conduction analysis in this config")
        if "temperature_K" in table:
            return Value(status="conduction per temperature (a temperature series): no "
                                "single share")  # fmt: skip
        rows = _at_tau(table, "tau_ps", _tau_star(ctx))
        row = rows[(rows["from_state"] == i) & (rows["to_state"] == j)]
        if row.empty:
            return Value(status=f"transition {i}→{j} missing from diffusion.csv")
        return Value(
            value=float(row["D_cm2_per_s"].iloc[0]) / 1e-7,
            ci_low=float(row["ci_low_cm2_per_s"].iloc[0]) / 1e-7,
            ci_high=float(row["ci_high_cm2_per_s"].iloc[0]) / 1e-7,
        )

    return extract


# Supp. Table 2 of the paper, 1e-7 cm^2/s: (value, ±) for i (rows) -> j (columns).
PAPER_D = (
    ((3.9, 0.2), (4.6, 0.1), (4.6, 0.2), (4.0, 0.2)),
    ((4.5, 0.2), (4.3, 0.1), (4.6, 0.1), (4.4, 0.2)),
    ((4.4, 0.1), (4.6, 0.1), (3.5, 0.0), (4.8, 0.7)),
    ((3.8, 0.1), (3.9, 0.1), (5.5, 0.6), (2.8, 0.2)),
)
PAPER_POPULATIONS = ((50.6, 0.8), (27.3, 0.4), (15.1, 0.4), (7.0, 0.9))
PAPER_CHARGES = (0.040, 0.262, -0.637, 0.889)
# The toy's tetrahedral population: the stationary vector [0.995, 0.0997] of the Koopman
# matrix at tau = 10 ps that the original code (txie-93/gdynet) publishes for the paper's run.
PAPER_TOY_TET = 0.0997 / (0.995 + 0.0997)
PAPER_TOY_TET_WHERE = "original code's published K(τ = 10 ps), Fig. 2"


def headlines() -> list[Headline]:
    """Every headline number of the paper, in reading order."""
    fig2, note2 = "main text, Fig. 2b", "Supp. Note 2"
    fig3 = "main text, Fig. 3d-e"
    # (role, quantity, paper value, unit, where, extractor)
    single = [
        ("toy", "tetrahedral population (2-state GDyNet)", 100 * PAPER_TOY_TET, "%", PAPER_TOY_TET_WHERE, toy_tet_population),
        ("toy", "GDyNet relaxation timescale (2 states)", 42.3, "ps", fig2, timescale("gdynet2", 1)),
        ("toy", "global VAMPnet relaxation timescale (2 states)", 236.0, "ps", fig2, timescale("vampnet2", 1)),
        ("toy", "slowest global timescale rebuilt from the local model", 531.0, "ps", note2, global_from_local),
        ("toy", "slowest timescale of the 8-state global VAMPnet", 528.0, "ps", "main text, Supp. Fig. 1", timescale("vampnet_max", 1)),
        ("siau", "relaxation 1: solid-liquid transition", 538.0, "ns", fig3, timescale("analysed", 1, 1e-3)),
        ("siau", "relaxation 2: solid Si into/out of the interface", 73.2, "ns", fig3, timescale("analysed", 2, 1e-3)),
        ("siau", "relaxation 3: liquid Si into/out of the interface", 2.26, "ns", fig3, timescale("analysed", 3, 1e-3)),
    ]  # fmt: skip
    rows = [Headline(r, q, v, None, u, w, f) for r, q, v, u, w, f in single]
    rows += [
        Headline("peo", f"population of state {s}", v, pm, "%", "main text, Fig. 4b", population(s), digits=".1f")
        for s, (v, pm) in enumerate(PAPER_POPULATIONS)
    ]  # fmt: skip
    rows.append(
        Headline("peo", "conduction carried by state 2 (2→2)", 40.0, None, "%", "main text, Fig. 5",
                 conduction_share(2, 2), approx=True, digits=".1f")
    )  # fmt: skip
    rows += [
        Headline("peo", f"charge of state {s} at r*", q, None, "e", "Supp. Table 1", state_charge(s), digits="+.3f")
        for s, q in enumerate(PAPER_CHARGES)
    ]  # fmt: skip
    rows += [
        Headline("peo", f"D_{i}{j} (transition {i}→{j})", v, pm, "1e-7 cm²/s", "Supp. Table 2", diffusion(i, j), digits=".2f", paper_digits=".1f")
        for i, row in enumerate(PAPER_D)
        for j, (v, pm) in enumerate(row)
    ]  # fmt: skip
    return rows
