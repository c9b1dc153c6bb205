"""The Slurm profile (slurm/config.yaml) as Snakemake 9 reads it: found by a bare
`--profile slurm` from the repository root, partition/account/GPU taken from environment
variables, GPU request switchable off. Dry runs only: no Slurm installation needed (the
cluster itself is exercised by tests/slurm/profile_e2e.sh, run by .ci/slurm)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "e2e" / "tiny.yaml"
TRAIN_RULES = {"train_gdynet", "train_vampnet"}
ENV_VARS = (
    "GDYN_SLURM_PARTITION",
    "GDYN_SLURM_GPU_PARTITION",
    "GDYN_SLURM_ACCOUNT",
    "GDYN_SLURM_GPUS",
    "GDYN_SLURM_GPU_MODEL",
    "SNAKEMAKE_PROFILE",
)

pytestmark = pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not on PATH")


def dry_run(tmp_path: Path, **env_vars: str) -> tuple[str, dict[str, list[dict[str, str]]]]:
    """`snakemake --profile slurm -n` from the repository root on the tiny config.

    Returns the output and, per rule, the resources of each of its jobs."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(env_vars)
    cmd = ["snakemake", "--profile", "slurm", "-n", "all", "--configfile", str(TINY)]
    proc = subprocess.run(
        [*cmd, "-d", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            rule = m.group(1)
            continue
        m = re.match(r"^\s+resources: (.*)$", line)
        if m and rule:
            pairs = (item.split("=", 1) for item in m.group(1).split(", "))
            jobs.setdefault(rule, []).append({k: v for k, v in pairs})
            rule = None
    return out, jobs


def test_bare_profile_name_resolves_from_repository_root(tmp_path):
    out, jobs = dry_run(tmp_path)
    # with the workflow profile (profiles/default: show-failed-logs, ...) layered on top
    assert ("Using profiles slurm and workflow specific profile profiles/default for setting "
            "default command line arguments") in out
    assert TRAIN_RULES <= set(jobs)
    for rule, resources in jobs.items():
        for res in resources:
            # every job has memory and a wall time (the profile's defaults or the rule's)
            assert "mem_mb" in res and "runtime" in res, (rule, res)
            assert "slurm_partition" not in res and "slurm_account" not in res, (rule, res)
            if rule in TRAIN_RULES:
                assert res.get("gpu") == "1" and "gpu_model" not in res, (rule, res)
            else:
                assert "gpu" not in res, (rule, res)


def test_partition_account_and_gpu_from_environment(tmp_path):
    _, jobs = dry_run(
        tmp_path,
        GDYN_SLURM_PARTITION="cpuq",
        GDYN_SLURM_GPU_PARTITION="gpuq",
        GDYN_SLURM_ACCOUNT="proj-42",
        GDYN_SLURM_GPUS="2",
        GDYN_SLURM_GPU_MODEL="a100",
    )
    for rule, resources in jobs.items():
        for res in resources:
            assert res.get("slurm_account") == "proj-42", (rule, res)
            if rule in TRAIN_RULES:
                assert res.get("slurm_partition") == "gpuq", (rule, res)
                assert res.get("gpu") == "2" and res.get("gpu_model") == "a100", (rule, res)
            else:
                assert res.get("slurm_partition") == "cpuq", (rule, res)


def test_gpu_request_switched_off(tmp_path):
    _, jobs = dry_run(
        tmp_path, GDYN_SLURM_PARTITION="cpuq", GDYN_SLURM_GPUS="0", GDYN_SLURM_GPU_MODEL="a100"
    )
    for rule in TRAIN_RULES:
        for res in jobs[rule]:
            # gpu=0: the plugin adds no --gpus; no model without GPUs; CPU partition
            assert res.get("gpu") == "0" and "gpu_model" not in res, (rule, res)
            assert res.get("slurm_partition") == "cpuq", (rule, res)
