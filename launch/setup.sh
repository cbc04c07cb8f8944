#!/usr/bin/env bash
# Installs every Debian package Lockstep needs to build, test and run. Idempotent: does nothing when all
# are present, otherwise runs `apt-get update` once and installs what is missing.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-openmp-dev          # BLAS built on OpenMP: one thread pool with our kernels and oneDNN
  libdnnl-dev ocl-icd-opencl-dev opencl-headers   # oneDNN convolutions (its headers need the OpenCL ones)
  libopenmpi-dev openmpi-bin      # MPI process group, mpirun
  libhdf5-dev hdf5-tools          # data sets and checkpoints (serial C API)
  libtomlplusplus-dev             # config files with line-numbered errors
  nlohmann-json3-dev              # JSON of checkpoint manifests and metrics logs (io/json)
  libboost-program-options-dev    # command-line options of the `lockstep` tool
  libpng-dev zlib1g-dev           # PNG folders in, sample grids out; gzipped IDX
  libxxhash-dev                   # source and checkpoint checksums
  libplplot-dev plplot-driver-cairo fonts-dejavu-core   # `lockstep plot`: PLplot C++ API, PNG driver, a font
  dataset-fashion-mnist           # the real data of the examples and the slow tests
  fortunes                        # English text of examples/fortunes_char_lstm.toml
  clang libclang-rt-14-dev        # libFuzzer + sanitizers of the fuzz harnesses (tests/fuzz, LOCKSTEP_FUZZ)
  libc++-14-dev libc++abi-14-dev  # the io/json fuzz harnesses (clang + libstdc++ reject io/json/json.h)
  python3-h5py                    # tests only: files read back by h5py
  slurm-wlm slurmctld slurmd slurm-client munge   # sbatch templates; the slurm tests' throwaway cluster
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#packages[@]} packages present"
fi
