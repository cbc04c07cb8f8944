// Classification metrics from a tally of counts.
#include "src/metrics/classification.h"

#include <algorithm>

#include "src/core/error.h"

namespace lockstep::metrics {

namespace {
enum Slot : std::size_t { kSamples, kLoss, kTop1, kTopK, kConfusion };
}

ClassificationTally::ClassificationTally(std::int64_t classes, std::int64_t top_k)
    : classes_(classes), top_k_(std::min(top_k, classes)) {
  LOCKSTEP_CHECK(classes >= 1 && top_k >= 1, ValueError,
                 "ClassificationTally: expected classes >= 1 and top_k >= 1, but got ", classes, " and ",
                 top_k);
  counts_.assign(kConfusion + static_cast<std::size_t>(classes * classes), 0.0);
}

void ClassificationTally::add(const Tensor& logits, const Tensor& labels, double loss_sum) {
  LOCKSTEP_CHECK(logits.dim() == 2 && logits.size(1) == classes_ && labels.dim() == 1 &&
                     labels.size(0) == logits.size(0),
                 ValueError, "ClassificationTally::add: expected logits [N, ", classes_,
                 "] and labels [N], but got ", shape_str(logits.shape()), " and ", shape_str(labels.shape()));
  const std::vector<double> z = logits.to(DType::f64).to_vector<double>();
  const std::vector<std::int64_t> y = labels.to_vector<std::int64_t>();
  const auto c = static_cast<std::size_t>(classes_);
  for (std::size_t i = 0; i < y.size(); ++i) {
    LOCKSTEP_CHECK(y[i] >= 0 && y[i] < classes_, ValueError,
                   "ClassificationTally::add: expected labels in [0, ", classes_, "), but sample ", i,
                   " has ", y[i]);
    const double* row = z.data() + i * c;
    const auto label = static_cast<std::size_t>(y[i]);
    std::size_t predicted = 0, before = 0;
    for (std::size_t k = 0; k < c; ++k) {
      if (row[k] > row[predicted]) predicted = k;
      before += row[k] > row[label] || (row[k] == row[label] && k < label);
    }
    counts_[kTop1] += predicted == label;
    counts_[kTopK] += static_cast<std::int64_t>(before) < top_k_;
    counts_[kConfusion + label * c + predicted] += 1;
  }
  counts_[kSamples] += static_cast<double>(y.size());
  counts_[kLoss] += loss_sum;
}

ClassificationReport classification_report(const ClassificationTally& tally) {
  const std::vector<double>& n = tally.counts();
  const auto c = static_cast<std::size_t>(tally.classes());
  ClassificationReport r;
  r.count = static_cast<std::int64_t>(n[kSamples]);
  r.top_k = tally.top_k();
  if (r.count > 0) {
    r.loss = n[kLoss] / n[kSamples];
    r.accuracy = n[kTop1] / n[kSamples];
    r.top_k_accuracy = n[kTopK] / n[kSamples];
  }
  r.confusion.assign(c, std::vector<std::int64_t>(c, 0));
  std::vector<std::int64_t> predicted(c, 0);
  r.support.assign(c, 0);
  for (std::size_t t = 0; t < c; ++t) {
    for (std::size_t p = 0; p < c; ++p) {
      const auto v = static_cast<std::int64_t>(n[kConfusion + t * c + p]);
      r.confusion[t][p] = v;
      r.support[t] += v;
      predicted[p] += v;
    }
  }
  const auto ratio = [](std::int64_t a, std::int64_t b) {
    return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : 0.0;
  };
  for (std::size_t k = 0; k < c; ++k) {
    const double precision = ratio(r.confusion[k][k], predicted[k]),
                 recall = ratio(r.confusion[k][k], r.support[k]);
    r.precision.push_back(precision);
    r.recall.push_back(recall);
    r.f1.push_back(precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0);
    r.macro_f1 += r.f1.back() / static_cast<double>(c);
  }
  return r;
}

}  // namespace lockstep::metrics
