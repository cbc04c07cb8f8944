// Kernel benchmark: GFLOP/s of cblas_sgemm next to the conv2d kernels (forward, input and weight gradients,
// transposed conv) at ResNet-20 and DCGAN shapes, so conv efficiency reads as a ratio to GEMM in one run.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "src/backend/cpu/conv_kernels.h"
#include "src/ops/conv.h"
#include "src/ops/linalg.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/perf/bench_main.h"

namespace {

using lockstep::cpu::Conv2dGeometry;
using lockstep::cpu::Conv2dPath;

template <class T>
std::vector<T> random_vector(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<T> v(n);
  for (auto& e : v) e = static_cast<T>(u(rng));
  return v;
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bench_sgemm(benchmark::State& state, int64_t m, int64_t n, int64_t k) {
  auto a = random_vector<float>(m * k, 1), b = random_vector<float>(k * n, 2);
  std::vector<float> c(m * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f,
                c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, 2.0 * m * n * k);
}

void bench_dgemm(benchmark::State& state, int64_t m, int64_t n, int64_t k) {
  auto a = random_vector<double>(m * k, 1), b = random_vector<double>(k * n, 2);
  std::vector<double> c(m * n);
  for (auto _ : state) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a.data(), k, b.data(), n, 0.0,
                c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, 2.0 * m * n * k);
}

// The same work through Lockstep's differentiable ops (tensor allocation, dispatch and autograd included).
void bench_matmul_op(benchmark::State& state, int64_t s) {
  const lockstep::Tensor a = lockstep::rand({s, s}), b = lockstep::rand({s, s});
  for (auto _ : state) benchmark::DoNotOptimize(lockstep::matmul(a, b).data());
  set_flops(state, 2.0 * s * s * s);
}

void bench_conv_op(benchmark::State& state, const Conv2dGeometry& g) {
  using lockstep::Tensor;
  Tensor x = lockstep::rand({g.N, g.C, g.H, g.W}).requires_grad_();
  Tensor w = lockstep::rand({g.K, g.C / g.groups, g.R, g.S}, -0.1, 0.1).requires_grad_();
  Tensor b = lockstep::zeros({g.K}).requires_grad_();
  const Tensor dy = lockstep::rand({g.N, g.K, g.P(), g.Q()});
  for (auto _ : state) {
    Tensor y = lockstep::conv2d(x, w, b, {g.stride_h, g.stride_w}, {g.pad_h, g.pad_w});
    y.backward(dy);
    benchmark::DoNotOptimize(w.grad().data());
  }
  set_flops(state, 3.0 * 2.0 * g.N * g.K * g.P() * g.Q() * (g.C / g.groups) * g.R * g.S);
}

enum class Pass { kForward, kBackwardInput, kBackwardWeight, kAll };

double conv_flops(const Conv2dGeometry& g) {
  return 2.0 * g.N * g.K * g.P() * g.Q() * (g.C / g.groups) * g.R * g.S;
}

template <class T>
void bench_conv(benchmark::State& state, Conv2dGeometry g, Pass pass, Conv2dPath path) {
  lockstep::cpu::set_conv2d_path(path);
  auto x = random_vector<T>(g.N * g.C * g.H * g.W, 3);
  auto w = random_vector<T>(g.K * (g.C / g.groups) * g.R * g.S, 4);
  auto b = random_vector<T>(g.K, 5);
  auto dy = random_vector<T>(g.N * g.K * g.P() * g.Q(), 6);
  std::vector<T> y(dy.size()), dx(x.size()), dw(w.size()), db(b.size());
  for (auto _ : state) {
    if (pass == Pass::kForward || pass == Pass::kAll)
      lockstep::cpu::conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
    if (pass == Pass::kBackwardInput || pass == Pass::kAll) {
      lockstep::cpu::conv2d_backward_input(g, dy.data(), w.data(), dx.data());
    }
    if (pass == Pass::kBackwardWeight || pass == Pass::kAll) {
      lockstep::cpu::conv2d_backward_weight(g, dy.data(), x.data(), dw.data(), db.data());
    }
    benchmark::ClobberMemory();
  }
  set_flops(state, conv_flops(g) * (pass == Pass::kAll ? 3 : 1));
  lockstep::cpu::set_conv2d_path(Conv2dPath::kAuto);
}

Conv2dGeometry conv(int64_t n, int64_t c, int64_t hw, int64_t k, int64_t rs, int64_t stride, int64_t pad) {
  Conv2dGeometry g{};
  g.N = n;
  g.C = c;
  g.H = g.W = hw;
  g.K = k;
  g.R = g.S = rs;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = pad;
  return g;
}

void register_all() {
  auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseRealTime()->Unit(benchmark::kMillisecond);
  };
  // GEMM references: square sizes, then the shapes the im2col path produces (M = K_out, N = columns, K =
  // C*R*S).
  for (int64_t s : {512, 1024}) {
    reg("sgemm/" + std::to_string(s), [s](benchmark::State& st) { bench_sgemm(st, s, s, s); });
  }
  const int64_t im2col_shapes[][3] = {{16, 4096, 144}, {64, 1024, 576}, {256, 1024, 2048}, {2048, 1024, 256}};
  for (const auto& sh : im2col_shapes) {
    const int64_t m = sh[0], n = sh[1], k = sh[2];
    reg("sgemm/" + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k),
        [m, n, k](benchmark::State& st) { bench_sgemm(st, m, n, k); });
  }
  reg("dgemm/1024", [](benchmark::State& st) { bench_dgemm(st, 1024, 1024, 1024); });

  struct Case {
    const char* name;
    Conv2dGeometry g;
  };
  // ResNet-20 on CIFAR, batch 128: 3x3 pad-1 convs per stage, the stride-2 transitions, 1x1 shortcut.
  const std::vector<Case> resnet = {
      {"r20_c16_32x32", conv(128, 16, 32, 16, 3, 1, 1)},
      {"r20_c16to32_s2", conv(128, 16, 32, 32, 3, 2, 1)},
      {"r20_c32_16x16", conv(128, 32, 16, 32, 3, 1, 1)},
      {"r20_c32to64_s2", conv(128, 32, 16, 64, 3, 2, 1)},
      {"r20_c64_8x8", conv(128, 64, 8, 64, 3, 1, 1)},
      {"r20_1x1_c16to32_s2", conv(128, 16, 32, 32, 1, 2, 0)},
      {"r20_stem_c3", conv(128, 3, 32, 16, 3, 1, 1)},
      // The same stem on 1-channel 28x28 images (Fashion-MNIST).
      {"r20_stem_c1_28x28", conv(128, 1, 28, 16, 3, 1, 1)},
  };
  // DCGAN 64x64, batch 64 (and the 1-channel 32x32 variant's first layer): discriminator convs 4x4 stride 2
  // pad 1. The generator's transposed convs are the input gradient of these same geometries (512->256 at 4->8
  // is d4, ..., 64->3 at 32->64 is d1).
  const std::vector<Case> dcgan = {
      {"dcgan_d1_c3to64_64x64", conv(64, 3, 64, 64, 4, 2, 1)},
      {"dcgan_d2_c64to128_32x32", conv(64, 64, 32, 128, 4, 2, 1)},
      {"dcgan_d3_c128to256_16x16", conv(64, 128, 16, 256, 4, 2, 1)},
      {"dcgan_d4_c256to512_8x8", conv(64, 256, 8, 512, 4, 2, 1)},
      // DCGAN 32x32 on 1-channel images (the training benchmarks' GANs): the discriminator's layers.
      {"dcgan32_d1_c1to64_32x32", conv(64, 1, 32, 64, 4, 2, 1)},
      {"dcgan32_d2_c64to128_16x16", conv(64, 64, 16, 128, 4, 2, 1)},
      {"dcgan32_d3_c128to256_8x8", conv(64, 128, 8, 256, 4, 2, 1)},
  };
  // Few output channels (the narrow kernels): CycleGAN's last generator layer (32 -> 1 channel, 7x7 on the
  // reflection-padded 38x38 map, batch 8 as examples/fashion_cyclegan.toml) and a 1-channel critic head.
  const std::vector<Case> narrow = {
      {"cyclegan_g_last_c32to1_7x7", conv(8, 32, 38, 1, 7, 1, 0)},
      {"critic_head_c256to1_4x4", conv(64, 256, 4, 1, 4, 1, 0)},
      {"cyclegan_res_c128_8x8", conv(8, 128, 10, 128, 3, 1, 0)},
  };
  const std::pair<Pass, const char*> passes[] = {{Pass::kForward, "fwd"},
                                                 {Pass::kBackwardInput, "bwd_input"},
                                                 {Pass::kBackwardWeight, "bwd_weight"},
                                                 {Pass::kAll, "fwd+bwd"}};
  // Paths: auto, im2col + GEMM forced, and (on the shapes where the direct small-C*R*S kernels compete with
  // it) oneDNN alone.
  const std::pair<Conv2dPath, const char*> small_paths[] = {
      {Conv2dPath::kAuto, "auto"}, {Conv2dPath::kGemm, "gemm"}, {Conv2dPath::kOneDnn, "onednn"}};
  auto paths_for = [&](const Conv2dGeometry& g) {
    const bool small = g.C * g.R * g.S <= 48 || g.K <= 4;
    return std::vector<std::pair<Conv2dPath, const char*>>(std::begin(small_paths),
                                                           std::begin(small_paths) + (small ? 3 : 2));
  };
  for (const auto* cases : {&resnet, &dcgan, &narrow}) {
    for (const Case& c : *cases) {
      for (const auto& [path, path_name] : paths_for(c.g)) {
        for (const auto& [pass, pass_name] : passes) {
          const Conv2dGeometry g = c.g;
          const Conv2dPath pth = path;
          const Pass ps = pass;
          reg(std::string("conv_f32_") + path_name + "/" + c.name + "/" + pass_name,
              [g, pth, ps](benchmark::State& st) { bench_conv<float>(st, g, ps, pth); });
        }
      }
    }
  }
  // Transposed convolution forward at DCGAN generator shapes (= conv2d_backward_input), including the first
  // layer: latent 100x1x1 -> 512x4x4 (4x4 kernel, stride 1, pad 0).
  const std::vector<Case> generator = {
      {"dcgan_g1_z100to512_1to4", conv(64, 512, 4, 100, 4, 1, 0)},
      {"dcgan_g2_c512to256_4to8", conv(64, 256, 8, 512, 4, 2, 1)},
      {"dcgan_g3_c256to128_8to16", conv(64, 128, 16, 256, 4, 2, 1)},
      {"dcgan_g4_c128to64_16to32", conv(64, 64, 32, 128, 4, 2, 1)},
      {"dcgan_g5_c64to3_32to64", conv(64, 3, 64, 64, 4, 2, 1)},
      {"dcgan32_g4_c64to1_16to32", conv(64, 1, 32, 64, 4, 2, 1)},
  };
  for (const Case& c : generator) {
    for (const auto& [path, path_name] : paths_for(c.g)) {
      const Conv2dGeometry g = c.g;
      const Conv2dPath pth = path;
      reg(std::string("convT_f32_") + path_name + "/" + c.name + "/fwd",
          [g, pth](benchmark::State& st) { bench_conv<float>(st, g, Pass::kBackwardInput, pth); });
    }
  }
  // Through the ops: matmul, and conv2d forward + backward (x, w and bias gradients) with autograd.
  reg("matmul_op/1024", [](benchmark::State& st) { bench_matmul_op(st, 1024); });
  for (const Case& c : {resnet[0], resnet[2], dcgan[2]}) {
    const Conv2dGeometry g = c.g;
    reg(std::string("conv2d_op/") + c.name + "/fwd+bwd", [g](benchmark::State& st) { bench_conv_op(st, g); });
  }
  // f64 (im2col + dgemm) on two shapes, for scale.
  for (const Case& c : {resnet[2], dcgan[2]}) {
    const Conv2dGeometry g = c.g;
    reg(std::string("conv_f64/") + c.name + "/fwd+bwd",
        [g](benchmark::State& st) { bench_conv<double>(st, g, Pass::kAll, Conv2dPath::kAuto); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  // A modest default measuring time keeps a full run near a minute per thread setting.
  return lockstep::bench::run_benchmarks(argc, argv, "0.2");
}
