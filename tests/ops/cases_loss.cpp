// Op cases: the losses of src/ops/loss.h under each reduction, against references written from the formulas
// (inputs kept away from the kinks of hinge, margin and absolute-value losses).
#include <algorithm>
#include <cmath>
#include <functional>

#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

// Applies a reduction to per-element (or per-sample) losses; kBatchMean divides the sum by `batch`.
RefArray reduced(const RefArray& per, Reduction r, std::int64_t batch) {
  if (r == Reduction::kNone) return per;
  double total = 0.0;
  for (double v : per.data) total += v;
  if (r == Reduction::kMean) total /= static_cast<double>(per.numel());
  if (r == Reduction::kBatchMean) total /= static_cast<double>(batch);
  return RefArray({}, total);
}

const char* suffix(Reduction r) {
  switch (r) {
    case Reduction::kMean:
      return "mean";
    case Reduction::kSum:
      return "sum";
    case Reduction::kNone:
      return "none";
    case Reduction::kBatchMean:
      return "batchmean";
  }
  return "";
}

double clamped_log(double p) { return std::max(std::log(p), -100.0); }

// Per-sample loss of scores [N, C] and class indices `target` through f(row, class, C).
RefArray per_sample(const RefArray& scores, const RefArray& target,
                    const std::function<double(const double*, std::int64_t, std::int64_t)>& f) {
  const std::int64_t n = scores.shape[0], c = scores.shape[1];
  RefArray out({n});
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = f(&scores.data[static_cast<std::size_t>(i * c)], static_cast<std::int64_t>(target[i]), c);
  return out;
}

double log_sum_exp(const double* row, std::int64_t c) {
  double total = 0.0;
  for (std::int64_t j = 0; j < c; ++j) total += std::exp(row[j]);
  return std::log(total);
}

}  // namespace

LOCKSTEP_OP_CASES(loss) {
  std::vector<OpCase> cases;
  auto add = [&](std::string name, std::vector<InputSpec> inputs, std::function<Tensor(const Ts&)> fn,
                 std::function<RefArray(const Rs&)> ref) {
    cases.push_back({name, inputs, fn, ref});
  };
  const std::vector<Reduction> basic = {Reduction::kMean, Reduction::kSum, Reduction::kNone};

  for (Reduction r : basic) {
    add(
        std::string("loss.mse/") + suffix(r), {uniform({3, 4}), uniform({3, 4})},
        [r](const Ts& x) { return mse_loss(x[0], x[1], r); },
        [r](const Rs& x) {
          return reduced(ref_map2(x[0], x[1], [](double p, double t) { return (p - t) * (p - t); }), r, 3);
        });
  }
  add(
      "loss.mse/strided_pred", {uniform({4, 3}), uniform({3, 4})},
      [](const Ts& x) { return mse_loss(x[0].transpose(0, 1), x[1]); },
      [](const Rs& x) {
        RefArray per({3, 4});
        for (std::int64_t i = 0; i < 3; ++i)
          for (std::int64_t j = 0; j < 4; ++j)
            per.at({i, j}) = std::pow(x[0].at({j, i}) - x[1].at({i, j}), 2);
        return reduced(per, Reduction::kMean, 3);
      });

  for (Reduction r : {Reduction::kMean, Reduction::kNone}) {
    add(
        std::string("loss.l1/") + suffix(r), {distinct({3, 4}), distinct({3, 4}, -0.97, 1.03)},
        [r](const Ts& x) { return l1_loss(x[0], x[1], r); },
        [r](const Rs& x) {
          return reduced(ref_map2(x[0], x[1], [](double p, double t) { return std::abs(p - t); }), r, 3);
        });
  }

  // Scores on a grid of spacing 1/3 in (-2, 2): |s| never within 1/6 of the hinge at |s| = 1.
  for (Reduction r : {Reduction::kMean, Reduction::kSum}) {
    add(
        std::string("loss.hinge/") + suffix(r), {distinct({3, 4}, -2.0, 2.0), mask({3, 4})},
        [r](const Ts& x) { return hinge_loss(x[0], x[1].to(x[0].dtype()) * 2.0 - 1.0, r); },
        [r](const Rs& x) {
          return reduced(
              ref_map2(x[0], x[1],
                       [](double s, double m) { return std::max(0.0, 1.0 - (2.0 * m - 1.0) * s); }),
              r, 3);
        });
  }

  // Score differences are multiples of the grid step, kept away from -margin.
  auto margin_ref = [](double margin) {
    return [margin](const double* s, std::int64_t y, std::int64_t c) {
      double total = 0.0;
      for (std::int64_t j = 0; j < c; ++j) {
        if (j != y) total += std::max(0.0, s[j] - s[y] + margin);
      }
      return total / static_cast<double>(c);
    };
  };
  for (Reduction r : basic) {
    add(
        std::string("loss.multi_margin/") + suffix(r), {distinct({3, 4}, -1.3, 1.3), index({3}, 4)},
        [r](const Ts& x) { return multi_margin_loss(x[0], x[1], r); },
        [r, margin_ref](const Rs& x) { return reduced(per_sample(x[0], x[1], margin_ref(1.0)), r, 3); });
  }
  add(
      "loss.multi_margin/margin_1.05", {distinct({4, 5}), index({4}, 5)},
      [](const Ts& x) { return multi_margin_loss(x[0], x[1], Reduction::kSum, 1.05); },
      [margin_ref](const Rs& x) {
        return reduced(per_sample(x[0], x[1], margin_ref(1.05)), Reduction::kSum, 4);
      });

  auto bce = [](double p, double t) { return -(t * clamped_log(p) + (1.0 - t) * clamped_log(1.0 - p)); };
  for (Reduction r : {Reduction::kMean, Reduction::kNone}) {
    add(
        std::string("loss.bce/") + suffix(r), {uniform({3, 4}, 0.05, 0.95), uniform({3, 4}, 0.0, 1.0)},
        [r](const Ts& x) { return binary_cross_entropy(x[0], x[1], r); },
        [r, bce](const Rs& x) { return reduced(ref_map2(x[0], x[1], bce), r, 3); });
  }
  // Probabilities of exactly 0 and 1: the logs clamp at -100 (forward only: the clamp is a kink).
  OpCase saturated{
      "loss.bce/saturated",
      {mask({2, 5}), uniform({2, 5}, 0.0, 1.0)},
      [](const Ts& x) { return binary_cross_entropy(x[0].to(x[1].dtype()), x[1], Reduction::kNone); },
      [bce](const Rs& x) { return ref_map2(x[0], x[1], bce); }};
  saturated.check_grad = false;
  cases.push_back(saturated);

  auto bce_logits = [](double z, double t) {
    return std::max(z, 0.0) - z * t + std::log1p(std::exp(-std::abs(z)));
  };
  for (Reduction r : basic) {
    add(
        std::string("loss.bce_with_logits/") + suffix(r),
        {uniform({3, 4}, -4.0, 4.0), uniform({3, 4}, 0.0, 1.0)},
        [r](const Ts& x) { return binary_cross_entropy_with_logits(x[0], x[1], r); },
        [r, bce_logits](const Rs& x) { return reduced(ref_map2(x[0], x[1], bce_logits), r, 3); });
  }
  add(
      "loss.bce_with_logits/wide_logits", {uniform({2, 6}, -15.0, 15.0), uniform({2, 6}, 0.0, 1.0)},
      [](const Ts& x) { return binary_cross_entropy_with_logits(x[0], x[1], Reduction::kSum); },
      [bce_logits](const Rs& x) { return reduced(ref_map2(x[0], x[1], bce_logits), Reduction::kSum, 2); });

  auto nll = [](const double* row, std::int64_t y, std::int64_t) { return -row[y]; };
  for (Reduction r : basic) {
    add(
        std::string("loss.nll/") + suffix(r), {uniform({4, 5}, -3.0, 0.0), index({4}, 5)},
        [r](const Ts& x) { return nll_loss(x[0], x[1], r); },
        [r, nll](const Rs& x) { return reduced(per_sample(x[0], x[1], nll), r, 4); });
  }

  auto ce = [](double eps) {
    return [eps](const double* row, std::int64_t y, std::int64_t c) {
      const double lse = log_sum_exp(row, c);
      double smooth = 0.0;
      for (std::int64_t j = 0; j < c; ++j) smooth += lse - row[j];
      return (1.0 - eps) * (lse - row[y]) + eps * smooth / static_cast<double>(c);
    };
  };
  for (Reduction r : basic) {
    add(
        std::string("loss.cross_entropy/") + suffix(r), {uniform({4, 5}, -2.0, 2.0), index({4}, 5)},
        [r](const Ts& x) { return cross_entropy(x[0], x[1], r); },
        [r, ce](const Rs& x) { return reduced(per_sample(x[0], x[1], ce(0.0)), r, 4); });
  }
  add(
      "loss.cross_entropy/label_smoothing_mean", {uniform({4, 5}, -2.0, 2.0), index({4}, 5)},
      [](const Ts& x) { return cross_entropy(x[0], x[1], Reduction::kMean, 0.1); },
      [ce](const Rs& x) { return reduced(per_sample(x[0], x[1], ce(0.1)), Reduction::kMean, 4); });
  add(
      "loss.cross_entropy/label_smoothing_none", {uniform({3, 6}, -2.0, 2.0), index({3}, 6)},
      [](const Ts& x) { return cross_entropy(x[0], x[1], Reduction::kNone, 0.25); },
      [ce](const Rs& x) { return per_sample(x[0], x[1], ce(0.25)); });
  add(
      "loss.cross_entropy/large_logits", {uniform({3, 4}, -30.0, 30.0), index({3}, 4)},
      [](const Ts& x) { return cross_entropy(x[0], x[1], Reduction::kSum); },
      [ce](const Rs& x) { return reduced(per_sample(x[0], x[1], ce(0.0)), Reduction::kSum, 3); });

  auto kl = [](double in, double t) { return t > 0.0 ? t * (std::log(t) - in) : 0.0; };
  for (Reduction r : {Reduction::kBatchMean, Reduction::kMean, Reduction::kSum}) {
    add(
        std::string("loss.kl_div/") + suffix(r), {uniform({3, 4}, -3.0, -0.1), uniform({3, 4}, 0.05, 1.0)},
        [r](const Ts& x) { return kl_div(x[0], x[1], r); },
        [r, kl](const Rs& x) { return reduced(ref_map2(x[0], x[1], kl), r, 3); });
  }
  // Zero targets contribute 0 (the target is not differentiated: t log t has no derivative at 0).
  add(
      "loss.kl_div/zero_targets_none",
      {uniform({2, 5}, -3.0, -0.1), constant_input(uniform({2, 5}, 0.05, 1.0)), mask({2, 5})},
      [](const Ts& x) { return kl_div(x[0], x[1] * x[2].to(x[1].dtype()), Reduction::kNone); },
      [kl](const Rs& x) {
        return ref_map2(x[0], ref_map2(x[1], x[2], [](double t, double m) { return t * m; }), kl);
      });

  auto gauss = [](double mu, double logvar) { return -0.5 * (1.0 + logvar - mu * mu - std::exp(logvar)); };
  for (Reduction r : {Reduction::kBatchMean, Reduction::kSum, Reduction::kMean, Reduction::kNone}) {
    add(
        std::string("loss.gaussian_kl/") + suffix(r), {uniform({4, 3}), uniform({4, 3})},
        [r](const Ts& x) { return gaussian_kl(x[0], x[1], r); },
        [r, gauss](const Rs& x) { return reduced(ref_map2(x[0], x[1], gauss), r, 4); });
  }
  return cases;
}

}  // namespace lockstep::test
