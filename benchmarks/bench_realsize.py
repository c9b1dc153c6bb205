"""The paper config's DAG on real-size synthetic data: wall time, peak memory, disk per stage.

    python benchmarks/bench_realsize.py peo  --data DIR --work DIR [--store false] [--cores 2]
    python benchmarks/bench_realsize.py siau --data DIR --work DIR [...]

Generates the synthetic trajectories (``benchmarks/synthetic.py``) into ``--data`` unless
they are there, writes a config with ``config/paper.yaml``'s system switched to
``source: local`` on those files and the training settings of :data:`REDUCED` (stated in
the output), runs ``snakemake --cores C all`` on it in ``--work`` and reports, per rule:
jobs, wall seconds (Snakemake's benchmark files), peak anonymous RSS of any of its jobs
(``RssAnon`` of every process under Snakemake, sampled every 0.2 s: the page cache of
memory-mapped inputs is file-backed and excluded), and the disk its outputs use. Prints
Markdown for BENCHMARKS.md and writes ``--work/realsize.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from gdyn.trajectory import load_trajectory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

# Training settings for the benchmark (the paper's: batch 16, 10 epochs over every pair,
# every frame). One epoch of 256 pairs keeps the benchmark to about an hour on 2 cores;
# batch 4 pairs as bench_train's throughput rows; frame_stride: the largest stride that
# divides every lag of the grid (PEO 10 frames = 100 ps, Si-Au 5 = 100 ps), so training,
# validation and prediction read every stride-th frame.
REDUCED = {"epochs": 1, "max_pairs_per_epoch": 256, "batch_size": 4}
TRAJ = {"peo": ["peo-traj-a", "peo-traj-b", "peo-traj-c", "peo-traj-d", "peo-traj-e"],
        "siau": ["siau-traj"]}
# gdyn subcommand of a process -> the rule it runs (train is refined by its model).
RULE_OF = {"check": "local_trajectory", "split": "split", "graphs": "graphs",
           "koopman": "koopman", "figure": "figure", "table": "table",
           "compare": "paper_comparison"}


def write_config(system: str, data: Path, work: Path, store: bool, cache_mb: float | None,
                 reduced: dict) -> Path:
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    s = paper["systems"][system]
    s["source"] = "local"
    s["data_label"] = f"synthetic {system}-sized data (benchmarks/synthetic.py), not the paper's"
    s["files"] = {name: {"path": str(data / f"{name}.npz")} for name in TRAJ[system]}
    s["graph"]["store"] = store
    if cache_mb is not None:
        s["graph"]["cache_mb"] = cache_mb
    s["train"].update(reduced)
    if "frame_stride" not in reduced:
        interval = s.get("frame_interval_ps")
        if interval is None:
            n_frames = load_trajectory(data / f"{TRAJ[system][0]}.npz", validate=False).n_frames
            interval = s["duration_ps"] / (n_frames - 1)
        s["train"]["frame_stride"] = math.gcd(*(round(x / interval) for x in s["train"]["lags_ps"]))
    cfg = {"systems": {system: s}}
    path = work / f"{system}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def ensure_data(system: str, data: Path, frames: int | None) -> None:
    if all((data / f"{n}.npz").is_file() for n in TRAJ[system]):
        return
    cmd = [sys.executable, str(ROOT / "benchmarks" / "synthetic.py"), system, str(data)]
    if frames:
        cmd += ["--frames", str(frames)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"generated {system} data in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


class Sampler:
    """Peak RssAnon (kB) of every process under ``root_pid``, by command line."""

    def __init__(self, root_pid: int, work: Path) -> None:
        self.root, self.work = root_pid, work
        self.peak: dict[int, tuple[int, list[str]]] = {}
        self.disk_peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def children(self) -> list[int]:
        kids: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(d))
        out, todo = [], [self.root]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += kids.get(p, [])
        return out

    def run(self) -> None:
        last_du = 0.0
        while not self.stop.is_set():
            for pid in self.children():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                m = re.search(r"RssAnon:\s+(\d+)", status)
                if not m:
                    continue
                kb = int(m.group(1))
                if kb > self.peak.get(pid, (0, []))[0]:
                    self.peak[pid] = (kb, [c.decode(errors="replace") for c in cmd if c])
            now = time.monotonic()
            if now - last_du > 10:
                self.disk_peak = max(self.disk_peak, du(self.work / "results"))
                last_du = now
            time.sleep(0.2)


def du(path: Path) -> int:
    """Bytes used on disk under ``path`` (allocated blocks: sparse files count as written)."""
    if not path.exists():
        return 0
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def rule_of(cmd: list[str]) -> str | None:
    """The rule a sampled process belongs to, from its ``gdyn ...`` command line."""
    for i, tok in enumerate(cmd):
        if tok.endswith("/gdyn") or tok == "gdyn":
            sub = cmd[i + 1] if i + 1 < len(cmd) else ""
            if sub == "train":
                return f"train_{cmd[i + 2]}" if i + 2 < len(cmd) else "train"
            return RULE_OF.get(sub, sub)
    return None


def bench_rows(work: Path) -> dict[str, dict]:
    """Per rule: jobs and wall seconds from Snakemake's benchmark files."""
    out: dict[str, dict] = {}
    for tsv in (work / "results" / "benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(work / "results" / "benchmarks").parts[0]
        head, row = tsv.read_text().splitlines()[:2]
        rec = dict(zip(head.split("\t"), row.split("\t"), strict=False))
        r = out.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "max_job_s": 0.0, "cpu_s": 0.0})
        r["jobs"] += 1
        r["wall_s"] += float(rec["s"])
        r["max_job_s"] = max(r["max_job_s"], float(rec["s"]))
        r["cpu_s"] += float(rec.get("cpu_time", 0) or 0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("system", choices=sorted(TRAJ))
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--store", choices=["true", "false"], default="false")
    ap.add_argument("--cache-mb", type=float, default=None, help="graph.cache_mb (store false)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--frames", type=int, default=None, help="synthetic frames (test runs)")
    ap.add_argument("--reduced", type=json.loads, default=None,
                    help=f"training settings replacing the paper's (default {REDUCED})")
    ap.add_argument("--target", default="all", help="snakemake target (default all)")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    ensure_data(args.system, args.data, args.frames)
    reduced = args.reduced if args.reduced is not None else REDUCED
    cfg = write_config(args.system, args.data, args.work, args.store == "true", args.cache_mb,
                       reduced)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d",
           str(args.work), "--cores", str(args.cores), args.target, "--configfile", str(cfg)]
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    sampler = Sampler(proc.pid, args.work)
    sampler.thread.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.thread.join()
    load1 = os.getloadavg()
    if proc.returncode:
        print(err[-4000:], file=sys.stderr)
        raise SystemExit(f"snakemake failed ({proc.returncode})")
    rows = bench_rows(args.work)
    for kb, cmdline in sampler.peak.values():
        rule = rule_of(cmdline)
        if rule is None:
            continue
        r = rows.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "max_job_s": 0.0, "cpu_s": 0.0})
        r["peak_anon_mb"] = max(r.get("peak_anon_mb", 0.0), kb / 1024)
    res = args.work / "results"
    disk = {d.name: du(d) / 1e9 for d in sorted(res.iterdir()) if d.is_dir()}
    reduced = yaml.safe_load(cfg.read_text())["systems"][args.system]["train"]
    out = {"system": args.system, "store": args.store, "reduced": reduced, "wall_s": wall,
           "load_before": load0, "load_after": load1, "rules": rows, "disk_gb": disk,
           "disk_peak_gb": max(sampler.disk_peak, du(res)) / 1e9,
           "data_gb": du(args.data) / 1e9, "free_gb": shutil.disk_usage(args.work).free / 1e9}
    (args.work / "realsize.json").write_text(json.dumps(out, indent=2))
    print(f"{args.system}: snakemake --cores {args.cores} {args.target}: {wall:.0f} s wall, "
          f"load {load0[0]:.1f} -> {load1[0]:.1f}; graph.store {args.store}; training "
          f"settings {json.dumps(reduced)}")
    print("\n| rule | jobs | wall s (sum) | longest job s | peak anon RSS MB |")
    print("|---|---|---|---|---|")
    for rule, r in sorted(rows.items(), key=lambda kv: -kv[1]["wall_s"]):
        print(f"| {rule} | {r['jobs']} | {r['wall_s']:.0f} | {r['max_job_s']:.0f} | "
              f"{r.get('peak_anon_mb', float('nan')):.0f} |")
    print("\n| results/ directory | GB |\n|---|---|")
    for name, gb in disk.items():
        print(f"| {name} | {gb:.2f} |")
    print(f"| **total (peak during the run)** | {out['disk_peak_gb']:.2f} |")
    print(f"\ninput data: {out['data_gb']:.2f} GB")


if __name__ == "__main__":
    main()
