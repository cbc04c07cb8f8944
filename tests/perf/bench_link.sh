#!/usr/bin/env bash
# The data-parallel benchmark (lockstep_bench_distributed) on two "hosts" joined by a rate-limited link: two
# network namespaces whose links send at most RATE (tc's token-bucket filter; tests/mpi_jobs/netns.sh), one
# rank each, MPI over TCP. There communication takes real time while the ranks compute, so its figures show
# how much of it backward hides (`hidden=`) and the weak-scaling efficiency against one rank alone
# (`efficiency=`). Needs root and `ip netns`. Builds nothing; prints figures, asserts nothing.
# Usage: tests/perf/bench_link.sh [path/to/lockstep_bench_distributed] [benchmark args...]
#   RATES   the link rates to run (default "1gbit 5gbit")
#   MODELS  the models (default "resnet20 dcgan")
# Both ranks share this machine's cores: run it on an otherwise idle machine, and read `contention=` in the
# throughput line (one rank alone vs the same rank's local step in the 2-rank run).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bench="$root/build/tests/perf/lockstep_bench_distributed"
if [[ $# -gt 0 && "$1" != --* ]]; then
  bench="$1"
  shift
fi
if [[ ! -x "$bench" ]]; then
  echo "bench_link: $bench not found; build it first (target lockstep_bench_distributed) or pass its path" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]] || ! ip netns list >/dev/null 2>&1; then
  echo "bench_link: needs root and \`ip netns\` (two network namespaces joined by a rate-limited link)" >&2
  exit 1
fi

export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export LOCKSTEP_NETNS_LIMIT_S="${LOCKSTEP_NETNS_LIMIT_S:-900}"
for rate in ${RATES:-1gbit 5gbit}; do
  for model in ${MODELS:-resnet20 dcgan}; do
    echo "== bench_link: $model over a $rate link"
    LOCKSTEP_NETNS_RATE="$rate" bash "$root/tests/mpi_jobs/netns.sh" mpirun "$bench" --model "$model" "$@"
  done
done
