"""State-weighted analyses of the learned states: structure (RDF, charge, profiles, q3,
snapshots) and transport (D_ij, Nernst-Einstein shares), and their registry.

The API (exported from :mod:`gdyn` too) works on trajectories and probabilities and returns
exactly the tables the workflow writes::

    rdf = state_weighted_rdf(trajs, probs, ["S"], r_max_A=6.0)        # rdf.csv
    charge = charge_integral(rdf, "N", {"Li": 1, "N": -1})            # charge.csv
    diffusion, cond = conduction(trajs, probs, tau_ps=10.0, temperature_K=300.0)

``trajs`` is a :class:`gdyn.trajectory.Trajectory` or a list of them, ``probs`` the state
probabilities (F, n_sets, S) of each, aligned frame by frame (NaN rows: unscored). The
workflow's path, :func:`load_analysis` (test pieces + probabilities at tau*, states in
Koopman order), gives :class:`Piece` objects that these functions take with ``probs=None``.

Modules: :mod:`~gdyn.analysis.inputs` (standard inputs), :mod:`~gdyn.analysis.geometry`,
:mod:`~gdyn.analysis.rdf`, :mod:`~gdyn.analysis.charge`, :mod:`~gdyn.analysis.profile`
(profile and positions), :mod:`~gdyn.analysis.snapshot`, :mod:`~gdyn.analysis.representative` (Fig. 4b),
:mod:`~gdyn.analysis.q3`,
:mod:`~gdyn.analysis.transport` (conduction), :mod:`~gdyn.analysis.spec` (the entry type).

Registry contract
-----------------
Each analysis module declares ``ANALYSES``, a tuple of :class:`AnalysisSpec` (normally one);
every module of the package that does is found by name (``_MODULES``), and
:data:`REGISTRY` maps each entry's name to it, in pipeline order (an entry after those whose
outputs it reads, otherwise by module name). An entry says

* ``name``: the subcommand ``gdyn <name>`` (and the rule's name);
* ``section``: the system's config section the rule passes as ``--settings``;
* ``config_key``: the key path in the system's config that switches it on
  (``structure/rdf``; None: only built when a figure asks, as ``positions``);
* ``outputs``: its files under ``gdyn.layout.structure_dir(system)``
  (:func:`output_paths` builds the paths with :mod:`gdyn.layout`); ``requires``: other
  analyses' outputs it reads (``charge`` reads ``rdf.csv``);
* ``run(analysis, settings, outputs, extra_inputs)``: the science and the atomic writes;
  ``analysis`` is the :class:`Analysis` of ``--test/--probs/--summary`` (None when
  ``standard_inputs`` is False), ``settings`` the ``--settings`` section, ``outputs`` the
  output paths in ``outputs`` order, ``extra_inputs`` the ``requires`` paths (by file
  name) and the values of the entry's ``options`` (by dest);
* ``options`` / ``output_flags``: extra command-line options (``--charge``,
  ``--koopman-settings``, ``--max-rows``) and outputs passed as options (``--png``).

``gdyn.cli.analysis`` builds one subcommand per entry from this alone:
``gdyn <name> [REQUIRES...] OUTPUTS... [--test ... --probs ... --summary ...]
[--settings JSON] [options]``, and ``workflow/rules/structure.smk`` one rule per entry.
Adding an analysis is: a module here with its ``ANALYSES``, and its settings in the config
schema.

Importing this package is light (numpy; no pandas, matplotlib, ASE, freud, scipy): the
Snakefile imports it to list outputs and ``gdyn --help`` to build the subcommands.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from gdyn import layout
from gdyn.analysis.charge import (
    charge_curve,
    charge_integral,
    charge_table,
    fit_first_peak,
    gaussian,
)
from gdyn.analysis.geometry import fold_fractional, minimum_image, set_centres
from gdyn.analysis.inputs import (
    Analysis,
    Piece,
    apply_selection,
    as_pieces,
    flag_states,
    load_analysis,
    load_summary,
    match_probs,
    population_order,
    read_probs,
    tau_star_probs_path,
)
from gdyn.analysis.profile import (
    MAX_POSITION_ROWS,
    positions_table,
    profile_table,
    state_profile,
)
from gdyn.analysis.q3 import q3_distribution, q3_table, steinhardt_q3
from gdyn.analysis.rdf import (
    RdfCounts,
    first_peak_index,
    first_shell,
    rdf_counts,
    rdf_from_counts,
    state_weighted_rdf,
)
from gdyn.analysis.representative import (
    Representative,
    configuration_atoms,
    representative_configurations,
    representative_frames,
    shell_members,
)
from gdyn.analysis.snapshot import plot_snapshot, snapshot_atoms
from gdyn.analysis.spec import AnalysisSpec, Option
from gdyn.analysis.transport import conduction, conduction_tables, unwrap

# The analysis modules: every module of this package that declares ANALYSES, found by
# name, so that a new analysis is one new module (docs/architecture.md).
_MODULES = tuple(
    importlib.import_module(f"{__name__}.{info.name}")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    if not info.name.startswith("_")
)
_MODULES = tuple(m for m in _MODULES if hasattr(m, "ANALYSES"))


def _pipeline_order(specs: list[AnalysisSpec]) -> list[AnalysisSpec]:
    """Entries in the order they can run: an entry after every entry whose outputs it
    reads (``requires``, options ``from_output``), otherwise in module-name order."""
    made_by = {out: spec.name for spec in specs for out in spec.outputs}
    needs = {
        spec.name: {made_by[f] for f in (*spec.requires, *(o.from_output for o in spec.options))
                    if f in made_by}
        for spec in specs
    }
    ordered: list[AnalysisSpec] = []
    done: set[str] = set()
    while len(ordered) < len(specs):
        ready = [s for s in specs if s.name not in done and needs[s.name] <= done]
        if not ready:
            raise RuntimeError(f"analysis registry: circular inputs among {sorted(needs)}")
        ordered.append(ready[0])
        done.add(ready[0].name)
    return ordered


REGISTRY: dict[str, AnalysisSpec] = {
    spec.name: spec
    for spec in _pipeline_order([spec for mod in _MODULES for spec in mod.ANALYSES])
}


def output_paths(
    spec: AnalysisSpec, system: str, model: str | None = None, n_states: int | str | None = None
) -> list[str]:
    """The result paths of one analysis of one system (values or wildcard patterns).

    ``model`` / ``n_states`` fill ``{model_name}`` (``positions``); the paths come from
    :func:`gdyn.layout.structure_file`.
    """
    out = []
    for name in spec.outputs:
        if "{model_name}" in name:
            if model is None or n_states is None:
                raise ValueError(f"{spec.name}: output {name!r} needs model and n_states")
            name = name.format(model_name=layout.model_name(model, n_states))
        out.append(layout.structure_file(system, name))
    return out


def enabled_outputs(system: str, config: Mapping[str, Any]) -> list[str]:
    """Paths of every analysis a system's config switches on, in registry order (the
    workflow's targets; ``positions`` is left to the figures that need it)."""
    return [path for spec in REGISTRY.values() if spec.enabled(config)
            for path in output_paths(spec, system)]


__all__ = [
    "MAX_POSITION_ROWS",
    "REGISTRY",
    "Analysis",
    "AnalysisSpec",
    "Option",
    "Piece",
    "RdfCounts",
    "Representative",
    "apply_selection",
    "as_pieces",
    "charge_curve",
    "charge_integral",
    "charge_table",
    "conduction",
    "conduction_tables",
    "configuration_atoms",
    "enabled_outputs",
    "first_peak_index",
    "first_shell",
    "fit_first_peak",
    "flag_states",
    "fold_fractional",
    "gaussian",
    "load_analysis",
    "load_summary",
    "match_probs",
    "minimum_image",
    "output_paths",
    "plot_snapshot",
    "population_order",
    "positions_table",
    "profile_table",
    "q3_distribution",
    "q3_table",
    "rdf_counts",
    "rdf_from_counts",
    "read_probs",
    "representative_configurations",
    "representative_frames",
    "set_centres",
    "shell_members",
    "snapshot_atoms",
    "state_profile",
    "state_weighted_rdf",
    "steinhardt_q3",
    "tau_star_probs_path",
    "unwrap",
]
