#!/usr/bin/env bash
# Stop the daemons tests/slurm/start.sh started, by the pids it recorded (never by name).
#
#   bash tests/slurm/stop.sh RUN_DIR
#
# Cancels jobs still on the cluster, then stops slurmd, slurmctld and munged (SIGTERM,
# SIGKILL after 20 s), then removes the /etc/slurm/{slurm,gres}.conf that start.sh wrote.
set -uo pipefail

run=${1:?usage: stop.sh RUN_DIR}
marker="# gdyn one-node test cluster: written by tests/slurm/start.sh"
log() { echo "[slurm stop] $*" >&2; }

stop_pid() { # NAME
    local file="$run/pids/$1.pid" pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$1 (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        log "stopped $1 (pid $pid)"
    fi
    rm -f "$file"
}

if [ -s "$run/pids/slurmctld.pid" ] && [ -f /etc/slurm/slurm.conf ]; then
    timeout 20 scancel --quiet --user "$(id -un)" 2>/dev/null || true
fi
stop_pid slurmd
stop_pid slurmctld
stop_pid munged

if [ -s "$run/installed_conf" ]; then
    while read -r conf; do
        if [ -n "$conf" ] && [ "$(head -1 "$conf" 2>/dev/null)" = "$marker" ]; then
            rm -f "$conf"
            log "removed $conf"
        fi
    done <"$run/installed_conf"
fi
rm -f "$run/installed_conf"
