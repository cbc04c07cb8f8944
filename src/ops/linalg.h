// Matrix products: matmul with torch.matmul's shape rules (dot, matrix-vector, batched with broadcasting) and
// the fully connected layer's linear(), both on the gemm kernel without copying transposed operands.
#pragma once

#include "src/tensor/tensor.h"

namespace lockstep {

// [K]·[K] -> [] ; [M, K]·[K] -> [M] ; [K]·[K, N] -> [N] ; [..., M, K]·[..., K, N] -> [batch..., M, N] with
// the batch dimensions broadcast. A 1-D operand is promoted to a matrix and the added dimension removed
// after.
Tensor matmul(const Tensor& a, const Tensor& b);

// x [..., in], weight [out, in], bias [out] or undefined -> x @ weight^T + bias [..., out].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

}  // namespace lockstep
