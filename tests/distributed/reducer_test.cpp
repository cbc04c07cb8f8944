// The reducer and DataParallel on threaded worlds: bucket layout, launch order, unused parameters, gradient
// accumulation without communication, and equivalence with one process on the union batch.
#include <gtest/gtest.h>

#include <vector>

#include "distributed/data_parallel.h"
#include "distributed/single.h"
#include "distributed/threaded.h"
#include "src/autograd/engine.h"
#include "src/autograd/node.h"
#include "src/models/mlp.h"
#include "src/nn/linear.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/parallel_training.h"

namespace lockstep::distributed {
namespace {

using test::make_seeded;

// Two linear layers whose forward can skip the second one (a parameter that gets no gradient).
class Branchy : public nn::Module {
 public:
  Branchy() : nn::Module("Branchy") {
    a_ = register_module("a", std::make_shared<nn::Linear>(4, 3));
    b_ = register_module("b", std::make_shared<nn::Linear>(3, 3));
  }
  bool use_b = true;
  Tensor forward(const Tensor& x) override {
    Tensor h = a_->forward(x);
    return use_b ? b_->forward(h) : h;
  }

 private:
  std::shared_ptr<nn::Linear> a_, b_;
};

std::vector<float> grad_of(const nn::Module& m, const std::string& name) {
  for (const auto& [n, p] : m.named_parameters()) {
    if (n == name) return p.grad().to_vector<float>();
  }
  throw ValueError("no parameter " + name);
}

TEST(Reducer, BucketsFollowReverseRegistrationOrderUnderTheCaps) {
  auto model =
      make_seeded([] { return std::make_shared<models::MLP>(100, std::vector<std::int64_t>{50}, 10); }, 1);
  // fc2: weight 500 + bias 10 floats; fc1: weight 5000 + bias 50 floats.
  Reducer r(model->named_parameters(), std::make_shared<SingleProcessGroup>(),
            {.bucket_bytes = 4 * 5000, .first_bucket_bytes = 4 * 510});
  const auto names = r.bucket_names();
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[0], (std::vector<std::string>{"fc2.bias", "fc2.weight"}));
  EXPECT_EQ(names[1], (std::vector<std::string>{"fc1.bias"}));
  EXPECT_EQ(names[2], (std::vector<std::string>{"fc1.weight"}));
}

TEST(Reducer, TheLastBucketHoldsOnlyTheFirstParametersUpToTheSmallestCap) {
  // fc1 and fc2: 100x100 weights (40 KB each), fc3: 100x1000 (400 KB). The default caps (4 MiB, first
  // 1 MiB) and a quarter of the model (121 KB) would let fc1 and fc2 share the last bucket; what is launched
  // when backward ends is capped at 64 KiB: fc1 alone, while fc2's gradients are sent during fc1's backward.
  auto model = make_seeded(
      [] {
        return std::make_shared<models::MLP>(100, std::vector<std::int64_t>{100, 100}, 1000);
      },
      1);
  Reducer r(model->named_parameters(), std::make_shared<SingleProcessGroup>());
  const auto names = r.bucket_names();
  ASSERT_EQ(names.size(), 4u);
  // fc3.weight is larger than the first bucket's cap (the quarter): a bucket of its own.
  EXPECT_EQ(names[0], (std::vector<std::string>{"fc3.bias"}));
  EXPECT_EQ(names[1], (std::vector<std::string>{"fc3.weight"}));
  EXPECT_EQ(names[2], (std::vector<std::string>{"fc2.bias", "fc2.weight"}));
  EXPECT_EQ(names[3], (std::vector<std::string>{"fc1.bias", "fc1.weight"}));
}

TEST(Reducer, SingleProcessGroupNeverArmsAndLeavesGradientsAlone) {
  auto model = make_seeded([] { return std::make_shared<Branchy>(); }, 2);
  DataParallel dp(model, std::make_shared<SingleProcessGroup>());
  const Tensor x = randn({5, 4});
  sum(dp(x)).backward();
  EXPECT_FALSE(dp.reducer().armed());
  EXPECT_TRUE(dp.reducer().events().empty());
  auto reference = make_seeded([] { return std::make_shared<Branchy>(); }, 2);
  sum(reference->forward(x)).backward();
  EXPECT_EQ(grad_of(*model, "a.weight"), grad_of(*reference, "a.weight"));
}

TEST(Reducer, AveragesGradientsAndLaunchesBucketsInOrderOnEveryRank) {
  for (int world : {2, 3, 4}) {
    std::vector<std::vector<ReducerEvent>> events(world);
    std::vector<std::vector<float>> grads(world);
    run_threaded(world, [&](const std::shared_ptr<ProcessGroup>& group) {
      auto model = make_seeded(
          [] {
            return std::make_shared<models::MLP>(16, std::vector<std::int64_t>{12, 8}, 4);
          },
          3);
      DataParallel dp(model, group, {.bucket_bytes = 4 * 100, .first_bucket_bytes = 4 * 40});
      // Rank r's input is r + 1 times a common one: the average gradient of fc1 is checked below.
      Generator gen(5);
      const Tensor x =
          mul(randn({3, 16}, 0.0, 1.0, DType::f32, kCPU, &gen), wrapped_scalar(group->rank() + 1.0));
      sum(dp(x)).backward();
      events[group->rank()] = dp.reducer().events();
      grads[group->rank()] = grad_of(*model, "fc3.bias");
    });
    for (int r = 0; r < world; ++r) {
      std::vector<int> launched;
      bool ended = false;
      for (const auto& e : events[r]) {
        if (e.kind == ReducerEvent::Kind::kBackwardEnded) ended = true;
        if (e.kind == ReducerEvent::Kind::kBucketLaunched) {
          launched.push_back(e.bucket);
          // Every bucket fills during backward here, so each is launched before it ends.
          EXPECT_FALSE(ended) << "bucket " << e.bucket << " launched after backward ended on rank " << r;
        }
      }
      EXPECT_TRUE(ended);
      ASSERT_GE(launched.size(), 3u);
      for (std::size_t i = 0; i < launched.size(); ++i) EXPECT_EQ(launched[i], static_cast<int>(i));
      EXPECT_EQ(grads[r], grads[0]) << "rank " << r << " ended with a different averaged gradient";
    }
    // sum(logits) w.r.t. the last bias is the batch size on every rank: the average is 3 too.
    for (float g : grads[0]) EXPECT_FLOAT_EQ(g, 3.0f);
  }
}

TEST(Reducer, WeightGradientsAreComputedInTheirBucketSlotsAndOthersMovedThere) {
  for (int world : {2, 3}) {
    run_threaded(world, [&](const std::shared_ptr<ProcessGroup>& group) {
      auto model =
          make_seeded([] { return std::make_shared<models::MLP>(16, std::vector<std::int64_t>{12}, 4); }, 3);
      auto reference =
          make_seeded([] { return std::make_shared<models::MLP>(16, std::vector<std::int64_t>{12}, 4); }, 3);
      DataParallel dp(model, group, {.bucket_bytes = 4 * 100, .first_bucket_bytes = 4 * 40});
      Generator gen(7 + static_cast<std::uint64_t>(group->rank()));
      const Tensor x = randn({3, 16}, 0.0, 1.0, DType::f32, kCPU, &gen);
      // Every rank's own gradient, all-gathered: the average is what each slot must end with.
      sum(reference->forward(x)).backward();
      for (const auto& [name, p] : model->named_parameters()) {
        SCOPED_TRACE(name + " at world " + std::to_string(world));
        const auto home = gradient_home(p);
        ASSERT_NE(home, nullptr);
        EXPECT_FALSE(home->open);  // opened only by a synchronised forward, until its backward ends
      }
      {
        DataParallel::NoSync no_sync(dp);
        sum(dp(x)).backward();
        for (const auto& [name, p] : model->named_parameters())
          EXPECT_FALSE(gradient_home(p)->filled) << name;
      }
      model->zero_grad();
      sum(dp(x)).backward();
      for (const auto& [name, p] : model->named_parameters()) {
        SCOPED_TRACE(name + " at world " + std::to_string(world));
        const auto home = gradient_home(p);
        EXPECT_FALSE(home->open);
        EXPECT_EQ(home->filled, name.ends_with(".weight"));  // the linear layers' GEMMs wrote them there
        EXPECT_TRUE(p.grad().same(home->view));
        Tensor own;
        for (const auto& [ref_name, ref] : reference->named_parameters())
          if (ref_name == name) own = ref.grad();
        const Tensor all = empty({world * own.numel()});
        group->all_gather(own.contiguous().view({own.numel()}), all)->wait();
        const std::vector<float> got = p.grad().contiguous().to_vector<float>();
        const std::vector<float> expected =
            (sum(all.view({world, own.numel()}), {0}) / world).to_vector<float>();
        for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-5) << i;
      }
    });
  }
}

TEST(Reducer, ParameterWithoutGradientOnOneRankDoesNotDeadlock) {
  std::vector<std::vector<float>> b_grads(3);
  std::vector<std::vector<ReducerEvent>> events(3);
  run_threaded(3, [&](const std::shared_ptr<ProcessGroup>& group) {
    auto model =
        std::static_pointer_cast<Branchy>(make_seeded([] { return std::make_shared<Branchy>(); }, 4));
    // One bucket per parameter, so the unused ones are launched only at the end of backward on rank 1.
    DataParallel dp(model, group, {.bucket_bytes = 4, .first_bucket_bytes = 4});
    model->use_b = group->rank() != 1;
    Generator gen(6);
    const Tensor x = randn({2, 4}, 0.0, 1.0, DType::f32, kCPU, &gen);
    sum(dp(x)).backward();
    b_grads[group->rank()] = grad_of(*model, "b.bias");
    events[group->rank()] = dp.reducer().events();
  });
  // b.bias's gradient is the batch size (2) on ranks 0 and 2 and nothing on rank 1: the average is 4/3.
  for (int r = 0; r < 3; ++r) {
    for (float g : b_grads[r]) EXPECT_FLOAT_EQ(g, 4.0f / 3.0f) << "rank " << r;
  }
  // On rank 1, b's buckets (the first two) were forced at the end, and so were all that follow them.
  bool ended = false;
  for (const auto& e : events[1]) {
    if (e.kind == ReducerEvent::Kind::kBackwardEnded) ended = true;
    if (e.kind == ReducerEvent::Kind::kBucketLaunched) {
      EXPECT_TRUE(ended) << "bucket " << e.bucket;
    }
  }
}

TEST(Reducer, NoSyncAccumulatesLocallyThenReducesTheSum) {
  std::vector<std::vector<float>> grads(2);
  std::vector<std::uint64_t> collectives(2);
  run_threaded(2, [&](const std::shared_ptr<ProcessGroup>& group) {
    auto model = make_seeded([] { return std::make_shared<Branchy>(); }, 7);
    DataParallel dp(model, group);
    const std::uint64_t before = group->sequence();
    Generator gen(8 + group->rank());
    const Tensor x1 = randn({2, 4}, 0.0, 1.0, DType::f32, kCPU, &gen);
    const Tensor x2 = randn({2, 4}, 0.0, 1.0, DType::f32, kCPU, &gen);
    {
      DataParallel::NoSync no_sync(dp);
      sum(dp(x1)).backward();
    }
    collectives[group->rank()] = group->sequence() - before;
    sum(dp(x2)).backward();
    grads[group->rank()] = grad_of(*model, "a.weight");
  });
  EXPECT_EQ(collectives[0], 0u) << "a backward under NoSync communicated";
  // Reference: the average over ranks of (grad x1 + grad x2), computed in one process.
  auto model = make_seeded([] { return std::make_shared<Branchy>(); }, 7);
  for (int r = 0; r < 2; ++r) {
    Generator gen(8 + r);
    const Tensor x1 = randn({2, 4}, 0.0, 1.0, DType::f32, kCPU, &gen);
    const Tensor x2 = randn({2, 4}, 0.0, 1.0, DType::f32, kCPU, &gen);
    sum(model->forward(x1)).backward();
    sum(model->forward(x2)).backward();
  }
  const auto total = grad_of(*model, "a.weight");
  ASSERT_EQ(total.size(), grads[0].size());
  for (std::size_t i = 0; i < total.size(); ++i) {
    EXPECT_NEAR(grads[0][i], total[i] / 2.0f, 1e-5f);
    EXPECT_EQ(grads[1][i], grads[0][i]);
  }
}

// A group whose collectives need the CPU while the caller computes (as MPI's over a network), all-reducing
// through a threaded group; only all_reduce and broadcast, run inline.
class NetworkLike : public ProcessGroup {
 public:
  explicit NetworkLike(std::shared_ptr<ProcessGroup> inner)
      : ProcessGroup(inner->rank(), inner->size(), {}, Execution::kInline), inner_(std::move(inner)) {}
  const char* backend() const override { return "network-like"; }
  bool progresses_while_computing() const override { return true; }

 protected:
  void run(const CollectiveCall& call, const void* /*input*/, void* output) override {
    const Tensor t = borrow_memory(output, {call.count}, call.dtype, kCPU, std::make_shared<int>(0));
    if (call.kind == Collective::kBroadcast) {
      inner_->broadcast(t, call.root)->wait();
    } else {
      ASSERT_EQ(call.kind, Collective::kAllReduce);
      inner_->all_reduce(t, call.op)->wait();
    }
  }

 private:
  std::shared_ptr<ProcessGroup> inner_;
};

// Over a group whose collectives need the CPU, backward yields between nodes from the first bucket launched
// until the reducer's finaliser (the last gradients arrive while it yields), and never after, nor under
// NoSync, nor on a group that does not need it; the averages are unchanged.
TEST(Reducer, BackwardYieldsBetweenNodesOnlyWhileBucketsAreInFlightOverANetwork) {
  for (const bool network : {true, false}) {
    std::vector<std::vector<float>> grads(2);
    run_threaded(2, [&](const std::shared_ptr<ProcessGroup>& threaded) {
      const std::shared_ptr<ProcessGroup> group =
          network ? std::make_shared<NetworkLike>(threaded) : threaded;
      auto model = make_seeded(
          [] {
            return std::make_shared<models::MLP>(16, std::vector<std::int64_t>{12, 8}, 4);
          },
          3);
      DataParallel dp(model, group, {.bucket_bytes = 4 * 100, .first_bucket_bytes = 4 * 40});
      // Seen by a hook that runs after the reducer's on every gradient (registered later).
      std::vector<bool> seen;
      for (const auto& [name, p] : model->named_parameters())
        p.register_post_accumulate_hook([&seen](Tensor&) { seen.push_back(yielding_between_nodes()); });
      Generator gen(5);
      const Tensor x = randn({3, 16}, 0.0, 1.0, DType::f32, kCPU, &gen) * (group->rank() + 1.0);
      sum(dp(x)).backward();
      EXPECT_FALSE(yielding_between_nodes()) << "still yielding after backward";
      ASSERT_FALSE(seen.empty());
      EXPECT_FALSE(seen.front()) << "yielding before any bucket was launched";
      EXPECT_EQ(seen.back(), network) << "while the last gradients arrived";
      seen.clear();
      {
        DataParallel::NoSync no_sync(dp);
        sum(dp(x)).backward();
      }
      for (const bool s : seen) EXPECT_FALSE(s) << "yielding under NoSync";
      model->zero_grad();
      sum(dp(x)).backward();
      grads[group->rank()] = grad_of(*model, "fc1.weight");
    });
    EXPECT_EQ(grads[0], grads[1]);
    ASSERT_FALSE(grads[0].empty());
  }
}

// A deferred backward returns with every bucket launched and none waited for (over a network still yielding
// between nodes, so that the next computation lets them move); wait() waits for each once and leaves the
// same averages as an ordinary backward; a backward that follows waits first; a reducer destroyed with
// buckets in flight waits for them.
TEST(Reducer, ADeferredBackwardLeavesItsBucketsInFlightUntilWaitAndAveragesAsUsual) {
  std::vector<std::vector<float>> deferred(3), usual(3);
  run_threaded(3, [&](const std::shared_ptr<ProcessGroup>& threaded) {
    const auto group = std::make_shared<NetworkLike>(threaded);
    const auto make = [] {
      return make_seeded(
          [] {
            return std::make_shared<models::MLP>(16, std::vector<std::int64_t>{12, 8}, 4);
          },
          3);
    };
    auto model = make();
    DataParallel dp(model, group, {.bucket_bytes = 4 * 100, .first_bucket_bytes = 4 * 40});
    const auto buckets = static_cast<std::size_t>(dp.reducer().num_buckets());
    ASSERT_GT(buckets, 2u);
    const auto count = [&dp](ReducerEvent::Kind kind) {
      std::size_t n = 0;
      for (const ReducerEvent& e : dp.reducer().events()) n += e.kind == kind ? 1 : 0;
      return n;
    };
    Generator gen(5);
    const Tensor x = randn({3, 16}, 0.0, 1.0, DType::f32, kCPU, &gen) * (group->rank() + 1.0);

    dp.reducer().defer_next_wait();
    sum(dp(x)).backward();
    EXPECT_TRUE(dp.reducer().in_flight());
    EXPECT_EQ(count(ReducerEvent::Kind::kBucketLaunched), buckets);
    EXPECT_EQ(count(ReducerEvent::Kind::kBucketWaited), 0u);
    EXPECT_TRUE(yielding_between_nodes()) << "not yielding while the buckets are in flight";
    // The work that overlaps them yields at each op it records for backward (here 3 linear layers, 2
    // activations and the sum), and not once they are waited for.
    const std::uint64_t before = yields_made();
    const Tensor overlapping = sum(model->forward(x));
    EXPECT_GE(yields_made() - before, 6u);
    dp.reducer().wait();  // once only
    EXPECT_FALSE(dp.reducer().in_flight());
    EXPECT_FALSE(yielding_between_nodes());
    const std::uint64_t after = yields_made();
    const Tensor later = sum(model->forward(x));
    EXPECT_EQ(yields_made(), after);
    EXPECT_EQ(count(ReducerEvent::Kind::kBucketWaited), buckets);
    deferred[group->rank()] = grad_of(*model, "fc1.weight");

    // Only the next backward is deferred; one that follows a deferred one waits for it first.
    model->zero_grad();
    sum(dp(x)).backward();
    EXPECT_FALSE(dp.reducer().in_flight());
    usual[group->rank()] = grad_of(*model, "fc1.weight");
    dp.reducer().defer_next_wait();
    model->zero_grad();
    sum(dp(x)).backward();
    EXPECT_TRUE(dp.reducer().in_flight());
    model->zero_grad();
    sum(dp(x)).backward();
    EXPECT_FALSE(dp.reducer().in_flight());
    EXPECT_EQ(grad_of(*model, "fc1.weight"), usual[group->rank()]);
    {
      auto other = make();
      DataParallel dp_other(other, group);
      dp_other.reducer().defer_next_wait();
      sum(dp_other(x)).backward();
      EXPECT_TRUE(dp_other.reducer().in_flight());
    }  // destroyed in flight: waits
    EXPECT_FALSE(yielding_between_nodes());
  });
  EXPECT_EQ(deferred, usual);
  EXPECT_EQ(usual[1], usual[0]);
  EXPECT_EQ(usual[2], usual[0]);
  ASSERT_FALSE(usual[0].empty());
}

TEST(DataParallel, BroadcastsRankZerosParametersAndBuffersAtStart) {
  std::vector<std::vector<float>> weights(3);
  run_threaded(3, [&](const std::shared_ptr<ProcessGroup>& group) {
    // Different seeds per rank: only the broadcast can make them equal.
    auto model = make_seeded([] { return std::make_shared<Branchy>(); }, 100 + group->rank());
    DataParallel dp(model, group);
    weights[group->rank()] = model->named_parameters()[0].second.to_vector<float>();
  });
  auto rank0 = make_seeded([] { return std::make_shared<Branchy>(); }, 100);
  EXPECT_EQ(weights[0], rank0->named_parameters()[0].second.to_vector<float>());
  EXPECT_EQ(weights[1], weights[0]);
  EXPECT_EQ(weights[2], weights[0]);
}

TEST(DataParallel, MlpOnThreeRanksMatchesOneProcessWithTheUnionBatch) {
  const test::ModelFactory make = [] {
    return std::make_shared<models::MLP>(36, std::vector<std::int64_t>{20}, 5);
  };
  test::ClassifierRun run{
      .sample_shape = {36}, .classes = 5, .per_rank_batch = 4, .steps = 3, .world = 3, .bucket_bytes = 256};
  std::vector<nn::StateDict> results(3);
  run_threaded(3, [&](const std::shared_ptr<ProcessGroup>& group) {
    results[group->rank()] = test::train_classifier(make, run, group);
  });
  const nn::StateDict single = test::train_classifier(make, run);
  for (int r = 0; r < 3; ++r) {
    const test::Difference diff = test::max_relative_difference(results[r], single);
    EXPECT_LT(diff.value, 1e-5) << diff << " on rank " << r;
  }
}

TEST(DataParallel, AdversarialTrainingOnThreeRanksMatchesOneProcessAndAddsNoCollective) {
  const test::ModelFactory make = [] {
    return std::make_shared<models::MLP>(36, std::vector<std::int64_t>{20}, 5);
  };
  test::ClassifierRun run{.sample_shape = {1, 6, 6},
                          .classes = 5,
                          .per_rank_batch = 4,
                          .steps = 3,
                          .world = 3,
                          .bucket_bytes = 256,
                          .dtype = DType::f64,
                          .adversarial_epsilon = 0.1};
  std::vector<nn::StateDict> results(3);
  std::vector<std::vector<std::uint64_t>> adversarial(3), plain(3);
  run_threaded(3, [&](const std::shared_ptr<ProcessGroup>& group) {
    test::ClassifierRun mine = run;
    mine.collectives_per_step = &adversarial[group->rank()];
    results[group->rank()] = test::train_classifier(make, mine, group);
    mine.adversarial_epsilon = 0.0;
    mine.collectives_per_step = &plain[group->rank()];
    test::train_classifier(make, mine, group);
  });
  const nn::StateDict single = test::train_classifier(make, run);
  run.adversarial_epsilon = 0.0;
  EXPECT_GT(test::max_relative_difference(test::train_classifier(make, run), single).value, 1e-3);
  for (int r = 0; r < 3; ++r) {
    const test::Difference diff = test::max_relative_difference(results[r], single);
    EXPECT_LT(diff.value, 1e-9) << diff << " on rank " << r;
    EXPECT_EQ(adversarial[r], plain[r]) << "rank " << r;  // the FGSM pass issues no collective
    ASSERT_EQ(adversarial[r].size(), 3u);
    EXPECT_GT(adversarial[r][0], 1u);
  }
}

TEST(BackwardCallback, RunsAfterEveryNodeAndOnlyDuringBackward) {
  test::expect_error<AutogradError>([] { queue_backward_callback([] {}); }, {"during a backward pass"});
  const Tensor w = ones({3}).requires_grad_();
  std::vector<std::string> order;
  w.register_post_accumulate_hook([&](Tensor&) {
    order.push_back("hook");
    queue_backward_callback([&] { order.push_back("callback"); });
  });
  sum(mul(w, w)).backward();
  EXPECT_EQ(order, (std::vector<std::string>{"hook", "callback"}));
}

}  // namespace
}  // namespace lockstep::distributed
