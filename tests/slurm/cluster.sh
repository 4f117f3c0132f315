#!/usr/bin/env bash
# A private single-node Slurm for tests: `cluster.sh start DIR` writes a
# slurm.conf for this host under DIR, starts munged (own key and socket),
# slurmctld and slurmd, waits until the node is idle and prints the
# SLURM_CONF to export; `cluster.sh stop DIR` stops exactly the daemons it
# started, by pid. ESX_SLURM_PREEMPT=cancel configures partition preemption.
# Needs root and Debian's munge, slurmctld, slurmd and
# slurm-client (see ../../.ci/run). Facts behind each setting:
# ../../../shared/SLURM-NOTES.md in the development tree.
set -euo pipefail

cmd=${1:?usage: cluster.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: cluster.sh start|stop DIR}")
ctld_port=${ESX_SLURMCTLD_PORT:-16817}
slurmd_port=${ESX_SLURMD_PORT:-16818}

stop_pid() { # pidfile
    [ -f "$1" ] || return 0
    local pid
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        local stat
        stat=$(ps -o stat= -p "$pid" 2>/dev/null || true)
        [ -z "$stat" ] || [[ "$stat" == Z* ]] && return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

case "$cmd" in
stop)
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    stop_pid "$dir/munge/munged.pid"
    exit 0
    ;;
start) ;;
*)
    echo "usage: cluster.sh start|stop DIR" >&2
    exit 2
    ;;
esac

[ "$(id -u)" = 0 ] || { echo "cluster.sh: needs root (slurmd runs jobs as their users)" >&2; exit 1; }
for tool in munged slurmctld slurmd sbatch squeue; do
    command -v "$tool" >/dev/null || { echo "cluster.sh: $tool not found (apt-get install munge slurmctld slurmd slurm-client)" >&2; exit 1; }
done

mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
# munged refuses to run as root and insists on private key and socket folders.
chown munge:munge "$dir/munge"
chmod 0700 "$dir/munge"
if [ ! -f "$dir/munge/munge.key" ]; then
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
fi
chown munge:munge "$dir/munge/munge.key"
chmod 0400 "$dir/munge/munge.key"
socket="$dir/munge/munge.socket"
su -s /bin/sh munge -c "/usr/sbin/munged --socket='$socket' --key-file='$dir/munge/munge.key' \
    --pid-file='$dir/munge/munged.pid' --log-file='$dir/munge/munged.log' \
    --seed-file='$dir/munge/munged.seed' --force"
munge -S "$socket" -n | unmunge -S "$socket" >/dev/null

host=$(hostname -s)
node=$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$host NodeAddr=127.0.0.1/")
cat >"$dir/slurm.conf" <<CONF
ClusterName=esxtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$socket
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
MinJobAge=3600
SchedulerParameters=batch_sched_delay=0,sched_interval=1
$node State=UNKNOWN
CONF
if [ "${ESX_SLURM_PREEMPT:-}" = cancel ]; then
    # Two partitions on the node: a job in `high` preempts one in `low`,
    # which gets SIGTERM and is cancelled (PreemptMode=CANCEL).
    cat >>"$dir/slurm.conf" <<CONF
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
PartitionName=low Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=high Nodes=$host MaxTime=INFINITE State=UP PriorityTier=2
CONF
else
    echo "PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP" >>"$dir/slurm.conf"
fi
export SLURM_CONF="$dir/slurm.conf"
slurmctld
slurmd
for _ in $(seq 300); do
    if [ "$(sinfo -h -o %T 2>/dev/null | head -1)" = idle ]; then
        echo "SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.1
done
echo "cluster.sh: the node did not become idle in 30 s; see $dir/log" >&2
sinfo >&2 || true
exit 1
