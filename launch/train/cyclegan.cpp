// The CycleGAN task: unpaired translation between two domains of one data set (two sets of its classes).
// Generators G: A -> B and F: B -> A, PatchGAN discriminators D_A and D_B, least-squares adversarial losses,
// L1 cycle and identity losses, and a history of generated images per discriminator. Each step: the
// generators' update through frozen discriminators, then the discriminators' on real images and pooled
// generated ones. Four networks, each with its own DataParallel wrapper, optimizer and schedule.
#include "launch/train/cyclegan.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>

#include "distributed/data_parallel.h"
#include "io/h5/h5.h"
#include "io/image/grid.h"
#include "io/image/png.h"
#include "launch/train/task.h"
#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/core/strings.h"
#include "src/models/dcgan.h"
#include "src/ops/elementwise.h"
#include "src/ops/index.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/optim/clip.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {

std::shared_ptr<models::CycleGANGenerator> make_cyclegan_generator(const ModelSection& m,
                                                                   const DataGeometry& data) {
  if (data.height % 4 != 0 || data.width % 4 != 0 || data.height < 8 || data.width < 8) {
    m.name_key.fail(
        str_cat("the CycleGAN generator downsamples twice by 2, so it needs image sides that are "
                "multiples of 4 and at least 8, but the data are ",
                data.height, "x", data.width, " (set data.pad_to)"));
  }
  auto g = std::make_shared<models::CycleGANGenerator>(models::CycleGANGeneratorOptions{
      .channels = data.channels, .width = m.width, .residual_blocks = m.residual_blocks});
  models::dcgan_init_(*g);
  return g;
}

std::shared_ptr<models::PatchGANDiscriminator> make_patchgan(const ModelSection& m,
                                                             const DataGeometry& data) {
  auto d = std::make_shared<models::PatchGANDiscriminator>(
      models::PatchGANOptions{.channels = data.channels, .width = m.width, .layers = m.layers});
  if (d->patch_size(data.height) < 1 || d->patch_size(data.width) < 1) {
    m.name_key.fail(str_cat("a PatchGAN of ", m.layers, " stride-2 stages needs images of at least ",
                            3 << m.layers, "x", 3 << m.layers, ", but the data are ", data.height, "x",
                            data.width, ". Lower discriminator.layers"));
  }
  models::dcgan_init_(*d);
  return d;
}

namespace {

Tensor l1(const Tensor& a, const Tensor& b) { return l1_loss(a, b); }
// mean((scores - target)^2)
Tensor lsgan(const Tensor& scores, double target) { return mse_loss(scores, full_like(scores, target)); }

}  // namespace

CycleGanLosses cyclegan_generator_losses(const Network& g, const Network& f, const Network& d_a,
                                         const Network& d_b, const Tensor& real_a, const Tensor& real_b,
                                         double lambda_cycle, double lambda_identity) {
  CycleGanLosses l;
  l.fake_b = g(real_a);
  l.fake_a = f(real_b);
  const Tensor rec_a = f(l.fake_b), rec_b = g(l.fake_a);
  l.adversarial = lsgan(d_b(l.fake_b), 1.0) + lsgan(d_a(l.fake_a), 1.0);
  l.cycle = (l1(rec_a, real_a) + l1(rec_b, real_b)) * lambda_cycle;
  l.total = l.adversarial + l.cycle;
  if (lambda_identity > 0.0) {
    l.identity = (l1(g(real_b), real_b) + l1(f(real_a), real_a)) * (lambda_cycle * lambda_identity);
    l.total = l.total + l.identity;
  }
  return l;
}

Tensor lsgan_discriminator_loss(const Tensor& real_scores, const Tensor& fake_scores) {
  return (lsgan(real_scores, 1.0) + lsgan(fake_scores, 0.0)) * 0.5;
}

ImagePool::ImagePool(std::int64_t capacity, std::int64_t channels, std::int64_t height, std::int64_t width)
    : nn::Module("ImagePool"), capacity_(capacity) {
  LOCKSTEP_CHECK(capacity >= 0 && channels > 0 && height > 0 && width > 0, ValueError,
                 "ImagePool: expected capacity >= 0 and a positive image shape, but got capacity ", capacity,
                 " and images ", channels, "x", height, "x", width);
  images_ = register_buffer("images", zeros({capacity, channels, height, width}));
  count_ = register_buffer("count", zeros({}, DType::i64));
}

std::int64_t ImagePool::count() const { return static_cast<std::int64_t>(count_.item()); }

Tensor ImagePool::query_one(const Tensor& image, std::uint32_t coin, std::uint32_t slot) {
  NoGradGuard no_grad;
  const std::int64_t n = count();
  if (n < capacity_) {
    images_.select(0, n).copy_(image);
    count_.fill_(static_cast<double>(n + 1));
    return image.clone();
  }
  if (capacity_ == 0 || coin < (1u << 31)) return image.clone();
  Tensor stored = images_.select(0, static_cast<std::int64_t>(slot % static_cast<std::uint64_t>(capacity_)));
  Tensor old = stored.clone();
  stored.copy_(image);
  return old;
}

ImagePools::ImagePools(std::int64_t capacity, std::int64_t channels, std::int64_t height, std::int64_t width,
                       std::uint64_t seed)
    : nn::Module("ImagePools") {
  a_ = register_module("a", std::make_shared<ImagePool>(capacity, channels, height, width));
  b_ = register_module("b", std::make_shared<ImagePool>(capacity, channels, height, width));
  stream_ = register_buffer("stream",
                            from_vector(std::vector<std::int64_t>{static_cast<std::int64_t>(seed), 0}, {2}));
}

Tensor ImagePools::query(Domain domain, const Tensor& generated) {
  NoGradGuard no_grad;
  ImagePool& p = pool(domain);
  const Tensor images = generated.detach().contiguous();
  if (p.capacity() == 0) return images.clone();
  const std::vector<std::int64_t> state = stream_.to_vector<std::int64_t>();
  Generator stream(static_cast<std::uint64_t>(state[0]));
  stream.set_state(static_cast<std::uint64_t>(state[0]), static_cast<std::uint64_t>(state[1]));
  std::vector<Tensor> out;
  for (std::int64_t i = 0; i < images.size(0); ++i) {
    std::uint32_t coin = 0, slot = 0;
    if (p.count() >= p.capacity()) {
      const auto words = philox4x32(stream.seed(), 0, stream.take(1));
      coin = words[0];
      slot = words[1];
    }
    out.push_back(p.query_one(images.select(0, i), coin, slot));
  }
  stream_.copy_(
      from_vector(std::vector<std::int64_t>{state[0], static_cast<std::int64_t>(stream.offset())}, {2}));
  return stack(out, 0);
}

Tensor translation_rows(nn::Module& forward, nn::Module& backward, const Tensor& inputs) {
  NoGradGuard no_grad;
  forward.eval();
  backward.eval();
  const Tensor there = forward(inputs);
  const Tensor back = backward(there);
  forward.train();
  backward.train();
  // [N, 3, C, H, W] -> [3N, C, H, W]: input, translation, reconstruction of each image in turn.
  const Tensor rows = stack({inputs, there, back}, 1);
  Shape shape = inputs.shape();
  shape[0] *= 3;
  return rows.reshape(shape);
}

namespace {

// The indices among `base` (null: 0 .. size-1) whose label is one of `classes` (empty: any).
std::vector<std::int64_t> domain_indices(const io::ImageDataset& data, const std::vector<std::int64_t>* base,
                                         const std::vector<std::int64_t>& classes) {
  std::vector<std::int64_t> out;
  const std::vector<std::int64_t>& labels = data.labels();
  const auto take = [&](std::int64_t i) {
    if (classes.empty() ||
        std::find(classes.begin(), classes.end(), labels[static_cast<std::size_t>(i)]) != classes.end())
      out.push_back(i);
  };
  if (base != nullptr) {
    for (const std::int64_t i : *base) take(i);
  } else {
    for (std::int64_t i = 0; i < data.size(); ++i) take(i);
  }
  return out;
}

std::string classes_text(const std::vector<std::int64_t>& classes, const io::ImageDataset& data) {
  if (classes.empty()) return "every class";
  std::string text = classes.size() == 1 ? "class " : "classes ";
  for (const std::int64_t k : classes) {
    const auto& names = data.class_names();
    text += str_cat(text.back() == ' ' ? "" : ", ", k,
                    k < static_cast<std::int64_t>(names.size())
                        ? str_cat(" (", names[static_cast<std::size_t>(k)], ")")
                        : std::string());
  }
  return text;
}

// Sums over an epoch's steps.
enum Sum : std::size_t { kAdversarial, kCycle, kIdentity, kDiscriminator, kSteps };

class CycleGanTask final : public Task {
 public:
  explicit CycleGanTask(const TaskContext& c)
      : settings_(c.settings),
        cg_(c.settings.cyclegan),
        run_(c.run),
        data_(c.data),
        g_(make_cyclegan_generator(c.settings.generator.model, c.data.geometry)),
        f_(make_cyclegan_generator(c.settings.generator.model, c.data.geometry)),
        d_a_(make_patchgan(c.settings.discriminator.model, c.data.geometry)),
        d_b_(make_patchgan(c.settings.discriminator.model, c.data.geometry)),
        pools_(std::make_shared<ImagePools>(cg_.pool_size, c.data.geometry.channels, c.data.geometry.height,
                                            c.data.geometry.width, mix64(c.run.seed ^ 0x706f6f6cULL))) {
    // The domains: the training loop's loader draws domain A; this task's own loader draws domain B (from
    // data.path, or from cyclegan.domain_b.path: its training split, and its test split when it has one).
    const io::ImageDataset& train = *c.data.train;
    const std::vector<std::int64_t>* base = c.data.train_options.subset.get();
    train_b_ = c.data.train;
    test_b_ = c.data.test;
    const bool own_file = !cg_.path_b.empty();
    if (own_file) open_domain_b(train);
    const std::int64_t classes_b =
        own_file ? std::max<std::int64_t>(static_cast<std::int64_t>(train_b_->class_names().size()), 1)
                 : c.data.geometry.classes;
    for (const auto& [classes, at, limit] :
         {std::tuple{&cg_.classes_a, &cg_.classes_a_key, c.data.geometry.classes},
          std::tuple{&cg_.classes_b, &cg_.classes_b_key, classes_b}}) {
      for (const std::int64_t k : *classes) {
        if (k >= limit) at->fail(str_cat("expected classes below the data set's ", limit, ", but got ", k));
      }
    }
    auto a = std::make_shared<const std::vector<std::int64_t>>(domain_indices(train, base, cg_.classes_a));
    auto b = std::make_shared<const std::vector<std::int64_t>>(
        domain_indices(*train_b_, own_file ? nullptr : base, cg_.classes_b));
    if (a->empty()) cg_.classes_a_key.fail("expected classes with training images, but these have none");
    if (b->empty()) cg_.classes_b_key.fail("expected classes with training images, but these have none");
    size_a_ = static_cast<std::int64_t>(a->size());
    size_b_ = static_cast<std::int64_t>(b->size());
    c.data.train_options.subset = a;
    c.data.train_size = size_a_;
    subset_b_ = b;
    dp_g_.emplace(g_, run_.group, run_.reducer);
    dp_f_.emplace(f_, run_.group, run_.reducer);
    dp_d_a_.emplace(d_a_, run_.group, run_.reducer);
    dp_d_b_.emplace(d_b_, run_.group, run_.reducer);
    g_optimizer_ = make_optimizer(c.settings.generator.optimizer, *g_);
    f_optimizer_ = make_optimizer(c.settings.generator.optimizer, *f_);
    d_a_optimizer_ = make_optimizer(c.settings.discriminator.optimizer, *d_a_);
    d_b_optimizer_ = make_optimizer(c.settings.discriminator.optimizer, *d_b_);
    g_params_ = g_->parameters();
    f_params_ = f_->parameters();
  }

  TrainingParts parts() override {
    TrainingParts p{"cyclegan",
                    {{"generator_a2b", g_.get()},
                     {"generator_b2a", f_.get()},
                     {"discriminator_a", d_a_.get()},
                     {"discriminator_b", d_b_.get()}},
                    {{"generator_a2b_optimizer", g_optimizer_.get()},
                     {"generator_b2a_optimizer", f_optimizer_.get()},
                     {"discriminator_a_optimizer", d_a_optimizer_.get()},
                     {"discriminator_b_optimizer", d_b_optimizer_.get()}},
                    {{"generator_a2b_schedule", g_scheduler_.get()},
                     {"generator_b2a_schedule", f_scheduler_.get()},
                     {"discriminator_a_schedule", d_a_scheduler_.get()},
                     {"discriminator_b_schedule", d_b_scheduler_.get()}}};
    p.states.emplace_back("image_pools", pools_.get());
    return p;
  }

  std::string describe() const override {
    const io::ImageDataset& train = *data_.train;
    const std::string file_b = cg_.path_b.empty() ? std::string() : str_cat(" of ", cg_.path_b.string());
    return str_cat("cyclegan: generators 2 x ", g_->num_parameters(), " parameters, discriminators 2 x ",
                   d_a_->num_parameters(), " parameters (", d_a_->patch_size(data_.geometry.height), "x",
                   d_a_->patch_size(data_.geometry.width),
                   " patches); domain A: ", classes_text(cg_.classes_a, train), ", ", size_a_,
                   " images; domain B: ", classes_text(cg_.classes_b, *train_b_), file_b, ", ", size_b_,
                   " images; pools of ", cg_.pool_size);
  }

  void start(std::int64_t steps_per_epoch) override {
    const auto schedule = [&](const NetworkSection& net, optim::Optimizer& o) {
      return make_scheduler(net.schedule, o, steps_per_epoch, run_.epochs);
    };
    g_scheduler_ = schedule(settings_.generator, *g_optimizer_);
    f_scheduler_ = schedule(settings_.generator, *f_optimizer_);
    d_a_scheduler_ = schedule(settings_.discriminator, *d_a_optimizer_);
    d_b_scheduler_ = schedule(settings_.discriminator, *d_b_optimizer_);
    // Domain B's loader: the training loader's options (the batch is final here, also on a resume at
    // another world size) over B's samples, in an order of its own.
    io::LoaderOptions options = data_.train_options;
    options.subset = subset_b_;
    options.seed = mix64(run_.seed ^ 0x646f6d61696e42ULL);
    loader_b_.emplace(train_b_, options);
    if (loader_b_->batches_per_epoch() == 0) {
      cg_.classes_b_key.fail(str_cat("expected domain B to hold a batch at least (",
                                     options.batch_size * run_.world(), " images), but it has ", size_b_));
    }
  }

  std::vector<std::string> sum_names() const override {
    return {"the generators' adversarial loss", "the cycle loss", "the identity loss",
            "the discriminators' loss", "steps"};
  }

  std::int64_t step(const io::Batch& batch, std::int64_t step, StepSums& sums) override {
    const Tensor real_a = batch.images;
    const Tensor real_b = next_b(step).images;
    // The generators' step through frozen discriminators called outside their wrappers.
    d_a_->requires_grad_(false);
    d_b_->requires_grad_(false);
    const auto g = [this](const Tensor& x) { return (*dp_g_)(x); };
    const auto f = [this](const Tensor& x) { return (*dp_f_)(x); };
    const auto d_a = [this](const Tensor& x) { return dp_d_a_->module()(x); };
    const auto d_b = [this](const Tensor& x) { return dp_d_b_->module()(x); };
    const CycleGanLosses l =
        cyclegan_generator_losses(g, f, d_a, d_b, real_a, real_b, cg_.lambda_cycle, cg_.lambda_identity);
    g_optimizer_->zero_grad();
    f_optimizer_->zero_grad();
    l.total.backward();
    if (settings_.generator.clip_grad_norm > 0) {
      optim::clip_grad_norm_(g_params_, settings_.generator.clip_grad_norm);
      optim::clip_grad_norm_(f_params_, settings_.generator.clip_grad_norm);
    }
    g_optimizer_->step();
    f_optimizer_->step();
    g_scheduler_->step();
    f_scheduler_->step();
    d_a_->requires_grad_(true);
    d_b_->requires_grad_(true);
    // The discriminators' step on real images and pooled translations (made before the generators' update).
    const Tensor pooled_a = pooled(ImagePools::Domain::kA, l.fake_a);
    const Tensor pooled_b = pooled(ImagePools::Domain::kB, l.fake_b);
    const Tensor d_loss = lsgan_discriminator_loss((*dp_d_a_)(real_a), (*dp_d_a_)(pooled_a)) +
                          lsgan_discriminator_loss((*dp_d_b_)(real_b), (*dp_d_b_)(pooled_b));
    d_a_optimizer_->zero_grad();
    d_b_optimizer_->zero_grad();
    d_loss.backward();
    if (settings_.discriminator.clip_grad_norm > 0) {
      optim::clip_grad_norm_(d_a_->parameters(), settings_.discriminator.clip_grad_norm);
      optim::clip_grad_norm_(d_b_->parameters(), settings_.discriminator.clip_grad_norm);
    }
    d_a_optimizer_->step();
    d_b_optimizer_->step();
    d_a_scheduler_->step();
    d_b_scheduler_->step();
    sums.add(kAdversarial, l.adversarial);
    sums.add(kCycle, l.cycle);
    if (l.identity.defined()) sums.add(kIdentity, l.identity);
    sums.add(kDiscriminator, d_loss);
    sums.add(kSteps, 1);
    return real_a.size(0);
  }

  std::string progress_text(std::span<const double> sums) const override {
    const double n = std::max(sums[kSteps], 1.0);
    return str_cat("G ", format_fixed(sums[kAdversarial] / n, 3), "  cycle ",
                   format_fixed(sums[kCycle] / n, 3), "  D ", format_fixed(sums[kDiscriminator] / n, 3));
  }

  EpochEnd end_epoch(std::int64_t epoch, std::int64_t step, std::span<const double> job,
                     RunLog* log) override {
    EpochEnd e;
    const double n = std::max(job[kSteps], 1.0);
    e.fields = {{"g_adversarial", job[kAdversarial] / n},
                {"cycle_loss", job[kCycle] / n},
                {"identity_loss", job[kIdentity] / n},
                {"d_loss", job[kDiscriminator] / n}};
    e.line = str_cat("G adv ", format_fixed(job[kAdversarial] / n, 4), "  cycle ",
                     format_fixed(job[kCycle] / n, 4), "  identity ", format_fixed(job[kIdentity] / n, 4),
                     "  D ", format_fixed(job[kDiscriminator] / n, 4));
    if (log != nullptr) {  // rank 0 evaluates and draws; no collective here
      if (cg_.eval_images > 0) {
        const std::optional<double> mae_a = cycle_error(ImagePools::Domain::kA, *g_, *f_),
                                    mae_b = cycle_error(ImagePools::Domain::kB, *f_, *g_);
        for (const auto& [name, mae] : {std::pair{"a", mae_a}, std::pair{"b", mae_b}}) {
          if (!mae) continue;
          e.fields.emplace_back(str_cat("cycle_mae_", name), *mae);
          e.line += str_cat("  cycle MAE ", name[0] == 'a' ? "A " : "B ", format_fixed(*mae, 4));
        }
      }
      const std::filesystem::path path = run_.output / str_cat("translations_epoch_", epoch + 1, ".png");
      if (const Tensor grid = write_grid(path); grid.defined()) {
        log->image("translations", grid, step);
        e.line += str_cat("  translations ", path.string());
      }
    }
    return e;
  }

  // Mean least-squares losses of 1e6 per step: the networks have left any useful regime.
  std::string exploded(std::span<const double> added, std::int64_t /*n*/) const override {
    // Per step: the sums since the last check may span many steps (on a GPU).
    const double steps = std::max(added[kSteps], 1.0);
    const std::string g = beyond("the generators' adversarial loss", added[kAdversarial] / steps, 1e6);
    return g.empty() ? beyond("the discriminators' loss", added[kDiscriminator] / steps, 1e6) : g;
  }

  std::string divergence_hint() const override {
    return "Lower generator.optimizer.lr / discriminator.optimizer.lr, or set generator.clip_grad_norm / "
           "discriminator.clip_grad_norm";
  }

  std::string summary(const std::vector<std::pair<std::string, double>>& last) const override {
    std::string text;
    for (const auto& [name, value] : last)
      text += str_cat(text.empty() ? "" : ", ", name, " ", format_fixed(value, 4));
    return text;
  }

 private:
  // Opens cyclegan.domain_b.path's training split (and its test split when the file has one) for domain B;
  // ConfigError at the key when its images differ in shape from data.path's.
  void open_domain_b(const io::ImageDataset& train) {
    const launch::DataSection& d = settings_.data;
    const io::Cache cache = d.cache_in_memory ? io::Cache::kMemory : io::Cache::kNone;
    train_b_ = io::ImageDataset::open(cg_.path_b, d.train_split, cache);
    const auto shape = [](const io::ImageDataset& x) {
      return str_cat(x.channels(), "x", x.height(), "x", x.width());
    };
    if (shape(*train_b_) != shape(train)) {
      cg_.path_b_key.fail(str_cat("expected images of data.path's shape ", shape(train), ", but ",
                                  in_quotes(cg_.path_b.string()), " holds ", shape(*train_b_)));
    }
    test_b_ = nullptr;
    if (!d.test_split.empty()) {
      const std::vector<std::string> splits =
          io::h5::File(cg_.path_b, io::h5::Access::kRead).root().children();
      if (std::find(splits.begin(), splits.end(), d.test_split) != splits.end())
        test_b_ = io::ImageDataset::open(cg_.path_b, d.test_split, cache);
    }
  }

  // Domain B's batch for the job's step `step`: batch (step - 1) mod B's epoch length of B's epoch
  // (step - 1) / that length, so that a resumed run takes the same batches as a straight one.
  io::Batch next_b(std::int64_t step) {
    const std::int64_t k = step - 1, per_epoch = loader_b_->batches_per_epoch();
    const std::int64_t epoch = k / per_epoch, at = k % per_epoch;
    if (k != b_next_ || at == 0) loader_b_->start_epoch(epoch, at);
    std::optional<io::Batch> batch = loader_b_->next();
    LOCKSTEP_INTERNAL_ASSERT(batch.has_value(), "domain B's loader ended early at batch ", at, " of ",
                             per_epoch);
    b_next_ = k + 1;
    return std::move(*batch);
  }

  // The images to show a discriminator in place of this rank's translations. The pool takes every rank's
  // (so that every rank's pool stays the same) in the order of the global batch: the loaders give rank r
  // positions r, r + world, ... of the epoch's order, so image j of rank r is image j * world + r of the
  // batch one process would see. This rank gets its own positions back.
  Tensor pooled(ImagePools::Domain domain, const Tensor& fake) {
    if (run_.world() == 1) return pools_->query(domain, fake);
    const Tensor mine = fake.detach().contiguous();
    const std::int64_t world = run_.world(), rank = run_.rank(), b = mine.size(0);
    Shape all_shape = mine.shape();
    all_shape[0] *= world;
    const Tensor gathered = empty(all_shape, mine.dtype());
    run_.group->all_gather(mine, gathered)->wait();
    std::vector<std::int64_t> order(static_cast<std::size_t>(world * b)), own(static_cast<std::size_t>(b));
    for (std::int64_t k = 0; k < world * b; ++k)
      order[static_cast<std::size_t>(k)] = (k % world) * b + k / world;
    for (std::int64_t j = 0; j < b; ++j) own[static_cast<std::size_t>(j)] = j * world + rank;
    const Tensor out = pools_->query(domain, index_select(gathered, 0, from_vector(order, {world * b})));
    return index_select(out, 0, from_vector(own, {b}));
  }

  // The first `count` test images (else training images) of domain A's or B's classes, in the order of the
  // file; undefined when there are none.
  Tensor first_images(ImagePools::Domain domain, std::int64_t count) const {
    const bool a = domain == ImagePools::Domain::kA;
    const std::vector<std::int64_t>& classes = a ? cg_.classes_a : cg_.classes_b;
    const std::shared_ptr<io::ImageDataset>& test = a ? data_.test : test_b_;
    const std::shared_ptr<io::ImageDataset>& source = test ? test : a ? data_.train : train_b_;
    std::vector<std::int64_t> indices = domain_indices(*source, nullptr, classes);
    if (static_cast<std::int64_t>(indices.size()) > count) indices.resize(static_cast<std::size_t>(count));
    if (indices.empty()) return {};
    io::LoaderOptions options = data_.test_options;  // no shuffling, no augmentation
    options.rank = 0;
    options.world = 1;
    options.prefetch = 0;
    options.batch_size = std::max<std::int64_t>(static_cast<std::int64_t>(indices.size()), 1);
    options.subset = std::make_shared<const std::vector<std::int64_t>>(std::move(indices));
    io::DataLoader loader(source, options);
    loader.start_epoch(0);
    std::optional<io::Batch> batch = loader.next();
    return batch ? batch->images : Tensor();
  }

  // Mean absolute error of back(there(x)) against x over the first eval_images test images of `domain`
  // (nullopt when it has none).
  std::optional<double> cycle_error(ImagePools::Domain domain, nn::Module& there, nn::Module& back) const {
    const Tensor x = first_images(domain, cg_.eval_images);
    if (!x.defined()) return std::nullopt;
    double sum = 0.0;
    const std::int64_t step = std::max<std::int64_t>(settings_.data.eval_batch_size / 4, 1);
    for (std::int64_t i = 0; i < x.size(0); i += step) {
      const Tensor part = x.slice(0, i, std::min(i + step, x.size(0)));
      const Tensor rows = translation_rows(there, back, part);
      NoGradGuard no_grad;
      sum += l1_loss(rows.slice(0, 2, rows.size(0), 3), part, Reduction::kSum).item();
    }
    return sum / static_cast<double>(x.numel());
  }

  // Rows a | G(a) | F(G(a)) | b | F(b) | G(F(b)) for the first `samples` test images of each domain.
  Tensor write_grid(const std::filesystem::path& path) {
    if (!grid_a_.defined()) {
      grid_a_ = first_images(ImagePools::Domain::kA, cg_.samples);
      grid_b_ = first_images(ImagePools::Domain::kB, cg_.samples);
    }
    if (!grid_a_.defined() || !grid_b_.defined()) return {};
    const std::int64_t rows = std::min(grid_a_.size(0), grid_b_.size(0));
    const Tensor a = translation_rows(*g_, *f_, grid_a_.slice(0, 0, rows));
    const Tensor b = translation_rows(*f_, *g_, grid_b_.slice(0, 0, rows));
    Shape three = a.shape();
    three[0] = rows;
    three.insert(three.begin() + 1, 3);
    Shape flat = a.shape();
    flat[0] = 6 * rows;
    const Tensor images = cat({a.reshape(three), b.reshape(three)}, 1).reshape(flat);
    Tensor grid = io::image_grid(images, 6);
    io::write_png(path, grid);
    return grid;
  }

  const launch::Settings& settings_;
  const launch::CycleGanSection& cg_;
  const RunSettings& run_;
  const DataSplits& data_;
  std::shared_ptr<models::CycleGANGenerator> g_, f_;
  std::shared_ptr<models::PatchGANDiscriminator> d_a_, d_b_;
  std::shared_ptr<ImagePools> pools_;
  std::optional<distributed::DataParallel> dp_g_, dp_f_, dp_d_a_, dp_d_b_;
  std::unique_ptr<optim::Optimizer> g_optimizer_, f_optimizer_, d_a_optimizer_, d_b_optimizer_;
  std::unique_ptr<optim::LRScheduler> g_scheduler_, f_scheduler_, d_a_scheduler_, d_b_scheduler_;
  std::vector<Tensor> g_params_, f_params_;
  std::shared_ptr<const std::vector<std::int64_t>> subset_b_;
  std::shared_ptr<io::ImageDataset> train_b_, test_b_;  // domain B's splits (test_b_ null when none)
  std::int64_t size_a_ = 0, size_b_ = 0;
  std::optional<io::DataLoader> loader_b_;
  std::int64_t b_next_ = -1;  // the step index (0-based) domain B's loader serves next
  Tensor grid_a_, grid_b_;
};

}  // namespace

std::unique_ptr<Task> make_cyclegan_task(const TaskContext& context) {
  return std::make_unique<CycleGanTask>(context);
}

}  // namespace lockstep::launch
