// Classification metrics: top-1 and top-k accuracy, the confusion matrix and per-class precision, recall
// and F1, from counts that ranks sum with a single all-reduce.
#pragma once

#include <cstdint>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::metrics {

// Counts over a classifier's predictions in one flat f64 buffer (exact up to 2^53), laid out as
// [samples, loss sum, top-1 correct, top-k correct, confusion[true][predicted] row-major (classes x
// classes)], so that the sum of the ranks' buffers (one all-reduce) is the tally of all their samples. The
// predicted class is the first maximum of a sample's logits; the label is in the top k when fewer than k
// classes rank before it (a higher logit, or an equal one at a lower index), so top-1 agrees with the
// prediction. Owns its buffer; not thread-safe.
class ClassificationTally {
 public:
  // top_k is clipped to `classes`. ValueError for classes < 1 or top_k < 1.
  explicit ClassificationTally(std::int64_t classes, std::int64_t top_k = 5);

  // logits [N, classes] (f32 or f64), labels i64 [N] in [0, classes); `loss_sum` (the batch's summed loss)
  // is added as given. ValueError for other shapes or a label out of range.
  void add(const Tensor& logits, const Tensor& labels, double loss_sum = 0.0);

  std::int64_t classes() const { return classes_; }
  std::int64_t top_k() const { return top_k_; }
  // The buffer to sum over ranks (in place).
  std::vector<double>& counts() { return counts_; }
  const std::vector<double>& counts() const { return counts_; }

 private:
  std::int64_t classes_;
  std::int64_t top_k_;
  std::vector<double> counts_;
};

// The figures of a tally. Precision of a class never predicted, recall of a class without samples, and F1
// where precision + recall = 0 are 0 (scikit-learn's zero_division=0).
struct ClassificationReport {
  std::int64_t count = 0;
  double loss = 0.0;      // mean loss per sample
  double accuracy = 0.0;  // top-1
  std::int64_t top_k = 0;
  double top_k_accuracy = 0.0;
  std::vector<std::vector<std::int64_t>> confusion;  // [true class][predicted class]
  std::vector<double> precision, recall, f1;         // per class
  std::vector<std::int64_t> support;                 // samples per true class
  double macro_f1 = 0.0;                             // unweighted mean of f1 over the classes
};

ClassificationReport classification_report(const ClassificationTally& tally);

}  // namespace lockstep::metrics
