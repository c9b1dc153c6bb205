"""The supplementary tables (Supp. Tables 1-2) as a CSV and a Markdown rendering.

:func:`render_table` builds one from the files named in ``inputs`` (see
:data:`gdyn.plots.registry.TABLE_INPUTS`); ``gdyn table`` (:mod:`gdyn.cli.figures`) calls it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gdyn.errors import InputError
from gdyn.files import write_csv, write_text
from gdyn.plots import style
from gdyn.plots.io import _require, charge_per_state, read_table
from gdyn.plots.registry import TABLE_INPUTS

if TYPE_CHECKING:
    import pandas as pd

D_UNIT = 1e-7  # Supp. Table 2 reports D in 1e-7 cm^2/s


def _decimals(*errors: float) -> int:
    """Decimals that show the leading digit of the smallest positive uncertainty (1..4)."""
    pos = [abs(e) for e in errors if np.isfinite(e) and e > 0]
    if not pos:
        return 1
    return int(min(4, max(1, -math.floor(math.log10(min(pos))))))


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def table_supp_table1(inputs: Mapping[str, str], data_label: str = "") -> tuple[pd.DataFrame, str]:
    """Supp. Table 1: charge carried by each state (charge integral at r*)."""
    charge = read_table(inputs["charge"], "charge")
    table = charge_per_state(charge, inputs["charge"])
    states = table["state"].tolist()
    md = [
        "# Supplementary Table 1. Charge carried by each state",
        "",
        "Charge integral within the first solvation shell r* (Supp. Note 3, Eq. 3).",
        "",
        _md_table(
            ["State", *map(str, states)],
            [
                ["Charge (e)", *(f"{q:+.3f}" for q in table["charge_e"])],
                ["r* (Å)", *(f"{r:.2f}" for r in table["r_star_A"])],
            ],
        ),
        "",
        f"Data: {data_label}" if data_label else "",
    ]
    return table, "\n".join(md).rstrip() + "\n"


def table_supp_table2(inputs: Mapping[str, str], data_label: str = "") -> tuple[pd.DataFrame, str]:
    """Supp. Table 2: diffusion coefficient D_ij of each transition, in 1e-7 cm^2/s ± 95% CI."""
    import pandas as pd

    diff = read_table(inputs["diffusion"], "diffusion")
    d = diff.sort_values(["tau_ps", "from_state", "to_state"]).reset_index(drop=True)
    d_val = d["D_cm2_per_s"].to_numpy(float) / D_UNIT
    lo = d["ci_low_cm2_per_s"].to_numpy(float) / D_UNIT
    hi = d["ci_high_cm2_per_s"].to_numpy(float) / D_UNIT
    table = pd.DataFrame(
        {
            "tau_ps": d["tau_ps"].astype(float),
            "from_state": d["from_state"].astype(int),
            "to_state": d["to_state"].astype(int),
            "D_1e-7_cm2_per_s": d_val,
            "ci_low_1e-7_cm2_per_s": lo,
            "ci_high_1e-7_cm2_per_s": hi,
            "pm_1e-7_cm2_per_s": 0.5 * (hi - lo),
        }
    )
    md = [
        "# Supplementary Table 2. Diffusion coefficient of each state transition",
        "",
        "D_ij(τ) from the transition mean-squared displacement (Eqs. 13-14), ± half the 95% "
        "confidence interval. Unit: 1e-7 cm²/s.",
    ]
    for tau, g in table.groupby("tau_ps"):
        unit, scale = style.time_unit(float(tau))
        states = sorted(set(g["from_state"]) | set(g["to_state"]))
        dec = _decimals(*g["pm_1e-7_cm2_per_s"])
        rows = []
        for i in states:
            row = [f"i = {i}"]
            for j in states:
                cell = g[(g["from_state"] == i) & (g["to_state"] == j)]
                if cell.empty:
                    row.append("–")
                    continue
                v, pm = (
                    float(cell["D_1e-7_cm2_per_s"].iloc[0]),
                    float(cell["pm_1e-7_cm2_per_s"].iloc[0]),
                )
                row.append(f"{v:.{dec}f} ± {pm:.{dec}f}" if np.isfinite(pm) else f"{v:.{dec}f}")
            rows.append(row)
        md += [
            "",
            f"τ = {float(tau) * scale:g} {unit}",
            "",
            _md_table(["Transition", *(f"j = {j}" for j in states)], rows),
        ]
    if data_label:
        md += ["", f"Data: {data_label}"]
    return table, "\n".join(md) + "\n"


TABLE_BUILDERS: dict[str, Callable[..., tuple[pd.DataFrame, str]]] = {
    "supp_table1": table_supp_table1,
    "supp_table2": table_supp_table2,
}


def render_table(
    name: str,
    inputs: Mapping[str, str],
    csv: str | Path,
    md: str | Path | None,
    data_label: str = "",
) -> None:
    """Build table ``name`` from ``inputs`` and write it as CSV (and Markdown)."""
    if name not in TABLE_BUILDERS:
        raise InputError(f"table name: expected one of {', '.join(TABLE_BUILDERS)}, got {name!r}")
    _require(inputs, TABLE_INPUTS[name], name)
    table, text = TABLE_BUILDERS[name](inputs, data_label)
    write_csv(csv, table)
    if md is not None:
        write_text(md, text)
