#!/usr/bin/env bash
# The main job: sets up a fresh machine, builds the `lockstep` tool, converts Fashion-MNIST (Debian's
# dataset-fashion-mnist) to HDF5 and trains ResNet-20 with SyncBatchNorm on it for 3 epochs with 2 data-parallel
# MPI ranks (LOCKSTEP_RANKS to change), printing progress, a checkpoint every 200 steps and at each epoch's end
# (runs/main_job/checkpoints/), and a summary. Interrupted (Ctrl-C, kill, SIGUSR1), it resumes where its last
# checkpoint left off when run again.
# Extra arguments are config overrides, e.g. `bash launch/main_job.sh run.epochs=5`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)" --target lockstep

data=data/fashion-mnist.h5
if [[ ! -f "$data" ]]; then
  mkdir -p data
  ./build/launch/lockstep convert --format fashion-mnist \
    --input "$(dirname "$(dpkg -L dataset-fashion-mnist | grep -m1 'train-images-idx3-ubyte.gz')")" --output "$data"
fi
# A live progress bar when this script's output is a terminal (ranks cannot tell under mpirun), else lines.
progress=lines
[[ -t 1 ]] && progress=bar
# Open MPI refuses root without these; --oversubscribe lets the job have more ranks than cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe --bind-to none -np "${LOCKSTEP_RANKS:-2}" ./build/launch/lockstep train \
  examples/fashion_resnet20.toml run.epochs=3 run.output=\"runs/main_job\" checkpoint.every_steps=200 --progress "$progress" "$@"
