#!/bin/bash
# A throwaway Slurm cluster on this machine for the slurm tests (after shared/recipes/slurm-testbed.sh):
# its own munged, slurmctld and slurmd(s), with every config, state, log, pid and socket file under DIR.
# Usage (root):
#   cluster.sh up1 DIR            one node (this machine's hostname, 127.0.0.1, free ports)
#   cluster.sh up2 DIR            two nodes, node1 and node2, each in a network namespace with its own
#                                 hostname, joined by a veth pair (10.78.0.1 and 10.78.0.2)
#   cluster.sh run DIR CMD...     runs a client command (sbatch, squeue, scontrol, scancel) against it
#   cluster.sh down DIR           cancels every job, stops the daemons by their pid files, removes namespaces
# DIR must be an absolute path to a folder that is absent or empty for up1/up2. A failed `up` tears down what
# it started; `down` is safe to repeat and after a partial `up`. DIR itself is left for the caller to remove
# (its *.log files say what went wrong). Names (namespaces, veths) come from DIR, so clusters in different
# folders do not meet; ports of a single-node cluster are picked free.
set -euo pipefail

usage() {
  echo "usage: $0 up1|up2|down DIR, or $0 run DIR COMMAND..." >&2
  exit 2
}
[ $# -ge 2 ] || usage
action=$1
dir=$2
shift 2
case $dir in
  /*) ;;
  *) echo "cluster.sh: expected an absolute DIR, but got '$dir'" >&2; exit 2 ;;
esac

# Nothing of an enclosing Slurm job (a developer running the tests inside an allocation) may leak into this
# cluster's clients or daemons: SLURM_* (except the config below), SBATCH_*, SRUN_* and SALLOC_* inputs.
while read -r name; do
  case $name in SLURM_* | SBATCH_* | SRUN_* | SALLOC_*) unset "$name" ;; esac
done < <(compgen -e)
export SLURM_CONF=$dir/slurm.conf

# Names from DIR: namespaces <tag>a and <tag>b, veths <tag>va and <tag>vb (at most 15 characters).
tag=lsl$(printf '%s' "$dir" | cksum | awk '{print $1 % 1000000}')
ns1=${tag}a
ns2=${tag}b

# Client commands of a two-node cluster run in node1's namespace (the controller's address lives there).
client() {
  if [ -e "/run/netns/$ns1" ]; then
    nsenter --net="/run/netns/$ns1" "$@"
  else
    "$@"
  fi
}

# wait_idle "N idle": waits up to 30 s for sinfo to show N idle nodes.
wait_idle() {
  local seen=""
  for _ in $(seq 1 300); do
    seen=$(client sinfo -h -o '%D %T' 2>&1 || true)
    [ "$seen" = "$1" ] && return 0
    sleep 0.1
  done
  echo "cluster.sh: expected '$1' from sinfo within 30 s, but got '$seen'" >&2
  return 1
}

# A free TCP port and the one after it (slurmctld, slurmd) on this machine, starting from one derived from
# DIR. Another process may take them before the daemons do; then `up1` fails and says so in the logs.
free_port_pair() {
  local used port
  used=$(ss -Htan 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}' | sort -un)
  port=$((20000 + $(printf '%s' "$dir" | cksum | awk '{print $1 % 20000}')))
  for _ in $(seq 1 200); do
    if ! grep -qx "$port" <<<"$used" && ! grep -qx "$((port + 1))" <<<"$used"; then
      echo "$port"
      return 0
    fi
    port=$((port + 2))
    [ "$port" -lt 40000 ] || port=20000
  done
  echo "cluster.sh: no free pair of TCP ports found" >&2
  return 1
}

start_munge() {
  mkdir -p "$dir/munge"
  chmod 700 "$dir/munge"
  head -c 1024 /dev/urandom >"$dir/munge/munge.key"
  chmod 600 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" </dev/null >>"$dir/daemons.out" 2>&1
}

# write_conf CONTROLLER CTLD_PORT SLURMD_PORT NODE_LINE...
write_conf() {
  local controller=$1 ctld_port=$2 slurmd_port=$3
  shift 3
  cat >"$SLURM_CONF" <<CONF
# Written by tests/slurm/cluster.sh for a throwaway test cluster; removed with $dir.
ClusterName=lockstep-test
SlurmctldHost=$controller
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a finished job's node waits before a requeued job may start there (default 120 s).
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=10
# Defaults a job script cannot lean on: no MPI plugin unless it asks (srun --mpi=pmix), and no requeue
# unless it allows one (sbatch --requeue).
MpiDefault=none
JobRequeue=0
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# The nodes' CPUs are taken as configured (a one-CPU machine still runs two tasks).
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool-%n
TmpFS=$dir/tmp-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
KillWait=10
MinJobAge=600
$(printf '%s\n' "$@")
PartitionName=testbed Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

up1() {
  local host cpus port
  host=$(hostname -s)
  cpus=$(nproc)
  [ "$cpus" -ge 2 ] || cpus=2
  mkdir -p "$dir/ctld" "$dir/spool-$host" "$dir/tmp-$host"
  start_munge
  port=$(free_port_pair)
  write_conf "$host(127.0.0.1)" "$port" "$((port + 1))" \
    "NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN"
  slurmctld </dev/null >>"$dir/daemons.out" 2>&1
  slurmd </dev/null >>"$dir/daemons.out" 2>&1
  wait_idle "1 idle"
}

up2() {
  local side
  mkdir -p "$dir/ctld" "$dir"/spool-node{1,2} "$dir"/tmp-node{1,2}
  start_munge
  ip netns add "$ns1"
  ip netns add "$ns2"
  ip link add "${tag}va" type veth peer name "${tag}vb"
  ip link set "${tag}va" netns "$ns1"
  ip link set "${tag}vb" netns "$ns2"
  ip -n "$ns1" addr add 10.78.0.1/24 dev "${tag}va"
  ip -n "$ns2" addr add 10.78.0.2/24 dev "${tag}vb"
  for side in a b; do
    ip -n "$tag$side" link set lo up
    ip -n "$tag$side" link set "${tag}v$side" up
  done
  # The namespaces have ports of their own: Slurm's defaults are free there.
  write_conf "node1(10.78.0.1)" 6817 6818 \
    "NodeName=node1 NodeAddr=10.78.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN" \
    "NodeName=node2 NodeAddr=10.78.0.2 CPUs=2 RealMemory=1000 State=UNKNOWN"
  # nsenter --net, not `ip netns exec` (which remounts /sys); a UTS namespace each for the node's hostname,
  # inherited by the daemons and the tasks they start.
  nsenter --net="/run/netns/$ns1" unshare --uts sh -c 'hostname node1 && slurmctld && slurmd' \
    </dev/null >>"$dir/daemons.out" 2>&1
  nsenter --net="/run/netns/$ns2" unshare --uts sh -c 'hostname node2 && slurmd' \
    </dev/null >>"$dir/daemons.out" 2>&1
  wait_idle "2 idle"
}

# stop PIDFILE...: TERM to each, up to 10 s for all of them to end, then KILL to the rest.
stop() {
  local f pid pids=()
  for f in "$@"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  for _ in $(seq 1 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  return 0
}

# Processes of this cluster that outlived its daemons (a step that ignored the cancel): daemons, steps and
# tasks all carry this cluster's SLURM_CONF in their environment. Skips this script and its subshell.
leftovers() {
  local f pid
  for f in /proc/[0-9]*/environ; do
    pid=${f#/proc/}
    pid=${pid%/environ}
    [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] && continue
    grep -qzxF "SLURM_CONF=$SLURM_CONF" "$f" 2>/dev/null && echo "$pid"
  done
}

down() {
  set +e
  if [ -f "$SLURM_CONF" ] && [ -f "$dir/slurmctld.pid" ]; then
    client scancel --full --quiet --partition=testbed 2>/dev/null
    for _ in $(seq 1 100); do
      [ -z "$(client squeue -h 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  # The Slurm daemons together (slurmctld saves its state first, about 2 s), then munged.
  stop "$dir"/slurmd-*.pid "$dir/slurmctld.pid"
  stop "$dir/munge/munged.pid"
  for pid in $(leftovers); do kill -KILL "$pid" 2>/dev/null; done
  for ns in "$ns1" "$ns2"; do
    if [ -e "/run/netns/$ns" ]; then
      # Whatever a job left behind there (only this cluster's processes live in these namespaces).
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    fi
  done
  return 0
}

on_failed_up() {
  local status=$?
  trap - EXIT
  if [ "$status" -ne 0 ]; then
    echo "cluster.sh: $action failed; logs in $dir" >&2
    down
  fi
  exit "$status"
}

case $action in
  up1 | up2)
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
      echo "cluster.sh: expected an empty or absent folder, but $dir has files" >&2
      exit 2
    fi
    mkdir -p "$dir"
    # Any failure (set -e) or a TERM from a caller's timeout tears down what was started.
    trap on_failed_up EXIT
    trap 'exit 143' TERM INT HUP
    "$action"
    trap - EXIT
    ;;
  run)
    [ $# -ge 1 ] || usage
    client "$@"
    ;;
  down) down ;;
  *) usage ;;
esac
