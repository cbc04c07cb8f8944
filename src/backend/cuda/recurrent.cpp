// CUDA recurrent-cell kernels (RNN, LSTM, GRU): validation and the calls to the launchers of
// recurrent_kernels.cu, on the tensors' device and the default stream.
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/recurrent_launch.h"
#include "src/backend/cuda/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

// With `state` [B, H] (its rows and columns give B and H): checks that every tensor is contiguous, on state's
// device and of its dtype, the `states` of its shape and the `gates` [B, G H]; undefined tensors in
// `optional` are skipped.
void check_operands(const char* where, const Tensor& state, std::int64_t gates,
                    std::initializer_list<const Tensor*> states,
                    std::initializer_list<const Tensor*> gate_tensors,
                    std::initializer_list<const Tensor*> optional = {}) {
  LOCKSTEP_CHECK(state.dim() == 2, ValueError, where, ": expected a [B, H] state, but got shape ",
                 shape_str(state.shape()));
  const Shape gate_shape{state.size(0), gates * state.size(1)};
  const auto check = [&](const Tensor& t, const Shape& shape) {
    LOCKSTEP_CHECK(
        t.device() == state.device() && t.dtype() == state.dtype() && t.shape() == shape && t.is_contiguous(),
        ValueError, where, ": expected contiguous ", dtype_name(state.dtype()), " tensors of shape ",
        shape_str(shape), " on ", state.device().str(), ", but got ", dtype_name(t.dtype()), " ",
        shape_str(t.shape()), " on ", t.device().str());
  };
  check(state, state.shape());
  for (const Tensor* t : states) check(*t, state.shape());
  for (const Tensor* t : gate_tensors) check(*t, gate_shape);
  for (const Tensor* t : optional) {
    if (t->defined()) check(*t, state.shape());
  }
}

// kTanh or kRelu: whether it is relu.
bool is_relu(const char* where, UnaryOp act) {
  LOCKSTEP_CHECK(act == UnaryOp::kTanh || act == UnaryOp::kRelu, ValueError, where,
                 ": expected the activation tanh or relu, but got unary op ", static_cast<int>(act));
  return act == UnaryOp::kRelu;
}

void rnn_cell_kernel(UnaryOp act, const Tensor& gi, const Tensor& gh, const Tensor& h) {
  const char* where = "rnn_cell (CUDA)";
  const bool relu = is_relu(where, act);
  check_operands(where, h, 1, {}, {&gi, &gh});
  DeviceGuard guard(h.device());
  launch_rnn_cell(h.dtype(), relu, gi.data(), gh.data(), h.data(), h.size(0), h.size(1));
}

void rnn_cell_backward_kernel(UnaryOp act, const Tensor& dh, const Tensor& h, const Tensor& dpre) {
  const char* where = "rnn_cell_backward (CUDA)";
  const bool relu = is_relu(where, act);
  check_operands(where, h, 1, {&dh, &dpre}, {});
  DeviceGuard guard(h.device());
  launch_rnn_cell_backward(h.dtype(), relu, dh.data(), h.data(), dpre.data(), h.size(0), h.size(1));
}

void lstm_cell_kernel(const Tensor& gi, const Tensor& gh, const Tensor& c, const Tensor& h,
                      const Tensor& c_new) {
  check_operands("lstm_cell (CUDA)", c, 4, {&h, &c_new}, {&gi, &gh});
  DeviceGuard guard(c.device());
  launch_lstm_cell(c.dtype(), gi.data(), gh.data(), c.data(), h.data(), c_new.data(), c.size(0), c.size(1));
}

void lstm_cell_backward_kernel(const Tensor& dh, const Tensor& dc, const Tensor& gi, const Tensor& gh,
                               const Tensor& c, const Tensor& c_new, const Tensor& dgates,
                               const Tensor& dc_prev) {
  check_operands("lstm_cell_backward (CUDA)", c, 4, {&dh, &dc, &c_new}, {&gi, &gh, &dgates}, {&dc_prev});
  DeviceGuard guard(c.device());
  launch_lstm_cell_backward(c.dtype(), dh.data(), dc.data(), gi.data(), gh.data(), c.data(), c_new.data(),
                            dgates.data(), data_or_null(dc_prev), c.size(0), c.size(1));
}

void gru_cell_kernel(const Tensor& gi, const Tensor& gh, const Tensor& h, const Tensor& h_new) {
  check_operands("gru_cell (CUDA)", h, 3, {&h_new}, {&gi, &gh});
  DeviceGuard guard(h.device());
  launch_gru_cell(h.dtype(), gi.data(), gh.data(), h.data(), h_new.data(), h.size(0), h.size(1));
}

void gru_cell_backward_kernel(const Tensor& dh, const Tensor& gi, const Tensor& gh, const Tensor& h,
                              const Tensor& dgi, const Tensor& dgh, const Tensor& dh_prev) {
  check_operands("gru_cell_backward (CUDA)", h, 3, {&dh}, {&gi, &gh, &dgi, &dgh}, {&dh_prev});
  DeviceGuard guard(h.device());
  launch_gru_cell_backward(h.dtype(), dh.data(), gi.data(), gh.data(), h.data(), dgi.data(), dgh.data(),
                           data_or_null(dh_prev), h.size(0), h.size(1));
}

}  // namespace

void register_recurrent_kernels() {
  kernels::rnn_cell.set(DeviceType::CUDA, rnn_cell_kernel);
  kernels::rnn_cell_backward.set(DeviceType::CUDA, rnn_cell_backward_kernel);
  kernels::lstm_cell.set(DeviceType::CUDA, lstm_cell_kernel);
  kernels::lstm_cell_backward.set(DeviceType::CUDA, lstm_cell_backward_kernel);
  kernels::gru_cell.set(DeviceType::CUDA, gru_cell_kernel);
  kernels::gru_cell_backward.set(DeviceType::CUDA, gru_cell_backward_kernel);
}

}  // namespace lockstep::cuda
