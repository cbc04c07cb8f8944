#!/usr/bin/env bash
# Compares whole-model training speed and peak memory of Lockstep (lockstep_bench_train) and PyTorch
# (train_peer.py) on this machine: every model in its own process, both frameworks back to back, per thread
# count. Builds nothing.
# Usage: tests/perf/compare_training.sh [threads...]   (default: 1 2)
#   LOCKSTEP_BENCH_TRAIN  the Lockstep program (default: build/tests/perf/lockstep_bench_train)
#   MODELS                models to run (default: "mlp resnet20 resnet20_28 dcgan cgan wgan_gp vae pixelcnn cyclegan lstm")
#   STEPS, WARMUP         timed and untimed iterations per run (default: 20 and 3)
#   REPEATS               runs per model and framework, alternating; the best images/s is kept (default: 1)
#   PRECISION             f32 (default) or bf16: Lockstep's --precision bf16 against PyTorch under CPU autocast
#                         to bfloat16
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bench="${LOCKSTEP_BENCH_TRAIN:-$root/build/tests/perf/lockstep_bench_train}"
python=/usr/bin/python3
models=(${MODELS:-mlp resnet20 resnet20_28 dcgan cgan wgan_gp vae pixelcnn cyclegan lstm})
steps="${STEPS:-20}"
warmup="${WARMUP:-3}"
repeats="${REPEATS:-1}"
precision="${PRECISION:-f32}"
peer_precision=()
[[ "$precision" == bf16 ]] && peer_precision=(--bf16)
threads=("$@")
[[ ${#threads[@]} -gt 0 ]] || threads=(1 2)

if [[ ! -x "$bench" ]]; then
  echo "compare_training: $bench not found; build it first (ninja -C build lockstep_bench_train)" \
    "or point LOCKSTEP_BENCH_TRAIN at it" >&2
  exit 1
fi
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "compare_training: $python cannot import torch; install it with: apt-get install -y python3-torch" >&2
  exit 1
fi

# The value of key=<value> in a result line.
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2"; }
# Of two result lines, the one with more images/s (the first when the second is empty).
best() {
  if [[ -z "$2" ]] ||
    awk -v a="$(field images_per_s "$1")" -v b="$(field images_per_s "$2")" 'BEGIN { exit !(a >= b) }'; then
    echo "$1"
  else
    echo "$2"
  fi
}

baseline=$("$python" -c 'import torch
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"): print(round(int(line.split()[1]) / 1024))')
echo "precision=$precision steps=$steps warmup=$warmup repeats=$repeats; images/s from the median step (best run);" \
  "PyTorch's peak RSS includes ${baseline} MB for the interpreter and libtorch after 'import torch'"
printf "%-12s %7s %6s %13s %13s %8s %13s %13s\n" model threads load lockstep_img/s torch_img/s ratio \
  lockstep_rss_mb torch_rss_mb
for n in "${threads[@]}"; do
  # The same environment for both: n OpenMP threads that sleep when idle (OpenBLAS follows OpenMP).
  export OMP_NUM_THREADS="$n" OMP_WAIT_POLICY=passive
  for model in "${models[@]}"; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    ours="" theirs=""
    for ((r = 0; r < repeats; ++r)); do
      ours=$(best "$("$bench" --model "$model" --steps "$steps" --warmup "$warmup" --precision "$precision")" "$ours")
      theirs=$(best "$("$python" "$here/train_peer.py" --model "$model" --threads "$n" --steps "$steps" \
        --warmup "$warmup" "${peer_precision[@]}")" "$theirs")
    done
    ls_ips=$(field images_per_s "$ours")
    pt_ips=$(field images_per_s "$theirs")
    printf "%-12s %7s %6s %13s %13s %7.2fx %13s %13s\n" "$model" "$n" "$load" "$ls_ips" "$pt_ips" \
      "$(awk -v a="$ls_ips" -v b="$pt_ips" 'BEGIN { print a / b }')" \
      "$(field peak_rss_mb "$ours")" "$(field peak_rss_mb "$theirs")"
  done
done
echo "ratio = Lockstep images/s / PyTorch images/s (> 1: Lockstep is faster);" \
  "load = 1-minute load average before the pair"
