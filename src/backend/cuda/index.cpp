// CUDA index kernels: validation, the bounds check of the indices and the calls to the launchers of
// index_kernels.cu, on the tensors' device and the default stream. The bounds check reads the indices' least
// and greatest values back to the host (a synchronisation per call, as the loss functions' class check does)
// so that a bad index is an IndexError naming the op, as on the CPU, not a fault on the device.
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/index_launch.h"
#include "src/backend/cuda/register.h"
#include "src/ops/kernels.h"
#include "src/tensor/factories.h"

namespace lockstep::cuda {
namespace {

// Checks that every tensor is contiguous and on one device, index of dtype i64, the others of one dtype.
void check_operands(const char* where, const Tensor& index, std::initializer_list<const Tensor*> data) {
  const Tensor& first = **data.begin();
  LOCKSTEP_CHECK(index.dtype() == DType::i64 && index.is_contiguous() && index.device() == first.device(),
                 ValueError, where, ": expected a contiguous i64 index on ", first.device().str(),
                 ", but got ", dtype_name(index.dtype()), " ", shape_str(index.shape()), " on ",
                 index.device().str());
  for (const Tensor* t : data) {
    LOCKSTEP_CHECK(t->device() == first.device() && t->dtype() == first.dtype() && t->is_contiguous(),
                   ValueError, where, ": expected contiguous ", dtype_name(first.dtype()), " tensors on ",
                   first.device().str(), ", but got ", dtype_name(t->dtype()), " ", shape_str(t->shape()),
                   " on ", t->device().str());
  }
}

// Raises IndexError naming `op` unless every index lies in [0, size).
void check_bounds(const char* op, const Tensor& index, std::int64_t size) {
  const std::int64_t n = index.numel();
  if (n == 0) return;
  const Tensor lo = empty({}, DType::i64, index.device()), hi = empty({}, DType::i64, index.device());
  kernels::reduce.get(index.device())(ReduceOp::kMin, index, lo, 1, n, 1);
  kernels::reduce.get(index.device())(ReduceOp::kMax, index, hi, 1, n, 1);
  const auto low = static_cast<std::int64_t>(lo.item()), high = static_cast<std::int64_t>(hi.item());
  LOCKSTEP_CHECK(low >= 0 && high < size, IndexError, op, ": expected indices in [0, ", size - 1,
                 "] (a dimension of size ", size, "), but got ", low < 0 ? low : high);
}

void index_select_kernel(const Tensor& x, const Tensor& index, const Tensor& out, std::int64_t outer,
                         std::int64_t size, std::int64_t inner) {
  check_operands("index_select (CUDA)", index, {&x, &out});
  check_bounds("index_select", index, size);
  DeviceGuard guard(x.device());
  launch_index_select(x.dtype(), x.data(), index.data<std::int64_t>(), out.data(), outer, size, inner,
                      index.numel());
}

void index_add_kernel(const Tensor& src, const Tensor& index, const Tensor& out, std::int64_t outer,
                      std::int64_t size, std::int64_t inner) {
  check_operands("index_add (CUDA)", index, {&src, &out});
  check_bounds("index_add", index, size);
  DeviceGuard guard(out.device());
  launch_index_add(out.dtype(), src.data(), index.data<std::int64_t>(), out.data(), outer, size, inner,
                   index.numel());
}

// The geometry of gather / scatter_add along `dim` for the launchers.
AlongDimShapes along_dim(const char* where, const Tensor& index, const Tensor& indexed, const Tensor& dense,
                         std::int64_t dim) {
  const auto dims = static_cast<int>(index.dim());
  LOCKSTEP_CHECK(dims <= kMaxIndexDims && indexed.dim() == index.dim() && dense.dim() == index.dim(),
                 NotImplementedError, where, ": expected tensors of one rank up to ", kMaxIndexDims,
                 ", but got ", shape_str(indexed.shape()), " and index ", shape_str(index.shape()));
  AlongDimShapes s;
  s.dims = dims;
  s.dim = static_cast<int>(dim);
  for (int d = 0; d < dims; ++d) {
    s.index_shape[d] = index.size(d);
    s.indexed_strides[d] = indexed.strides()[d];
    s.dense_strides[d] = dense.strides()[d];
  }
  return s;
}

void gather_kernel(const Tensor& x, const Tensor& index, const Tensor& out, std::int64_t dim) {
  check_operands("gather (CUDA)", index, {&x, &out});
  check_bounds("gather", index, x.size(dim));
  const AlongDimShapes s = along_dim("gather (CUDA)", index, x, out, dim);
  DeviceGuard guard(x.device());
  launch_gather(x.dtype(), x.data(), index.data<std::int64_t>(), out.data(), s);
}

void scatter_add_kernel(const Tensor& src, const Tensor& index, const Tensor& out, std::int64_t dim) {
  check_operands("scatter_add (CUDA)", index, {&src, &out});
  check_bounds("scatter_add", index, out.size(dim));
  const AlongDimShapes s = along_dim("scatter_add (CUDA)", index, out, src, dim);
  DeviceGuard guard(out.device());
  launch_scatter_add(out.dtype(), src.data(), index.data<std::int64_t>(), out.data(), s);
}

}  // namespace

void register_index_kernels() {
  kernels::index_select.set(DeviceType::CUDA, index_select_kernel);
  kernels::index_add.set(DeviceType::CUDA, index_add_kernel);
  kernels::gather.set(DeviceType::CUDA, gather_kernel);
  kernels::scatter_add.set(DeviceType::CUDA, scatter_add_kernel);
}

}  // namespace lockstep::cuda
