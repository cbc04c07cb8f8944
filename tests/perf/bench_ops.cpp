// Op-level benchmark: milliseconds per iteration of training passes through Lockstep's public ops (conv2d,
// conv_transpose2d, batch_norm, an MLP step: the same computations tests/perf/peer_torch.py times in PyTorch),
// and one LSTM step with the fused cell op against the same step composed of primitive ops.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/ops/activation.h"
#include "src/ops/conv.h"
#include "src/ops/elementwise.h"
#include "src/ops/linalg.h"
#include "src/ops/loss.h"
#include "src/ops/norm.h"
#include "src/ops/recurrent.h"
#include "src/tensor/factories.h"
#include "tests/perf/bench_main.h"

namespace {

using lockstep::Tensor;

// Times `step` after two untimed warm-up calls (first-touch page faults, allocator and thread-pool start-up).
template <class Step>
void run(benchmark::State& state, Step step) {
  step();
  step();
  for (auto _ : state) step();
}

// Forgets the accumulated gradients, so every iteration writes fresh ones (PyTorch: .grad = None).
void clear_grads(const std::vector<Tensor>& params) {
  for (const Tensor& p : params) p.set_grad(Tensor());
}

struct ConvCase {
  const char* name;
  std::int64_t n, c_in, c_out, hw, kernel, stride, pad;
};

// conv2d forward + backward into x, w and bias gradients.
void bench_conv2d(benchmark::State& state, const ConvCase& c) {
  Tensor x = lockstep::rand({c.n, c.c_in, c.hw, c.hw}, -1.0, 1.0).requires_grad_();
  Tensor w = lockstep::rand({c.c_out, c.c_in, c.kernel, c.kernel}, -0.1, 0.1).requires_grad_();
  Tensor b = lockstep::zeros({c.c_out}).requires_grad_();
  const std::int64_t out = lockstep::conv_output_size(c.hw, c.kernel, c.pad, c.stride);
  const Tensor dy = lockstep::rand({c.n, c.c_out, out, out}, -1.0, 1.0);
  run(state, [&] {
    clear_grads({x, w, b});
    Tensor y = lockstep::conv2d(x, w, b, {c.stride, c.stride}, {c.pad, c.pad});
    y.backward(dy);
    benchmark::DoNotOptimize(w.grad().data());
  });
}

// conv_transpose2d (no bias, as in DCGAN's generator) forward + backward into x and w gradients.
void bench_conv_transpose2d(benchmark::State& state, const ConvCase& c) {
  Tensor x = lockstep::rand({c.n, c.c_in, c.hw, c.hw}, -1.0, 1.0).requires_grad_();
  Tensor w = lockstep::rand({c.c_in, c.c_out, c.kernel, c.kernel}, -0.1, 0.1).requires_grad_();
  const std::int64_t out = lockstep::conv_transpose_output_size(c.hw, c.kernel, c.pad, c.stride);
  const Tensor dy = lockstep::rand({c.n, c.c_out, out, out}, -1.0, 1.0);
  run(state, [&] {
    clear_grads({x, w});
    Tensor y = lockstep::conv_transpose2d(x, w, {}, {c.stride, c.stride}, {c.pad, c.pad});
    y.backward(dy);
    benchmark::DoNotOptimize(w.grad().data());
  });
}

// Training-mode batch norm (affine, running statistics) forward + backward into x, weight and bias.
void bench_batch_norm(benchmark::State& state, const lockstep::Shape& shape) {
  const std::int64_t channels = shape[1];
  Tensor x = lockstep::rand(shape, -1.0, 1.0).requires_grad_();
  Tensor weight = lockstep::ones({channels}).requires_grad_();
  Tensor bias = lockstep::zeros({channels}).requires_grad_();
  const Tensor running_mean = lockstep::zeros({channels}), running_var = lockstep::ones({channels});
  const Tensor dy = lockstep::rand(shape, -1.0, 1.0);
  run(state, [&] {
    clear_grads({x, weight, bias});
    Tensor y =
        lockstep::batch_norm(x, weight, bias, running_mean, running_var, lockstep::BatchNormMode::kTrain);
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().data());
  });
}

// One SGD step of a 784-512-256-10 ReLU MLP with cross-entropy on a batch of `batch`.
void bench_mlp(benchmark::State& state, std::int64_t batch) {
  const std::vector<std::int64_t> sizes = {784, 512, 256, 10};
  std::vector<Tensor> params;
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(sizes[i]));
    params.push_back(lockstep::rand({sizes[i + 1], sizes[i]}, -bound, bound).requires_grad_());
    params.push_back(lockstep::rand({sizes[i + 1]}, -bound, bound).requires_grad_());
  }
  const Tensor x = lockstep::rand({batch, sizes[0]});
  std::vector<std::int64_t> labels(static_cast<size_t>(batch));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int64_t>(i % 10);
  const Tensor target = lockstep::from_vector(labels, {batch});
  const double lr = 0.01;
  run(state, [&] {
    Tensor h = lockstep::relu(lockstep::linear(x, params[0], params[1]));
    h = lockstep::relu(lockstep::linear(h, params[2], params[3]));
    const Tensor loss = lockstep::cross_entropy(lockstep::linear(h, params[4], params[5]), target);
    loss.backward();
    lockstep::NoGradGuard no_grad;
    for (Tensor& p : params) {
      p.add_(p.grad(), -lr);
      p.set_grad(Tensor());
    }
  });
}

// The LSTM step composed of primitive ops (as RecurrentLayer ran before the fused cell op): the baseline of
// the fused one.
lockstep::LstmCellOutput composed_lstm_cell(const Tensor& gi, const Tensor& gh, const Tensor& c) {
  const std::int64_t H = c.size(1);
  const Tensor gate = gi + gh;
  const Tensor i = lockstep::sigmoid(gate.slice(1, 0, H)), f = lockstep::sigmoid(gate.slice(1, H, 2 * H));
  const Tensor g = lockstep::tanh(gate.slice(1, 2 * H, 3 * H)),
               o = lockstep::sigmoid(gate.slice(1, 3 * H, 4 * H));
  const Tensor c_new = f * c + i * g;
  return {o * lockstep::tanh(c_new), c_new};
}

enum class Cell : std::uint8_t { kFused, kComposed };

// One LSTM step (batch 128, 28 inputs, hidden 128: the lstm model of bench_train) forward + backward from
// given gradients of h' and c': with `projections`, the two linear projections too (the whole step), else the
// cell's pointwise part alone on given gate projections.
void bench_lstm_step(benchmark::State& state, Cell cell, bool projections) {
  const std::int64_t B = 128, F = 28, H = 128;
  const Tensor x = lockstep::rand({B, F}, -1.0, 1.0);
  const Tensor h = lockstep::rand({B, H}, -1.0, 1.0).requires_grad_();
  const Tensor c = lockstep::rand({B, H}, -1.0, 1.0).requires_grad_();
  const Tensor w_ih = lockstep::rand({4 * H, F}, -0.1, 0.1).requires_grad_();
  const Tensor w_hh = lockstep::rand({4 * H, H}, -0.1, 0.1).requires_grad_();
  const Tensor bias = lockstep::rand({4 * H}, -0.1, 0.1).requires_grad_();
  const Tensor gi_leaf = lockstep::rand({B, 4 * H}, -2.0, 2.0).requires_grad_();
  const Tensor gh_leaf = lockstep::rand({B, 4 * H}, -2.0, 2.0).requires_grad_();
  const Tensor dh = lockstep::rand({B, H}, -1.0, 1.0), dc = lockstep::rand({B, H}, -1.0, 1.0);
  const std::vector<Tensor> inputs =
      projections ? std::vector<Tensor>{h, c, w_ih, w_hh, bias} : std::vector<Tensor>{gi_leaf, gh_leaf, c};
  run(state, [&] {
    const Tensor gi = projections ? lockstep::linear(x, w_ih, bias) : gi_leaf;
    const Tensor gh = projections ? lockstep::linear(h, w_hh) : gh_leaf;
    const lockstep::LstmCellOutput y =
        cell == Cell::kFused ? lockstep::lstm_cell(gi, gh, c) : composed_lstm_cell(gi, gh, c);
    const std::vector<Tensor> grads = lockstep::grad({y.h, y.c}, inputs, {dh, dc});
    benchmark::DoNotOptimize(grads[0].data());
  });
}

void register_all() {
  auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseRealTime()->Unit(benchmark::kMillisecond);
  };
  // ResNet-20 3x3 pad-1 convs at batch 128, and a 1-channel 28x28 stem (Fashion-MNIST).
  const std::vector<ConvCase> convs = {
      {"r20_c16_32x32", 128, 16, 16, 32, 3, 1, 1},
      {"r20_c32_16x16", 128, 32, 32, 16, 3, 1, 1},
      {"r20_c64_8x8", 128, 64, 64, 8, 3, 1, 1},
      {"stem_c1to16_28x28", 128, 1, 16, 28, 3, 1, 1},
  };
  for (const ConvCase& c : convs) {
    reg(std::string("conv2d/") + c.name, [c](benchmark::State& st) { bench_conv2d(st, c); });
  }
  // DCGAN 32x32 generator, batch 64: 4x4 kernels, stride 2, pad 1 (spatial size doubles).
  const std::vector<ConvCase> transposed = {
      {"dcgan_c256to128_4to8", 64, 256, 128, 4, 4, 2, 1},
      {"dcgan_c128to64_8to16", 64, 128, 64, 8, 4, 2, 1},
      {"dcgan_c64to1_16to32", 64, 64, 1, 16, 4, 2, 1},
  };
  for (const ConvCase& c : transposed) {
    reg(std::string("conv_transpose2d/") + c.name,
        [c](benchmark::State& st) { bench_conv_transpose2d(st, c); });
  }
  reg("batch_norm/train_128x16x32x32", [](benchmark::State& st) { bench_batch_norm(st, {128, 16, 32, 32}); });
  reg("mlp/784_512_256_10_b128", [](benchmark::State& st) { bench_mlp(st, 128); });
  reg("lstm_cell/fused_b128_h128", [](benchmark::State& st) { bench_lstm_step(st, Cell::kFused, false); });
  reg("lstm_cell/composed_b128_h128",
      [](benchmark::State& st) { bench_lstm_step(st, Cell::kComposed, false); });
  reg("lstm_step/fused_b128_in28_h128",
      [](benchmark::State& st) { bench_lstm_step(st, Cell::kFused, true); });
  reg("lstm_step/composed_b128_in28_h128",
      [](benchmark::State& st) { bench_lstm_step(st, Cell::kComposed, true); });
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  return lockstep::bench::run_benchmarks(argc, argv, "0.5");
}
