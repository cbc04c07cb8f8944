// The shared main of the benchmark programs: logs the BLAS core and thread count, applies a default
// --benchmark_min_time unless one is given, and runs the registered benchmarks.
#pragma once

#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdio>
#include <string>
#include <vector>

extern "C" char* openblas_get_corename();

namespace lockstep::bench {

inline int run_benchmarks(int argc, char** argv, const char* default_min_time) {
  std::printf("openblas core: %s, OpenMP threads: %d\n", openblas_get_corename(), omp_get_max_threads());
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  benchmark::AddCustomContext("omp_threads", std::to_string(omp_get_max_threads()));
  std::vector<char*> args(argv, argv + argc);
  std::string min_time = std::string("--benchmark_min_time=") + default_min_time;
  bool has_min_time = false;
  for (int i = 1; i < argc; ++i) has_min_time |= std::string(argv[i]).rfind("--benchmark_min_time", 0) == 0;
  if (!has_min_time) args.insert(args.begin() + 1, min_time.data());
  argc = static_cast<int>(args.size());
  benchmark::Initialize(&argc, args.data());
  if (benchmark::ReportUnrecognizedArguments(argc, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace lockstep::bench
