// Classification metrics (src/metrics/classification.h) against an independent computation: top-1 and top-5
// by sorting each sample's logits, the confusion matrix by counting, precision/recall/F1 from their
// definitions; and a tally summed from parts equals the tally of the whole.
#include "src/metrics/classification.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "src/core/error.h"
#include "src/core/rng.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

constexpr std::int64_t kN = 300, kC = 7;

struct Data {
  std::vector<double> logits;
  std::vector<std::int64_t> labels;
};

Data make_data() {
  manual_seed(5);
  Data d;
  d.logits = randn({kN, kC}, 0.0, 1.0, DType::f64).to_vector<double>();
  // Classes 0 and 1 are easy (their logit raised), class 6 never occurs, and a few rows tie.
  std::vector<double> u = rand({kN}, 0.0, 6.0, DType::f64).to_vector<double>();
  for (std::size_t i = 0; i < static_cast<std::size_t>(kN); ++i) {
    d.labels.push_back(static_cast<std::int64_t>(u[i]));
    if (d.labels.back() < 2) d.logits[i * kC + static_cast<std::size_t>(d.labels.back())] += 2.0;
    if (i % 50 == 0)
      std::fill(d.logits.begin() + static_cast<std::ptrdiff_t>(i * kC),
                d.logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * kC), 0.5);
  }
  return d;
}

TEST(ClassificationMetrics, MatchAnIndependentComputation) {
  const Data d = make_data();
  metrics::ClassificationTally tally(kC, 5);
  tally.add(from_vector(d.logits, {kN, kC}).to(DType::f32), from_vector(d.labels, {kN}), 12.5);
  const metrics::ClassificationReport r = metrics::classification_report(tally);

  std::vector<std::vector<std::int64_t>> confusion(kC, std::vector<std::int64_t>(kC, 0));
  std::int64_t top1 = 0, top5 = 0;
  for (std::size_t i = 0; i < static_cast<std::size_t>(kN); ++i) {
    std::vector<std::size_t> order(kC);
    std::iota(order.begin(), order.end(), 0);
    // Stable sort by descending logit: ties keep the lower class first (as argmax's first maximum).
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return d.logits[i * kC + a] > d.logits[i * kC + b];
    });
    const auto label = static_cast<std::size_t>(d.labels[i]);
    confusion[label][order[0]] += 1;
    top1 += order[0] == label;
    top5 += std::find(order.begin(), order.begin() + 5, label) != order.begin() + 5;
  }
  EXPECT_EQ(r.count, kN);
  EXPECT_DOUBLE_EQ(r.loss, 12.5 / kN);
  EXPECT_EQ(r.top_k, 5);
  EXPECT_DOUBLE_EQ(r.accuracy, static_cast<double>(top1) / kN);
  EXPECT_DOUBLE_EQ(r.top_k_accuracy, static_cast<double>(top5) / kN);
  EXPECT_GT(top5, top1);
  EXPECT_EQ(r.confusion, confusion);
  double macro = 0;
  for (std::size_t k = 0; k < static_cast<std::size_t>(kC); ++k) {
    std::int64_t tp = confusion[k][k], predicted = 0, actual = 0;
    for (std::size_t j = 0; j < static_cast<std::size_t>(kC); ++j) {
      predicted += confusion[j][k];
      actual += confusion[k][j];
    }
    const double p = predicted > 0 ? static_cast<double>(tp) / predicted : 0.0;
    const double rec = actual > 0 ? static_cast<double>(tp) / actual : 0.0;
    const double f1 = p + rec > 0 ? 2 * p * rec / (p + rec) : 0.0;
    EXPECT_DOUBLE_EQ(r.precision[k], p) << k;
    EXPECT_DOUBLE_EQ(r.recall[k], rec) << k;
    EXPECT_NEAR(r.f1[k], f1, 1e-15) << k;
    EXPECT_EQ(r.support[k], actual) << k;
    macro += f1 / kC;
  }
  EXPECT_EQ(r.support[6], 0);  // a class without samples: recall and F1 0
  EXPECT_EQ(r.recall[6], 0.0);
  EXPECT_GT(r.f1[0], r.f1[3]);  // the raised classes are easier
  EXPECT_NEAR(r.macro_f1, macro, 1e-15);
}

TEST(ClassificationMetrics, TalliesOfPartsSumToTheTallyOfTheWhole) {
  const Data d = make_data();
  const Tensor logits = from_vector(d.logits, {kN, kC}), labels = from_vector(d.labels, {kN});
  metrics::ClassificationTally whole(kC), a(kC), b(kC);
  whole.add(logits, labels, 3.0);
  a.add(logits.slice(0, 0, 100), labels.slice(0, 0, 100), 1.0);
  b.add(logits.slice(0, 100, kN), labels.slice(0, 100, kN), 2.0);
  std::vector<double> sum = a.counts();
  for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += b.counts()[i];
  EXPECT_EQ(sum, whole.counts());
}

TEST(ClassificationMetrics, TopKIsClippedToTheClassesAndBadInputIsRejected) {
  metrics::ClassificationTally tally(3, 5);
  EXPECT_EQ(tally.top_k(), 3);
  tally.add(from_vector(std::vector<float>{1, 2, 3}, {1, 3}), from_vector(std::vector<std::int64_t>{0}, {1}));
  EXPECT_EQ(metrics::classification_report(tally).top_k_accuracy, 1.0);
  EXPECT_THROW(tally.add(zeros({2, 4}), from_vector(std::vector<std::int64_t>{0, 1}, {2})), ValueError);
  EXPECT_THROW(tally.add(zeros({1, 3}), from_vector(std::vector<std::int64_t>{3}, {1})), ValueError);
  EXPECT_THROW(metrics::ClassificationTally(0), ValueError);
}

}  // namespace
}  // namespace lockstep
