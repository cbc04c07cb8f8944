#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU from what tests/cuda/device_pack.sh packed here
# (build/device): every `cuda`-labelled test (the op table CPU versus CUDA, forward and gradients, the
# allocator, copies, cuBLAS, the fused optimizers, 10 training steps of ResNet-8 and DCGAN against the CPU,
# the NCCL group at world size 1). Writes logs and summary.txt to $OUT (default build/device/out). Without a
# GPU it says so and exits 0: nothing is reported as passed. Exits non-zero when a test fails, or when a GPU
# is present but the tests could not use it. Then the GPU benchmark (tests/perf/bench_gpu.sh) when packed.
# Usage: tests/cuda/device_check.sh [packed dir, default build/device]
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pack="$(cd "${1:-$root/build/device}" 2>/dev/null && pwd)" || {
  echo "device_check: ${1:-$root/build/device} not found: run tests/cuda/device_pack.sh and carry build/device" >&2
  exit 1
}
out="${OUT:-$pack/out}"
mkdir -p "$out"
summary="$out/summary.txt"
say() { echo "device_check: $*" | tee -a "$summary"; }
: >"$summary"

if ! nvidia-smi -L >"$out/gpus.txt" 2>&1; then
  say "no GPU on this machine (nvidia-smi: $(head -1 "$out/gpus.txt")): nothing ran, nothing passed"
  exit 0
fi
say "GPUs: $(tr '\n' ';' <"$out/gpus.txt")"

# The packed libraries, then the machine's CUDA 13 runtime, cuBLAS and cuDNN 9 (toolkit or Python wheels), and
# NCCL 2 (loaded at run time by the NCCL group; its tests skip, saying so, where it is missing).
libs="$out/lib"
rm -rf "$libs"
tar -C "$out" -xJf "$pack/lib.tar.xz"
search="$libs"
for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/targets/*/lib \
  /usr/lib/x86_64-linux-gnu $(python3 -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null |
    xargs -I{} sh -c 'ls -d {}/nvidia/*/lib 2>/dev/null'); do
  [[ -d "$dir" ]] && ls "$dir"/libcublas.so.13* "$dir"/libcudnn.so.9* "$dir"/libnccl.so.2* 2>/dev/null | grep -q . &&
    search="$search:$dir"
done
export LD_LIBRARY_PATH="$search${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "library path: $LD_LIBRARY_PATH"
if missing=$(ldd "$pack/test_cuda" | grep "not found"); then
  say "test_cuda cannot load: $missing"
  exit 1
fi

[[ -f "$pack/fashion-mnist-small.h5" ]] && export LOCKSTEP_SMALL_FASHION_MNIST="$pack/fashion-mnist-small.h5"
"$pack/test_cuda" --gtest_output="xml:$out/test_cuda.xml" >"$out/test_cuda.log" 2>&1
status=$?
passed=$(grep -c '^\[       OK \]' "$out/test_cuda.log")
failed=$(grep -c '^\[  FAILED  \].*(' "$out/test_cuda.log")
skipped=$(grep -c '^\[  SKIPPED \].*(' "$out/test_cuda.log")
say "test_cuda: $passed passed, $failed failed, $skipped skipped (exit $status; log test_cuda.log)"
grep '^\[  FAILED  \].*(' "$out/test_cuda.log" | head -50 | tee -a "$summary"
if grep -q "no CUDA device" "$out/test_cuda.log"; then
  say "a GPU is present but the tests found no usable CUDA device: $(grep -m1 'no CUDA device' "$out/test_cuda.log")"
  exit 1
fi
# The GPU benchmark against the machine's PyTorch, within a bound so that the whole check stays under 8 minutes.
if [[ -x "$pack/lockstep_bench_gpu" ]]; then
  STEPS="${BENCH_STEPS:-10}" timeout "${BENCH_TIMEOUT_S:-240}" "$root/tests/perf/bench_gpu.sh" "$pack/lockstep_bench_gpu" \
    >"$out/bench_gpu.txt" 2>&1
  say "bench_gpu (exit $?; log bench_gpu.txt):"
  grep -E "^(resnet50|resnet20|dcgan64):" "$out/bench_gpu.txt" | tee -a "$summary"
else
  say "lockstep_bench_gpu was not packed (configure with -DLOCKSTEP_BENCHMARKS=ON): no GPU benchmark"
fi
exit "$status"
