#!/usr/bin/env bash
# End-to-end test of `snakemake --profile slurm` on a running Slurm cluster (normally the
# one-node cluster of tests/slurm/start.sh; .ci/slurm does everything in one go).
#
#   . RUN_DIR/env.sh && bash tests/slurm/profile_e2e.sh WORK_DIR
#
# 1. `snakemake --profile slurm -n all` from the repository root resolves the profile.
# 2. The tiny toy DAG (tests/e2e/tiny.yaml) runs twice from the repository root:
#    locally (`--cores 2`, WORK_DIR/local) and through `--profile slurm` (WORK_DIR/slurm)
#    with the partition from GDYN_SLURM_PARTITION and GDYN_SLURM_GPUS=0 (the CI node has
#    no GPU). In the cluster run a test-only `gdyn` on PATH (tests/slurm/fail-once) fails
#    the first training job once, so the profile's `retries` must resubmit it.
# 3. tests/slurm/check_run.py cluster: Slurm job ids in Snakemake's log, one Slurm log
#    per job, every job in slurmctld's completion log in the right partition, the injected
#    failure retried, every CSV/.npz under results/ equal to the local run.
# 4. One training job is rerun with GDYN_SLURM_GPUS=1 GDYN_SLURM_GPU_MODEL=fake: the
#    profile's GPU request reaches sbatch, Slurm grants the node's pretend GPU, training
#    falls back to the CPU, and the outputs still equal the local ones.
#
# Environment: GDYN_SLURM_PARTITION (required), GDYN_E2E_CONFIG (tests/e2e/tiny.yaml),
# GDYN_SLURM_E2E_TIMEOUT (seconds per Snakemake run, 1500), GDYN_SLURM_SKIP_GPU_JOB=1
# skips step 4 (a cluster without the pretend GPU).
set -euo pipefail

work=${1:?usage: profile_e2e.sh WORK_DIR}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)
config=${GDYN_E2E_CONFIG:-$repo/tests/e2e/tiny.yaml}
limit=${GDYN_SLURM_E2E_TIMEOUT:-1500}
partition=${GDYN_SLURM_PARTITION:?set GDYN_SLURM_PARTITION to the cluster partition}
log() { echo "[profile e2e $(date +%T)] $*" >&2; }

# Faster polling than the profile's cluster-friendly defaults, the squeue status command
# (no slurmdbd here, so sacct cannot answer), and the logs of successful jobs kept for
# the checks. Everything else comes from the profile itself.
cluster_flags=(
    --slurm-status-command squeue
    --slurm-init-seconds-before-status-checks 5
    --slurm-keep-successful-logs
    --latency-wait 15
)

local_pid=""
cleanup() {
    if [ -n "$local_pid" ] && kill -0 "$local_pid" 2>/dev/null; then
        kill -TERM "$local_pid" 2>/dev/null || true
        wait "$local_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

cd "$repo" # a bare `--profile slurm` is looked up in the current directory

log "1/4 dry run: snakemake --profile slurm -n all (from $repo)"
snakemake --profile slurm -n all >"$work/dryrun.log" 2>&1 \
    || { tail -30 "$work/dryrun.log"; exit 1; }
# (with the workflow profile profiles/default layered on top of it)
grep -Eq "^Using profiles? slurm( and workflow specific profile [^ ]+)? for setting default command line arguments" "$work/dryrun.log" \
    || { echo "profile 'slurm' was not used:" >&2; head -5 "$work/dryrun.log" >&2; exit 1; }
log "    profile resolved: $(grep -c '^rule ' "$work/dryrun.log") jobs planned"

log "2/4 tiny DAG: local reference run (background) and the cluster run"
rm -rf "$work/local" "$work/slurm" "$work/failonce"
mkdir -p "$work/local" "$work/slurm" "$work/failonce"
timeout -k 30 "$limit" snakemake --cores 2 --configfile "$config" -d "$work/local" all \
    >"$work/local.log" 2>&1 &
local_pid=$!

# The test-only gdyn wrapper, copied out so its exec bit does not depend on the checkout.
mkdir -p "$work/fail-once-bin"
install -m 0755 "$repo/tests/slurm/fail-once/gdyn" "$work/fail-once-bin/gdyn"

start=$SECONDS
set +e
env PATH="$work/fail-once-bin:$PATH" GDYN_FAIL_ONCE_DIR="$work/failonce" \
    GDYN_SLURM_GPUS=0 \
    timeout -k 30 "$limit" snakemake --profile slurm --configfile "$config" -d "$work/slurm" \
    "${cluster_flags[@]}" all >"$work/slurm.log" 2>&1
rc=$?
set -e
log "    cluster run: exit $rc after $((SECONDS - start)) s (log: $work/slurm.log)"
if [ $rc -ne 0 ]; then
    tail -40 "$work/slurm.log" >&2
    exit 1
fi
wait "$local_pid" || {
    log "local run failed"
    tail -40 "$work/local.log" >&2
    exit 1
}
local_pid=""
log "    local run done after $((SECONDS - start)) s (log: $work/local.log)"

log "3/4 checks: sbatch, Slurm history, retry, outputs equal to the local run"
python "$repo/tests/slurm/check_run.py" cluster --slurm-dir "$work/slurm" \
    --local-dir "$work/local" --partition "$partition" --fail-once-dir "$work/failonce"

if [ "${GDYN_SLURM_SKIP_GPU_JOB:-0}" = 1 ]; then
    log "4/4 skipped (GDYN_SLURM_SKIP_GPU_JOB=1)"
    exit 0
fi
log "4/4 one training job again with a GPU request (GDYN_SLURM_GPUS=1 GDYN_SLURM_GPU_MODEL=fake)"
model_dir=$(cd "$work/local" && find results/models -mindepth 2 -maxdepth 2 -type d -name 'vampnet-*' | sort | head -1)
[ -n "$model_dir" ] || { echo "no vampnet model in the local run" >&2; exit 1; }
sleep 1 # a new Snakemake log file name (it is time-stamped to the second)
start=$SECONDS
# The fail-once marker exists by now, so the wrapper only records the job's
# CUDA_VISIBLE_DEVICES (in $work/failonce/calls.log); nothing fails.
env PATH="$work/fail-once-bin:$PATH" GDYN_FAIL_ONCE_DIR="$work/failonce" \
    GDYN_SLURM_GPUS=1 GDYN_SLURM_GPU_MODEL=fake \
    timeout -k 30 "$limit" snakemake "$model_dir/probs_test.npz" --forcerun train_vampnet \
    --profile slurm --configfile "$config" -d "$work/slurm" "${cluster_flags[@]}" \
    >"$work/slurm-gpu.log" 2>&1 || { tail -40 "$work/slurm-gpu.log" >&2; exit 1; }
log "    GPU job done after $((SECONDS - start)) s (log: $work/slurm-gpu.log)"
python "$repo/tests/slurm/check_run.py" gpu-job --slurm-dir "$work/slurm" \
    --local-dir "$work/local" --model-dir "$model_dir" --gpu-model fake \
    --fail-once-dir "$work/failonce"
