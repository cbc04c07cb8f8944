// Convolution on cached oneDNN primitives (f32), run on L2-sized chunks of the batch. The dispatch in
// conv_kernels.cpp decides where it runs.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "src/backend/cpu/conv_internal.h"
#include "src/backend/cpu/onednn.h"

namespace lockstep::cpu::conv_internal {

namespace {

// ---------------------------------------------------------------------------------------------------------
// oneDNN path (f32). DRAM bandwidth, not FMA throughput, limits these convolutions once the activations are
// reordered to oneDNN's blocked layouts, so the batch is cut into chunks whose activations fit in L2: each
// chunk is reordered in, convolved and reordered out while it is still in cache. A Plan holds the primitive
// for one chunk size (blocked "any" layouts) and the reorders between the caller's plain layouts and the
// primitive's. Plans are cached by pass, geometry, chunk size, bias and thread count behind a mutex;
// executing one is thread-safe (user-mode scratchpad, buffers from thread scratch). A bf16 plan takes its two
// multiplied operands in bf16 (the reorders in convert them) and writes f32.

// Activation bytes (input + output) per chunk and thread: the L2 of one Zen 5 core.
constexpr int64_t kChunkBytes = int64_t{1} << 20;

using PlanKey = std::array<int64_t, 18>;

// One primitive operand that the caller holds in a plain layout: its plain and its primitive descriptors and
// the reorder between them (plain -> primitive for inputs, primitive -> plain for outputs; empty when equal).
// NCHW activations going to bf16 NHWC (the AMX convolutions' layout) take conv_layout.cpp's transpose
// instead of the reorder (bind_input; weights, whose plain layout looks the same, keep the reorder).
struct Operand {
  int arg = 0;
  dnnl::memory::desc user_md, prim_md;
  dnnl::reorder reorder;
  bool needs_reorder = false;
  bool to_nhwc_bf16 = false;
};

struct Plan {
  dnnl::primitive prim;
  // Activations: forward x -> y; backward data dy -> dx; backward weights x and dy (act_out unused).
  Operand act_in0, act_in1, act_out;
  // Weights: forward and backward data read them; backward weights writes them, and wei_accumulate adds a
  // chunk's blocked diff weights into the caller's plain dw.
  Operand wei;
  dnnl::reorder wei_accumulate;
  dnnl::memory::desc bias_md;
  int bias_arg = 0;
  dnnl::memory::desc scratchpad_md;
};

// Throws for a failed oneDNN call: Error when out of memory (as the CPU allocator reports it), else
// InternalError (oneDNN rejected descriptors or arguments that Lockstep built). Returns only for
// dnnl_unimplemented where `may_be_unimplemented` (primitive creation: the dispatch falls back to GEMM).
void check_onednn_failure(const char* stage, const dnnl::error& e, bool may_be_unimplemented) {
  LOCKSTEP_CHECK(e.status != dnnl_out_of_memory, Error, "conv2d: oneDNN ran out of memory in ", stage);
  LOCKSTEP_INTERNAL_ASSERT(may_be_unimplemented && e.status == dnnl_unimplemented, "conv2d: oneDNN ", stage,
                           " failed with status ", static_cast<int>(e.status), ": ", e.what());
}

Operand make_operand(int arg, const dnnl::memory::desc& user_md, const dnnl::memory::desc& prim_md,
                     bool input) {
  Operand op;
  op.arg = arg;
  op.user_md = user_md;
  op.prim_md = prim_md;
  op.needs_reorder = user_md != prim_md;
  using dnnl::memory;
  const memory::dims dims = user_md.dims();
  if (op.needs_reorder && dims.size() == 4 &&
      user_md == memory::desc(dims, memory::data_type::f32, memory::format_tag::nchw)) {
    if (input && prim_md == memory::desc(dims, memory::data_type::bf16, memory::format_tag::nhwc))
      op.to_nhwc_bf16 = true;
  }
  if (op.needs_reorder) {  // also where the transpose applies: the weights of a plan always reorder
    auto& eng = onednn_engine();
    op.reorder = input ? dnnl::reorder(dnnl::reorder::primitive_desc(eng, user_md, eng, prim_md))
                       : dnnl::reorder(dnnl::reorder::primitive_desc(eng, prim_md, eng, user_md));
  }
  return op;
}

// NHWC activations for the f32 forward pass of wide spatial convolutions, where oneDNN runs its brgemm
// kernel (brgconv) instead of the direct one on blocked layouts (measured on the Xeon, 1 thread, chunk
// shapes): DCGAN's 128->256 4x4 stride-2 convolution at 8x8 214 against 148 GFLOP/s, its 64->128 one at
// 16x16 202-212 against 188-191, 64->128 3x3 stride 2 196 against 182; 1x1, 16- and 32-channel and
// 1-channel convolutions ran slower or no faster. The backward passes keep the blocked layouts (NHWC ran them
// within +-6% either way). The reorders in and out cost the same as into the blocked layouts (all of them
// move memory at the speed of a copy). Whole training steps (lockstep_bench_train, paired runs): DCGAN 0.97x
// the time at 1 thread and 0.98x at 2, WGAN-GP 0.98x, CycleGAN unchanged.
bool prefer_nhwc_forward(const Conv2dGeometry& g) {
  return g.groups == 1 && g.C >= 64 && g.K >= 64 && g.C % 16 == 0 && g.K % 16 == 0 && g.R * g.S > 1;
}

// Builds the plan for g (g.N is the chunk size) with `algo`. Throws dnnl::error when oneDNN has no
// implementation.
std::shared_ptr<Plan> build_plan(Pass pass, const Conv2dGeometry& g, bool with_bias, dnnl::algorithm algo,
                                 bool bf16) {
  using dnnl::memory;
  using tag = memory::format_tag;
  const auto f32 = memory::data_type::f32;
  // The primitive's operand types: in bf16 the pass's two inputs are bf16, its output f32.
  const auto in = bf16 ? memory::data_type::bf16 : f32;
  const auto x_type = pass == Pass::kBackwardData ? f32 : in;
  const auto y_type = pass == Pass::kForward ? f32 : in;
  const auto w_type = pass == Pass::kBackwardWeights ? f32 : in;
  auto& eng = onednn_engine();
  const memory::dims x_dims{g.N, g.C, g.H, g.W}, y_dims{g.N, g.K, g.P(), g.Q()};
  const memory::dims w_dims = g.groups == 1
                                  ? memory::dims{g.K, g.C, g.R, g.S}
                                  : memory::dims{g.groups, g.K / g.groups, g.C / g.groups, g.R, g.S};
  const tag w_tag = g.groups == 1 ? tag::oihw : tag::goihw;
  const memory::dims strides{g.stride_h, g.stride_w}, dilates{g.dil_h - 1, g.dil_w - 1};
  const memory::dims pad_l{g.pad_h, g.pad_w}, pad_r{g.pad_h, g.pad_w};
  const memory::desc x_user(x_dims, f32, tag::nchw), y_user(y_dims, f32, tag::nchw),
      w_user(w_dims, f32, w_tag);
  const memory::desc x_any(x_dims, x_type, tag::any), y_any(y_dims, y_type, tag::any),
      w_any(w_dims, w_type, tag::any);
  const memory::desc b_md({g.K}, f32, tag::x);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto training = dnnl::prop_kind::forward_training;

  // The forward pass, also the hint of the backward passes (forward types: inputs `in`, output f32).
  const tag act_tag =
      !bf16 && pass == Pass::kForward && algo == dnnl::algorithm::convolution_direct && prefer_nhwc_forward(g)
          ? tag::nhwc
          : tag::any;
  const memory::desc x_fwd(x_dims, in, act_tag), w_fwd(w_dims, in, tag::any), y_fwd(y_dims, f32, act_tag);
  auto fwd_desc = with_bias && pass == Pass::kForward
                      ? dnnl::convolution_forward::desc(training, algo, x_fwd, w_fwd, b_md, y_fwd, strides,
                                                        dilates, pad_l, pad_r)
                      : dnnl::convolution_forward::desc(training, algo, x_fwd, w_fwd, y_fwd, strides, dilates,
                                                        pad_l, pad_r);
  auto plan = std::make_shared<Plan>();
  if (pass == Pass::kForward) {
    dnnl::convolution_forward::primitive_desc pd(fwd_desc, attr, eng);
    plan->prim = dnnl::convolution_forward(pd);
    plan->act_in0 = make_operand(DNNL_ARG_SRC, x_user, pd.src_desc(), true);
    plan->act_out = make_operand(DNNL_ARG_DST, y_user, pd.dst_desc(), false);
    plan->wei = make_operand(DNNL_ARG_WEIGHTS, w_user, pd.weights_desc(), true);
    if (with_bias) {
      plan->bias_md = pd.bias_desc();
      plan->bias_arg = DNNL_ARG_BIAS;
    }
    plan->scratchpad_md = pd.scratchpad_desc();
  } else if (pass == Pass::kBackwardData) {
    dnnl::convolution_forward::primitive_desc hint(fwd_desc, eng);
    dnnl::convolution_backward_data::desc desc(algo, x_any, w_any, y_any, strides, dilates, pad_l, pad_r);
    dnnl::convolution_backward_data::primitive_desc pd(desc, attr, eng, hint);
    plan->prim = dnnl::convolution_backward_data(pd);
    plan->act_in0 = make_operand(DNNL_ARG_DIFF_DST, y_user, pd.diff_dst_desc(), true);
    plan->act_out = make_operand(DNNL_ARG_DIFF_SRC, x_user, pd.diff_src_desc(), false);
    plan->wei = make_operand(DNNL_ARG_WEIGHTS, w_user, pd.weights_desc(), true);
    plan->scratchpad_md = pd.scratchpad_desc();
  } else {
    dnnl::convolution_forward::primitive_desc hint(fwd_desc, eng);
    auto desc = with_bias ? dnnl::convolution_backward_weights::desc(algo, x_any, w_any, b_md, y_any, strides,
                                                                     dilates, pad_l, pad_r)
                          : dnnl::convolution_backward_weights::desc(algo, x_any, w_any, y_any, strides,
                                                                     dilates, pad_l, pad_r);
    dnnl::convolution_backward_weights::primitive_desc pd(desc, attr, eng, hint);
    plan->prim = dnnl::convolution_backward_weights(pd);
    plan->act_in0 = make_operand(DNNL_ARG_SRC, x_user, pd.src_desc(), true);
    plan->act_in1 = make_operand(DNNL_ARG_DIFF_DST, y_user, pd.diff_dst_desc(), true);
    plan->wei = make_operand(DNNL_ARG_DIFF_WEIGHTS, w_user, pd.diff_weights_desc(), false);
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    dnnl::primitive_attr sum_attr;
    sum_attr.set_post_ops(sum);
    plan->wei_accumulate =
        dnnl::reorder(dnnl::reorder::primitive_desc(eng, pd.diff_weights_desc(), eng, w_user, sum_attr));
    if (with_bias) {
      plan->bias_md = pd.diff_bias_desc();
      plan->bias_arg = DNNL_ARG_DIFF_BIAS;
    }
    plan->scratchpad_md = pd.scratchpad_desc();
  }
  return plan;
}

// Winograd F(4x4, 3x3) for the forward pass and the weight gradient of wide 3x3 convolutions at stride 1
// (oneDNN's jit_wino_4x3 on AVX-512): CycleGAN's 128-channel residual blocks at 8x8 ran 1.4x (forward) and
// 2.3x (weight gradient) faster than direct; its input gradient was slower, so that pass stays direct.
bool prefer_winograd(Pass pass, const Conv2dGeometry& g) {
  return pass != Pass::kBackwardData && g.groups == 1 && g.R == 3 && g.S == 3 && g.stride_h == 1 &&
         g.stride_w == 1 && g.dil_h == 1 && g.dil_w == 1 && g.C >= 64 && g.K >= 64 && g.C % 16 == 0 &&
         g.K % 16 == 0;
}

// Sets the calling thread's OpenMP thread count while alive: oneDNN sizes a primitive's work split by the
// thread count at creation, and a plan must run with the count it was made for.
class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int n) : saved_(omp_get_max_threads()) {
    if (n != saved_) omp_set_num_threads(n);
  }
  ~ThreadCountGuard() {
    if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
  }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_;
};

// Plans by pass, chunk geometry, bias and thread count. Thread-safe (a mutex guards the map; plans are built
// outside it, so two threads may build the same plan once each and the first one stored wins).
class PlanCache {
 public:
  // The plan for g (g.N is the chunk size) run by `threads` threads, built on first use; null when oneDNN has
  // no implementation for it.
  std::shared_ptr<Plan> get(Pass pass, const Conv2dGeometry& g, bool with_bias, int threads, bool bf16) {
    const PlanKey key{static_cast<int64_t>(pass),
                      with_bias ? 1 : 0,
                      threads,
                      bf16 ? 1 : 0,
                      g.N,
                      g.C,
                      g.H,
                      g.W,
                      g.K,
                      g.R,
                      g.S,
                      g.stride_h,
                      g.stride_w,
                      g.pad_h,
                      g.pad_w,
                      g.dil_h,
                      g.dil_w,
                      g.groups};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = plans_.find(key);
      if (it != plans_.end()) return it->second;
    }
    std::shared_ptr<Plan> plan;
    ThreadCountGuard guard(threads);
    if (!bf16 && prefer_winograd(pass, g)) {
      try {
        plan = build_plan(pass, g, with_bias, dnnl::algorithm::convolution_winograd, bf16);
      } catch (const dnnl::error& e) {
        check_onednn_failure("primitive creation", e, true);
      }
    }
    if (!plan) {
      try {
        plan = build_plan(pass, g, with_bias, dnnl::algorithm::convolution_direct, bf16);
      } catch (const dnnl::error& e) {
        check_onednn_failure("primitive creation", e, true);
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (plans_.size() >= kMaxPlans) plans_.clear();
    return plans_.emplace(key, plan).first->second;
  }

 private:
  static constexpr size_t kMaxPlans = 1024;
  std::mutex mutex_;
  std::unordered_map<PlanKey, std::shared_ptr<Plan>, PrimitiveKeyHash> plans_;
};

PlanCache& plan_cache() {
  static PlanCache cache;
  return cache;
}

// How a pass over the batch is cut: nchunks chunks of nb images (the last may be shorter). Parallel: the
// chunks are split statically over the OpenMP team and each thread runs single-threaded primitives on its own
// chunks (one fork per call, each thread's chunk in its own L2; 1.1-1.4x faster, and far more robust when
// the cores are shared). Serial (one thread, fewer images than threads, or weights over 2 MiB, which each
// thread would have to stream on its own): the calling thread walks the chunks with primitives threaded over
// the team.
struct ChunkLayout {
  int64_t nb = 0, nchunks = 0;
  bool parallel = false;
  int plan_threads = 1;  // thread count the primitives are created for
};

// Chunks hold about kChunkBytes of activations per thread. Large weights are re-read (and, for the weight
// gradient, re-accumulated) once per chunk, so a chunk also holds at least twice the weight bytes.
ChunkLayout chunk_layout(const Conv2dGeometry& g) {
  const int64_t f = static_cast<int64_t>(sizeof(float));
  const int64_t per_image = f * (g.C * g.H * g.W + g.K * g.P() * g.Q());
  const int64_t weight_bytes = f * g.K * (g.C / g.groups) * g.R * g.S;
  const int nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
  ChunkLayout layout;
  layout.parallel = nthr > 1 && g.N >= nthr && weight_bytes <= 2 * kChunkBytes;
  layout.plan_threads = layout.parallel ? 1 : nthr;
  const int64_t budget = std::max(kChunkBytes * (layout.parallel ? 1 : nthr), 2 * weight_bytes);
  const int64_t target = std::max<int64_t>(1, budget / per_image);
  int64_t chunks = (g.N + target - 1) / target;
  if (layout.parallel) chunks = (std::max<int64_t>(chunks, nthr) + nthr - 1) / nthr * nthr;
  layout.nb = (g.N + chunks - 1) / chunks;
  layout.nchunks = (g.N + layout.nb - 1) / layout.nb;
  return layout;
}

// Reorders the caller's plain weights b into the plan's layout on the calling thread (or wraps b when the
// layouts agree). The result is read-only and may be shared by threads running the same plan.
dnnl::memory prepare_weights(const Plan& plan, const float* b, Slot slot) {
  auto& eng = onednn_engine();
  dnnl::memory user(plan.wei.user_md, eng, const_cast<float*>(b));
  if (!plan.wei.needs_reorder) return user;
  dnnl::memory blocked(plan.wei.prim_md, eng, thread_scratch().get(slot, plan.wei.prim_md.get_size()));
  plan.wei.reorder.execute(onednn_stream(), user, blocked);
  onednn_stream().wait();
  return blocked;
}

// Operands of one pass, in the caller's plain layouts: forward a=x, b=w, out=y, bias=bias (input);
// backward data a=dy, b=w, out=dx; backward weights a=x, b=dy, out=dw, bias=dbias (outputs, bias nullable).
struct PassData {
  Pass pass;
  const Conv2dGeometry& g;
  const Plan& main;
  const Plan* tail;             // plan of the shorter last chunk, if any
  const dnnl::memory* weights;  // forward / backward data: prepared weights of main and tail
  int64_t nb;
  const float* a;
  const float* b;
  float* out;
  float* bias;
};

// Binds the caller's plain operand at ptr: as it is, or reordered into the plan's layout in scratch `slot`.
dnnl::memory bind_input(const Operand& op, const float* ptr, Slot slot) {
  auto& eng = onednn_engine();
  dnnl::memory user(op.user_md, eng, const_cast<float*>(ptr));
  if (!op.needs_reorder) return user;
  dnnl::memory prim(op.prim_md, eng, thread_scratch().get(slot, op.prim_md.get_size()));
  if (op.to_nhwc_bf16) {
    const dnnl::memory::dims dims = op.user_md.dims();
    nchw_to_nhwc_bf16(ptr, static_cast<std::uint16_t*>(prim.get_data_handle()), dims[0], dims[1],
                      dims[2] * dims[3]);
  } else {
    op.reorder.execute(onednn_stream(), user, prim);
  }
  return prim;
}

// Runs chunk c of pass d on the calling thread's stream and scratch. `dy`, when given, is the chunk's dy
// already bound in the plan's layout (both backward passes share it). Backward weights: dw and dbias are
// written to out and bias when `first` (the thread's first chunk) and accumulated after that, the chunk's
// dbias going through bias_chunk.
void run_chunk(const PassData& d, int64_t c, bool first, const dnnl::memory* dy, float* bias_chunk) {
  const Conv2dGeometry& g = d.g;
  auto& eng = onednn_engine();
  auto& strm = onednn_stream();
  ThreadScratch& ts = thread_scratch();
  const int64_t x_img = g.C * g.H * g.W, y_img = g.K * g.P() * g.Q();
  const int64_t a_img = d.pass == Pass::kBackwardData ? y_img : x_img;
  const int64_t out_img = d.pass == Pass::kForward ? y_img : x_img;
  const bool weights_out = d.pass == Pass::kBackwardWeights;
  const int64_t n0 = c * d.nb;
  const bool is_tail = n0 + d.nb > g.N;
  const Plan& plan = is_tail ? *d.tail : d.main;
  std::unordered_map<int, dnnl::memory> args;
  const bool a_is_dy = d.pass == Pass::kBackwardData;
  args.emplace(plan.act_in0.arg,
               dy != nullptr && a_is_dy ? *dy : bind_input(plan.act_in0, d.a + n0 * a_img, kDnnlIn0));
  dnnl::memory out_user, out_prim;
  if (weights_out) {
    args.emplace(plan.act_in1.arg,
                 dy != nullptr ? *dy : bind_input(plan.act_in1, d.b + n0 * y_img, kDnnlIn1));
    out_user = dnnl::memory(plan.wei.user_md, eng, d.out);
    out_prim =
        first && !plan.wei.needs_reorder
            ? out_user
            : dnnl::memory(plan.wei.prim_md, eng, ts.get(kDnnlOutWeights, plan.wei.prim_md.get_size()));
    args.emplace(plan.wei.arg, out_prim);
    if (d.bias != nullptr) {
      args.emplace(plan.bias_arg, dnnl::memory(plan.bias_md, eng, first ? d.bias : bias_chunk));
    }
  } else {
    args.emplace(plan.wei.arg, d.weights[is_tail ? 1 : 0]);
    out_user = dnnl::memory(plan.act_out.user_md, eng, d.out + n0 * out_img);
    out_prim = plan.act_out.needs_reorder ? dnnl::memory(plan.act_out.prim_md, eng,
                                                         ts.get(kDnnlOut, plan.act_out.prim_md.get_size()))
                                          : out_user;
    args.emplace(plan.act_out.arg, out_prim);
    if (d.bias != nullptr) args.emplace(plan.bias_arg, dnnl::memory(plan.bias_md, eng, d.bias));
  }
  if (plan.scratchpad_md.get_size() > 0) {
    args.emplace(DNNL_ARG_SCRATCHPAD,
                 dnnl::memory(plan.scratchpad_md, eng, ts.get(kDnnlPad, plan.scratchpad_md.get_size())));
  }
  plan.prim.execute(strm, args);
  if (!weights_out) {
    if (plan.act_out.needs_reorder) plan.act_out.reorder.execute(strm, out_prim, out_user);
  } else if (!first) {
    plan.wei_accumulate.execute(strm, out_prim, out_user);
  } else if (plan.wei.needs_reorder) {
    plan.wei.reorder.execute(strm, out_prim, out_user);
  }
  if (weights_out && d.bias != nullptr && !first) {
    strm.wait();
    for (int64_t k = 0; k < g.K; ++k) d.bias[k] += bias_chunk[k];
  }
}

// Runs chunks [c0, c1) of pass d on the calling thread. With `weights` (then d is the backward-data pass and
// weights the backward-weights pass of the same geometry and chunks), each chunk's dy is bound once for both.
void run_chunk_range(const PassData& d, int64_t c0, int64_t c1, const PassData* weights = nullptr) {
  const PassData* wpass = d.pass == Pass::kBackwardWeights ? &d : weights;
  float* bias_chunk = wpass != nullptr && wpass->bias != nullptr && c1 - c0 > 1
                          ? static_cast<float*>(thread_scratch().get(kDnnlBias, d.g.K * sizeof(float)))
                          : nullptr;
  for (int64_t c = c0; c < c1; ++c) {
    if (weights == nullptr) {
      run_chunk(d, c, c == c0, nullptr, bias_chunk);
      continue;
    }
    const int64_t n0 = c * d.nb;
    const Plan& plan = n0 + d.nb > d.g.N ? *weights->tail : weights->main;
    const dnnl::memory dy = bind_input(plan.act_in1, weights->b + n0 * d.g.K * d.g.P() * d.g.Q(), kDnnlIn1);
    run_chunk(d, c, c == c0, &dy, nullptr);
    run_chunk(*weights, c, c == c0, &dy, bias_chunk);
  }
  onednn_stream().wait();
}

// Runs the chunks spread over the OpenMP team (with `weights`, both backward passes as run_chunk_range
// does). Backward weights: thread 0 accumulates into the caller's dw and dbias, the others into their
// scratch, summed in thread order at the end (deterministic).
void run_chunks_parallel(const PassData& d, int64_t nchunks, const PassData* weights = nullptr) {
  const PassData* wpass = d.pass == Pass::kBackwardWeights ? &d : weights;
  const int64_t dw_elems = d.g.K * (d.g.C / d.g.groups) * d.g.R * d.g.S;
  const int nthr = omp_get_max_threads();
  std::vector<float*> dw_parts(nthr, nullptr), db_parts(nthr, nullptr);
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel num_threads(nthr)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t c0 = nchunks * t / nt, c1 = nchunks * (t + 1) / nt;
    try {
      if (c0 < c1) {
        PassData mine = d;
        PassData mine_weights = weights != nullptr ? *weights : d;
        PassData& w_mine = wpass == &d ? mine : mine_weights;
        if (wpass != nullptr && t != 0) {
          w_mine.out = static_cast<float*>(thread_scratch().get(kAcc, dw_elems * sizeof(float)));
          if (wpass->bias != nullptr) {
            w_mine.bias = static_cast<float*>(thread_scratch().get(kAccBias, d.g.K * sizeof(float)));
          }
        }
        run_chunk_range(mine, c0, c1, weights != nullptr ? &mine_weights : nullptr);
        dw_parts[t] = w_mine.out;
        db_parts[t] = w_mine.bias;
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  if (wpass == nullptr) return;
  // With more threads than chunks thread 0 may have none (the chunk count is not always a multiple of the
  // thread count): then the sum starts from zero, not from the caller's buffer.
  const bool first_ran = dw_parts[0] != nullptr;
#pragma omp parallel for schedule(static) if (dw_elems > 16384)
  for (int64_t e = 0; e < dw_elems; ++e) {
    float s = first_ran ? wpass->out[e] : 0.0f;
    for (int t = 1; t < nthr; ++t) {
      if (dw_parts[t] != nullptr) s += dw_parts[t][e];
    }
    wpass->out[e] = s;
  }
  if (wpass->bias != nullptr) {
    if (!first_ran) std::fill_n(wpass->bias, d.g.K, 0.0f);
    for (int t = 1; t < nthr; ++t) {
      if (db_parts[t] == nullptr) continue;
      for (int64_t k = 0; k < d.g.K; ++k) wpass->bias[k] += db_parts[t][k];
    }
  }
}

// The plans of one pass over g's chunks (the tail's when the last chunk is shorter); main null when oneDNN
// has no implementation.
struct PassPlans {
  std::shared_ptr<Plan> main, tail;
  bool available() const { return main != nullptr; }
};

PassPlans plans_for(Pass pass, const Conv2dGeometry& g, const ChunkLayout& layout, bool with_bias,
                    bool bf16) {
  Conv2dGeometry chunk = g;
  chunk.N = layout.nb;
  PassPlans plans;
  plans.main = plan_cache().get(pass, chunk, with_bias, layout.plan_threads, bf16);
  const int64_t rest = g.N % layout.nb;
  if (plans.main && rest != 0) {
    chunk.N = rest;
    plans.tail = plan_cache().get(pass, chunk, with_bias, layout.plan_threads, bf16);
    if (!plans.tail) plans.main = nullptr;
  }
  return plans;
}

}  // namespace

bool onednn_conv2d(Pass pass, const Conv2dGeometry& g, const float* a, const float* b, float* out,
                   float* bias, bool required, bool bf16) {
  const ChunkLayout layout = chunk_layout(g);
  const PassPlans plans = plans_for(pass, g, layout, bias != nullptr, bf16);
  if (!plans.available()) {
    LOCKSTEP_CHECK(!required, NotImplementedError, "conv2d: expected a geometry oneDNN implements in ",
                   bf16 ? "bf16" : "f32", " (the path is forced to oneDNN), but got N=", g.N, " C=", g.C,
                   " H=", g.H, " W=", g.W, " K=", g.K, " R=", g.R, " S=", g.S, " groups=", g.groups,
                   ". Use Conv2dPath::kAuto.");
    return false;
  }
  try {
    dnnl::memory weights[2];
    if (pass != Pass::kBackwardWeights) {
      weights[0] = prepare_weights(*plans.main, b, kDnnlWei);
      if (plans.tail) weights[1] = prepare_weights(*plans.tail, b, kDnnlWeiTail);
    }
    const PassData data{pass, g, *plans.main, plans.tail.get(), weights, layout.nb, a, b, out, bias};
    if (layout.parallel) {
      run_chunks_parallel(data, layout.nchunks);
    } else {
      run_chunk_range(data, 0, layout.nchunks);
    }
  } catch (const dnnl::error& e) {
    check_onednn_failure("execution", e, false);
  }
  return true;
}

bool onednn_conv2d_backward(const Conv2dGeometry& g, const float* dy, const float* x, const float* w,
                            float* dx, float* dw, float* dbias) {
  const ChunkLayout layout = chunk_layout(g);
  const PassPlans dp = plans_for(Pass::kBackwardData, g, layout, false, false);
  const PassPlans wp = plans_for(Pass::kBackwardWeights, g, layout, dbias != nullptr, false);
  if (!dp.available() || !wp.available()) return false;
  // Both primitives must read dy in one layout (the tails too, when the last chunk is shorter).
  const auto same_dy = [](const Plan* data, const Plan* weights) {
    return data == nullptr || data->act_in0.prim_md == weights->act_in1.prim_md;
  };
  if (!same_dy(dp.main.get(), wp.main.get()) || !same_dy(dp.tail.get(), wp.tail.get())) return false;
  try {
    dnnl::memory weights[2];
    weights[0] = prepare_weights(*dp.main, w, kDnnlWei);
    if (dp.tail) weights[1] = prepare_weights(*dp.tail, w, kDnnlWeiTail);
    const int64_t nb = layout.nb;
    const PassData data{Pass::kBackwardData, g, *dp.main, dp.tail.get(), weights, nb, dy, w, dx, nullptr};
    const PassData weight{Pass::kBackwardWeights, g, *wp.main, wp.tail.get(), nullptr, nb, x, dy, dw, dbias};
    if (layout.parallel) {
      run_chunks_parallel(data, layout.nchunks, &weight);
    } else {
      run_chunk_range(data, 0, layout.nchunks, &weight);
    }
  } catch (const dnnl::error& e) {
    check_onednn_failure("execution", e, false);
  }
  return true;
}

}  // namespace lockstep::cpu::conv_internal
