// Launchers of the CUDA recurrent-cell kernels (defined in recurrent_kernels.cu): they run on the current
// device and the default stream, return without waiting, and raise DeviceError when a launch fails. Every
// pointer is to contiguous data of `dtype` (f32, f64): the state-like tensors (h, c, c_new, dh, dc, dpre,
// dc_prev, dh_prev) are [b, h], the gate tensors (gi, gh, dgates, dgi, dgh) [b, G h] in G gate blocks of h
// columns (G = 1 for the RNN, 4 for the LSTM, 3 for the GRU).
#pragma once

#include <cstdint>

#include "src/core/dtype.h"

namespace lockstep::cuda {

// h = act(gi + gh), act relu when `relu`, else tanh.
void launch_rnn_cell(DType dtype, bool relu, const void* gi, const void* gh, void* h, std::int64_t b,
                     std::int64_t hidden);
// dpre = dh * act'(gi + gh), from h.
void launch_rnn_cell_backward(DType dtype, bool relu, const void* dh, const void* h, void* dpre,
                              std::int64_t b, std::int64_t hidden);
// Gates [i, f, g, o]: c_new and h.
void launch_lstm_cell(DType dtype, const void* gi, const void* gh, const void* c, void* h, void* c_new,
                      std::int64_t b, std::int64_t hidden);
// dgates (of gi, and of gh alike) and dc_prev (written when not null).
void launch_lstm_cell_backward(DType dtype, const void* dh, const void* dc, const void* gi, const void* gh,
                               const void* c, const void* c_new, void* dgates, void* dc_prev, std::int64_t b,
                               std::int64_t hidden);
// Gates [r, z, n]: h_new.
void launch_gru_cell(DType dtype, const void* gi, const void* gh, const void* h, void* h_new, std::int64_t b,
                     std::int64_t hidden);
// dgi, dgh and dh_prev (written when not null).
void launch_gru_cell_backward(DType dtype, const void* dh, const void* gi, const void* gh, const void* h,
                              void* dgi, void* dgh, void* dh_prev, std::int64_t b, std::int64_t hidden);

}  // namespace lockstep::cuda
