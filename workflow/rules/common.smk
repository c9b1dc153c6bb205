# Shared helpers: which files exist for which system, wildcard constraints, resources.
import json
import shlex

from gdyn import config as gc
from gdyn import plots as gdyn_plots

SYSTEMS = config["systems"]
EXECUTION = config.get("execution", {})
PARTS = list(gc.PARTS)
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
    part="train|val|test",
    model="gdynet|vampnet",
    n_states=r"\d+",
    lag=r"[0-9]+(\.[0-9]+)?ps",
    traj=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


def settings(section, system):
    """One config section of one system as a shell-quoted JSON argument for `--settings`."""
    return shlex.quote(json.dumps(SYSTEMS[system].get(section, {}), sort_keys=True))


def raw_files(system):
    return [f"results/raw/{system}/{t}.npz" for t in gc.trajectory_names(SYSTEMS[system])]


def split_files(system, parts=PARTS):
    return [
        f"results/split/{system}/{part}/{traj}.npz"
        for part in parts
        for traj in gc.split_pieces(SYSTEMS[system], part)
    ]


def graph_dirs(system, parts=PARTS):
    return [
        f"results/graphs/{system}/{part}/{traj}"
        for part in parts
        for traj in gc.split_pieces(SYSTEMS[system], part)
    ]


def lag_labels(system):
    return [gc.lag_label(x) for x in gc.lags_ps(SYSTEMS[system])]


def model_dir(system, model, n_states, lag):
    return f"results/models/{system}/{model}-s{n_states}-lag{lag}"


def model_probs(system, model, n_states, part="test"):
    """probs_{part}.npz of every lag of one (model, n_states): the input of the Koopman stage."""
    return [
        f"{model_dir(system, model, n_states, lag)}/probs_{part}.npz"
        for lag in lag_labels(system)
    ]


def koopman_dir(system, model, n_states):
    return f"results/koopman/{system}/{model}-s{n_states}"


KOOPMAN_TABLES = ["timescales", "ck", "eigen", "populations"]


def koopman_outputs(system):
    out = []
    for model, counts in gc.model_state_counts(SYSTEMS[system]).items():
        for n in counts:
            d = koopman_dir(system, model, n)
            out += [f"{d}/{t}.csv" for t in KOOPMAN_TABLES]
    return out


def analysed(system):
    """(model, n_states) whose Koopman model feeds the structure and transport analyses."""
    k = SYSTEMS[system]["koopman"]
    return k.get("model", "gdynet"), int(k["n_states"])


def structure_outputs(system):
    s = SYSTEMS[system]
    st = s.get("structure", {})
    d = f"results/structure/{system}"
    out = []
    if "rdf" in st:
        out.append(f"{d}/rdf.csv")
    if "charge" in st:
        out.append(f"{d}/charge.csv")
    if "profile" in st:
        out.append(f"{d}/profile.csv")
    if "snapshot_frame" in st:
        out.append(f"{d}/snapshot.extxyz")
    if "q3" in st:
        out.append(f"{d}/q3.csv")
    if "conduction" in s:
        out += [f"{d}/diffusion.csv", f"{d}/conduction.csv"]
    return out


FIGURES = ["fig2", "fig3", "fig4", "fig5", "supp_fig1", "supp_fig2", "supp_fig3"]
TABLES = ["supp_table1", "supp_table2"]


def figure_system(name):
    """The system whose config lists figure/table `name` (None if no system does)."""
    return gdyn_plots.figure_system(name, SYSTEMS)


def figure_outputs():
    out = []
    for name in FIGURES:
        if figure_system(name):
            out += [f"results/figures/{name}.pdf", f"results/figures/{name}.png"]
    for name in TABLES:
        if figure_system(name):
            out += [f"results/tables/{name}.csv", f"results/tables/{name}.md"]
    return out


def all_targets():
    out = []
    for system in SYSTEMS:
        out += koopman_outputs(system)
        out += structure_outputs(system)
    out += figure_outputs()
    out.append("results/tables/paper_comparison.md")
    return out


def log_path(rule_name, stem):
    return f"results/logs/{rule_name}/{stem}.log"


def bench_path(rule_name, stem):
    return f"results/benchmarks/{rule_name}/{stem}.tsv"


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
    md5 = SYSTEMS[wildcards.system]["files"][wildcards.traj].get("md5")
    return f"--md5 {md5}" if md5 else ""


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
    n_li, n_jobs = int(sim["n_li"]), int(sim.get("n_jobs", 1))
    n_jobs = max(1, min(n_jobs, n_li))
    bounds = [round(k * n_li / n_jobs) for k in range(n_jobs + 1)]
    return [list(range(bounds[k], bounds[k + 1])) for k in range(n_jobs)]


def toy_job_of(system, li):
    for job, members in enumerate(toy_jobs(system)):
        if li in members:
            return job
    raise ValueError(f"Li {li} is not simulated for system {system}")


# --- structure.smk


def analysis_inputs(wildcards):
    """Test split, the analysed model's probabilities at every lag, and its Koopman summary."""
    model, n = analysed(wildcards.system)
    return {
        "test": split_files(wildcards.system, ["test"]),
        "probs": model_probs(wildcards.system, model, n, "test"),
        "summary": f"{koopman_dir(wildcards.system, model, n)}/summary.json",
    }


def analysis_args(wildcards, input):
    return f"--test {' '.join(input.test)} --probs {' '.join(input.probs)} --summary {input.summary}"


ANALYSIS_RESOURCES = dict(mem_mb=4000, runtime=60)


def positions_inputs(wildcards):
    """Test split, one model's probabilities at every lag, and that model's Koopman summary."""
    return {
        "test": split_files(wildcards.system, ["test"]),
        "probs": model_probs(wildcards.system, wildcards.model, wildcards.n_states, "test"),
        "summary": f"{koopman_dir(wildcards.system, wildcards.model, wildcards.n_states)}/summary.json",
    }


# --- train.smk

MODEL_FILES = ["model.pt", "config.json", "metrics.csv"] + [f"probs_{p}.npz" for p in PARTS]


def model_outputs(model):
    d = f"results/models/{{system}}/{model}-s{{n_states}}-lag{{lag}}"
    return {f.replace(".", "_"): f"{d}/{f}" for f in MODEL_FILES}


def split_args(wildcards):
    """`--train A.npz B.npz --val ... --test ...` for the training command."""
    parts = []
    for part in PARTS:
        files = split_files(wildcards.system, [part])
        parts.append(f"--{part} " + " ".join(files))
    return " ".join(parts)


def graph_args(wildcards):
    parts = []
    for part in PARTS:
        parts.append(f"--{part}-graphs " + " ".join(graph_dirs(wildcards.system, [part])))
    return " ".join(parts)


TRAIN_RESOURCES = dict(
    mem_mb=8000,
    runtime=240,
    gpu=int(EXECUTION.get("train_gpus", 0)),
)
