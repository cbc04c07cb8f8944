#!/usr/bin/env bash
# Times the op-level training passes of lockstep_bench_ops against the same computations in PyTorch
# (peer_torch.py) on this machine, per thread count, and prints ms per iteration and the speed-up.
# Usage: tests/perf/compare_with_torch.sh [threads...]   (default: 1 2; BUILD_DIR defaults to build/)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
bench="$build_dir/tests/perf/lockstep_bench_ops"
python=/usr/bin/python3
threads=("$@")
[[ ${#threads[@]} -gt 0 ]] || threads=(1 2)

if [[ ! -x "$bench" ]]; then
  echo "compare_with_torch: $bench not found; build it first (ninja -C $build_dir lockstep_bench_ops)" >&2
  exit 1
fi
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "compare_with_torch: $python cannot import torch; install python3-torch (apt-get install -y python3-torch)" >&2
  exit 1
fi

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
cases=$("$bench" --benchmark_list_tests=true 2>/dev/null | sed -n 's|/real_time$||p')
for n in "${threads[@]}"; do
  # The same environment for both: n OpenMP threads that sleep when idle (OpenBLAS follows OpenMP).
  export OMP_NUM_THREADS="$n" OMP_WAIT_POLICY=passive
  # Case by case, the two peers back to back, so that load from other processes hits both alike.
  for name in $cases; do
    # Lockstep: median of 5 repetitions; CSV rows "name/real_time_median",iterations,real_time,...
    "$bench" --benchmark_filter="^${name}/" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
      --benchmark_format=csv 2>/dev/null |
      awk -F, -v n="$n" -v name="$name" '$1 ~ /_median"$/ { print "lockstep", name, n, $3 }' >>"$results"
    "$python" "$here/peer_torch.py" --threads "$n" --case "$name" 2>/dev/null |
      awk -v n="$n" '{ print "torch", $1, n, $2 }' >>"$results"
  done
done

awk '
  $1 == "lockstep" { ls[$2 " " $3] = $4; if (!(($2 " " $3) in seen)) { order[++count] = $2 " " $3; seen[$2 " " $3] = 1 } }
  $1 == "torch"    { pt[$2 " " $3] = $4 }
  END {
    printf "%-40s %7s %12s %12s %9s\n", "case", "threads", "lockstep_ms", "pytorch_ms", "speed-up"
    for (i = 1; i <= count; ++i) {
      key = order[i]; split(key, part, " ")
      if (key in pt) printf "%-40s %7s %12.3f %12.3f %8.2fx\n", part[1], part[2], ls[key], pt[key], pt[key] / ls[key]
      else printf "%-40s %7s %12.3f %12s %9s\n", part[1], part[2], ls[key], "-", "-"
    }
    print "speed-up = PyTorch ms / Lockstep ms (> 1: Lockstep is faster)"
  }' "$results"
