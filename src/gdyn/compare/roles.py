"""Roles of the configured systems (toy, Si-Au, PEO) and the files the comparison reads."""


from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gdyn import config as gc
from gdyn import layout
from gdyn.compare.arrhenius import arrhenius_inputs  # temperature series only (issue 25)
from gdyn.errors import InputError
from gdyn.plots import read_table

if TYPE_CHECKING:
    import pandas as pd

NOT_RUN = "not run in this config"
MISSING_MODEL = {
    "gdynet2": "no 2-state GDyNet in this config",
    "vampnet2": "no 2-state VAMPnet in this config",
    "vampnet_max": "no VAMPnet with more than 2 states in this config",
}


@dataclass(frozen=True)
class Role:
    """One of the paper's three systems."""

    key: str
    title: str
    figures: tuple[str, ...]
    names: tuple[str, ...]
    paper_data: str


ROLES: dict[str, Role] = {
    "toy": Role(
        "toy",
        "Li hopping in an FCC S lattice (toy system; Fig. 2, Supp. Fig. 1, Supp. Note 2)",
        ("fig2", "supp_fig1"),
        ("toy", "li2s"),
        "One 200 ns LAMMPS/MedeA trajectory at 64 K (Materials Cloud li2s-traj.npz)",
    ),
    "siau": Role(
        "siau",
        "Si at the Si(110) / Si-Au liquid interface (Fig. 3)",
        ("fig3", "supp_fig2"),
        ("siau",),
        "25 ns trajectory at 629 K (Materials Cloud siau-traj.npz)",
    ),
    "peo": Role(
        "peo",
        "Li+ in PEO/LiTFSI (Figs. 4-5, Supp. Tables 1-2)",
        ("fig4", "fig5", "supp_fig3", "supp_table1", "supp_table2"),
        ("peo",),
        "Five 80 ns trajectories at 363 K (Materials Cloud peo-traj-{a..e}.npz)",
    ),
}


@dataclass
class Value:
    """This run's value of one headline number, or why there is none."""

    value: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    status: str = "ok"
    note: str = ""


@dataclass(frozen=True)
class Headline:
    """One number the paper reports, and how to read this run's counterpart."""

    role: str
    quantity: str
    paper: float
    paper_pm: float | None
    unit: str
    where: str
    extract: Callable[[Context], Value]
    approx: bool = False
    digits: str = ".3g"  # this run's value
    paper_digits: str | None = None  # the paper's, when it prints fewer digits


@dataclass
class Context:
    """One system playing a role, and the comparison inputs (name -> path)."""

    system: str
    settings: Mapping[str, Any]
    inputs: Mapping[str, str]
    cache: dict[str, Any] = field(default_factory=dict)

    def path(self, key: str) -> str | None:
        return self.inputs.get(f"{self.system}:{key}")

    def json(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        if p is None:
            return None
        if p not in self.cache:
            try:
                self.cache[p] = json.loads(Path(p).read_text())
            except FileNotFoundError:
                raise InputError(f"{p}: file not found") from None
            except json.JSONDecodeError as exc:
                raise InputError(f"{p}: not valid JSON: {exc}") from None
        return self.cache[p]

    def csv(self, key: str, kind: str) -> pd.DataFrame | None:
        p = self.path(key)
        if p is None:
            return None
        if p not in self.cache:
            self.cache[p] = read_table(p, kind)
        return self.cache[p]


# ----------------------------------------------------------------------------- inputs


def system_roles(systems: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """``{role: [system, ...]}``: systems whose figures (or, without figures, name) match."""
    out: dict[str, list[str]] = {r: [] for r in ROLES}
    for name, s in systems.items():
        figures = set(s.get("figures", []))
        for role in ROLES.values():
            if figures & set(role.figures) or (not figures and name in role.names):
                out[role.key].append(name)
    return out


def toy_models(settings: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    counts = gc.model_state_counts(settings)
    out = {}
    if 2 in counts.get("gdynet", []):
        out["gdynet2"] = ("gdynet", 2)
    vamp = counts.get("vampnet", [])
    if 2 in vamp:
        out["vampnet2"] = ("vampnet", 2)
    if vamp and max(vamp) > 2:
        out["vampnet_max"] = ("vampnet", max(vamp))
    return out


def comparison_settings(systems: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The part of each system's config that the comparison reads (``gdyn compare --systems``).

    Its data source and caveat (``source``, ``description``, ``data_label``, ``simulate``),
    its role (``figures``) and its models (``train/models``, ``koopman/model`` and
    ``n_states``). Every number it reports comes from the files of
    :func:`comparison_inputs`, so the workflow reruns the comparison when one of those
    files or one of these keys changes, and for no other config edit.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, s in systems.items():
        keep = {k: s[k] for k in ("source", "description", "data_label", "simulate", "figures")
                if k in s}
        keep["train"] = {"models": s["train"]["models"]}
        k = s.get("koopman") or {}
        keep["koopman"] = {key: k[key] for key in ("model", "n_states") if key in k}
        out[name] = keep
    return out


def comparison_inputs(
    systems: Mapping[str, Mapping[str, Any]], results: str = layout.RESULTS
) -> dict[str, str]:
    """Every file the comparison reads, as ``{"system:name": path}``.

    The Snakemake rule requests exactly these, so the comparison needs nothing else.
    Paths are :mod:`gdyn.layout`'s, under ``results`` when another root is given.
    """
    roles = system_roles(systems)
    out: dict[str, str] = {}

    def under(path: str) -> str:
        # Same as gdyn.plots.registry.rebase; compare reads only gdyn.plots.io (no cycle).
        return path if results == layout.RESULTS else results + path[len(layout.RESULTS) :]

    def koopman(system: str, model: str, n: int, files: tuple[str, ...]) -> None:
        for f in files:
            out[f"{system}:{layout.model_name(model, n)}:{f}"] = under(
                layout.koopman_file(system, model, n, f)
            )

    for system in roles["toy"]:
        for key, (model, n) in toy_models(systems[system]).items():
            files = ("summary.json", "timescales.csv")
            # the 2-state GDyNet's populations (the tet row) and its K(tau*) on the engine's
            # replicates (the interval of the global timescale rebuilt from it)
            extra = ("populations.csv", "replicates.csv") if key == "gdynet2" else ()
            koopman(system, model, n, (*files, *extra))
    for system in roles["siau"]:
        model, n = gc.analysed(systems[system])
        koopman(system, model, n, ("summary.json", "timescales.csv"))
    for system in roles["peo"]:
        s = systems[system]
        model, n = gc.analysed(s)
        koopman(system, model, n, ("summary.json", "populations.csv"))
        files = ["charge.csv"] if "charge" in s.get("structure", {}) else []
        files += ["diffusion.csv", "conduction.csv"] if "conduction" in s else []
        for f in files:
            out[f"{system}:{f}"] = under(layout.structure_file(system, f))

    out |= {k: under(v) for k, v in arrhenius_inputs(systems).items()}
    return out
