#!/usr/bin/env bash
# The test command: installs what is missing, configures, builds and runs every test (labels unit; mpi: under
# mpirun at 2-4 ranks, and whole jobs incl. two network-namespace hosts; faults: jobs killed, starved of disk
# and given damaged files (tests/faults); slurm: a throwaway SLURM cluster (one node, and two in network
# namespaces) running sbatch jobs; slow: training on the real Fashion-MNIST; cuda where the CUDA toolkit is
# found: those tests skip without a GPU),
# then builds and runs the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer, and last
# builds the libFuzzer harnesses with clang (build-fuzz/) to replay their corpora and kept crash inputs and
# fuzz each for 30 seconds (label fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/setup.sh

jobs=$(nproc)
echo "== release build (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== sanitizer build (build-asan/): AddressSanitizer + UndefinedBehaviorSanitizer, unit tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOCKSTEP_SANITIZE=ON -DLOCKSTEP_CUDA=OFF \
  -DLOCKSTEP_BENCHMARKS=OFF
cmake --build build-asan -j "$jobs" --target unit_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 LSAN_OPTIONS=suppressions=$PWD/tests/lsan_suppressions.txt \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -L unit

echo "== fuzz build (build-fuzz/): clang libFuzzer harnesses, corpus + crash replay, 30 s of fuzzing each"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DLOCKSTEP_FUZZ=ON -DLOCKSTEP_CUDA=OFF -DLOCKSTEP_BENCHMARKS=OFF
cmake --build build-fuzz -j "$jobs" --target fuzz_harnesses
# Each fuzzer uses one core and up to 2 GB: one per core.
ctest --test-dir build-fuzz --output-on-failure -j "$jobs" -L fuzz
