"""Which files each figure and table draws, and which configured system it belongs to.

The Snakefile (workflow/rules/figures.smk) imports this at DAG-build time to request
exactly the inputs of each figure, so it stays light: every path comes from
:mod:`gdyn.layout`, nothing here imports matplotlib or pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gdyn import config as gc
from gdyn import layout
from gdyn.errors import InputError

# Input names of each figure/table (the keys of --inputs); workflow/rules/figures.smk
# builds the same names.
# A Koopman figure also reads its model's summary.json: whether the tables' lag is tau* or
# the fallback of a run without one, and which lag models trained unconverged.
FIGURE_INPUTS: dict[str, tuple[str, ...]] = {
    "fig2": (
        "energy",
        "snapshot",
        "gdynet_timescales",
        "gdynet_ck",
        "gdynet_summary",
        "gdynet_positions",
        "vampnet_timescales",
        "vampnet_ck",
        "vampnet_summary",
        "vampnet_positions",
    ),
    "fig3": ("snapshot", "profile", "timescales", "eigen", "ck", "summary"),
    "fig4": ("snapshot", "representative", "charge", "timescales", "eigen", "ck", "summary"),
    "fig5": ("conduction",),
    "supp_fig1": ("timescales", "summary"),
    "supp_fig2": ("q3",),
    "supp_fig3": ("rdf",),
}


TABLE_INPUTS: dict[str, tuple[str, ...]] = {
    "supp_table1": ("charge",),
    "supp_table2": ("diffusion",),
}


SHORT_TITLES: dict[str, str] = {
    "fig2": "Fig. 2",
    "fig3": "Fig. 3",
    "fig4": "Fig. 4",
    "fig5": "Fig. 5",
    "supp_fig1": "Supp. Fig. 1",
    "supp_fig2": "Supp. Fig. 2",
    "supp_fig3": "Supp. Fig. 3",
    "supp_table1": "Supp. Table 1",
    "supp_table2": "Supp. Table 2",
}


def figure_system(name: str, systems: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The system whose config lists figure/table ``name`` under ``figures`` (None if none)."""
    owners = [s for s, c in systems.items() if name in c.get("figures", [])]
    if len(owners) > 1:
        raise InputError(f"config: {name} is listed under 'figures' of several systems: {owners}")
    return owners[0] if owners else None


def figure_input_paths(
    name: str, systems: Mapping[str, Mapping[str, Any]], results: str = layout.RESULTS
) -> dict[str, str]:
    """The ``--inputs`` of figure/table ``name``: input name -> path (docs/contracts.md).

    workflow/rules/figures.smk requests exactly these files, so a figure depends on nothing
    it does not draw. Figures of the analysed model (Figs. 3-4) use the config's
    ``koopman`` model and ``n_states`` (:func:`gdyn.config.analysed`); with
    ``n_states: auto`` that is the selected candidate's Koopman outputs
    (``{model}-sauto``, written by ``gdyn select-koopman``).

    Parameters
    ----------
    name
        A figure or table name (:data:`SHORT_TITLES`).
    systems
        The config's ``systems`` mapping.
    results
        Root of the results tree; paths are those of :mod:`gdyn.layout` under it.
    """
    system = figure_system(name, systems)
    if system is None:
        raise InputError(
            f"{name}: no system in this config lists it under 'figures' "
            f"(configured systems: {', '.join(systems)})"
        )
    s = systems[system]
    states = gc.model_state_counts(s)

    def under(path: str) -> str:
        return rebase(path, results)

    def koopman(model: str, n_states: int, tables: Sequence[str]) -> dict[str, str]:
        out = {t: under(layout.koopman_table(system, model, n_states, t)) for t in tables}
        return out | {"summary": under(layout.koopman_summary(system, model, n_states))}

    def structure(file: str) -> str:
        return under(layout.structure_file(system, file))

    if name == "fig2":
        if not states.get("gdynet") or not states.get("vampnet"):
            raise InputError(
                f"config key 'systems/{system}/train/models': fig2 needs gdynet and vampnet"
            )
        model_a, n = gc.analysed(s)
        if n == layout.AUTO:  # the selected count of the analysed kind (gdyn select)
            n_gdy = n if model_a == "gdynet" else states["gdynet"][0]
            n_vamp = n if model_a == "vampnet" else min(states["vampnet"])
        else:
            n_gdy = n if n in states["gdynet"] else states["gdynet"][0]
            n_vamp = n_gdy if n_gdy in states["vampnet"] else min(states["vampnet"])
        ins = {"energy": under(layout.toy_energy(system)), "snapshot": structure("snapshot.extxyz")}
        for m, n_m in (("gdynet", n_gdy), ("vampnet", n_vamp)):
            ins.update({f"{m}_{t}": p for t, p in koopman(m, n_m, ("timescales", "ck")).items()})  # + summary
            ins[f"{m}_positions"] = under(layout.positions(system, m, n_m))
        return ins
    if name == "supp_fig1":
        if not states.get("vampnet"):
            raise InputError(f"config key 'systems/{system}/train/models': supp_fig1 needs vampnet")
        return koopman("vampnet", max(states["vampnet"]), ("timescales",))
    if name == "fig3":
        ins = koopman(*gc.analysed(s), ("timescales", "eigen", "ck"))
        return ins | {"snapshot": structure("snapshot.extxyz"), "profile": structure("profile.csv")}
    if name == "fig4":
        ins = koopman(*gc.analysed(s), ("timescales", "eigen", "ck"))
        return ins | {"charge": structure("charge.csv"), "snapshot": structure("snapshot.extxyz"),
                      "representative": structure("representative.extxyz")}
    files = {
        "fig5": ("conduction", "conduction.csv"),
        "supp_fig2": ("q3", "q3.csv"),
        "supp_fig3": ("rdf", "rdf.csv"),
        "supp_table1": ("charge", "charge.csv"),
        "supp_table2": ("diffusion", "diffusion.csv"),
    }
    if name not in files:
        raise InputError(f"figure name: expected one of {', '.join(SHORT_TITLES)}, got {name!r}")
    key, file = files[name]
    return {key: structure(file)}


def figure_configuration_paths(
    name: str, systems: Mapping[str, Mapping[str, Any]], results: str = layout.RESULTS
) -> list[str]:
    """Extra outputs of figure ``name``: each state's representative configuration (Fig. 4b,
    ``gdyn.layout.figure_configuration``), one per state of the analysed model; [] for
    the other figures and for a figure no system lists."""
    if name != "fig4":
        return []
    system = figure_system(name, systems)
    if system is None:
        return []
    _, n_states = gc.analysed(systems[system])
    return [rebase(layout.figure_configuration(name, i), results) for i in range(int(n_states))]


def rebase(path: str, results: str = layout.RESULTS) -> str:
    """A :mod:`gdyn.layout` path (under ``results/``) moved under ``results`` instead.

    Identity for the default root, so the workflow's paths are exactly gdyn.layout's;
    tests and notebooks point ``results`` at another tree.
    """
    if results == layout.RESULTS:
        return path
    return results + path[len(layout.RESULTS) :]


def system_data_label(name: str, systems: Mapping[str, Mapping[str, Any]]) -> str:
    """The data source (config ``data_label``) of the system a figure/table belongs to."""
    system = figure_system(name, systems)
    return str(systems[system].get("data_label", "")) if system else ""
