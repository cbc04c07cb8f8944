#!/usr/bin/env bash
# Training speed on one GPU, Lockstep against PyTorch eager on the same GPU (issue 16): ResNet-50 (224, batch
# 128), CIFAR ResNet-20 (batch 128) and DCGAN-64 (batch 64). PyTorch runs in fp32 NCHW, fp32 channels-last and
# bf16 autocast channels-last; the ratio is Lockstep's fp32 images/s over PyTorch's best fp32. ResNet-50's
# achieved TFLOP/s counts 3 x 4.09 GMAC x 2 = 24.5 GFLOP per training image; MFU divides by PEAK_TFLOPS
# (default 67, an H100 SXM's fp32 without tensor cores, which Lockstep's fp32 does not use).
# Usage: tests/perf/bench_gpu.sh [lockstep_bench_gpu, default build/tests/perf/lockstep_bench_gpu]
# Env: STEPS (default 20), PYTHON (default python3), PEAK_TFLOPS.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="${1:-$root/build/tests/perf/lockstep_bench_gpu}"
steps="${STEPS:-20}"
python="${PYTHON:-python3}"
peak="${PEAK_TFLOPS:-67}"

figure() { sed -n "s/.*model=$1 .*images_per_s=\([0-9.]*\).*/\1/p" | tail -1; }
ours=$("$bench" --steps "$steps") || { echo "bench_gpu: $bench failed: $ours" >&2; exit 1; }
echo "$ours"
for model in resnet50 resnet20 dcgan64; do
  lockstep=$(figure "$model" <<<"$ours")
  best=0
  for flags in "" "--channels-last" "--channels-last --bf16"; do
    line=$("$python" "$root/tests/perf/gpu_peer.py" --model "$model" --steps "$steps" $flags 2>&1 | tail -1)
    torch=$(figure "$model" <<<"$line")
    echo "pytorch ${flags:-(fp32 NCHW)}: ${line}"
    if [[ -n "$torch" && "$flags" != *bf16* ]]; then
      best=$(awk -v a="$torch" -v b="$best" 'BEGIN { print (a > b ? a : b) }')
    fi
  done
  awk -v m="$model" -v l="${lockstep:-0}" -v t="$best" -v p="$peak" 'BEGIN {
    printf "%s: lockstep %.1f img/s, pytorch fp32 best %.1f img/s, ratio %.2f", m, l, t, (t > 0 ? l / t : 0)
    if (m == "resnet50") printf ", %.1f TFLOP/s = %.1f%% of %s", l * 24.5e-3, 100 * l * 24.5e-3 / p, p
    printf "\n" }'
done
