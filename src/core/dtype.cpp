// Out-of-line error path of the dtype dispatch helpers.
#include "src/core/dtype.h"

#include "src/core/error.h"

namespace lockstep {

void throw_unsupported_dtype(const char* where, DType t) {
  throw TypeError(str_cat(where, ": dtype ", dtype_name(t), " is not supported here"));
}

}  // namespace lockstep
