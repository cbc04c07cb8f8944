// The data-parallel equivalence harness (see parallel_training.h).
#include "tests/support/parallel_training.h"

#include <cmath>
#include <limits>
#include <mutex>

#include "distributed/data_parallel.h"
#include "distributed/sync_batch_norm.h"
#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/models/adversarial.h"
#include "src/models/autoencoder.h"
#include "src/models/dcgan.h"
#include "src/models/gan_loss.h"
#include "src/models/pixelcnn.h"
#include "src/models/wgan.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/optim/adam.h"
#include "src/optim/sgd.h"
#include "src/tensor/factories.h"

namespace lockstep::test {
namespace {

std::mutex& generator_mutex() {
  static std::mutex m;
  return m;
}

nn::StateDict copy_state(const nn::Module& module, const std::string& prefix = "") {
  nn::StateDict out;
  for (const auto& [name, t] : module.state_dict()) out.insert(prefix + name, t.clone());
  return out;
}

// Rows [r B, (r + 1) B) of a global batch, or all of it without a group.
Tensor my_rows(const Tensor& global, const std::shared_ptr<distributed::ProcessGroup>& group,
               std::int64_t b) {
  if (!group) return global;
  return global.slice(0, group->rank() * b, (group->rank() + 1) * b).contiguous();
}

}  // namespace

std::shared_ptr<nn::Module> make_seeded(const ModelFactory& make, std::uint64_t seed) {
  std::lock_guard lock(generator_mutex());
  manual_seed(seed);
  return make();
}

nn::StateDict train_classifier(const ModelFactory& make, const ClassifierRun& run,
                               const std::shared_ptr<distributed::ProcessGroup>& group) {
  auto model = make_seeded(make, run.seed);
  model->to(run.dtype);
  std::unique_ptr<distributed::DataParallel> dp;
  if (group) {
    if (run.sync_batchnorm) distributed::convert_sync_batchnorm(*model, group);
    dp = std::make_unique<distributed::DataParallel>(
        model, group,
        distributed::ReducerOptions{.bucket_bytes = run.bucket_bytes,
                                    .first_bucket_bytes = run.bucket_bytes});
  }
  optim::SGD opt(model->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  const std::int64_t global = run.world * run.per_rank_batch;
  Shape x_shape{global};
  x_shape.insert(x_shape.end(), run.sample_shape.begin(), run.sample_shape.end());
  for (std::int64_t step = 0; step < run.steps; ++step) {
    Generator gen(run.seed * 1000 + static_cast<std::uint64_t>(step));
    const Tensor x = randn(x_shape, 0.0, 1.0, run.dtype, kCPU, &gen);
    const Tensor y =
        rand({global}, 0.0, static_cast<double>(run.classes), DType::f32, kCPU, &gen).to(DType::i64);
    Tensor xs = my_rows(x, group, run.per_rank_batch);
    Tensor ys = my_rows(y, group, run.per_rank_batch);
    const std::uint64_t before = group ? group->sequence() : 0;
    if (run.adversarial_epsilon > 0) {
      const std::vector<double> mean(static_cast<std::size_t>(run.sample_shape[0]), 0.5),
          std(mean.size(), 0.25);
      xs = cat({xs, models::fgsm(*model, xs, ys, run.adversarial_epsilon, {mean, std})}, 0);
      ys = cat({ys, ys}, 0);
    }
    opt.zero_grad();
    const Tensor logits = dp ? dp->forward(xs) : model->forward(xs);
    cross_entropy(logits, ys).backward();
    opt.step();
    if (group && run.collectives_per_step != nullptr)
      run.collectives_per_step->push_back(group->sequence() - before);
  }
  return copy_state(*model);
}

nn::StateDict train_gan(const GanRun& run, const std::shared_ptr<distributed::ProcessGroup>& group) {
  auto g =
      make_seeded([&] { return std::make_shared<models::DCGANGenerator>(run.latent, 1, 32, 8); }, run.seed);
  auto d = make_seeded(
      [&]() -> std::shared_ptr<nn::Module> {
        if (run.gradient_penalty)
          return std::make_shared<models::WGANCritic>(1, 32, 8, models::DiscriminatorNorm::kLayerNorm);
        return std::make_shared<models::DCGANDiscriminator>(1, 32, 8);
      },
      run.seed + 1);
  const models::GanLoss loss =
      run.gradient_penalty ? models::GanLoss::kWasserstein : models::GanLoss::kNonSaturating;
  g->to(run.dtype);
  d->to(run.dtype);
  std::unique_ptr<distributed::DataParallel> dp_g, dp_d;
  if (group) {
    if (run.sync_batchnorm) {
      distributed::convert_sync_batchnorm(*g, group);
      distributed::convert_sync_batchnorm(*d, group);
    }
    dp_g = std::make_unique<distributed::DataParallel>(g, group);
    dp_d = std::make_unique<distributed::DataParallel>(d, group);
  }
  auto gen_forward = [&](const Tensor& z) { return dp_g ? dp_g->forward(z) : g->forward(z); };
  auto dis_forward = [&](const Tensor& x) { return dp_d ? dp_d->forward(x) : d->forward(x); };
  optim::SGD opt_g(g->named_parameters(), {.lr = 0.05, .momentum = 0.5});
  optim::SGD opt_d(d->named_parameters(), {.lr = 0.05, .momentum = 0.5});
  const std::int64_t global = run.world * run.per_rank_batch;
  const std::int64_t b = run.per_rank_batch;
  for (std::int64_t step = 0; step < run.steps; ++step) {
    Generator gen(run.seed * 1000 + static_cast<std::uint64_t>(step));
    const Tensor real = my_rows(rand({global, 1, 32, 32}, -1.0, 1.0, run.dtype, kCPU, &gen), group, b);
    const Tensor z = my_rows(randn({global, run.latent}, 0.0, 1.0, run.dtype, kCPU, &gen), group, b);
    const Tensor alpha = my_rows(rand({global}, 0.0, 1.0, DType::f64, kCPU, &gen), group, b);

    // D step: real and detached fake (and their interpolates) through the D wrapper, one backward.
    const Tensor fake = gen_forward(z);
    opt_d.zero_grad();
    Tensor d_loss = models::discriminator_loss(loss, dis_forward(real), dis_forward(fake.detach()));
    if (run.gradient_penalty)
      d_loss = d_loss + models::gradient_penalty(dis_forward, real, fake, alpha, 10.0).penalty;
    d_loss.backward();
    opt_d.step();

    // G step through the frozen, unwrapped D: no D gradient exists, none is reduced.
    d->requires_grad_(false);
    opt_g.zero_grad();
    models::generator_loss(loss, d->forward(fake)).backward();
    opt_g.step();
    d->requires_grad_(true);
  }
  nn::StateDict out = copy_state(*g, "g.");
  for (const auto& [name, t] : copy_state(*d, "d.")) out.insert(name, t);
  return out;
}

nn::StateDict train_autoencoder(const AutoencoderRun& run,
                                const std::shared_ptr<distributed::ProcessGroup>& group) {
  auto model = std::static_pointer_cast<models::Autoencoder>(make_seeded(
      [&] {
        using enum AutoencoderRun::Penalty;
        return std::make_shared<models::Autoencoder>(models::AutoencoderOptions{
            .height = 8,
            .width = 8,
            .hidden = {12},
            .code = 3,
            .code_activation = run.penalty == kKlSparsity ? models::CodeActivation::kSigmoid
                                                          : models::CodeActivation::kLinear,
            .variational = run.variational});
      },
      run.seed));
  model->to(run.dtype);
  std::unique_ptr<distributed::DataParallel> dp;
  if (group) dp = std::make_unique<distributed::DataParallel>(model, group);
  optim::Adam opt(model->named_parameters(), {.lr = 1e-2});
  const std::int64_t global = run.world * run.per_rank_batch;
  for (std::int64_t step = 0; step < run.steps; ++step) {
    Generator gen(run.seed * 1000 + static_cast<std::uint64_t>(step));
    const Tensor x =
        my_rows(rand({global, 1, 8, 8}, 0.0, 1.0, run.dtype, kCPU, &gen), group, run.per_rank_batch);
    const Tensor eps =
        my_rows(randn({global, 3}, 0.0, 1.0, run.dtype, kCPU, &gen), group, run.per_rank_batch);
    auto& ae = static_cast<models::Autoencoder&>(dp ? dp->prepare_forward() : *model);
    opt.zero_grad();
    Tensor loss;
    if (run.variational) {
      const models::Autoencoder::Posterior q = ae.posterior(x);
      loss = models::reconstruction_loss(models::ReconstructionLoss::kBce,
                                         ae.decode(q.mean + exp(q.logvar * 0.5) * eps), x) +
             gaussian_kl(q.mean, q.logvar);
    } else {
      const Tensor codes = ae.encode(x);
      loss = models::reconstruction_loss(models::ReconstructionLoss::kBce, ae.decode(codes), x);
      const auto encode = [&](const Tensor& in) { return ae.encode(in); };
      switch (run.penalty) {
        case AutoencoderRun::Penalty::kNone: break;
        case AutoencoderRun::Penalty::kContractive: loss = loss + models::jacobian_frobenius(encode, x) * 0.1; break;
        case AutoencoderRun::Penalty::kContractiveProbe:
          loss = loss + models::jacobian_frobenius_projection(encode, x, eps) * 0.1;
          break;
        case AutoencoderRun::Penalty::kKlSparsity: {
          // The global batch's mean code: every rank's rows summed (one all-reduce), as the task does.
          Tensor total = sum(codes.detach(), {0}).to(DType::f64);
          if (group) group->all_reduce(total)->wait();
          loss = loss + models::kl_sparsity(codes, 0.2, total / static_cast<double>(global)) * 0.5;
          break;
        }
      }
    }
    loss.backward();
    opt.step();
  }
  return copy_state(*model);
}

nn::StateDict train_pixelcnn(std::int64_t world, std::int64_t per_rank_batch, std::int64_t steps,
                             const std::shared_ptr<distributed::ProcessGroup>& group) {
  auto model = make_seeded([] { return std::make_shared<models::PixelCNN>(4, 1); }, 17);
  model->to(DType::f64);
  std::unique_ptr<distributed::DataParallel> dp;
  if (group) dp = std::make_unique<distributed::DataParallel>(model, group);
  optim::Adam opt(model->named_parameters(), {.lr = 1e-2});
  for (std::int64_t step = 0; step < steps; ++step) {
    Generator gen(17000 + static_cast<std::uint64_t>(step));
    const Tensor x = my_rows(rand({world * per_rank_batch, 1, 8, 8}, 0.0, 1.0, DType::f64, kCPU, &gen), group,
                             per_rank_batch);
    opt.zero_grad();
    models::pixel_nll(dp ? dp->forward(x) : model->forward(x), x).backward();
    opt.step();
  }
  return copy_state(*model);
}

Difference max_relative_difference(const nn::StateDict& a, const nn::StateDict& b) {
  Difference worst;
  double total_diff = 0.0, total_norm = 0.0;
  for (const auto& [name, tb] : b) {
    const Tensor& ta = a.at(name);
    if (!is_floating(tb.dtype())) {
      if (ta.to_vector<std::int64_t>() != tb.to_vector<std::int64_t>()) {
        return {std::numeric_limits<double>::infinity(), name};
      }
      continue;
    }
    const auto va = ta.to(DType::f64).to_vector<double>();
    const auto vb = tb.to(DType::f64).to_vector<double>();
    double diff = 0.0, norm = 0.0;
    for (std::size_t i = 0; i < vb.size(); ++i) {
      diff += (va[i] - vb[i]) * (va[i] - vb[i]);
      norm += vb[i] * vb[i];
    }
    total_diff += diff;
    total_norm += norm;
    const double relative = std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
    if (relative > worst.value) worst = {relative, name, 0.0};
  }
  worst.overall = std::sqrt(total_diff) / std::max(std::sqrt(total_norm), 1e-30);
  return worst;
}

std::ostream& operator<<(std::ostream& out, const Difference& d) {
  return out << "largest " << d.value << " (at " << (d.name.empty() ? "no entry" : d.name) << "), overall "
             << d.overall;
}

}  // namespace lockstep::test
