#!/usr/bin/env bash
# Packs what tests/cuda/device_check.sh needs on a GPU machine that has the NVIDIA driver and a CUDA 13
# runtime, cuBLAS and cuDNN but not this machine's other libraries: the `cuda`-labelled test binary built here (sm_90 + PTX)
# (and lockstep_bench_gpu when built) and, compressed, the shared libraries they load that are neither CUDA's (found on the GPU machine) nor the C
# runtime's. Writes build/device/ (carry that one path); refuses to exceed the 64 MiB a carry may hold.
# Usage: tests/cuda/device_pack.sh [build dir, default build]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
binary="$build/tests/test_cuda"
if [[ ! -x "$binary" ]]; then
  echo "device_pack: $binary not found: configure with CUDA (nvcc on PATH) and build target test_cuda" >&2
  exit 1
fi
pack="$build/device"
rm -rf "$pack"
mkdir -p "$pack/lib"
cp "$binary" "$pack/"
# The GPU benchmark (tests/perf/bench_gpu.sh), when the benchmarks were built.
binaries=("$binary")
bench="$build/tests/perf/lockstep_bench_gpu"
if [[ -x "$bench" ]]; then
  cp "$bench" "$pack/"
  binaries+=("$bench")
fi
# The first 320 training and 200 test images of Fashion-MNIST (tests/support/fashion_mnist.h's small file, for
# the `lockstep train` runs of tests/cuda/train_device_test.cpp), from the converted data set when it is here.
data="$root/data/fashion-mnist.h5"
if [[ -f "$data" ]] && /usr/bin/python3 -c "import h5py" 2>/dev/null; then
  /usr/bin/python3 - "$data" "$pack/fashion-mnist-small.h5" <<'PY'
import sys
import h5py
with h5py.File(sys.argv[1], "r") as src, h5py.File(sys.argv[2], "w") as dst:
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    for split, count in (("train", 320), ("test", 200)):
        group = dst.create_group(split)
        for name in ("images", "labels"):
            group.create_dataset(name, data=src[split][name][:count])
        for key, value in src[split].attrs.items():
            group.attrs[key] = value
PY
fi
# Libraries resolved by the loader here, minus the C runtime and CUDA's own (libcudart, libcublas*, libcudnn*:
# the GPU machine's CUDA 13 provides them, and cuBLAS alone is over 500 MiB).
ldd "${binaries[@]}" | awk '$3 ~ /^\// {print $1, $3}' | while read -r name path; do
  case "$name" in
    libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libgcc_s.so* | libcuda.so* | \
      libcudart.so* | libcublas*.so* | libcudnn*.so*) ;;
    *) cp -L "$path" "$pack/lib/$name" ;;
  esac
done
tar -C "$pack" -cJf "$pack/lib.tar.xz" lib
rm -rf "$pack/lib"
size_kib=$(du -sk "$pack" | cut -f1)
echo "device_pack: $pack holds $(ls "$pack" | tr '\n' ' ')($((size_kib / 1024)) MiB)"
if ((size_kib > 64 * 1024)); then
  echo "device_pack: $pack is over the 64 MiB a carry may hold" >&2
  exit 1
fi
