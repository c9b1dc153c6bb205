# Shared helpers: which files exist for which system, wildcard constraints, resources.
import errno
import json
import math
import os
import shlex

import numpy as np

from gdyn import compare as gdyn_compare
from gdyn import config as gc
from gdyn import layout as L
from gdyn import models as gdyn_models
from gdyn import plots as gdyn_plots
from gdyn import temperatures as gdyn_temperatures
from gdyn.settings import ExecutionSettings, GraphSettings
from gdyn.trajectory import read_header

SYSTEMS = config["systems"]
# Config defaults are the schema's, filled in by `validate` (Snakefile) into every mapping
# the config has, so the rules read keys without a fallback. The `execution` section may be
# absent; its settings object has the same defaults (gdyn.settings).
EXECUTION = ExecutionSettings(**config.get("execution", {}))
PARTS = list(L.PARTS)
GDYN_ENV = "../../envs/gdyn.yaml"


def _systems_by_source(source):
    return [name for name, s in SYSTEMS.items() if s["source"] == source]


def _alternatives(names):
    # A regex matching exactly these names (one that never matches when the list is empty).
    return "|".join(names) if names else "(?!x)x"


SIMULATED = _systems_by_source("simulate")
DOWNLOADED = _systems_by_source("download")
LOCAL = _systems_by_source("local")


wildcard_constraints:
    system=_alternatives(list(SYSTEMS)),
    part=_alternatives(PARTS),
    model=_alternatives(gdyn_models.MODEL_KINDS),
    n_states=r"\d+|auto",
    lag=r"[0-9]+(\.[0-9]+)?ps",
    temperature=r"[0-9]+(\.[0-9]+)?K",
    traj=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


def settings(section, system):
    """One config section of one system as a shell-quoted JSON argument for `--settings`."""
    return shlex.quote(json.dumps(SYSTEMS[system].get(section, {}), sort_keys=True))


def train_settings(system):
    """The `train` section as `--settings` JSON for a training job, less the workflow's
    per_temperature (which selects jobs, not how one trains: a job's params stay as they
    were before the key existed)."""
    block = {k: v for k, v in SYSTEMS[system].get("train", {}).items() if k != "per_temperature"}
    return shlex.quote(json.dumps(block, sort_keys=True))


def config_json(section, *keys):
    """A `params` function: the system's config `section` as JSON, only its `keys` when
    given (the keys a rule's command reads). Pass it to the shell as `{params.x:q}`.

    A function of the wildcards alone, on purpose: Snakemake compares such params with
    those recorded for the outputs (its `params` rerun trigger) but leaves out functions
    of input, output, threads or resources. So an edit to exactly these keys reruns the
    rule and what depends on it, and an edit to any other key does not.
    """

    def value(wildcards):
        block = SYSTEMS[wildcards.system].get(section) or {}
        if keys:
            block = {k: block[k] for k in keys if k in block}
        return json.dumps(block, sort_keys=True)

    return value


def raw_files(system):
    return [L.raw(system, t) for t in gc.trajectory_names(SYSTEMS[system])]


def split_files(system, parts=PARTS):
    return [
        L.split_piece(system, part, traj)
        for part in parts
        for traj in gc.split_pieces(SYSTEMS[system], part)
    ]


def graph_dirs(system, parts=PARTS):
    return [
        L.graph_store(system, part, traj)
        for part in parts
        for traj in gc.split_pieces(SYSTEMS[system], part)
    ]


def traj_origin(system, traj):
    """What a raw trajectory is made from: the user's file (local) or the simulate_toy job
    file (simulated); nothing for a download (the raw file is the origin). A user's file
    that no longer exists is left out (the raw copy then stands for it)."""
    s = SYSTEMS[system]
    if s["source"] == "local":
        path = s["files"][traj]["path"]
        return [path] if os.path.exists(path) else []
    if s["source"] == "simulate":
        return [L.simulated_job(system, toy_job_of(system, int(traj.removeprefix("li"))))]
    return []


def traj_sources(system, traj):
    """The raw trajectory and its origin: the files everything derived from it depends on.

    Every rule that reads a derived file (split piece, graph store, probabilities) also
    lists these. Snakemake does not rerun a job whose output is missing when its consumers
    look up to date, and a failed job's outputs are deleted: without this, a corrupt or
    replaced trajectory would fail once and then pass as "Nothing to be done" with every
    result still from the old data. With it, a changed source keeps every downstream result
    out of date until a run on valid data replaces them.
    """
    return [L.raw(system, traj), *traj_origin(system, traj)]


def sources(system, parts=PARTS):
    """traj_sources of every trajectory in the given split parts of a system."""
    trajs = sorted({t for part in parts for t in gc.split_pieces(SYSTEMS[system], part)})
    return [f for t in trajs for f in traj_sources(system, t)]


def lag_labels(system):
    return [L.lag_label(x) for x in gc.lags_ps(SYSTEMS[system])]


def lag_ps(wildcards):
    """The lag in ps of a `{lag}` wildcard (its path label, e.g. "10ps"): the value of
    train/lags_ps with that label, as the number the config gives (`--lag-ps`)."""
    for x in gc.lags_ps(SYSTEMS[wildcards.system]):
        if L.lag_label(x) == wildcards.lag:
            return repr(float(x))
    raise ValueError(f"config: lag {wildcards.lag!r} is not in train/lags_ps of system "
                     f"{wildcards.system!r}")


def model_probs(system, model, n_states, part="test"):
    """probs_{part}.npz of every lag of one (model, n_states): the input of the Koopman stage."""
    return [L.probs(system, model, n_states, lag, part) for lag in lag_labels(system)]


def candidate_probs(system, model, n_states, part="test"):
    """model_probs of (model, n_states); for n_states "auto" (koopman.n_states: auto) those
    of every candidate state count, the selected one among them."""
    if n_states == L.AUTO:
        _, counts = gc.selection_candidates(SYSTEMS[system])
        return [p for n in counts for p in model_probs(system, model, n, part)]
    return model_probs(system, model, n_states, part)


def selection_summaries(system):
    """Koopman summary.json of every candidate state count (gdyn select's input)."""
    model, counts = gc.selection_candidates(SYSTEMS[system])
    return [L.koopman_summary(system, model, n) for n in counts]


def selection_configs(system):
    """config.json of every candidate model, state count x lag (gdyn select's input)."""
    model, counts = gc.selection_candidates(SYSTEMS[system])
    return [L.model_file(system, model, n, lag, "config.json")
            for n in counts for lag in lag_labels(system)]


def selection_outputs(system):
    """The selection table, choice and figure when the system has candidates; with
    koopman.n_states: auto also the selected candidate's Koopman outputs."""
    if gc.selection_candidates(SYSTEMS[system]) is None:
        return []
    out = [L.selection(system, "json"), L.selection(system, "csv"),
           L.selection_figure(system, "pdf"), L.selection_figure(system, "png")]
    model, n = analysed(system)
    if n == L.AUTO:
        out += [L.koopman_table(system, model, L.AUTO, t) for t in L.KOOPMAN_TABLES]
        out.append(L.koopman_summary(system, model, L.AUTO))
    return out


def koopman_outputs(system):
    out = []
    for model, counts in gc.model_state_counts(SYSTEMS[system]).items():
        for n in counts:
            out += [L.koopman_table(system, model, n, t) for t in L.KOOPMAN_TABLES]
    return out


def analysed(system):
    """(model, n_states) whose Koopman model feeds the structure and transport analyses."""
    return gc.analysed(SYSTEMS[system])


def structure_outputs(system):
    """Outputs of every analysis the system's config switches on (positions and
    representative are made when a figure asks for them)."""
    s = SYSTEMS[system]
    st = s.get("structure", {})
    files = [f for key, f in (("profile", "profile.csv"), ("q3", "q3.csv"), ("rdf", "rdf.csv"),
                              ("charge", "charge.csv")) if key in st]
    if "snapshot_frame" in st:
        files += ["snapshot.extxyz", "snapshot.png"]
    if "conduction" in s:
        files += ["diffusion.csv", "conduction.csv"]
    return [L.structure_file(system, f) for f in files]


def figure_system(name):
    """The system whose config lists figure/table `name` (None if no system does)."""
    return gdyn_plots.figure_system(name, SYSTEMS)


def figure_outputs():
    out = []
    for name in L.FIGURES:
        if figure_system(name):
            out += [L.figure(name, "pdf"), L.figure(name, "png")]
    for name in L.TABLES:
        if figure_system(name):
            out += [L.table(name, "csv"), L.table(name, "md")]
    return out


# --- temperature.smk: a temperature series (none by default)
def temperature_of(system):
    """{trajectory: temperature_K} of a series ({} otherwise)."""
    return gdyn_temperatures.temperature_of(SYSTEMS[system])


def temperatures_arg(system):
    """`--temperatures JSON` of a series (each trajectory's temperature: gdyn koopman
    writes kinetics.csv per temperature, gdyn conduction conducts per temperature); ""
    otherwise."""
    temps = temperature_of(system)
    return f"--temperatures {shlex.quote(json.dumps(temps, sort_keys=True))}" if temps else ""


def temperature_outputs(system):
    """arrhenius.csv/json of the analysed (model, n_states) and the figure, for a series."""
    if not temperature_of(system):
        return []
    model, n = analysed(system)
    return [L.koopman_file(system, model, n, "arrhenius.csv"),
            L.koopman_file(system, model, n, "arrhenius.json"),
            L.figure(f"{system}_arrhenius", "pdf"), L.figure(f"{system}_arrhenius", "png")]


def per_temperature_on(system):
    """Whether train.per_temperature retrains the analysed model per temperature (a series
    only: gdyn.config refuses the key elsewhere)."""
    return bool(SYSTEMS[system]["train"].get("per_temperature")) and bool(temperature_of(system))


def per_temperature_outputs(system):
    """per_temperature.csv of the analysed (model, n_states) when train.per_temperature."""
    if not per_temperature_on(system):
        return []
    return [L.koopman_file(system, *analysed(system), "per_temperature.csv")]


def temperature_labels(system):
    """Path labels (`64K`) of a series' temperatures, ascending."""
    return [L.temperature_label(t) for t in gdyn_temperatures.temperatures(SYSTEMS[system])]


def temperature_split_files(system, label, parts=PARTS):
    """split_files of the trajectories at one temperature (its path label)."""
    trajs = {n for n, t in temperature_of(system).items() if L.temperature_label(t) == label}
    return [L.split_piece(system, part, traj)
            for part in parts for traj in gc.split_pieces(SYSTEMS[system], part)
            if traj in trajs]


def temperature_sources(wildcards):
    """traj_sources of the trajectories at one temperature (see traj_sources)."""
    trajs = {os.path.splitext(os.path.basename(f))[0]
             for f in temperature_split_files(wildcards.system, wildcards.temperature)}
    return [f for t in sorted(trajs) for f in traj_sources(wildcards.system, t)]


def temperature_split_args(wildcards):
    """`--train A.npz ... --val ... --test ...` of one temperature's pieces."""
    return " ".join(
        f"--{part} " + " ".join(map(shlex.quote, temperature_split_files(
            wildcards.system, wildcards.temperature, [part])))
        for part in PARTS
    )


def _uses_graphs(model):
    return gdyn_models.spec(model).inputs == "graphs"


def temperature_graph_inputs(wildcards):
    """The graph stores of one temperature's pieces (none for a model without graphs or
    with graph.store: false)."""
    if not (_uses_graphs(wildcards.model) and graph_store(wildcards.system)):
        return []
    return [L.graph_store(wildcards.system, part, os.path.splitext(os.path.basename(f))[0])
            for part in PARTS
            for f in temperature_split_files(wildcards.system, wildcards.temperature, [part])]


def temperature_graph_args(wildcards):
    """graph_args of one temperature's pieces ("" for a model without graphs)."""
    if not _uses_graphs(wildcards.model):
        return ""
    if not graph_store(wildcards.system):
        return f"--graph {settings('graph', wildcards.system)}"
    return " ".join(
        f"--{part}-graphs " + " ".join(
            shlex.quote(L.graph_store(wildcards.system, part,
                                      os.path.splitext(os.path.basename(f))[0]))
            for f in temperature_split_files(wildcards.system, wildcards.temperature, [part]))
        for part in PARTS
    )


def per_temperature_model_outputs():
    return {
        f.replace(".", "_"): L.per_temperature_file("{system}", "{model}", "{n_states}",
                                                    "{temperature}", f)
        for f in L.MODEL_FILES
    }


def per_temperature_probs(wildcards):
    """probs_test.npz of the analysed model retrained at each temperature."""
    return [L.per_temperature_file(wildcards.system, wildcards.model, wildcards.n_states, t,
                                   "probs_test.npz")
            for t in temperature_labels(wildcards.system)]


def per_temperature_mem_mb(wildcards, input):
    """train_mem_mb of the model kind being retrained."""
    return train_mem_mb(wildcards.model)(wildcards, input)


# --- export.smk: outputs on request (none by default)
def export_outputs(system):
    """One memberships extxyz per test piece when `export` lists memberships."""
    if "memberships" not in (SYSTEMS[system].get("export") or []):
        return []
    return [L.export_memberships(system, t) for t in gc.split_pieces(SYSTEMS[system], "test")]


def all_targets():
    out = []
    for system in SYSTEMS:
        out += koopman_outputs(system)
        out += selection_outputs(system)
        out += structure_outputs(system)
    out += figure_outputs()
    out += [f for system in SYSTEMS for f in temperature_outputs(system)]
    out += [f for system in SYSTEMS for f in per_temperature_outputs(system)]
    out += [f for system in SYSTEMS for f in export_outputs(system)]
    out.append(L.table("paper_comparison", "md"))
    return out


log_path = L.log
bench_path = L.benchmark


# --- data.smk: download and split parameters


def download_url(wildcards):
    entry = SYSTEMS[wildcards.system]["files"][wildcards.traj]
    if "url" in entry:
        return entry["url"]
    record = config.get("materials_cloud", {}).get("record")
    if not record:
        raise ValueError(
            f"config: systems/{wildcards.system}/files/{wildcards.traj} has no 'url' and "
            "materials_cloud/record is not set"
        )
    return f"{record}/files/{entry['filename']}?download=1"


def download_md5(wildcards):
    """`--md5 MD5` when the config pins it, as arguments (none otherwise)."""
    md5 = SYSTEMS[wildcards.system]["files"][wildcards.traj].get("md5")
    return ["--md5", md5] if md5 else []


def split_piece(wildcards):
    pieces = gc.split_pieces(SYSTEMS[wildcards.system], wildcards.part)
    if wildcards.traj not in pieces:
        raise ValueError(
            f"config: trajectory {wildcards.traj!r} is not in split/{wildcards.part} "
            f"of system {wildcards.system!r}"
        )
    return pieces[wildcards.traj]


def frame_time_args(wildcards):
    s = SYSTEMS[wildcards.system]
    if "frame_interval_ps" in s:
        return f"--frame-interval-ps {s['frame_interval_ps']}"
    return f"--duration-ps {s['duration_ps']}"


# --- toy.smk


def toy_jobs(system):
    """Li indices simulated by each simulate_toy job of a simulated system."""
    sim = SYSTEMS[system]["simulate"]
    n_li, n_jobs = int(sim["n_li"]), int(sim["n_jobs"])
    n_jobs = max(1, min(n_jobs, n_li))
    bounds = [round(k * n_li / n_jobs) for k in range(n_jobs + 1)]
    # A temperature series (gdyn.temperatures): the same jobs at each temperature, Li
    # numbered on from one temperature to the next, so a job never mixes temperatures.
    return [list(range(t * n_li + bounds[k], t * n_li + bounds[k + 1]))
            for t in range(len(sim.get("temperatures_K") or [None])) for k in range(n_jobs)]


def toy_job_of(system, li):
    for job, members in enumerate(toy_jobs(system)):
        if li in members:
            return job
    raise ValueError(f"Li {li} is not simulated for system {system}")


# --- structure.smk: the inputs of an analysis of the analysed model at tau*


def test_pieces(wildcards):
    return split_files(wildcards.system, ["test"])


def test_sources(wildcards):
    return sources(wildcards.system, ["test"])  # see traj_sources


def analysed_probs(wildcards):
    """probs_test.npz at every lag of the analysed (model, n_states) (tau* among them)."""
    return candidate_probs(wildcards.system, *analysed(wildcards.system), "test")


def analysed_summary(wildcards):
    """Koopman summary.json of the analysed (model, n_states): tau* and its probs file."""
    return L.koopman_summary(wildcards.system, *analysed(wildcards.system))


def charge_if_on(wildcards):
    """charge.csv when structure/charge is set ([] otherwise): its r* and per-state
    charges feed the representative configurations and the conduction."""
    if "charge" in SYSTEMS[wildcards.system].get("structure", {}):
        return [L.structure_file(wildcards.system, "charge.csv")]
    return []


# --- train.smk

def model_outputs(model):
    return {
        f.replace(".", "_"): L.model_file("{system}", model, "{n_states}", "{lag}", f)
        for f in L.MODEL_FILES
    }


def split_args(wildcards):
    """`--train A.npz B.npz --val ... --test ...` for the training command."""
    parts = []
    for part in PARTS:
        files = split_files(wildcards.system, [part])
        parts.append(f"--{part} " + " ".join(map(shlex.quote, files)))
    return " ".join(parts)


def graph_settings(system):
    """The system's `graph` section (gdyn.settings.GraphSettings)."""
    return GraphSettings(**SYSTEMS[system]["graph"])


def graph_store(system):
    """Whether the system's graphs are stored (graphs rule) or built inside training."""
    return graph_settings(system).store


def train_graph_inputs(wildcards):
    """The graph stores a GDyNet training job reads (none when graphs are built on the fly)."""
    return graph_dirs(wildcards.system) if graph_store(wildcards.system) else []


def reference_lag(system):
    """The lag whose model fixes the state numbering of its (model, n_states): the first."""
    return lag_labels(system)[0]


def reference_probs(wildcards, model):
    """probs_val.npz of the reference lag's model ([] for the reference itself)."""
    if wildcards.lag == reference_lag(wildcards.system):
        return []
    return [L.probs(wildcards.system, model, wildcards.n_states,
                    reference_lag(wildcards.system), "val")]


def reference_model(wildcards, model):
    """model.pt of the reference lag's model: the other lags' warm start (gdyn train
    --init-from; [] for the reference itself)."""
    return [os.path.join(os.path.dirname(p), "model.pt")
            for p in reference_probs(wildcards, model)]


def reference_arg(wildcards, model):
    """`--reference NPZ` of the training command ("" for the reference lag)."""
    return " ".join(f"--reference {shlex.quote(p)}" for p in reference_probs(wildcards, model))


def init_arg(wildcards, model):
    """`--init-from MODEL_PT` of the training command: the warm start ("" for the
    reference lag)."""
    return " ".join(f"--init-from {shlex.quote(p)}" for p in reference_model(wildcards, model))


def graph_args(wildcards):
    if not graph_store(wildcards.system):
        return f"--graph {settings('graph', wildcards.system)}"
    parts = []
    for part in PARTS:
        dirs = graph_dirs(wildcards.system, [part])
        parts.append(f"--{part}-graphs " + " ".join(map(shlex.quote, dirs)))
    return " ".join(parts)


# Memory of a training job (MB), a model fitted to measured peak anonymous RSS
# (benchmarks/bench_onthefly.py memory, BENCHMARKS.md "Memory model of the rules"):
# the process after imports, plus activations per edge of a step (2 x batch frames x N
# rows x M neighbours; rows <= N, so pruning only lowers it), plus, with graph.store:
# false, the graphs kept in memory (at most graph.cache_mb). Memory-mapped inputs (split
# pieces, graph stores) are page cache, not counted: the kernel drops it at will.
TRAIN_BASE_MB = 350
TRAIN_MB_PER_MEDGE = 1400  # per million edges of a training step
MEM_SAFETY = 1.25


def train_mem_mb(model):
    """``resources: mem_mb`` of a training rule: the measured model above, from the atoms
    and frames of the job's split pieces (read when the job is scheduled)."""

    def mem_mb(wildcards, input):
        s = SYSTEMS[wildcards.system]
        train = s["train"]
        batch = int(train["batch_size"])
        stride = int(train["frame_stride"])
        missing = [f for f in input.splits if not os.path.exists(f)]
        if missing:  # not made yet (a dry run): Snakemake asks again when it schedules the job
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), missing[0])
        headers = [read_header(f) for f in input.splits]  # .npy headers, no data read
        n_atoms = max(h.n_atoms for h in headers)
        grid_frames = sum(-(-h.n_frames // stride) for h in headers)
        if gdyn_models.spec(model).inputs == "graphs":
            m = int(s["graph"]["n_neighbors"])
            mb = TRAIN_BASE_MB + TRAIN_MB_PER_MEDGE * 2 * batch * n_atoms * m / 1e6
            if not graph_store(wildcards.system):
                kept = grid_frames * n_atoms * m * 8 / 1e6
                mb += min(kept, float(graph_settings(wildcards.system).cache_mb))
        else:  # positions of the targets, cached per piece for every grid frame
            with np.load(input.splits[0]) as z:  # reads only this small member
                n_targets = z["target_index"].size
            mb = TRAIN_BASE_MB + grid_frames * n_targets * 12 / 1e6
        return int(math.ceil(MEM_SAFETY * mb / 100.0) * 100)

    return mem_mb


TRAIN_RESOURCES = dict(
    runtime=240,
    gpu=EXECUTION.train_gpus,
)
