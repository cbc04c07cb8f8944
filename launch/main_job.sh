#!/usr/bin/env bash
# The main job: sets up a fresh machine, builds the `lockstep` tool, converts Fashion-MNIST (Debian's
# dataset-fashion-mnist) to HDF5 and trains the example MLP on it with 2 data-parallel MPI ranks (LOCKSTEP_RANKS
# to change), printing progress and a summary. Checkpoints come with issue 5.
# Extra arguments are config overrides, e.g. `bash launch/main_job.sh run.epochs=3`.
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
# Open MPI refuses root without these; --oversubscribe lets the job have more ranks than cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe --bind-to none -np "${LOCKSTEP_RANKS:-2}" ./build/launch/lockstep train examples/fashion_mlp.toml "$@"
