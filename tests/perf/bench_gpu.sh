#!/usr/bin/env bash
# Training speed on one GPU, Lockstep against PyTorch eager on the same GPU (issue 16): ResNet-50 (224, batch
# 128), CIFAR ResNet-20 (batch 128) and DCGAN-64 (batch 64). PyTorch runs in fp32 NCHW, fp32 channels-last and
# bf16 autocast channels-last; Lockstep in f32 and in bf16 (--precision bf16, run.precision). The ratios are
# Lockstep's fp32 images/s over PyTorch's best fp32, and Lockstep's bf16 over PyTorch's bf16. ResNet-50's
# achieved TFLOP/s counts 3 x 4.09 GMAC x 2 = 24.5 GFLOP per training image; MFU divides by PEAK_TFLOPS
# (default 67, an H100 SXM's fp32 without tensor cores, which Lockstep's fp32 does not use) for f32, and by
# PEAK_BF16_TFLOPS (default 989, its dense bf16 tensor-core peak) for bf16.
# Usage: tests/perf/bench_gpu.sh [lockstep_bench_gpu, default build/tests/perf/lockstep_bench_gpu]
# Env: STEPS (default 20), PYTHON (default python3), PEAK_TFLOPS, PEAK_BF16_TFLOPS.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="${1:-$root/build/tests/perf/lockstep_bench_gpu}"
steps="${STEPS:-20}"
python="${PYTHON:-python3}"
peak="${PEAK_TFLOPS:-67}"
peak_bf16="${PEAK_BF16_TFLOPS:-989}"

figure() { sed -n "s/.*model=$1 .*images_per_s=\([0-9.]*\).*/\1/p" | tail -1; }
ours=$("$bench" --steps "$steps") || { echo "bench_gpu: $bench failed: $ours" >&2; exit 1; }
echo "$ours"
ours_bf16=$("$bench" --steps "$steps" --precision bf16) || { echo "bench_gpu: $bench --precision bf16 failed: $ours_bf16" >&2; exit 1; }
echo "$ours_bf16"
# "<model>: lockstep <p> X img/s, pytorch <p> Y img/s, ratio R[, TFLOP/s and MFU for ResNet-50]"
report() {
  awk -v m="$1" -v p="$2" -v l="${3:-0}" -v t="$4" -v peak="$5" 'BEGIN {
    printf "%s: lockstep %s %.1f img/s, pytorch %s %.1f img/s, ratio %.2f", m, p, l, p, t, (t > 0 ? l / t : 0)
    if (m == "resnet50") printf ", %.1f TFLOP/s = %.1f%% of %s", l * 24.5e-3, 100 * l * 24.5e-3 / peak, peak
    printf "\n" }'
}
for model in resnet50 resnet20 dcgan64; do
  best=0
  torch_bf16=0
  for flags in "" "--channels-last" "--channels-last --bf16"; do
    line=$("$python" "$root/tests/perf/gpu_peer.py" --model "$model" --steps "$steps" $flags 2>&1 | tail -1)
    torch=$(figure "$model" <<<"$line")
    echo "pytorch ${flags:-(fp32 NCHW)}: ${line}"
    [[ -n "$torch" ]] || continue
    if [[ "$flags" == *bf16* ]]; then
      torch_bf16="$torch"
    else
      best=$(awk -v a="$torch" -v b="$best" 'BEGIN { print (a > b ? a : b) }')
    fi
  done
  report "$model" fp32 "$(figure "$model" <<<"$ours")" "$best" "$peak"
  report "$model" bf16 "$(figure "$model" <<<"$ours_bf16")" "$torch_bf16" "$peak_bf16"
done
