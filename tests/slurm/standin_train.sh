#!/bin/bash
# A stand-in for `lockstep train` in the slurm requeue test, doing what the trainer will do once it stops on
# SIGUSR1: called as the sbatch templates call lockstep (standin_train.sh train CONFIG --progress lines ...).
# On the job's first run (SLURM_RESTART_COUNT unset or 0) each task prints "standin: rank R waiting: ARGS",
# waits up to 60 s for SIGUSR1 and exits with 3 (kExitRequeue, launch/env/signals.h) when it comes, 1 when
# it does not. On a later run it prints "standin: rank R run N finished" and exits 0.
set -u
rank=${SLURM_PROCID:-?}
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then
  sleeper=
  trap 'echo "standin: rank $rank got SIGUSR1"; kill "$sleeper" 2>/dev/null; exit 3' USR1
  echo "standin: rank $rank waiting: $*"
  sleep 60 &
  sleeper=$!
  wait "$sleeper"
  echo "standin: rank $rank got no SIGUSR1 within 60 s"
  exit 1
fi
echo "standin: rank $rank run $SLURM_RESTART_COUNT finished"
