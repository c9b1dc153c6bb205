"""Every ``results/`` path and name of the workflow, in one place (standard library only).

The Snakefile (through ``workflow/rules/common.smk``) and the package build paths with the
same functions, so a path is defined once. Arguments may be Snakemake wildcard patterns
(``"{system}"``) as well as values: ``model_dir("{system}", "gdynet", "{n_states}",
"{lag}")`` is the rule's output pattern, ``model_dir("toy", "gdynet", 2, 10.0)`` one
directory. Lag times are written as ``{value}ps`` (:func:`lag_label`).
"""

from __future__ import annotations

import math

from gdyn.errors import InputError

RESULTS = "results"
PARTS: tuple[str, ...] = ("train", "val", "test")

KOOPMAN_TABLES: tuple[str, ...] = (
    "timescales", "ck", "eigen", "populations", "kinetics", "replicates",
)  # fmt: skip
MODEL_FILES: tuple[str, ...] = (
    "model.pt",
    "config.json",
    "metrics.csv",
    "alignment.json",
    *(f"probs_{part}.npz" for part in PARTS),
)
FIGURES: tuple[str, ...] = (
    "fig2",
    "fig3",
    "fig4",
    "fig5",
    "supp_fig1",
    "supp_fig2",
    "supp_fig3",
)
TABLES: tuple[str, ...] = ("supp_table1", "supp_table2")
# The state count of ``koopman.n_states: auto``: ``koopman_dir(system, model, AUTO)``
# (``{model}-sauto``) holds the selected candidate's Koopman outputs at the selected tau*.
AUTO = "auto"


# --------------------------------------------------------------------------------------
# Lag labels


def lag_label(lag_ps: float | str) -> str:
    """Path label of a lag time: ``10.0 -> '10ps'``, ``0.5 -> '0.5ps'``.

    A string is returned unchanged, so wildcard patterns (``"{lag}"``) and labels pass
    through.
    """
    if isinstance(lag_ps, str):
        return lag_ps
    if not math.isfinite(lag_ps) or lag_ps <= 0:
        raise InputError(f"lag time must be a positive number of ps, got {lag_ps!r}")
    return f"{float(lag_ps):g}ps"


def parse_lag(label: str) -> float:
    """Inverse of :func:`lag_label`: ``'10ps' -> 10.0``."""
    if not label.endswith("ps"):
        raise InputError(f"lag label must look like '10ps', got {label!r}")
    try:
        value = float(label[:-2])
    except ValueError:
        raise InputError(f"lag label must look like '10ps', got {label!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"lag label must be a positive time, got {label!r}")
    return value


# --------------------------------------------------------------------------------------
# Data


def raw(system: str, traj: str) -> str:
    """Raw trajectory (downloaded, simulated or the user's own file)."""
    return f"{RESULTS}/raw/{system}/{traj}.npz"


def simulated_job(system: str, job: int | str) -> str:
    """One ``simulate_toy`` job file (several Li)."""
    return f"{RESULTS}/simulated/{system}/job{job}.npz"


def toy_trajectory_name(li: int) -> str:
    """Raw trajectory name of simulated Li number ``li``."""
    return f"li{int(li):03d}"


def toy_energy(system: str, ext: str = "csv") -> str:
    """Energy along the tet-oct-tet path (Fig. 2a)."""
    return f"{RESULTS}/toy/{system}/energy_path.{ext}"


def split_piece(system: str, part: str, traj: str) -> str:
    """One trajectory's window of one split part."""
    return f"{RESULTS}/split/{system}/{part}/{traj}.npz"


def graph_store(system: str, part: str, traj: str) -> str:
    """Graph store directory of one split piece."""
    return f"{RESULTS}/graphs/{system}/{part}/{traj}"


# --------------------------------------------------------------------------------------
# Models and Koopman analysis


def model_name(model: str, n_states: int | str) -> str:
    """``gdynet-s2``: a model kind with its state count."""
    return f"{model}-s{n_states}"


def model_dir(system: str, model: str, n_states: int | str, lag: float | str) -> str:
    """Directory of one trained model (``model.pt``, ``config.json``, probs, metrics)."""
    return f"{RESULTS}/models/{system}/{model_name(model, n_states)}-lag{lag_label(lag)}"


def model_file(system: str, model: str, n_states: int | str, lag: float | str, name: str) -> str:
    """One file of a model directory (one of :data:`MODEL_FILES`)."""
    return f"{model_dir(system, model, n_states, lag)}/{name}"


def probs(system: str, model: str, n_states: int | str, lag: float | str, part: str) -> str:
    """State probabilities of one split part written by one model."""
    return model_file(system, model, n_states, lag, f"probs_{part}.npz")


def koopman_dir(system: str, model: str, n_states: int | str) -> str:
    """Koopman analysis of one (model, n_states) over its lag grid (``n_states`` =
    :data:`AUTO`: the selected state count's, at the selected tau*)."""
    return f"{RESULTS}/koopman/{system}/{model_name(model, n_states)}"


def koopman_file(system: str, model: str, n_states: int | str, name: str) -> str:
    """``timescales.csv``, ``ck.csv``, ``eigen.csv``, ``populations.csv`` or ``summary.json``."""
    return f"{koopman_dir(system, model, n_states)}/{name}"


def koopman_table(system: str, model: str, n_states: int | str, table: str) -> str:
    """One of :data:`KOOPMAN_TABLES` as CSV."""
    return koopman_file(system, model, n_states, f"{table}.csv")


def koopman_summary(system: str, model: str, n_states: int | str) -> str:
    """``summary.json`` of one (model, n_states)."""
    return koopman_file(system, model, n_states, "summary.json")


def temperature_label(temperature_K: float | str) -> str:
    """Path label of a temperature: ``64.0 -> '64K'`` (a string is returned unchanged)."""
    if isinstance(temperature_K, str):
        return temperature_K
    if not math.isfinite(temperature_K) or temperature_K <= 0:
        raise InputError(f"temperature must be a positive number of K, got {temperature_K!r}")
    return f"{float(temperature_K):g}K"


def per_temperature_dir(
    system: str, model: str, n_states: int | str, temperature_K: float | str
) -> str:
    """The analysed model retrained on one temperature of a series alone, at the pooled
    model's analysis lag (``train.per_temperature: true``): a model directory."""
    return (f"{RESULTS}/models/{system}/{model_name(model, n_states)}-"
            f"T{temperature_label(temperature_K)}")


def per_temperature_file(
    system: str, model: str, n_states: int | str, temperature_K: float | str, name: str
) -> str:
    """One file of :func:`per_temperature_dir` (one of :data:`MODEL_FILES`)."""
    return f"{per_temperature_dir(system, model, n_states, temperature_K)}/{name}"


def selection(system: str, ext: str = "json") -> str:
    """The selected n_states and tau* of a system and the candidates' table."""
    return f"{RESULTS}/koopman/{system}/selection.{ext}"


def selection_figure(system: str, ext: str = "pdf") -> str:
    """The model-selection figure of a system (VAMP-2 vs n_states and lag, CK verdicts)."""
    return figure(f"{system}_selection", ext)


# --------------------------------------------------------------------------------------
# Structure and transport


def structure_dir(system: str) -> str:
    """State-weighted structure and transport outputs of a system."""
    return f"{RESULTS}/structure/{system}"


def structure_file(system: str, name: str) -> str:
    """One file of :func:`structure_dir` (``rdf.csv``, ``conduction.csv``, ...)."""
    return f"{structure_dir(system)}/{name}"


def positions(system: str, model: str, n_states: int | str) -> str:
    """Folded target positions with one model's state probabilities (Figs. 2c, 3b)."""
    return structure_file(system, f"positions-{model_name(model, n_states)}.csv")


# --------------------------------------------------------------------------------------
# Figures, tables, logs


def figure(name: str, ext: str = "pdf") -> str:
    """A paper figure (``pdf`` or ``png``)."""
    return f"{RESULTS}/figures/{name}.{ext}"


def figure_configuration(name: str, state: int | str) -> str:
    """One learned state's representative configuration drawn in figure ``name`` (Fig. 4b),
    as extended XYZ next to the figure."""
    return f"{RESULTS}/figures/{name}_state{state}.extxyz"


def export_memberships(system: str, traj: str) -> str:
    """A test piece's per-atom memberships as extended XYZ (``export: [memberships]``)."""
    return f"{RESULTS}/export/{system}/memberships/{traj}.extxyz"


def table(name: str, ext: str = "csv") -> str:
    """A paper table (``csv`` or ``md``); ``paper_comparison`` included."""
    return f"{RESULTS}/tables/{name}.{ext}"


def report() -> str:
    """The Snakemake HTML report."""
    return f"{RESULTS}/report.html"


def log(rule: str, stem: str) -> str:
    """Log file of one job."""
    return f"{RESULTS}/logs/{rule}/{stem}.log"


def benchmark(rule: str, stem: str) -> str:
    """Run time and memory record of one job."""
    return f"{RESULTS}/benchmarks/{rule}/{stem}.tsv"
