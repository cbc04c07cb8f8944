#!/usr/bin/env bash
# The main job: sets up a fresh machine, builds Lockstep and runs its end-to-end example. Until the
# multi-rank Fashion-MNIST training lands (issues 3-5), that example is XOR learned by an MLP through the
# autograd engine; the kernel benchmark follows when LOCKSTEP_BENCH=1.
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)" --target xor_mlp lockstep_bench_kernels
./build/examples/xor_mlp
if [[ "${LOCKSTEP_BENCH:-0}" == 1 ]]; then
  OMP_NUM_THREADS=1 ./build/tests/perf/lockstep_bench_kernels
fi
