"""The comparison table: paper value beside this run's, data sources, and caveats."""


from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.files import write_csv, write_text
from gdyn.toy import ToySettings

if TYPE_CHECKING:
    import pandas as pd
from gdyn.compare.arrhenius import arrhenius_section  # temperature series only (issue 25)
from gdyn.compare.headlines import headlines
from gdyn.compare.roles import NOT_RUN, ROLES, Context, Value, system_roles

# ----------------------------------------------------------------------------- report


def data_source(name: str, settings: Mapping[str, Any]) -> str:
    """This run's data source of one system (its config's ``data_label``)."""
    label = (
        settings.get("data_label")
        or f"{settings.get('source', '?')} ({settings.get('description', '')})"
    )
    return f"{name}: {label}"


# The settings that the toy's calibration fixes (docs/toy.md); the rest only sets the length.
CALIBRATED_KEYS = (
    "lattice_A", "temperature_K", "timestep_fs", "rho_A", "wall_r_A", "wall_energy_eV",
    "cutoff_A", "friction_per_ps",
)  # fmt: skip


def is_calibrated_toy(sim: Mapping[str, Any]) -> bool:
    """Whether a ``simulate`` block uses the calibrated physics (the ToySettings defaults)."""
    default = ToySettings()
    try:
        return all(
            math.isclose(float(sim.get(k, getattr(default, k))), getattr(default, k), rel_tol=1e-9)
            for k in CALIBRATED_KEYS
        )
    except (TypeError, ValueError):
        return False


def caveat(settings: Mapping[str, Any]) -> str:
    """Why this run's numbers need not match the paper's, for one system."""
    if settings.get("source") == "simulate":
        sim = settings.get("simulate", {})
        total_ns = float(sim.get("n_li", 0)) * float(sim.get("duration_ps", 0)) / 1000.0
        return (
            "Simulated in this workflow (OpenMM) with this config's Born-Mayer Li-S potential "
            f"(softness {sim.get('rho_A', '?')} Å, {sim.get('wall_energy_eV', '?')} eV at "
            f"{sim.get('wall_r_A', '?')} Å, cutoff {sim.get('cutoff_A', '?')} Å, lattice "
            f"{sim.get('lattice_A', '?')} Å, {sim.get('temperature_K', '?')} K, Langevin "
            f"friction {sim.get('friction_per_ps', '?')} /ps; {sim.get('n_li', '?')} Li x "
            f"{sim.get('duration_ps', '?')} ps = {total_ns:g} ns), a different potential "
            "parametrisation than the paper's LAMMPS/MedeA run (one 200 ns trajectory; its "
            "potential parameters are not published). "
            + (
                "These are the calibrated parameters (docs/toy.md): the simulation's own site "
                "labels give the paper's tetrahedral population (9.1 %) and tet-oct relaxation "
                "time at a 10 ps lag (42.3 ps). Nothing is tuned on the networks, so the rows "
                "test whether the networks recover these two and whether the global rows follow."
                if is_calibrated_toy(sim)
                else "These are not the calibrated parameters of docs/toy.md: absolute numbers "
                "are not expected to match; only the qualitative result is comparable."
            )
        )
    if settings.get("source") == "download":
        return (
            "Same trajectory as the paper (Materials Cloud); differences come from training "
            "(epochs, seed, batch size) and the confidence-interval method."
        )
    return "Trajectory supplied locally; not necessarily the paper's."


def within_ci(paper: float, v: Value) -> bool | None:
    """Whether the paper's value lies in this run's 95% CI; None without a CI."""
    if v.status != "ok" or not (np.isfinite(v.ci_low) and np.isfinite(v.ci_high)):
        return None
    return bool(v.ci_low <= paper <= v.ci_high)


def _fmt(v: float, digits: str) -> str:
    return "–" if not np.isfinite(v) else format(v, digits)


def build_comparison(
    systems: Mapping[str, Mapping[str, Any]], inputs: Mapping[str, str]
) -> tuple[pd.DataFrame, str]:
    """The comparison as a tidy table and as Markdown."""
    import pandas as pd

    roles = system_roles(systems)
    records: list[dict[str, Any]] = []
    md = [
        "# Paper comparison",
        "",
        "Every headline number of Xie et al., *Graph dynamical networks for unsupervised "
        "learning of atomic scale dynamics in materials*, Nat. Commun. 10, 2667 (2019), beside "
        "the value this run produced. Paper values carry the paper's ± where it gives one; "
        "this run's values carry their 95% confidence interval in brackets where the analysis "
        "computes one, and *Paper in CI* says whether the paper's value lies inside it (– "
        "without a CI). **Check the data source of each section before comparing numbers.**",
    ]
    all_rows = headlines()
    for role in ROLES.values():
        md += ["", f"## {role.title}", "", f"- Paper data: {role.paper_data}"]
        names = roles[role.key] or [None]
        for system in names:
            if system is None:
                md.append(f"- This run: {NOT_RUN} (no system lists {', '.join(role.figures)})")
                ctx = None
            else:
                s = systems[system]
                md.append(f"- This run's data: {data_source(system, s)}")
                md.append(f"- Note: {caveat(s)}")
                ctx = Context(system, s, inputs)
            table_rows = []
            for h in (r for r in all_rows if r.role == role.key):
                v = Value(status=NOT_RUN) if ctx is None else h.extract(ctx)
                pd_ = h.paper_digits or h.digits
                paper_txt = ("~" if h.approx else "") + format(h.paper, pd_)
                if h.paper_pm is not None:
                    paper_txt += f" ± {format(h.paper_pm, pd_.lstrip('+'))}"
                agrees = within_ci(h.paper, v)
                if v.status == "ok":
                    run_txt = _fmt(v.value, h.digits)
                    if np.isfinite(v.ci_low) and np.isfinite(v.ci_high):
                        run_txt += f" [{_fmt(v.ci_low, h.digits)}, {_fmt(v.ci_high, h.digits)}]"
                    ratio = v.value / h.paper if h.paper and np.isfinite(v.value) else math.nan
                else:
                    run_txt, ratio = v.status, math.nan
                agree_txt = "–" if agrees is None else ("yes" if agrees else "no")
                table_rows.append(
                    [h.quantity, paper_txt, run_txt, agree_txt, h.unit, h.where, v.note]
                )
                records.append(
                    {
                        "role": role.key,
                        "quantity": h.quantity,
                        "unit": h.unit,
                        "paper_value": h.paper,
                        "paper_pm": h.paper_pm if h.paper_pm is not None else math.nan,
                        "paper_where": h.where,
                        "paper_data": role.paper_data,
                        "system": system or "",
                        "run_value": v.value,
                        "run_ci_low": v.ci_low,
                        "run_ci_high": v.ci_high,
                        "run_over_paper": ratio,
                        "paper_within_ci": agrees,
                        "run_data": data_source(system, systems[system]) if system else NOT_RUN,
                        "status": v.status,
                        "note": v.note,
                    }
                )
            md += [
                "",
                "| Quantity | Paper | This run [95% CI] | Paper in CI | Unit | Where in the paper | Run details |",
                "|---|---|---|---|---|---|---|",
                *("| " + " | ".join(r) + " |" for r in table_rows),
            ]

    extra, extra_md = arrhenius_section(systems, inputs)
    records += extra
    md += extra_md
    return pd.DataFrame.from_records(records), "\n".join(md) + "\n"


def write_comparison(
    systems: Mapping[str, Mapping[str, Any]],
    inputs: Mapping[str, str],
    md: str | Path,
    csv: str | Path | None,
) -> None:
    """Write the comparison Markdown (and CSV) atomically."""
    table, text = build_comparison(systems, inputs)
    if csv is not None:
        write_csv(csv, table)
    write_text(md, text)
