#!/usr/bin/env bash
# Runs one libFuzzer harness for CTest (tests/fuzz/CMakeLists.txt):
#   run_fuzz.sh replay HARNESS CORPUS_DIR CRASH_DIR   every seed and every kept crash input, once each
#   run_fuzz.sh run HARNESS CORPUS_DIR WORK_DIR SECONDS [LIBFUZZER_FLAGS...]   fuzzes from a scratch copy of
#     the corpus (the source tree is never written); a crash leaves its input in WORK_DIR/crashes and fails
#     the test (see LOCKSTEP_FUZZ_FOREIGN below for a system library's own crashes). The harnesses write
#     their inputs to files: under /dev/shm when it is writable.
set -euo pipefail
mode=$1 harness=$2 corpus=$3
if [[ -z "${TMPDIR:-}" && -w /dev/shm ]]; then export TMPDIR=/dev/shm; fi
case "$mode" in
  replay)
    crashes=$4
    mapfile -t inputs < <(find "$corpus" "$crashes" -type f 2>/dev/null | sort)
    if ((${#inputs[@]} == 0)); then
      echo "run_fuzz.sh: expected seed inputs in $corpus, but found none" >&2
      exit 1
    fi
    # Files (not directories) as arguments: libFuzzer runs each once and writes nothing.
    exec "$harness" -rss_limit_mb=2048 -timeout=20 "${inputs[@]}"
    ;;
  run)
    work=$4 seconds=$5
    shift 5
    rm -rf "$work" && mkdir -p "$work/corpus" "$work/crashes"
    status=0
    "$harness" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 "$@" \
      -artifact_prefix="$work/crashes/" "$work/corpus" "$corpus" || status=$?
    # LOCKSTEP_FUZZ_FOREIGN=<library>: crashes and hangs whose innermost frame of interest lies in that
    # system library (not in lockstep:: code) are reported and tolerated; any other input fails the test.
    if [[ -n "${LOCKSTEP_FUZZ_FOREIGN:-}" ]]; then
      status=0
      for input in "$work"/crashes/*; do
        [[ -e "$input" ]] || continue
        rerun=0
        trace=$("$harness" -rss_limit_mb=2048 -timeout=5 "$input" 2>&1) || rerun=$?
        first=$(grep -E '^ +#[0-9]+ ' <<<"$trace" | grep -m1 -E "$LOCKSTEP_FUZZ_FOREIGN|lockstep::" || true)
        if ((rerun == 0)); then
          # Failed only after earlier inputs of the same fork job (state left inside the library).
          echo "run_fuzz.sh: $input does not fail on its own (only after earlier inputs); not counted"
        elif [[ "$first" == *"$LOCKSTEP_FUZZ_FOREIGN"* ]]; then
          echo "run_fuzz.sh: $input fails inside $LOCKSTEP_FUZZ_FOREIGN (not Lockstep code): $first"
        else
          echo "run_fuzz.sh: $input fails in Lockstep code:"
          echo "$trace" | tail -40
          status=1
        fi
      done
    fi
    exit "$status"
    ;;
  *)
    echo "run_fuzz.sh: expected mode replay or run, but got '$mode'" >&2
    exit 2
    ;;
esac
