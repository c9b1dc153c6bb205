r"""Checks of a `snakemake --profile slurm` run on the one-node test cluster (tests/slurm).

    python tests/slurm/check_run.py cluster --slurm-dir W/slurm --local-dir W/local \
        --partition P [--fail-once-dir W/failonce]
    python tests/slurm/check_run.py gpu-job --slurm-dir W/slurm --local-dir W/local \
        --model-dir results/models/toy/vampnet-s2-lag1ps --gpu-model fake \
        [--fail-once-dir W/failonce]

`cluster` asserts that every rule job went through sbatch (a Slurm job id in Snakemake's
log, a Slurm log under .snakemake/slurm_logs, and a record in slurmctld's job-completion
log with the expected partition), that the one injected failure was retried as a new Slurm
job, that no training job was given a GPU, and that every CSV and .npz under results/
equals that of the local run of the same config. `gpu-job` checks the single training job
resubmitted with a GPU request: Slurm granted the GPU (gres), gdyn ran with it in
CUDA_VISIBLE_DEVICES, and the job's outputs still equal the local ones. The fail-once
folder is where tests/slurm/fail-once/gdyn left its marker and its log of calls.
Exit status 0 when every check passes, 1 otherwise. Only the standard library and numpy.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import subprocess
import sys
from pathlib import Path

SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.?$")
FINISHED = re.compile(r"Finished jobid: (\d+) \(Rule: (\w+)\)")
# Columns that hold wall-clock times, not results.
TIMING_COLUMNS = {"seconds"}
KOOPMAN_TABLES = ("timescales", "ck", "eigen", "populations", "kinetics", "replicates")


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def ok(self, cond: bool, what: str) -> bool:
        print(f"[{'ok' if cond else 'FAIL'}] {what}")
        if not cond:
            self.failed += 1
        return cond


def snakemake_log(workdir: Path) -> str:
    """Text of the newest main Snakemake log of a run directory."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise SystemExit(f"no Snakemake log under {workdir}/.snakemake/log")
    return logs[-1].read_text()


def submissions(text: str) -> list[tuple[str, str, str]]:
    """(snakemake job id, Slurm job id, Slurm log) of every sbatch submission in a log."""
    out = []
    for line in text.splitlines():
        m = SUBMITTED.search(line.strip())
        if m:
            out.append((m.group(1), m.group(2), m.group(3)))
    return out


def scontrol_config(key: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "config"], check=True, capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == key:
            return value.strip()
    raise SystemExit(f"scontrol show config has no {key}")


def jobcomp_records() -> dict[str, dict[str, str]]:
    """slurmctld's job-completion log (jobcomp/filetxt), keyed by Slurm job id."""
    path = Path(scontrol_config("JobCompLoc"))
    records = {}
    for line in path.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            records[fields["JobId"]] = fields
    return records


def scontrol_job(job_id: str) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", "-d", job_id], check=True, capture_output=True, text=True
    ).stdout


# --- comparison of outputs ---------------------------------------------------------------


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def compare_csv(a: Path, b: Path, rtol: float) -> tuple[bool, str]:
    with a.open(newline="") as fa, b.open(newline="") as fb:
        ra, rb = list(csv.reader(fa)), list(csv.reader(fb))
    if len(ra) != len(rb):
        return False, f"{len(ra)} vs {len(rb)} rows"
    if not ra:
        return True, "empty"
    header = ra[0]
    if header != rb[0]:
        return False, f"headers differ: {header} vs {rb[0]}"
    skip = {i for i, name in enumerate(header) if name in TIMING_COLUMNS}
    worst, cells = 0.0, 0
    for row, (xa, xb) in enumerate(zip(ra[1:], rb[1:], strict=True), start=2):
        if len(xa) != len(xb):
            return False, f"row {row}: {len(xa)} vs {len(xb)} cells"
        for col, (va, vb) in enumerate(zip(xa, xb, strict=True)):
            if col in skip or va == vb:
                cells += 1
                continue
            na, nb = _number(va), _number(vb)
            if na is None or nb is None:
                return False, f"row {row} column {header[col]!r}: {va!r} vs {vb!r}"
            if math.isnan(na) and math.isnan(nb):
                continue
            diff = abs(na - nb)
            worst = max(worst, diff)
            if diff > rtol * max(abs(na), abs(nb)):
                return False, f"row {row} column {header[col]!r}: {va} vs {vb}"
            cells += 1
    return True, f"{len(ra) - 1} rows, max abs diff {worst:.3g}"


def compare_npz(a: Path, b: Path, rtol: float) -> tuple[bool, str]:
    import numpy as np

    with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
        if sorted(za.files) != sorted(zb.files):
            return False, f"keys {sorted(za.files)} vs {sorted(zb.files)}"
        worst = 0.0
        for key in za.files:
            x, y = za[key], zb[key]
            if x.shape != y.shape or x.dtype != y.dtype:
                return False, f"{key}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}"
            if x.dtype.kind in "fc":
                if not np.allclose(x, y, rtol=rtol, atol=0.0, equal_nan=True):
                    return False, f"{key}: max abs diff {np.nanmax(np.abs(x - y)):.3g}"
                if x.size:
                    worst = max(worst, float(np.nanmax(np.abs(x - y), initial=0.0)))
            elif not np.array_equal(x, y):
                return False, f"{key}: values differ"
    return True, f"{len(za.files)} arrays, max abs diff {worst:.3g}"


def compare_trees(
    checks: Checks, slurm: Path, local: Path, rtol: float, only: str | None = None
) -> None:
    """Every CSV and .npz under results/ (benchmarks excluded) of both runs is equal."""

    def files(root: Path) -> set[Path]:
        base = root / "results"
        sub = base / only if only else base
        found = {p for p in sub.rglob("*") if p.suffix in {".csv", ".npz"} and p.is_file()}
        return {p.relative_to(root) for p in found if "benchmarks" not in p.parts}

    fs, fl = files(slurm), files(local)
    checks.ok(fs == fl, f"same CSV/.npz files in both runs ({len(fl)} files)")
    for missing in sorted(fl - fs)[:10]:
        print(f"       only in the local run: {missing}")
    for extra in sorted(fs - fl)[:10]:
        print(f"       only in the cluster run: {extra}")
    n_equal = 0
    for rel in sorted(fs & fl):
        compare = compare_csv if rel.suffix == ".csv" else compare_npz
        try:
            same, detail = compare(slurm / rel, local / rel, rtol)
        except Exception as exc:  # unreadable file: report, do not crash the checker
            same, detail = False, f"{type(exc).__name__}: {exc}"
        if same:
            n_equal += 1
            if rel.parts[1] == "koopman":
                print(f"       {rel}: equal ({detail})")
        else:
            checks.ok(False, f"{rel} differs: {detail}")
    checks.ok(n_equal == len(fs & fl), f"{n_equal}/{len(fs & fl)} files equal (rtol={rtol:g})")


# --- the checks ------------------------------------------------------------------------


def _calls(fail_once_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """(subcommand, CUDA_VISIBLE_DEVICES) of each gdyn call, by Slurm job id (fail-once log)."""
    out: dict[str, list[tuple[str, str]]] = {}
    log = fail_once_dir / "calls.log"
    for line in log.read_text().splitlines() if log.is_file() else []:
        job, command, cvd = line.split(" ", 2)
        out.setdefault(job, []).append((command, cvd.removeprefix("CUDA_VISIBLE_DEVICES=")))
    return out


def check_cluster(args: argparse.Namespace) -> Checks:
    checks = Checks()
    slurm, local = Path(args.slurm_dir), Path(args.local_dir)
    text = snakemake_log(slurm)
    subs = submissions(text)
    finished = FINISHED.findall(text)
    rule_jobs = {job for job, rule in finished if rule != "all"}
    submitted_jobs = {job for job, _, _ in subs}
    slurm_ids = [sid for _, sid, _ in subs]
    checks.ok(
        bool(rule_jobs) and rule_jobs <= submitted_jobs,
        f"all {len(rule_jobs)} finished rule jobs were submitted with sbatch "
        f"({len(subs)} Slurm jobs: ids {min(map(int, slurm_ids), default=0)}"
        f"..{max(map(int, slurm_ids), default=0)})",
    )
    checks.ok(len(set(slurm_ids)) == len(slurm_ids), "every submission got its own Slurm job id")

    logs = [Path(log) for _, _, log in subs]
    checks.ok(
        all(p.is_file() and p.is_relative_to(slurm / ".snakemake" / "slurm_logs") for p in logs),
        f"a Slurm log per job under {slurm}/.snakemake/slurm_logs ({len(logs)} files)",
    )

    records = jobcomp_records()
    missing = [sid for sid in slurm_ids if sid not in records]
    checks.ok(not missing, f"slurmctld's job-completion log records all {len(slurm_ids)} jobs")
    wrong_partition = [
        sid for sid in slurm_ids if records.get(sid, {}).get("Partition") != args.partition
    ]
    checks.ok(not wrong_partition, f"every job ran in partition {args.partition!r}")
    states: dict[str, int] = {}
    for sid in slurm_ids:
        state = records.get(sid, {}).get("JobState", "?")
        states[state] = states.get(state, 0) + 1
    print(f"       Slurm job states: {states}")

    failed_ids = {sid for sid in slurm_ids if records.get(sid, {}).get("JobState") != "COMPLETED"}
    if args.fail_once_dir:
        marker = Path(args.fail_once_dir) / "failed" / "slurm_job_id"
        injected = marker.read_text().strip() if marker.is_file() else ""
        checks.ok(bool(injected), f"a transient failure was injected (Slurm job {injected or '-'})")
        checks.ok(
            failed_ids == {injected},
            f"the injected job is the only one not COMPLETED: {sorted(failed_ids)}",
        )
        job = next((j for j, sid, _ in subs if sid == injected), None)
        retries = [sid for j, sid, _ in subs if j == job and sid != injected]
        retried_ok = [sid for sid in retries if records.get(sid, {}).get("JobState") == "COMPLETED"]
        checks.ok(
            job is not None and bool(retried_ok) and f"Trying to restart job {job}." in text,
            f"Snakemake job {job} was retried as Slurm job(s) {retries} and completed",
        )
        train_gpus = {
            cvd
            for calls in _calls(Path(args.fail_once_dir)).values()
            for command, cvd in calls
            if command == "train"
        }
        checks.ok(
            bool(train_gpus) and train_gpus <= {"", "unset"},
            "with GDYN_SLURM_GPUS=0 no training job was given a GPU "
            f"(CUDA_VISIBLE_DEVICES: {sorted(train_gpus)})",
        )
    else:
        checks.ok(not failed_ids, f"every Slurm job COMPLETED: {sorted(failed_ids)} did not")

    for table in KOOPMAN_TABLES:
        found = sorted((slurm / "results" / "koopman").rglob(f"{table}.csv"))
        checks.ok(bool(found), f"cluster run wrote {len(found)} koopman {table}.csv")
    compare_trees(checks, slurm, local, args.rtol)
    return checks


def check_gpu_job(args: argparse.Namespace) -> Checks:
    checks = Checks()
    slurm, local = Path(args.slurm_dir), Path(args.local_dir)
    subs = submissions(snakemake_log(slurm))
    rules = [
        Path(log).relative_to(slurm / ".snakemake" / "slurm_logs").parts[0] for *_, log in subs
    ]
    checks.ok(
        rules == ["rule_train_vampnet"],
        f"one training job resubmitted with a GPU request (got {len(subs)}: {rules})",
    )
    if not subs:
        return checks
    sid = subs[-1][1]
    info = scontrol_job(sid)
    print(
        "       " + " ".join(line.strip() for line in info.splitlines() if "GRES" in line.upper())
    )
    checks.ok("JobState=COMPLETED" in info, f"Slurm job {sid} COMPLETED")
    checks.ok(
        f"gres:gpu:{args.gpu_model}:1" in info or f"gpu:{args.gpu_model}:1" in info,
        f"Slurm job {sid} was granted gpu:{args.gpu_model}:1 (sbatch --gpus from the profile)",
    )
    if args.fail_once_dir:
        calls = _calls(Path(args.fail_once_dir)).get(sid, [])
        checks.ok(
            bool(calls) and all(cvd not in {"", "unset"} for _, cvd in calls),
            f"inside Slurm job {sid}, gdyn ran with the granted GPU exposed: {calls}",
        )
    compare_trees(
        checks, slurm, local, args.rtol, only=str(Path(args.model_dir).relative_to("results"))
    )
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["cluster", "gpu-job"])
    parser.add_argument("--slurm-dir", required=True, help="working directory of the cluster run")
    parser.add_argument("--local-dir", required=True, help="working directory of the local run")
    parser.add_argument("--partition", help="partition every job must have run in")
    parser.add_argument("--fail-once-dir", help="folder of the injected failure's marker")
    parser.add_argument("--model-dir", help="gpu-job: results/models/... of the resubmitted job")
    parser.add_argument("--gpu-model", default="fake")
    parser.add_argument(
        "--rtol", type=float, default=0.0, help="relative tolerance (default: exact)"
    )
    args = parser.parse_args(argv)
    checks = check_cluster(args) if args.mode == "cluster" else check_gpu_job(args)
    print(
        f"{args.mode}: {'all checks passed' if not checks.failed else f'{checks.failed} check(s) FAILED'}"
    )
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
