#!/usr/bin/env bash
# Bring up a one-node Slurm cluster on this machine (no systemd, no cgroups, no slurmdbd).
#
#   bash tests/slurm/start.sh RUN_DIR
#
# Renders tests/slurm/{slurm,gres}.conf.in into /etc/slurm/ (only where those files are
# absent or were written by this script; copies go to RUN_DIR/), starts munged
# (as the munge user; reused if one already answers), slurmctld and slurmd, and waits
# until the node is idle. Writes RUN_DIR/env.sh (source it: SLURM_CONF,
# GDYN_SLURM_PARTITION) and RUN_DIR/pids/<daemon>.pid for every daemon it started;
# tests/slurm/stop.sh RUN_DIR stops exactly those. Needs root and the Debian packages
# slurm-wlm and munge.
#
# Environment (all optional): GDYN_SLURM_PARTITION (gdynci), GDYN_SLURM_CTLD_PORT (6817),
# GDYN_SLURM_SLURMD_PORT (6818), GDYN_SLURM_MEM_MB and GDYN_SLURM_CPUS (default: what
# `slurmd -C` reports for this machine), GDYN_SLURM_START_TIMEOUT (60 seconds).
set -euo pipefail

run=${1:?usage: start.sh RUN_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$run"
run=$(cd "$run" && pwd)
mkdir -p "$run/state" "$run/spool" "$run/log" "$run/pids"

partition=${GDYN_SLURM_PARTITION:-gdynci}
ctld_port=${GDYN_SLURM_CTLD_PORT:-6817}
slurmd_port=${GDYN_SLURM_SLURMD_PORT:-6818}
timeout_s=${GDYN_SLURM_START_TIMEOUT:-60}
node=gdynnode
host=$(hostname -s)
etc_conf=/etc/slurm/slurm.conf
marker="# gdyn one-node test cluster: written by tests/slurm/start.sh"

log() { echo "[slurm start] $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (slurmd and munged need it)"
for exe in munged munge unmunge slurmctld slurmd sinfo scontrol; do
    command -v "$exe" >/dev/null || die "$exe not found: apt-get install -y slurm-wlm munge"
done

# What this machine really has (slurmd -C prints e.g. "CPUs=2 ... RealMemory=24105").
hw=$(slurmd -C | head -1)
cpus=${GDYN_SLURM_CPUS:-$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")}
mem_mb=${GDYN_SLURM_MEM_MB:-$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")}
if [ -z "$cpus" ] || [ -z "$mem_mb" ]; then die "could not read CPUs/RealMemory from: $hw"; fi

# Refuse to fight a Slurm that is already running on these ports.
for port in "$ctld_port" "$slurmd_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is in use (another slurmctld/slurmd?); set GDYN_SLURM_CTLD_PORT/GDYN_SLURM_SLURMD_PORT"
    fi
done

# The config must sit at the default path: inside a job the slurm-jobstep plugin starts
# `srun` with every SLURM_* variable except the job's identity removed (SLURM_CONF
# included), so srun reads /etc/slurm/slurm.conf. A real cluster's config is never
# overwritten: only a file this script wrote (marked by its first line) is replaced.
render() { # TEMPLATE: the template with every placeholder filled in, after our marker
    echo "$marker"
    sed -e "s#@RUN@#$run#g" -e "s#@NODE@#$node#g" -e "s#@HOST@#$host#g" \
        -e "s#@CPUS@#$cpus#g" -e "s#@MEM_MB@#$mem_mb#g" -e "s#@PARTITION@#$partition#g" \
        -e "s#@CTLD_PORT@#$ctld_port#g" -e "s#@SLURMD_PORT@#$slurmd_port#g" "$1"
}
mkdir -p /etc/slurm
: >"$run/installed_conf"
for name in slurm.conf gres.conf; do
    target=/etc/slurm/$name
    if [ -e "$target" ] && [ "$(head -1 "$target")" != "$marker" ]; then
        die "$target exists and was not written by this script; refusing to replace it"
    fi
    render "$here/$name.in" >"$run/$name"
    if grep -q '@[A-Z_]*@' "$run/$name"; then die "unrendered placeholder in $run/$name"; fi
    cp "$run/$name" "$target.gdyn-tmp"
    mv "$target.gdyn-tmp" "$target"
    echo "$target" >>"$run/installed_conf"
done
export SLURM_CONF=$etc_conf
printf 'export SLURM_CONF=%s\nexport GDYN_SLURM_PARTITION=%s\n' "$etc_conf" "$partition" >"$run/env.sh"

# --- munge: /run/munge owned by munge, munged as the munge user --------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running; reusing it (stop.sh leaves it alone)"
else
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        install -d -o munge -g munge -m 0700 /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid \
        --log-file=/var/log/munge/munged.log --seed-file=/var/lib/munge/munged.seed
    for _ in $(seq 50); do
        [ -s /run/munge/munged.pid ] && break
        sleep 0.1
    done
    cp /run/munge/munged.pid "$run/pids/munged.pid"
    munge -n | unmunge >/dev/null || die "munge round trip failed (see /var/log/munge/munged.log)"
    log "munged pid $(cat "$run/pids/munged.pid")"
fi

# --- slurmctld and slurmd (both daemonise and write their pid files) ----------------
wait_pidfile() { # FILE NAME
    for _ in $(seq 100); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    die "$2 did not start; see $run/log/$2.log"
}
slurmctld -f "$SLURM_CONF"
wait_pidfile "$run/slurmctld.pid" slurmctld
cp "$run/slurmctld.pid" "$run/pids/slurmctld.pid"
log "slurmctld pid $(cat "$run/pids/slurmctld.pid")"
slurmd -f "$SLURM_CONF" -N "$node"
wait_pidfile "$run/slurmd.pid" slurmd
cp "$run/slurmd.pid" "$run/pids/slurmd.pid"
log "slurmd pid $(cat "$run/pids/slurmd.pid")"

# --- wait until the node is idle ------------------------------------------------------
deadline=$((SECONDS + timeout_s))
state=""
while [ $SECONDS -lt $deadline ]; do
    state=$(sinfo -h -N -n "$node" -o %T 2>/dev/null || true)
    if [ "$state" = idle ]; then
        log "node $node idle in partition $partition ($cpus CPUs, $mem_mb MB); SLURM_CONF=$SLURM_CONF"
        sinfo >&2
        exit 0
    fi
    # A node that came up "down"/"drained" from an older state file can be resumed.
    case "$state" in down* | drain*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;; esac
    sleep 1
done
die "node $node not idle after ${timeout_s}s (state: ${state:-unknown}); see $run/log/"
