"""State-weighted analyses of the learned states: structure (RDF, charge, profiles, q3,
snapshots) and transport (D_ij, Nernst-Einstein shares).

The API (exported from :mod:`gdyn` too) works on trajectories and probabilities and returns
exactly the tables the workflow writes::

    rdf = state_weighted_rdf(trajs, probs, ["S"], r_max_A=6.0)        # rdf.csv
    charge = charge_integral(rdf, "N", {"Li": 1, "N": -1})            # charge.csv
    diffusion, cond = conduction(trajs, probs, tau_ps=10.0, temperature_K=300.0)

``trajs`` is a :class:`gdyn.trajectory.Trajectory` or a list of them, ``probs`` the state
probabilities (F, n_sets, S) of each, aligned frame by frame (NaN rows: unscored). The
workflow's path, :func:`load_analysis` (test pieces + probabilities at tau*, states in
Koopman order), gives :class:`~gdyn.analysis.inputs.Piece` objects that these functions
take with ``probs=None``.

Modules: :mod:`~gdyn.analysis.inputs` (standard inputs), :mod:`~gdyn.analysis.geometry`,
:mod:`~gdyn.analysis.rdf`, :mod:`~gdyn.analysis.charge`, :mod:`~gdyn.analysis.profile`
(profile and positions), :mod:`~gdyn.analysis.snapshot`, :mod:`~gdyn.analysis.representative`
(Fig. 4b), :mod:`~gdyn.analysis.q3`, :mod:`~gdyn.analysis.transport` (conduction).
The ``gdyn rdf | charge | ...`` commands that write the workflow's files are in
:mod:`gdyn.cli.analysis`, their rules in workflow/rules/structure.smk.

This package exports what the API, :mod:`gdyn.cli` and :mod:`gdyn.compare` use;
anything else is imported from the module that defines it. Importing this package is light (numpy; no pandas, matplotlib, ASE, freud, scipy).
"""

from __future__ import annotations

from gdyn.analysis.charge import charge_integral, charge_table, read_rdf_csv
from gdyn.analysis.inputs import Piece, flag_states, load_analysis, summary_lag_ps
from gdyn.analysis.profile import MAX_POSITION_ROWS, positions_table, profile_table
from gdyn.analysis.q3 import q3_table
from gdyn.analysis.rdf import state_weighted_rdf
from gdyn.analysis.representative import representative_configurations, shell_radii
from gdyn.analysis.snapshot import plot_snapshot, snapshot_atoms
from gdyn.analysis.transport import conduction

__all__ = [
    "MAX_POSITION_ROWS",
    "Piece",
    "charge_integral",
    "charge_table",
    "conduction",
    "flag_states",
    "load_analysis",
    "plot_snapshot",
    "positions_table",
    "profile_table",
    "q3_table",
    "read_rdf_csv",
    "representative_configurations",
    "shell_radii",
    "snapshot_atoms",
    "state_weighted_rdf",
    "summary_lag_ps",
]
