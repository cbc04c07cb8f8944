#!/usr/bin/env bash
# Runs the data-parallel benchmark (lockstep_bench_distributed) under mpirun with one thread per rank and
# prints its figures. Builds nothing.
# Usage: tests/perf/bench_distributed.sh [path/to/lockstep_bench_distributed] [benchmark args...]
#   (default binary: build/tests/perf/lockstep_bench_distributed; args e.g. --model resnet20 --steps 20, or
#   --model desync --reps 300 for the desync check's cost against a raw 1 MiB MPI_Allreduce; each model also
#   prints the check's share of its step)
#   NP           ranks (default 2)
#   BIND         mpirun --bind-to value: core or none (default core: on a 2-core machine throughput was the same
#                within noise, and core avoided multi-millisecond all-reduce stalls seen with none)
#   MPIRUN_ARGS  extra mpirun arguments, e.g. "--mca mpi_yield_when_idle 1"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bench="$root/build/tests/perf/lockstep_bench_distributed"
if [[ $# -gt 0 && "$1" != --* ]]; then
  bench="$1"
  shift
fi
if [[ ! -x "$bench" ]]; then
  echo "bench_distributed: $bench not found; build it first (cmake -DLOCKSTEP_BENCHMARKS=ON, target" \
    "lockstep_bench_distributed) or pass its path as the first argument" >&2
  exit 1
fi

np="${NP:-2}"
bind="${BIND:-core}"
read -r -a extra <<<"${MPIRUN_ARGS:-}"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
command=(mpirun --oversubscribe --bind-to "$bind" -np "$np" "${extra[@]}" "$bench" "$@")
echo "bench_distributed: OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive ${command[*]}"
exec "${command[@]}"
