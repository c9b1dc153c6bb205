"""Where a cold first run of the default DAG spends its time (issue 24).

    python benchmarks/bench_cold.py [--repo PATH] [--work DIR] [--cores 8] [--no-dag]
    python benchmarks/bench_cold.py --results DIR [--log SNAKEMAKE_LOG]   # summarise only

From a fresh clone (``git clone REPO WORK/clone``: no ``results/``, no ``__pycache__``,
so neither Python bytecode nor numba's on-disk kernel cache exists yet), with the
interpreter running this script (its venv) and the clone's ``src`` first on ``PYTHONPATH``:

1. start-up probes, each in a fresh process, CPU seconds (user + system; wall time means
   little on a shared machine) of the first (cold) run and the median of the next three: the bare interpreter; ``import gdyn.cli`` (what ``gdyn --help`` pays);
   ``import numpy / torch / numba / openmm / scipy / pandas / matplotlib``; the first
   cell-list neighbour search (numba compiling the kernel, or loading it from its cache:
   ``cache=True`` writes it under the clone's ``src/gdyn/graph/__pycache__``); creating
   the toy's OpenMM context (Reference platform).
2. ``snakemake --cores N all`` in the clone (``/usr/bin/time``-style wall), with
   ``PYTHONPROFILEIMPORTTIME=1`` so every job's log holds its own import times.
3. Per rule from ``results/benchmarks/`` and the job logs: jobs, wall (sum, max), CPU,
   import time per job (sum of top-level cumulative import times; which heavy packages
   the rule imports), and for training jobs the split of the job's wall into start-up
   (imports + opening inputs), the epochs (training steps + validation, from the
   ``epoch e/E: ... (s)`` lines) and the rest (scoring, prediction, writing).

``--results`` summarises an existing run instead (no import times unless its logs have
them). Prints Markdown for BENCHMARKS.md and writes ``WORK/cold.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numba", "openmm", "scipy", "pandas", "matplotlib", "snakemake")

PROBES = {
    "python -c pass": "pass",
    "import gdyn.cli": "import gdyn.cli",
    "gdyn split's parser": "from gdyn.cli import build_parser; build_parser(['split'])",
    "import numpy": "import numpy",
    "import torch": "import torch",
    "import numba": "import numba",
    "import openmm": "import openmm",
    "import scipy.linalg": "import scipy.linalg",
    "import pandas": "import pandas",
    "import matplotlib.pyplot": "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot",
}
# The first cell-list search in a process: numba compiles (or loads from its cache) the
# kernels. 300 atoms in a 20 A cube is above the image-search size (cell lists apply).
NUMBA_PROBE = """
import time, numpy as np
from gdyn.graph import NeighbourSearch
rng = np.random.default_rng(0)
x = rng.random((2, 300, 3)) * 20.0
lat = np.broadcast_to(np.eye(3) * 20.0, (2, 3, 3)).copy()
t = time.process_time()
NeighbourSearch(12).frames(x, lat, None, np.arange(2))
print(time.process_time() - t)
"""
OPENMM_PROBE = """
import time, numpy as np
from gdyn.toy.md import make_context
from gdyn.toy.potential import parse_settings
t = time.process_time()
make_context(parse_settings({}), np.full((8, 3), 1.0))  # imports openmm, builds the force
print(time.process_time() - t)
"""


def run_s(code: str, env: dict, cwd: Path) -> float:
    """CPU seconds (user + system) of ``python -c code`` in a fresh process: steadier than
    wall time on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def printed_s(code: str, env: dict, cwd: Path) -> float:
    """The number ``python -c code`` prints (CPU seconds it measured itself)."""
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def probes(env: dict, cwd: Path, repeat: int = 3) -> dict[str, dict[str, float]]:
    """Cold (first) and warm (median of ``repeat``) CPU seconds of each start-up probe."""
    out = {}
    for name, code in PROBES.items():
        try:
            times = [run_s(code, env, cwd) for _ in range(repeat + 1)]
        except subprocess.CalledProcessError:
            continue  # not installed
        out[name] = {"cold": times[0], "warm": statistics.median(times[1:])}
    for name, code in (("numba kernel, first search", NUMBA_PROBE),
                       ("OpenMM import + toy context (Reference)", OPENMM_PROBE)):
        try:
            times = [printed_s(code, env, cwd) for _ in range(repeat + 1)]
        except subprocess.CalledProcessError:
            continue
        out[name] = {"cold": times[0], "warm": statistics.median(times[1:])}
    return out


def import_times(log: Path) -> tuple[float, set[str]]:
    """Seconds of top-level imports in a job log written with PYTHONPROFILEIMPORTTIME,
    and the heavy packages among them."""
    total, heavy = 0.0, set()
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return 0.0, heavy
    for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", text, re.M):
        cumulative, indent, name = int(m.group(1)), len(m.group(2)), m.group(3)
        if indent == 0:  # a top-level import: its cumulative time includes its children
            total += cumulative / 1e6
        top = name.split(".")[0]
        if top in HEAVY:
            heavy.add(top)
    return total, heavy


STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.M)
EPOCH = re.compile(r"epoch \d+/\d+: train VAMP-2 .*\(([\d.]+) s\)")


def train_split(log: Path, wall: float, imports: float) -> dict[str, float] | None:
    """Start-up, epochs and the rest (scoring, prediction, writing) of a training job."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    stamps = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in STAMP.findall(text)]
    epochs = [float(x) for x in EPOCH.findall(text)]
    if not stamps or not epochs:
        return None
    logged = (stamps[-1] - stamps[0]).total_seconds()
    epoch_s = sum(epochs)
    # Before the first log line: interpreter, imports, opening the inputs.
    startup = max(0.0, wall - logged)
    return {"startup": startup, "imports": imports, "epochs": epoch_s,
            "rest": max(0.0, logged - epoch_s)}


def summarise(results: Path) -> dict[str, dict]:
    """Per rule: jobs, wall sum / max, CPU, import seconds and heavy packages, train split."""
    rules: dict[str, dict] = {}
    bench = results / "benchmarks"
    for tsv in sorted(bench.rglob("*.tsv")):
        rel = tsv.relative_to(bench)
        rule = rel.parts[0]
        head, row = tsv.read_text().splitlines()[:2]
        rec = dict(zip(head.split("\t"), row.split("\t"), strict=False))
        wall = float(rec["s"])
        r = rules.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "max_s": 0.0, "cpu_s": 0.0,
                                    "import_s": 0.0, "heavy": set(), "max_rss_mb": 0.0,
                                    "train": []})
        r["jobs"] += 1
        r["wall_s"] += wall
        r["max_s"] = max(r["max_s"], wall)
        r["cpu_s"] += float(rec.get("cpu_time") or 0.0)
        r["max_rss_mb"] = max(r["max_rss_mb"], float(rec.get("max_rss") or 0.0))
        log = results / "logs" / rel.with_suffix(".log")
        imp, heavy = import_times(log)
        r["import_s"] += imp
        r["heavy"] |= heavy
        if rule.startswith("train_"):
            split = train_split(log, wall, imp)
            if split:
                r["train"].append(split)
    for r in rules.values():
        r["heavy"] = sorted(r["heavy"])
    return rules


def markdown(rules: dict[str, dict], probe: dict | None, wall: float | None) -> str:
    lines = []
    if wall is not None:
        lines.append(f"DAG wall: {wall:.0f} s\n")
    if probe:
        lines += ["| start-up probe (fresh process) | cold CPU s | warm CPU s (median of 3) |",
                  "|---|---|---|"]
        lines += [f"| {k} | {v['cold']:.2f} | {v['warm']:.2f} |" for k, v in probe.items()]
        lines.append("")
    lines += ["| rule | jobs | wall s (sum) | max s | CPU s | imports s (sum) | heavy imports "
              "| max_rss MB |", "|---|---|---|---|---|---|---|---|"]
    for rule, r in sorted(rules.items(), key=lambda kv: -kv[1]["wall_s"]):
        lines.append(f"| {rule} | {r['jobs']} | {r['wall_s']:.0f} | {r['max_s']:.1f} | "
                     f"{r['cpu_s']:.0f} | {r['import_s']:.1f} | {', '.join(r['heavy']) or '-'} "
                     f"| {r['max_rss_mb']:.0f} |")
    train = [(rule, r["train"]) for rule, r in rules.items() if r["train"]]
    if train:
        lines += ["", "| training rule | jobs | start-up s (mean) | epochs s (mean) | "
                  "scoring + prediction + writing s (mean) |", "|---|---|---|---|---|"]
        for rule, splits in sorted(train):
            n = len(splits)
            mean = {k: sum(s[k] for s in splits) / n for k in ("startup", "epochs", "rest")}
            lines.append(f"| {rule} | {n} | {mean['startup']:.1f} | {mean['epochs']:.1f} | "
                         f"{mean['rest']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (default: "
                    "this one; commit your changes first, a clone has only commits)")
    ap.add_argument("--work", type=Path, default=None, help="default: a new temp directory")
    ap.add_argument("--cores", type=int, default=8, help="snakemake --cores (README: 8)")
    ap.add_argument("--no-dag", action="store_true", help="probes only")
    ap.add_argument("--no-importtime", action="store_true",
                    help="run the DAG without PYTHONPROFILEIMPORTTIME (no import columns)")
    ap.add_argument("--results", type=Path, default=None,
                    help="summarise this results/ directory of an earlier run instead")
    args = ap.parse_args()
    if args.results is not None:
        print(markdown(summarise(args.results), None, None))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="gdyn-cold-"))
    work.mkdir(parents=True, exist_ok=True)
    clone = work / "clone"
    t = time.perf_counter()
    subprocess.run(["git", "clone", "--quiet", str(args.repo), str(clone)], check=True)
    clone_s = time.perf_counter() - t
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{clone / 'src'}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("NUMBA_CACHE_DIR", None)  # the cache goes next to the clone's sources
    probe = probes(env, clone)
    out: dict = {"clone_s": clone_s, "probes": probe, "load_before": os.getloadavg()}
    wall = None
    if not args.no_dag:
        # The probes compiled numba's kernel into the clone's cache; remove it so the DAG
        # starts as cold as a fresh clone.
        for p in (clone / "src").rglob("*.nbi"):
            p.unlink()
        for p in (clone / "src").rglob("*.nbc"):
            p.unlink()
        dag_env = dict(env)
        if not args.no_importtime:
            dag_env["PYTHONPROFILEIMPORTTIME"] = "1"
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(args.cores),
                               "all"], cwd=clone, env=dag_env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        (work / "snakemake.log").write_text(proc.stderr)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"snakemake failed ({proc.returncode}); log: {work}/snakemake.log")
        rules = summarise(clone / "results")
        out.update({"dag_wall_s": wall, "load_after": os.getloadavg(), "rules": rules})
    (work / "cold.json").write_text(json.dumps(out, indent=2, default=list))
    print(f"clone {clone_s:.1f} s; load {out['load_before'][0]:.1f}"
          + (f" -> {out['load_after'][0]:.1f}" if wall is not None else "") + f"; {work}")
    print(markdown(out.get("rules", {}), probe, wall))


if __name__ == "__main__":
    main()
