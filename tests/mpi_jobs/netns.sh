#!/bin/bash
# Two "hosts" on one machine for the multi-host test of tests/mpi_jobs: network namespaces with their own
# hostnames on a private bridge, and one mpirun job across them over TCP only (btl tcp,self).
# Usage (root): netns.sh MPIEXEC PROGRAM [ARGS...]   e.g. netns.sh mpirun lockstep_mpi_probe train --steps 5
# Runs PROGRAM as 2 ranks, one per host, and prints its output, then one line per host:
#   "netns: host=<hostname> rx_bytes=<n> tx_bytes=<n>"  (its link's traffic during the job)
# Exits with mpirun's status (137 when the job outlived its limit). Names and the subnet are unique to this
# run (from the PID); the namespaces, their processes and the scratch files are removed on exit, always.
# LOCKSTEP_NETNS_RATE (e.g. 1gbit, 5gbit): each host's link sends at most that rate (tc's token-bucket filter
# on its eth0), so that communication takes the time it takes on a real network (tests/perf/bench_link.sh).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 MPIEXEC PROGRAM [ARGS...]" >&2
  exit 2
fi
mpiexec=$1
shift
limit_s=${LOCKSTEP_NETNS_LIMIT_S:-60}

id=$$
tag=lj$id                                  # namespaces lj<pid>br, lj<pid>h1, lj<pid>h2
net=10.$((64 + id % 64)).$(((id / 64) % 256))  # a /24 of its own
hosts=(1 2)
work=$(mktemp -d /tmp/lockstep_netns.XXXXXX)

cleanup() {
  local status=$?
  set +e
  for ns in "$tag"h1 "$tag"h2 "$tag"br; do
    if ip netns list | grep -qw "$ns"; then
      # Whatever the job left behind in this namespace (only processes this script started live there).
      for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    fi
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

ip netns add "$tag"br
ip -n "$tag"br link add br0 type bridge
ip -n "$tag"br link set br0 up
for i in "${hosts[@]}"; do
  ns=$tag"h$i"
  ip netns add "$ns"
  ip link add "$tag"e$i type veth peer name "$tag"p$i
  ip link set "$tag"e$i netns "$ns"
  ip link set "$tag"p$i netns "$tag"br
  ip -n "$ns" link set "$tag"e$i name eth0
  ip -n "$tag"br link set "$tag"p$i master br0
  ip -n "$tag"br link set "$tag"p$i up
  ip -n "$ns" addr add "$net.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  if [ -n "${LOCKSTEP_NETNS_RATE:-}" ]; then
    # A bucket of 1 ms at the rate (Ngbit -> Nmbit, Nmbit -> Nkbit), packets queued up to 100 ms.
    burst=$(sed -E 's/^([0-9]+)gbit$/\1mbit/; t; s/^([0-9]+)mbit$/\1kbit/; t; s/.*/bad/' <<<"$LOCKSTEP_NETNS_RATE")
    if [ "$burst" = bad ]; then
      echo "netns.sh: expected LOCKSTEP_NETNS_RATE as <N>gbit or <N>mbit, but got '$LOCKSTEP_NETNS_RATE'" >&2
      exit 2
    fi
    ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$LOCKSTEP_NETNS_RATE" burst "$burst" latency 100ms
  fi
  echo "$net.$i slots=1" >>"$work/hosts"
done

# mpirun's remote shell: "agent HOST COMMAND..." runs COMMAND in the namespace of HOST (its last octet) under
# that host's own hostname, as ssh would on a real node.
cat >"$work/agent" <<AGENT
#!/bin/sh
host=\$1
shift
i=\${host##*.}
exec ip netns exec ${tag}h\$i unshare --uts sh -c 'hostname "\$0"; exec sh -c "\$1"' lockstep-host\$i-$id "\$*"
AGENT
chmod +x "$work/agent"

counter() {  # counter HOST rx|tx
  ip netns exec "$tag"h$1 cat /sys/class/net/eth0/statistics/$2_bytes
}
declare -A before
for i in "${hosts[@]}"; do
  before[rx$i]=$(counter "$i" rx)
  before[tx$i]=$(counter "$i" tx)
done

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
status=0
ip netns exec "$tag"h1 unshare --uts sh -c 'hostname "$1"; shift; exec "$@"' sh "lockstep-host1-$id" \
  timeout -s KILL "$limit_s" "$mpiexec" --hostfile "$work/hosts" -np 2 --map-by node --bind-to none \
  --mca plm_rsh_agent "$work/agent" --mca btl tcp,self \
  --mca btl_tcp_if_include "$net.0/24" --mca oob_tcp_if_include "$net.0/24" \
  "$@" || status=$?

for i in "${hosts[@]}"; do
  rx=$(($(counter "$i" rx) - before[rx$i]))
  tx=$(($(counter "$i" tx) - before[tx$i]))
  echo "netns: host=lockstep-host$i-$id rx_bytes=$rx tx_bytes=$tx"
done
exit "$status"
