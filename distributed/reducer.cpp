// The gradient reducer: bucket layout, the leaf hooks that fill and launch buckets during backward, and the
// finaliser that the engine runs when backward ends.
#include "distributed/reducer.h"

#include <atomic>
#include <cstring>
#include <map>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::distributed {

// No bucket cap below this: smaller all-reduces cost more in per-call overhead than they hide.
constexpr std::int64_t kSmallestBucketCap = 64 << 10;

std::uint64_t next_event_order() {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

struct Reducer::State {
  // Where one parameter's gradient lives in its bucket (`view`, made once the buckets exist), and whether it
  // arrived in this backward.
  struct Slot {
    std::size_t bucket = 0;
    std::int64_t offset = 0;
    bool ready = false;
    Tensor view;
    // The slot offered to the kernel that computes the gradient (src/autograd/node.h), open while armed.
    std::shared_ptr<GradientHome> home;
  };
  struct Bucket {
    DType dtype = DType::f32;
    std::int64_t numel = 0;
    std::vector<std::size_t> params;  // indices into parameters, in the order they were packed
    Tensor flat;                      // allocated for groups of more than one rank
    Tensor gathered;                  // deterministic mode: every rank's flat, in rank order
    std::size_t pending = 0;          // parameters not yet ready in this backward
    WorkPtr work;
  };

  std::vector<nn::NamedTensor> parameters;
  std::shared_ptr<ProcessGroup> group;
  bool deterministic = false;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::size_t next_launch = 0;
  bool armed = false;
  bool finalize_queued = false;
  bool defer_wait = false;  // the next finaliser launches the buckets and returns (Reducer::defer_next_wait)
  bool in_flight = false;   // buckets launched by a deferred finaliser and not yet waited for
  bool yielding = false;  // asked the engine to yield between nodes (collectives in flight during backward)
  std::vector<ReducerEvent> events;

  void record(ReducerEvent::Kind kind, int bucket, std::uint64_t sequence = 0) {
    events.push_back({kind, bucket, sequence, next_event_order()});
  }

  void stop_yielding() {
    if (yielding) yield_between_nodes(false);
    yielding = false;
  }

  void reset() {
    wait_for_buckets();
    stop_yielding();
    for (auto& s : slots) {
      s.ready = false;
      if (s.home) s.home->filled = false;
    }
    for (auto& b : buckets) {
      b.pending = b.params.size();
      b.work.reset();
    }
    next_launch = 0;
    finalize_queued = false;
    events.clear();
  }

  void set_homes_open(bool open) {
    for (auto& s : slots)
      if (s.home) s.home->open = open;
  }

  // Counts the parameter's gradient ready, in its bucket slot times 1 / world, the slot being the parameter's
  // .grad. The bucket's all-reduce then leaves the average in .grad itself. The kernel that computed the
  // gradient has usually written it there already (its home); otherwise it (or zeros) is moved there in one
  // multiply pass. A contiguous f32/f64 gradient is one loop: per-parameter overhead matters for models of
  // many small tensors.
  void fill(std::size_t index) {
    Slot& s = slots[index];
    if (s.ready) return;
    const Tensor& p = parameters[index].second;
    const Tensor g = p.grad();
    const std::int64_t n = s.view.numel();
    const double scale = 1.0 / group->size();
    if (s.home && s.home->filled) {
      // Written in place by its kernel, scaled.
    } else if (!g.defined()) {
      NoGradGuard no_grad;
      s.view.fill_(0.0);
    } else if (g.is_contiguous() && g.dtype() == s.view.dtype() && g.device().is_cpu()) {
      // In place when .grad already is the slot (a backward accumulated into it without zero_grad).
      if (s.view.dtype() == DType::f32) {
        scale_into(g.data<float>(), s.view.data<float>(), n, static_cast<float>(scale));
      } else {
        scale_into(g.data<double>(), s.view.data<double>(), n, scale);
      }
    } else {
      NoGradGuard no_grad;
      s.view.copy_(g);
      s.view.mul_(scale);
    }
    if (!g.defined() || !g.same(s.view)) p.set_grad(s.view);
    s.view.bump_version();
    s.ready = true;
    --buckets[s.bucket].pending;
  }
  template <class T>
  static void scale_into(const T* src, T* dst, std::int64_t n, T scale) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i] * scale;
  }

  // Deterministic mode: the ranks' gradients in `gathered` summed in the fixed tree over rank index, in
  // place (rank r's block += rank r + stride's, stride 1, 2, 4, ...), the result copied into `flat`.
  void tree_sum_ranks(Bucket& b) const {
    const int world = group->size();
    const std::int64_t n = b.numel;
    for (int stride = 1; stride < world; stride *= 2) {
      for (int r = 0; r + stride < world; r += 2 * stride) {
        if (b.dtype == DType::f32) {
          add_into(b.gathered.data<float>() + r * n, b.gathered.data<float>() + (r + stride) * n, n);
        } else {
          add_into(b.gathered.data<double>() + r * n, b.gathered.data<double>() + (r + stride) * n, n);
        }
      }
    }
    std::memcpy(b.flat.data(), b.gathered.data(), static_cast<std::size_t>(n) * element_size(b.dtype));
  }
  template <class T>
  static void add_into(T* dst, const T* src, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] += src[i];
  }

  // Launches buckets in index order while the next one is complete.
  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      Bucket& b = buckets[next_launch];
      b.work =
          deterministic ? group->all_gather(b.flat, b.gathered) : group->all_reduce(b.flat, ReduceOp::kSum);
      record(ReducerEvent::Kind::kBucketLaunched, static_cast<int>(next_launch), b.work->call().sequence);
      ++next_launch;
      if (armed && !yielding && group->progresses_while_computing()) {
        yield_between_nodes(true);
        yielding = true;
      }
    }
  }

  void on_gradient_ready(std::size_t index, const std::weak_ptr<State>& self) {
    if (!armed) return;
    if (!finalize_queued) {
      finalize_queued = true;
      queue_backward_callback([self] {
        if (auto state = self.lock()) state->finalize();
      });
    }
    fill(index);
    if (buckets[slots[index].bucket].pending == 0) launch_ready();
  }

  void finalize() {
    armed = false;
    set_homes_open(false);
    record(ReducerEvent::Kind::kBackwardEnded, -1);
    for (std::size_t i = 0; i < parameters.size(); ++i) fill(i);
    launch_ready();
    LOCKSTEP_INTERNAL_ASSERT(next_launch == buckets.size(), "Reducer: every gradient is filled, yet only ",
                             next_launch, " of ", buckets.size(), " buckets were launched");
    in_flight = true;
    if (defer_wait) {
      defer_wait = false;
      return;  // still yielding between nodes: the next computation lets the buckets progress
    }
    wait_for_buckets();
  }

  // Waits for the buckets of the last synchronised backward, if not yet waited for.
  void wait_for_buckets() {
    if (!in_flight) return;
    in_flight = false;  // a failed wait leaves the buckets to the group's error
    stop_yielding();
    for (std::size_t b = 0; b < buckets.size(); ++b) {
      buckets[b].work->wait();
      record(ReducerEvent::Kind::kBucketWaited, static_cast<int>(b), buckets[b].work->call().sequence);
      if (deterministic) tree_sum_ranks(buckets[b]);
    }
  }
};

Reducer::Reducer(std::vector<nn::NamedTensor> parameters, std::shared_ptr<ProcessGroup> group,
                 ReducerOptions options)
    : state_(std::make_shared<State>()) {
  LOCKSTEP_CHECK(group != nullptr, ValueError, "Reducer: expected a process group, but got null");
  LOCKSTEP_CHECK(options.bucket_bytes > 0 && options.first_bucket_bytes > 0, ValueError,
                 "Reducer: expected positive bucket sizes, but got bucket_bytes ", options.bucket_bytes,
                 " and first_bucket_bytes ", options.first_bucket_bytes);
  State& st = *state_;
  st.group = std::move(group);
  st.deterministic = options.deterministic;
  LOCKSTEP_CHECK(
      !st.deterministic || st.group->tensor_device().is_cpu(), NotImplementedError,
      "Reducer: the deterministic mode sums the ranks' gradients on the CPU, but the group's tensors are on ",
      st.group->tensor_device().str());
  for (auto& [name, p] : parameters) {
    if (!p.requires_grad()) continue;
    // A group of one only hands the gradients back: any device will do.
    const Device device = st.group->tensor_device();
    LOCKSTEP_CHECK((p.device() == device || st.group->size() == 1) &&
                       (p.dtype() == DType::f32 || p.dtype() == DType::f64),
                   TypeError, "Reducer: expected parameters of dtype f32 or f64 on ", device.str(),
                   " (the process group's device), but ", name, " is ", dtype_name(p.dtype()), " on ",
                   p.device().str());
    st.parameters.emplace_back(name, p);
  }

  // Buckets in reverse registration order (the order gradients become ready in backward), one open bucket
  // per dtype; the first bucket made is capped at first_bucket_bytes, later ones at bucket_bytes, and none
  // holds more than a quarter of the model (a 1 MiB model in one 1 MiB bucket would all be sent when
  // backward ends). The first parameters (of one dtype, up to kSmallestBucketCap or a smaller cap, at least
  // one) get the last bucket of their own: their gradients come last, and what is launched when backward ends
  // is what backward cannot hide. (ResNet-20: its stem and first stage, 57 KiB, where a tail of a quarter of
  // the model held the second stage too, 264 KiB, whose gradients are ready while the first stage's backward
  // runs.)
  std::int64_t total = 0;
  for (const auto& [name, p] : st.parameters)
    total += p.numel() * static_cast<std::int64_t>(element_size(p.dtype()));
  const std::int64_t quarter = std::max<std::int64_t>(kSmallestBucketCap, (total + 3) / 4);
  const std::int64_t first_cap = std::min(options.first_bucket_bytes, quarter);
  const std::int64_t later_cap = std::min(options.bucket_bytes, quarter);
  const std::int64_t tail_cap = std::min({first_cap, later_cap, kSmallestBucketCap});
  st.slots.resize(st.parameters.size());
  std::size_t tail = 0;
  for (std::int64_t bytes = 0; tail < st.parameters.size(); ++tail) {
    const Tensor& p = st.parameters[tail].second;
    bytes += p.numel() * static_cast<std::int64_t>(element_size(p.dtype()));
    if (p.dtype() != st.parameters[0].second.dtype() || (tail > 0 && bytes > tail_cap)) break;
  }
  if (tail == st.parameters.size()) tail = 0;  // one small model: the usual packing
  std::map<DType, std::size_t> open;
  for (std::size_t k = st.parameters.size(); k-- > 0;) {
    if (k + 1 == tail) open.clear();  // the tail's own bucket
    const Tensor& p = st.parameters[k].second;
    const auto bytes = static_cast<std::int64_t>(element_size(p.dtype()));
    auto it = open.find(p.dtype());
    if (it != open.end()) {
      const State::Bucket& b = st.buckets[it->second];
      const std::int64_t cap = it->second == 0 ? first_cap : later_cap;
      if (!b.params.empty() && (b.numel + p.numel()) * bytes > cap) open.erase(it);
    }
    it = open.find(p.dtype());
    if (it == open.end()) {
      st.buckets.push_back({});
      st.buckets.back().dtype = p.dtype();
      it = open.emplace(p.dtype(), st.buckets.size() - 1).first;
    }
    State::Bucket& b = st.buckets[it->second];
    st.slots[k] = {it->second, b.numel, false, Tensor(), nullptr};
    b.params.push_back(k);
    b.numel += p.numel();
  }
  if (st.group->size() > 1) {
    for (auto& b : st.buckets) {
      // Deterministic mode all-gathers its buckets: only all-reduces take the group's faster memory.
      b.flat = st.deterministic ? empty({b.numel}, b.dtype, st.group->tensor_device())
                                : st.group->empty_for_collectives(b.numel, b.dtype);
      if (st.deterministic) b.gathered = empty({st.group->size() * b.numel}, b.dtype);
    }
    for (std::size_t k = 0; k < st.parameters.size(); ++k) {
      State::Slot& slot = st.slots[k];
      const Tensor& p = st.parameters[k].second;
      slot.view = st.buckets[slot.bucket].flat.slice(0, slot.offset, slot.offset + p.numel()).view(p.shape());
      slot.home = std::make_shared<GradientHome>(GradientHome{slot.view, 1.0 / st.group->size()});
      set_gradient_home(p, slot.home);
    }
  }
  st.reset();

  std::weak_ptr<State> weak = state_;
  for (std::size_t k = 0; k < st.parameters.size(); ++k) {
    st.parameters[k].second.register_post_accumulate_hook([weak, k](Tensor&) {
      if (auto state = weak.lock()) state->on_gradient_ready(k, weak);
    });
  }
}

Reducer::~Reducer() {
  // Collectives write into the buckets until they end: a deferred backward's are waited for (their errors
  // are the group's to report).
  try {
    state_->wait_for_buckets();
  } catch (const std::exception&) {
  }
  state_->stop_yielding();
  for (std::size_t k = 0; k < state_->slots.size(); ++k)
    if (state_->slots[k].home) set_gradient_home(state_->parameters[k].second, nullptr);
}

void Reducer::prepare_for_backward() {
  State& st = *state_;
  if (st.group->size() == 1 || st.buckets.empty()) return;
  if (st.armed && st.finalize_queued) return;  // a forward inside a backward hook: keep this step's buckets
  st.reset();
  st.armed = true;
  st.set_homes_open(true);
}

bool Reducer::armed() const { return state_->armed; }

void Reducer::defer_next_wait() {
  if (state_->group->size() > 1) state_->defer_wait = true;
}

void Reducer::wait() { state_->wait_for_buckets(); }

bool Reducer::in_flight() const { return state_->in_flight; }

std::vector<std::vector<std::string>> Reducer::bucket_names() const {
  std::vector<std::vector<std::string>> names;
  for (const auto& b : state_->buckets) {
    auto& list = names.emplace_back();
    for (std::size_t k : b.params) list.push_back(state_->parameters[k].first);
  }
  return names;
}

std::int64_t Reducer::num_buckets() const { return static_cast<std::int64_t>(state_->buckets.size()); }

std::vector<ReducerEvent> Reducer::events() const { return state_->events; }

}  // namespace lockstep::distributed
