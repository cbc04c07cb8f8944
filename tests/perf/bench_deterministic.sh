#!/usr/bin/env bash
# Deterministic mode's cost: `lockstep train` of ResNet-20 (synchronised batch norm) and DCGAN on NP ranks
# (default 2, one thread each), the same config in the default mode and with distributed.deterministic = true,
# alternated REPS times; prints each run's training throughput (the tool's samples/s, which excludes start-up)
# and the step-time ratio deterministic / default (median over the repetitions). Builds nothing.
# Usage: tests/perf/bench_deterministic.sh [path/to/lockstep]
#   NP, REPS (default 3), STEPS (default 40), DATA (default data/fashion-mnist.h5)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tool="${1:-$root/build/launch/lockstep}"
[[ -x "$tool" ]] || { echo "bench_deterministic: $tool not found; build it first or pass its path" >&2; exit 1; }
np="${NP:-2}" reps="${REPS:-3}" steps="${STEPS:-40}" data="${DATA:-$root/data/fashion-mnist.h5}"
[[ -f "$data" ]] || { echo "bench_deterministic: $data not found (launch/setup.sh converts it)" >&2; exit 1; }
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

config() {  # model deterministic -> path
  local model="$1" det="$2" path="$work/$1_$2.toml"
  {
    if [[ "$model" == resnet20 ]]; then
      printf 'task = "classifier"\n'
    else
      printf 'task = "gan"\n'
    fi
    printf '[run]\nseed = 1\nmax_steps = %s\noutput = "%s"\n' "$steps" "$work/out_$1_$2"
    printf '[data]\npath = "%s"\ntest_split = ""\nglobal_batch_size = 128\n' "$data"
    if [[ "$model" == resnet20 ]]; then
      printf '[model]\nname = "resnet20"\n[optimizer]\nname = "sgd"\nlr = 0.05\nmomentum = 0.9\n'
    else
      printf 'pad_to = 32\nnormalize = "tanh"\n[gan]\nlatent = 100\nsamples = 16\n'
      printf '[generator]\nname = "dcgan"\nwidth = 64\n[discriminator]\nname = "dcgan"\nwidth = 64\n'
    fi
    printf '[distributed]\ndeterministic = %s\n' "$det"
    [[ "$det" == true ]] && printf 'micro_shards = 8\n'
    printf '[checkpoint]\nevery_steps = 0\n'
  } >"$path"
  echo "$path"
}

throughput() {  # config -> samples/s
  local out
  out="$(mpirun --oversubscribe --bind-to core -np "$np" "$tool" train "$1" --progress lines --resume none 2>&1)" ||
    { echo "$out" >&2; exit 1; }
  grep -o '[0-9.]* samples/s' <<<"$out" | tail -1 | cut -d' ' -f1
}

echo "bench_deterministic: $np ranks x 1 thread, global batch 128, 8 micro-shards, $steps steps, $reps repetitions"
for model in resnet20 dcgan; do
  fast_cfg="$(config "$model" false)" det_cfg="$(config "$model" true)"
  ratios=()
  for ((i = 1; i <= reps; i++)); do
    rm -rf "$work/out_"*
    fast="$(throughput "$fast_cfg")"
    det="$(throughput "$det_cfg")"
    ratio="$(awk -v f="$fast" -v d="$det" 'BEGIN { printf "%.3f", f / d }')"
    ratios+=("$ratio")
    echo "[$model] rep $i: default $fast samples/s, deterministic $det samples/s, step time ratio $ratio"
  done
  median="$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')"
  echo "[$model] deterministic / default step time: median $median (target <= 1.15)"
done
