#!/usr/bin/env bash
# A private one-node SLURM cluster on this machine, for the tests marked `slurm`.
#
#   tests/slurm/cluster.sh start  [DIR]   # write DIR/slurm.conf, start munged, slurmctld, slurmd
#   tests/slurm/cluster.sh status [DIR]   # sinfo + squeue of that cluster
#   tests/slurm/cluster.sh stop   [DIR]   # cancel its jobs, stop exactly the daemons it started
#   export SLURM_CONF=DIR/slurm.conf      # then sbatch, squeue, scontrol ... talk to it
#
# DIR (default /tmp/unrolled-slurm) holds everything: slurm.conf, the munge key and socket, the
# controller's state, slurmd's spool, logs and pid files. The daemons listen on free ports of
# their own and use their own munge socket, so a system SLURM or munge on the same host is left
# alone. Needs root (slurmd starts jobs as their users) and Debian's slurm-wlm and munge
# (`bash .ci/install-debian-packages`). Every wait has a time limit (START_TIMEOUT, default 90 s).
# Exit status: 0 ready/stopped, 2 cannot run here (not root, packages missing), 1 failure.
set -uo pipefail

cmd=${1:-}
dir=$(realpath -m "${2:-/tmp/unrolled-slurm}")
timeout=${START_TIMEOUT:-90}
conf=$dir/slurm.conf
export SLURM_CONF=$conf

die() { echo "cluster.sh: $*" >&2; exit 1; }
cannot() { echo "cluster.sh: $*" >&2; exit 2; }

# The pid in a pid file, if that process still runs the expected program.
alive_pid() {  # FILE PROGRAM
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2"* ]] || return 1
    echo "$pid"
}

# Processes that descend from PID (children first listed last).
descendants() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

stop_daemon() {  # PIDFILE PROGRAM
    local pid i
    pid=$(alive_pid "$1" "$2") || { rm -f "$1"; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -f "$1"
    echo "stopped $2 ($pid)"
}

wait_for() {  # SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2 i
    shift 2
    for i in $(seq 1 $((limit * 2))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    [[ "$(id -u)" == 0 ]] || cannot "needs root (slurmd runs jobs as their users); not root"
    local prog
    for prog in munged mungekey slurmctld slurmd sbatch sinfo; do
        command -v "$prog" >/dev/null || PATH=$PATH:/usr/sbin command -v "$prog" >/dev/null \
            || cannot "$prog not found: install Debian's slurm-wlm and munge (bash .ci/install-debian-packages)"
    done
    export PATH=$PATH:/usr/sbin
    if alive_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null; then
        die "a cluster already runs in $dir (cluster.sh stop $dir first)"
    fi
    mkdir -p "$dir"/{munge,state,spool,log,run}
    chmod 755 "$dir/munge"

    # munge: a key and a socket of our own
    [[ -s $dir/munge/munge.key ]] || mungekey --create --keyfile="$dir/munge/munge.key" \
        || die "mungekey failed"
    chmod 400 "$dir/munge/munge.key"
    munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed" --num-threads=4 \
        || die "munged did not start: $(tail -3 "$dir/log/munged.log" 2>/dev/null)"
    wait_for "$timeout" munge munge --socket="$dir/munge/munge.socket" -n \
        || die "munged does not answer on $dir/munge/munge.socket"

    # slurm.conf for this host: the node's CPUs and memory as slurmd detects them;
    # cred_expire: a requeued job waits this long before it starts again (default 120 s)
    local host node name ctld_port slurmd_port
    host=$(hostname -s)
    node=$(slurmd -C | head -1 | sed -e 's/ *UpTime=.*//') || die "slurmd -C failed"
    [[ "$node" == NodeName=* ]] || die "slurmd -C printed no node line: $node"
    name=${node#NodeName=}
    name=${name%% *}
    ctld_port=$(free_port)
    slurmd_port=$(free_port)
    while [[ "$slurmd_port" == "$ctld_port" ]]; do slurmd_port=$(free_port); done
    cat > "$conf" <<CONF
# A private one-node cluster for unrolled's tests (tests/slurm/cluster.sh); SLURM $(slurmd -V).
ClusterName=unrolled-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=30
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=60
SlurmdTimeout=120
MessageTimeout=30
InactiveLimit=0
KillWait=10
OverTimeLimit=0
MinJobAge=600
MaxArraySize=1001
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$name Default=YES DefaultTime=30 MaxTime=120 State=UP
CONF
    : > "$dir/plugstack.conf"

    UNROLLED_SLURM_CLUSTER=$dir slurmctld -f "$conf" -c -i \
        || die "slurmctld did not start: $(tail -3 "$dir/log/slurmctld.log")"
    UNROLLED_SLURM_CLUSTER=$dir slurmd -f "$conf" \
        || die "slurmd did not start: $(tail -3 "$dir/log/slurmd.log")"
    node_idle() { [[ "$(sinfo -h -N -o %T 2>/dev/null)" == idle ]]; }
    wait_for "$timeout" "idle node" node_idle \
        || die "the node is not idle after ${timeout}s: $(sinfo -N 2>&1 | tail -1); see $dir/log"
    echo "SLURM $(slurmd -V | cut -d' ' -f2) ready: export SLURM_CONF=$conf"
}

stop() {
    [[ -f $conf ]] || { echo "no cluster in $dir"; return 0; }
    export PATH=$PATH:/usr/sbin
    if alive_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null; then
        scancel --user="$(id -un)" 2>/dev/null
        no_jobs() { [[ -z "$(squeue -h -o %i 2>/dev/null)" ]]; }
        wait_for 30 "jobs cancelled" no_jobs || echo "cluster.sh: jobs left after scancel" >&2
    fi
    # job steps outlive slurmd: end those of this cluster (slurmstepd started by our slurmd)
    local pid stepds=()
    for pid in $(pgrep -x slurmstepd); do
        { tr '\0' '\n' < "/proc/$pid/environ"; } 2>/dev/null \
            | grep -qx "UNROLLED_SLURM_CLUSTER=$dir" && stepds+=("$pid")
    done
    for pid in "${stepds[@]}"; do
        # shellcheck disable=SC2046
        kill -KILL "$pid" $(descendants "$pid") 2>/dev/null
    done
    stop_daemon "$dir/run/slurmd.pid" slurmd
    stop_daemon "$dir/run/slurmctld.pid" slurmctld
    stop_daemon "$dir/run/munged.pid" munged
}

status() {
    [[ -f $conf ]] || { echo "no cluster in $dir"; return 1; }
    local name
    for name in munged slurmctld slurmd; do
        pid=$(alive_pid "$dir/run/$name.pid" "$name") && echo "$name: $pid" || echo "$name: not running"
    done
    sinfo -N && squeue
}

case $cmd in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status [DIR]" >&2; exit 64 ;;
esac
