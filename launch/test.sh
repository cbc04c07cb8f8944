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

# ctest in build folder $1 with the options that follow. When tests fail, their outputs (the last 200 lines of
# each) are printed once more at the end, where a log's tail shows them.
run_ctest() {
  local dir=$1 failed=$1/Testing/Temporary/LastTestsFailed.log
  shift
  rm -f "$failed"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@" && return 0
  local status=$? name
  [[ -f "$failed" ]] || return $status
  while IFS=: read -r _ name; do
    echo "== output of failed test $name (the last 200 lines)"
    awk -v name="$name" '$0 ~ "^[0-9]+/[0-9]+ Testing: " && $3 == name { found = 1; next }
                         found == 1 && /^Output:$/ { found = 2; getline; next }
                         found == 2 && /^<end of output>$/ { exit }
                         found == 2' "$dir/Testing/Temporary/LastTest.log" | tail -n 200
  done < "$failed"
  return $status
}

echo "== release build (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
run_ctest build

echo "== sanitizer build (build-asan/): AddressSanitizer + UndefinedBehaviorSanitizer, unit tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOCKSTEP_SANITIZE=ON -DLOCKSTEP_CUDA=OFF \
  -DLOCKSTEP_BENCHMARKS=OFF
cmake --build build-asan -j "$jobs" --target unit_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 LSAN_OPTIONS=suppressions=$PWD/tests/lsan_suppressions.txt \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest build-asan -L unit

echo "== fuzz build (build-fuzz/): clang libFuzzer harnesses, corpus + crash replay, 30 s of fuzzing each"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DLOCKSTEP_FUZZ=ON -DLOCKSTEP_CUDA=OFF -DLOCKSTEP_BENCHMARKS=OFF
cmake --build build-fuzz -j "$jobs" --target fuzz_harnesses
# Each fuzzer uses one core and up to 2 GB: one per core.
run_ctest build-fuzz -L fuzz
