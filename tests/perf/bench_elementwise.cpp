// Memory-bound kernel benchmark: GB/s (bytes read + written per second) of add, mul by a scalar, relu, relu
// backward and a full sum at 1M and 16M floats, next to std::memcpy of the same bytes measured in the same
// run.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/kernels.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

using Clock = std::chrono::steady_clock;

// memcpy GB/s per element count, measured first for each size; the other benchmarks report their ratio to it.
std::map<std::int64_t, double>& memcpy_rate() {
  static std::map<std::int64_t, double> rates;
  return rates;
}

// Runs body() in the benchmark loop and reports GB/s of `bytes` per iteration and the ratio to memcpy.
template <class Body>
void measure(benchmark::State& state, std::int64_t n, double bytes, Body&& body) {
  const auto start = Clock::now();
  std::int64_t iterations = 0;
  for (auto _ : state) {
    body();
    benchmark::ClobberMemory();
    ++iterations;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double gbps = bytes * static_cast<double>(iterations) / seconds * 1e-9;
  state.counters["GB/s"] = gbps;
  const auto it = memcpy_rate().find(n);
  if (it != memcpy_rate().end()) state.counters["x_memcpy"] = gbps / it->second;
}

constexpr double kF = sizeof(float);

void bench_memcpy(benchmark::State& state, std::int64_t n) {
  std::vector<float> src(static_cast<std::size_t>(n), 1.0f), dst(static_cast<std::size_t>(n));
  const auto start = Clock::now();
  std::int64_t iterations = 0;
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(n) * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
    ++iterations;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double gbps = 2.0 * kF * static_cast<double>(n) * static_cast<double>(iterations) / seconds * 1e-9;
  memcpy_rate()[n] = gbps;
  state.counters["GB/s"] = gbps;
}

// Ops (allocating their output through the caching allocator, as user code does).
void bench_add_op(benchmark::State& state, std::int64_t n) {
  const Tensor a = randn({n}), b = randn({n});
  measure(state, n, 3 * kF * static_cast<double>(n), [&] { benchmark::DoNotOptimize(add(a, b).data()); });
}
void bench_mul_scalar_op(benchmark::State& state, std::int64_t n) {
  const Tensor a = randn({n});
  measure(state, n, 2 * kF * static_cast<double>(n), [&] { benchmark::DoNotOptimize((a * 2.0).data()); });
}
void bench_relu_op(benchmark::State& state, std::int64_t n) {
  const Tensor x = randn({n});
  measure(state, n, 2 * kF * static_cast<double>(n), [&] { benchmark::DoNotOptimize(relu(x).data()); });
}
void bench_sum_op(benchmark::State& state, std::int64_t n) {
  const Tensor x = randn({n});
  measure(state, n, kF * static_cast<double>(n), [&] { benchmark::DoNotOptimize(sum(x).data()); });
}

// Kernels writing into preallocated outputs: the loops alone.
void bench_add_kernel(benchmark::State& state, std::int64_t n) {
  const Tensor a = randn({n}), b = randn({n}), out = empty({n});
  auto* fn = kernels::binary.get(kCPU);
  measure(state, n, 3 * kF * static_cast<double>(n), [&] { fn(BinaryOp::kAdd, a, b, out, 1.0); });
}
void bench_relu_kernel(benchmark::State& state, std::int64_t n) {
  const Tensor x = randn({n}), out = empty({n});
  auto* fn = kernels::unary.get(kCPU);
  measure(state, n, 2 * kF * static_cast<double>(n), [&] { fn(UnaryOp::kRelu, x, out, 0.0, 0.0); });
}
void bench_relu_backward_kernel(benchmark::State& state, std::int64_t n) {
  const Tensor g = randn({n}), x = randn({n}), dx = empty({n});
  auto* fn = kernels::unary_backward.get(kCPU);
  measure(state, n, 3 * kF * static_cast<double>(n),
          [&] { fn(UnaryOp::kRelu, g, x, Tensor(), dx, 0.0, 0.0); });
}
void bench_sum_kernel(benchmark::State& state, std::int64_t n) {
  const Tensor x = randn({n}), out = empty({});
  auto* fn = kernels::reduce.get(kCPU);
  measure(state, n, kF * static_cast<double>(n), [&] { fn(ReduceOp::kSum, x, out, 1, n, 1); });
}

void register_all() {
  using Fn = void (*)(benchmark::State&, std::int64_t);
  const std::pair<const char*, Fn> benches[] = {
      {"memcpy", bench_memcpy},
      {"add/op", bench_add_op},
      {"add/kernel", bench_add_kernel},
      {"mul_scalar/op", bench_mul_scalar_op},
      {"relu/op", bench_relu_op},
      {"relu/kernel", bench_relu_kernel},
      {"relu_backward/kernel", bench_relu_backward_kernel},
      {"sum/op", bench_sum_op},
      {"sum/kernel", bench_sum_kernel},
  };
  for (std::int64_t n : {std::int64_t{1} << 20, std::int64_t{1} << 24}) {
    for (const auto& [name, fn] : benches) {
      const std::string label = std::string(name) + "/" + (n == (1 << 20) ? "1M" : "16M");
      benchmark::RegisterBenchmark(label.c_str(), [fn, n](benchmark::State& st) { fn(st, n); })
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace
}  // namespace lockstep

int main(int argc, char** argv) {
  std::printf("OpenMP threads: %d\n", omp_get_max_threads());
  benchmark::AddCustomContext("omp_threads", std::to_string(omp_get_max_threads()));
  lockstep::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
