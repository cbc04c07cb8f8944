// The oneDNN CPU engine and per-thread streams.
#include "src/backend/cpu/onednn.h"

namespace lockstep::cpu {

dnnl::engine& onednn_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& onednn_stream() {
  thread_local dnnl::stream stream(onednn_engine());
  return stream;
}

}  // namespace lockstep::cpu
