#!/usr/bin/env bash
# Brings a one-node Slurm cluster up or down on this machine, for testing deploy/slurm-array.sh.
#
#   scripts/slurm_local.sh up     # install (Debian's slurm-wlm and munge), configure, start
#   scripts/slurm_local.sh down   # stop the daemons this script started
#
# Needs root (apt-get, /etc/slurm, daemons). One node, proctrack/linuxproc and task/none so
# that no cgroup setup is needed (containers rarely allow it); no cgroup.conf, no database.
# `up` exits non-zero if the cluster does not answer, so callers can skip loudly.
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/spool/vectro-slurm
LOGS=/var/log/vectro-slurm
NODE=$(hostname -s)

log() { echo "slurm_local: $*" >&2; }

install() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || { log "needs root to install slurm-wlm and munge"; exit 1; }
    log "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    if ! munge -n </dev/null >/dev/null 2>&1; then
        runuser -u munge -- munged --force
        # Remember that this script started it, so that `down` stops it and nothing else.
        mkdir -p "$STATE"
        cp /run/munge/munged.pid "$STATE/munged.pid" 2>/dev/null || true
    fi
    for _ in $(seq 20); do munge -n </dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.5; done
    log "munged does not answer"; exit 1
}

write_conf() {
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$LOGS"
    cat > "$CONF_DIR/slurm.conf" <<CONF
# Written by vectro's scripts/slurm_local.sh: a one-node test cluster.
ClusterName=vectro-local
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
MpiDefault=none
NodeName=$NODE CPUs=$(nproc) State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    rm -f "$CONF_DIR/cgroup.conf"
}

up() {
    install
    start_munge
    write_conf
    if ! scontrol ping >/dev/null 2>&1; then
        slurmctld -i
    fi
    pgrep -F "$STATE/slurmd.pid" >/dev/null 2>&1 || slurmd
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
        case "$state" in
            idle|mixed|allocated) log "up: node $NODE is $state"; return 0 ;;
            down*|drain*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    log "the node did not become idle; see $LOGS"; tail -5 "$LOGS"/*.log >&2 || true
    exit 1
}

down() {
    for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/munged.pid"; do
        if [ -s "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
    log "down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
