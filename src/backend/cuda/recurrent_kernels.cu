// CUDA recurrent-cell kernels (RNN, LSTM, GRU), forward and backward: one thread per unit (row b, column j)
// in grid-stride loops around the formulas of src/ops/recurrent_formulas.h, the same functions the CPU
// kernels run (f32 with the same polynomial exp and tanh, products rounded on their own), so the CPU op table
// tests the math that runs here.
#include <cuda_runtime.h>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/recurrent_launch.h"
#include "src/ops/recurrent_formulas.h"

namespace lockstep::cuda {
namespace {

// Unit u of b x h: its offset k in [b, h] and q in [b, G h] (gate block 0).
struct Unit {
  std::int64_t k, q;
};
__device__ inline Unit unit_at(std::int64_t u, std::int64_t hidden, std::int64_t gates) {
  const std::int64_t row = u / hidden, j = u % hidden;
  return {u, row * gates * hidden + j};
}

template <class T>
__global__ void rnn_cell_kernel(bool relu, const T* gi, const T* gh, T* h, std::int64_t n) {
  for (std::int64_t k = first_index(); k < n; k += grid_stride()) {
    h[k] = recurrent::rnn_cell_formula(relu, gi[k], gh[k]);
  }
}

template <class T>
__global__ void rnn_cell_backward_kernel(bool relu, const T* dh, const T* h, T* dpre, std::int64_t n) {
  for (std::int64_t k = first_index(); k < n; k += grid_stride()) {
    dpre[k] = recurrent::rnn_cell_backward_formula(relu, dh[k], h[k]);
  }
}

// The gates of the unit whose gate block 0 is at gi, gh (blocks `hidden` apart).
template <class T>
__device__ inline recurrent::LstmGates<T> lstm_gates_at(const T* gi, const T* gh, std::int64_t hidden) {
  return recurrent::lstm_gates(gi[0], gh[0], gi[hidden], gh[hidden], gi[2 * hidden], gh[2 * hidden],
                               gi[3 * hidden], gh[3 * hidden]);
}
template <class T>
__device__ inline recurrent::GruGates<T> gru_gates_at(const T* gi, const T* gh, std::int64_t hidden) {
  return recurrent::gru_gates(gi[0], gh[0], gi[hidden], gh[hidden], gi[2 * hidden], gh[2 * hidden]);
}

template <class T>
__global__ void lstm_cell_kernel(const T* gi, const T* gh, const T* c, T* h, T* c_new, std::int64_t n,
                                 std::int64_t hidden) {
  for (std::int64_t u = first_index(); u < n; u += grid_stride()) {
    const Unit at = unit_at(u, hidden, 4);
    const recurrent::LstmStep<T> step =
        recurrent::lstm_cell_formula(lstm_gates_at(gi + at.q, gh + at.q, hidden), c[at.k]);
    c_new[at.k] = step.c_new;
    h[at.k] = step.h;
  }
}

template <class T>
__global__ void lstm_cell_backward_kernel(const T* dh, const T* dc, const T* gi, const T* gh, const T* c,
                                          const T* c_new, T* dgates, T* dc_prev, std::int64_t n,
                                          std::int64_t hidden) {
  for (std::int64_t u = first_index(); u < n; u += grid_stride()) {
    const Unit at = unit_at(u, hidden, 4);
    const recurrent::LstmGrads<T> d = recurrent::lstm_cell_backward_formula(
        lstm_gates_at(gi + at.q, gh + at.q, hidden), dh[at.k], dc[at.k], c[at.k], c_new[at.k]);
    T* dg = dgates + at.q;
    dg[0] = d.di;
    dg[hidden] = d.df;
    dg[2 * hidden] = d.dg;
    dg[3 * hidden] = d.d_o;
    if (dc_prev != nullptr) dc_prev[at.k] = d.dc_prev;
  }
}

template <class T>
__global__ void gru_cell_kernel(const T* gi, const T* gh, const T* h, T* h_new, std::int64_t n,
                                std::int64_t hidden) {
  for (std::int64_t u = first_index(); u < n; u += grid_stride()) {
    const Unit at = unit_at(u, hidden, 3);
    h_new[at.k] = recurrent::gru_cell_formula(gru_gates_at(gi + at.q, gh + at.q, hidden), h[at.k]);
  }
}

template <class T>
__global__ void gru_cell_backward_kernel(const T* dh, const T* gi, const T* gh, const T* h, T* dgi, T* dgh,
                                         T* dh_prev, std::int64_t n, std::int64_t hidden) {
  for (std::int64_t u = first_index(); u < n; u += grid_stride()) {
    const Unit at = unit_at(u, hidden, 3);
    const recurrent::GruGrads<T> d = recurrent::gru_cell_backward_formula(
        gru_gates_at(gi + at.q, gh + at.q, hidden), gh[at.q + 2 * hidden], dh[at.k], h[at.k]);
    T* dx = dgi + at.q;
    T* dy = dgh + at.q;
    dx[0] = d.dr;
    dy[0] = d.dr;
    dx[hidden] = d.dz;
    dy[hidden] = d.dz;
    dx[2 * hidden] = d.dn;
    dy[2 * hidden] = d.dn_r;
    if (dh_prev != nullptr) dh_prev[at.k] = d.dh_prev;
  }
}

}  // namespace

void launch_rnn_cell(DType dtype, bool relu, const void* gi, const void* gh, void* h, std::int64_t b,
                     std::int64_t hidden) {
  const std::int64_t n = b * hidden;
  if (n == 0) return;
  dispatch_floating("rnn_cell (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    rnn_cell_kernel<T><<<blocks_for(n), kThreads>>>(relu, static_cast<const T*>(gi),
                                                    static_cast<const T*>(gh), static_cast<T*>(h), n);
  });
  check_cuda(cudaGetLastError(), "rnn_cell_kernel<<<...>>>");
}

void launch_rnn_cell_backward(DType dtype, bool relu, const void* dh, const void* h, void* dpre,
                              std::int64_t b, std::int64_t hidden) {
  const std::int64_t n = b * hidden;
  if (n == 0) return;
  dispatch_floating("rnn_cell_backward (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    rnn_cell_backward_kernel<T><<<blocks_for(n), kThreads>>>(
        relu, static_cast<const T*>(dh), static_cast<const T*>(h), static_cast<T*>(dpre), n);
  });
  check_cuda(cudaGetLastError(), "rnn_cell_backward_kernel<<<...>>>");
}

void launch_lstm_cell(DType dtype, const void* gi, const void* gh, const void* c, void* h, void* c_new,
                      std::int64_t b, std::int64_t hidden) {
  const std::int64_t n = b * hidden;
  if (n == 0) return;
  dispatch_floating("lstm_cell (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    lstm_cell_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<const T*>(gi), static_cast<const T*>(gh),
                                                     static_cast<const T*>(c), static_cast<T*>(h),
                                                     static_cast<T*>(c_new), n, hidden);
  });
  check_cuda(cudaGetLastError(), "lstm_cell_kernel<<<...>>>");
}

void launch_lstm_cell_backward(DType dtype, const void* dh, const void* dc, const void* gi, const void* gh,
                               const void* c, const void* c_new, void* dgates, void* dc_prev, std::int64_t b,
                               std::int64_t hidden) {
  const std::int64_t n = b * hidden;
  if (n == 0) return;
  dispatch_floating("lstm_cell_backward (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    lstm_cell_backward_kernel<T><<<blocks_for(n), kThreads>>>(
        static_cast<const T*>(dh), static_cast<const T*>(dc), static_cast<const T*>(gi),
        static_cast<const T*>(gh), static_cast<const T*>(c), static_cast<const T*>(c_new),
        static_cast<T*>(dgates), static_cast<T*>(dc_prev), n, hidden);
  });
  check_cuda(cudaGetLastError(), "lstm_cell_backward_kernel<<<...>>>");
}

void launch_gru_cell(DType dtype, const void* gi, const void* gh, const void* h, void* h_new, std::int64_t b,
                     std::int64_t hidden) {
  const std::int64_t n = b * hidden;
  if (n == 0) return;
  dispatch_floating("gru_cell (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    gru_cell_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<const T*>(gi), static_cast<const T*>(gh),
                                                    static_cast<const T*>(h), static_cast<T*>(h_new), n,
                                                    hidden);
  });
  check_cuda(cudaGetLastError(), "gru_cell_kernel<<<...>>>");
}

void launch_gru_cell_backward(DType dtype, const void* dh, const void* gi, const void* gh, const void* h,
                              void* dgi, void* dgh, void* dh_prev, std::int64_t b, std::int64_t hidden) {
  const std::int64_t n = b * hidden;
  if (n == 0) return;
  dispatch_floating("gru_cell_backward (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    gru_cell_backward_kernel<T><<<blocks_for(n), kThreads>>>(
        static_cast<const T*>(dh), static_cast<const T*>(gi), static_cast<const T*>(gh),
        static_cast<const T*>(h), static_cast<T*>(dgi), static_cast<T*>(dgh), static_cast<T*>(dh_prev), n,
        hidden);
  });
  check_cuda(cudaGetLastError(), "gru_cell_backward_kernel<<<...>>>");
}

}  // namespace lockstep::cuda
