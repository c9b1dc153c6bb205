"""The report's Arrhenius section (issue 25): a row per transition of every temperature
series, with the toy's ground truth (site labels, TST, barrier) where the system is the toy;
with ``train.per_temperature`` a row per temperature of the per-temperature models' drift
from the pooled states (``per_temperature.csv``, :mod:`gdyn.koopman.drift`).

Engages only when a system is a temperature series (:mod:`gdyn.temperatures`): the
default report is unchanged.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gdyn import config as gc
from gdyn import layout
from gdyn.temperatures import is_series

__all__ = ["arrhenius_inputs", "arrhenius_section"]


def arrhenius_inputs(systems: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{"system:arrhenius.json": path}`` of every temperature series."""
    out = {}
    for name, s in systems.items():
        if is_series(s):
            model, n = gc.analysed(s)
            out[f"{name}:arrhenius.json"] = layout.koopman_file(name, model, n, "arrhenius.json")
            if s["train"].get("per_temperature"):
                out[f"{name}:per_temperature.csv"] = layout.koopman_file(
                    name, model, n, "per_temperature.csv")
    return out


def _drift_rows(name: str, path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The per-temperature models' drift from the pooled states (train.per_temperature)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    md = ["", f"Per-temperature models of {name} against the pooled one (train.per_temperature; "
          "test frames of each temperature, best state permutation):", "",
          "| T (K) | argmax agreement | membership overlap | slowest timescale, per-T model "
          "(ps) [95% CI] | pooled model (ps) [95% CI] |", "|---|---|---|---|---|"]  # fmt: skip
    records = []
    for r in rows:
        t = float(r["temperature_K"])
        ts = {k: float(r[k]) if r[k] else math.nan for k in r if k.endswith("_ps")}

        def fmt(prefix: str, ts: dict[str, float] = ts) -> str:
            return (f"{ts[f'{prefix}_timescale_ps']:.4g} [{ts[f'{prefix}_ci_low_ps']:.4g}, "
                    f"{ts[f'{prefix}_ci_high_ps']:.4g}]")  # fmt: skip

        md.append(f"| {t:g} | {float(r['argmax_agreement']):.3f} | "
                  f"{float(r['membership_overlap']):.3f} | {fmt('per_temperature')} | "
                  f"{fmt('pooled')} |")  # fmt: skip
        records.append({"role": "per_temperature", "system": name,
                        "quantity": f"membership overlap at {t:g} K", "unit": "",
                        "run_value": float(r["membership_overlap"]),
                        "argmax_agreement": float(r["argmax_agreement"])})  # fmt: skip
    return records, md


def _mev(x: Any) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{1000 * float(x):.2f}"


def arrhenius_section(
    systems: Mapping[str, Mapping[str, Any]], inputs: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """(CSV records, Markdown lines) of the section; empty without a temperature series."""
    records: list[dict[str, Any]] = []
    md: list[str] = []
    for name, s in systems.items():
        path = inputs.get(f"{name}:arrhenius.json")
        if not is_series(s) or path is None or not Path(path).exists():
            continue
        data = json.loads(Path(path).read_text())
        truth = data.get("toy_ground_truth")
        md += ["", f"## Beyond the paper: activation energies of {name} (Arrhenius)", "",
               f"- Temperatures: {', '.join(f'{t:g}' for t in data['temperatures_K'])} K; "
               f"rates from K's generator at {data['lag_ps']:g} ps (gdyn.koopman.arrhenius)",
               "", "| Transition | E_a learned [95% CI] (meV) | site labels [95% CI] | TST | "
               "barrier | learned / labels | prefactor (1/ps) |",
               "|---|---|---|---|---|---|---|"]  # fmt: skip
        cmp = {(c["learned_from_state"], c["learned_to_state"]): c
               for c in (truth or {}).get("comparison", [])}  # fmt: skip
        for tr in data["transitions"]:
            key = (tr["from_state"], tr["to_state"])
            c = cmp.get(key)
            label = c["transition"] if c else f"state {key[0]} → {key[1]}"
            learned = (f"{_mev(tr['activation_energy_eV'])} [{_mev(tr['ci_low'])}, "
                       f"{_mev(tr['ci_high'])}]")  # fmt: skip
            row = {"role": "arrhenius", "system": name, "quantity": f"E_a {label}",
                   "unit": "meV", "run_value": 1000 * tr["activation_energy_eV"],
                   "run_ci_low": 1000 * tr["ci_low"], "run_ci_high": 1000 * tr["ci_high"],
                   "prefactor_per_ps": tr["prefactor_per_ps"]}  # fmt: skip
            if c:
                labels = f"{_mev(c['labels_eV'])} [{_mev(c['labels_ci'][0])}, {_mev(c['labels_ci'][1])}]"
                extra = [labels, _mev(c["tst_eV"]), _mev(c["barrier_eV"]),
                         f"{c['learned_over_labels']:.3f}"]  # fmt: skip
                row |= {"labels_meV": 1000 * c["labels_eV"], "tst_meV": 1000 * c["tst_eV"],
                        "barrier_meV": 1000 * c["barrier_eV"],
                        "learned_over_labels": c["learned_over_labels"]}  # fmt: skip
            else:
                extra = ["–", "–", "–", "–"]
            md.append("| " + " | ".join([label, learned, *extra,
                                         f"{tr['prefactor_per_ps']:.3g}"]) + " |")  # fmt: skip
            records.append(row)
        drift = inputs.get(f"{name}:per_temperature.csv")
        if drift is not None and Path(drift).exists():
            rec, lines = _drift_rows(name, drift)
            records += rec
            md += lines
    return records, md
