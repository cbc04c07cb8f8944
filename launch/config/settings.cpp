// Config -> typed settings, every value checked where it is read.
#include "launch/config/settings.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "src/core/error.h"

namespace lockstep::launch {
namespace {

std::string key(const std::string& section, const char* name) { return section + "." + name; }

// Readers that check a value's range where it is read, so the error names the key and where it came from.
class Reader {
 public:
  explicit Reader(const Config& cfg) : cfg_(cfg) {}

  // An integer in [lo, hi]; required without a fallback.
  std::int64_t integer(const std::string& k, std::optional<std::int64_t> fallback, std::int64_t lo,
                       std::int64_t hi = std::numeric_limits<std::int64_t>::max()) const {
    const std::int64_t v = fallback ? cfg_.get_int(k, *fallback) : cfg_.get_int(k);
    if (v < lo || v > hi) {
      cfg_.fail(k, hi == std::numeric_limits<std::int64_t>::max()
                       ? str_cat("expected at least ", lo, ", but got ", v)
                       : str_cat("expected ", lo, " .. ", hi, ", but got ", v));
    }
    return v;
  }
  // A finite number in [lo, hi] (open at lo when `open_lo`).
  double number(const std::string& k, std::optional<double> fallback, double lo, double hi,
                bool open_lo = false) const {
    const double v = fallback ? cfg_.get_double(k, *fallback) : cfg_.get_double(k);
    if (!std::isfinite(v) || v < lo || v > hi || (open_lo && v == lo)) {
      std::string range = open_lo && lo == 0.0 ? "a positive finite number"
                          : lo == 0.0          ? "a finite number >= 0"
                                               : str_cat("a finite number ", open_lo ? "> " : ">= ", lo);
      if (hi < std::numeric_limits<double>::max()) range += str_cat(" of at most ", hi);
      cfg_.fail(k, str_cat("expected ", range, ", but got ", v));
    }
    return v;
  }
  double non_negative(const std::string& k, double fallback) const {
    return number(k, fallback, 0.0, std::numeric_limits<double>::max());
  }
  // `specific` when present, else `shared` when present, else `specific` with the default. A shared key is
  // read even where every network overrides it (it is not a typo).
  std::string first_present(const std::string& specific, const std::string& shared) const {
    const bool specific_present = cfg_.has(specific);
    const bool shared_present = !shared.empty() && cfg_.has(shared);
    return !specific_present && shared_present ? shared : specific;
  }
  const Config& cfg() const { return cfg_; }

 private:
  const Config& cfg_;
};

// A ResNet's model.block: "basic" (post-activation) or "preact"; ResNet-50's bottlenecks are basic only.
std::string read_block(const Config& cfg, const std::string& section, bool bottleneck) {
  const std::string block = cfg.choice(key(section, "block"), {"basic", "preact"}, "basic");
  if (bottleneck && block == "preact") {
    cfg.fail(key(section, "block"),
             "expected \"basic\" for resnet50 (pre-activation blocks are built for "
             "resnet20/32/56/110, resnet18 and resnet34), but got \"preact\"");
  }
  return block;
}

ModelSection read_model(const Reader& r, const std::string& section,
                        std::initializer_list<std::string_view> names) {
  const Config& cfg = r.cfg();
  ModelSection m;
  m.name = cfg.choice(key(section, "name"), names);
  m.name_key = cfg.locate(key(section, "name"));
  if (m.name == "mlp") {
    // The course's GAN: a generator widening 256 -> 512 -> 1024, a discriminator narrowing 512 -> 256.
    m.hidden = cfg.get_ints(key(section, "hidden"), section == "generator"
                                                         ? std::vector<std::int64_t>{256, 512, 1024}
                                                         : std::vector<std::int64_t>{512, 256});
    for (const std::int64_t h : m.hidden)
      if (h < 1) cfg.fail(key(section, "hidden"), str_cat("expected layer widths of at least 1, but got ", h));
    if (section == "model") {
      m.dropout = r.number(key(section, "dropout"), 0.0, 0.0, 1.0);
      if (m.dropout == 1.0) cfg.fail(key(section, "dropout"), "expected a probability below 1, but got 1");
    }
  } else if (m.name == "resnet18" || m.name == "resnet34" || m.name == "resnet50") {
    m.stem = cfg.choice(key(section, "stem"), {"small", "imagenet"}, "small");
    m.block = read_block(cfg, section, m.name == "resnet50");
  } else if (m.name.rfind("resnet", 0) == 0) {
    m.shortcut = cfg.choice(key(section, "shortcut"), {"identity", "projection"}, "identity");
    m.block = read_block(cfg, section, false);
  } else if (m.name == "rnn" || m.name == "rnn-relu" || m.name == "lstm" || m.name == "gru") {
    m.hidden = cfg.get_ints(key(section, "hidden"), std::vector<std::int64_t>{128});
    if (m.hidden.empty()) cfg.fail(key(section, "hidden"), "expected at least one recurrent layer, but got none");
    for (const std::int64_t h : m.hidden)
      if (h < 1) cfg.fail(key(section, "hidden"), str_cat("expected layer widths of at least 1, but got ", h));
  } else if (m.name == "vgg11" || m.name == "vgg16") {
    m.dropout = r.number(key(section, "dropout"), 0.5, 0.0, 1.0);
    if (m.dropout == 1.0) cfg.fail(key(section, "dropout"), "expected a probability below 1, but got 1");
  } else if (m.name == "dcgan" || m.name == "wgan-critic") {
    m.width = r.integer(key(section, "width"), 64, 1, 4096);
    if (m.name == "wgan-critic") m.norm = cfg.choice(key(section, "norm"), {"none", "layer"}, "none");
  } else if (m.name == "cyclegan-resnet") {
    m.width = r.integer(key(section, "width"), 32, 1, 4096);
    m.residual_blocks = r.integer(key(section, "residual_blocks"), 6, 0, 64);
  } else if (m.name == "patchgan") {
    m.width = r.integer(key(section, "width"), 64, 1, 4096);
    m.layers = r.integer(key(section, "layers"), 2, 1, 8);
  }
  return m;
}

// The optimizer of `section` ("optimizer", "generator.optimizer"...), each key falling back to `shared`
// ("optimizer" for a GAN's networks; "" for none), then to the task's `preferred` optimizer when the name is
// its (e.g. DCGAN's Adam(2e-4, beta1 0.5)), then to each optimizer's usual defaults. An empty preferred name
// makes the name required; SGD has no default learning rate.
OptimizerSection read_optimizer(const Reader& r, const std::string& section, const std::string& shared,
                                const OptimizerSection& preferred) {
  const Config& cfg = r.cfg();
  const auto at = [&](const char* name) {
    return r.first_present(key(section, name), shared.empty() ? "" : key(shared, name));
  };
  const std::initializer_list<std::string_view> names = {"sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta"};
  OptimizerSection o;
  o.name = preferred.name.empty() ? cfg.choice(at("name"), names) : cfg.choice(at("name"), names, preferred.name);
  const bool as_preferred = o.name == preferred.name;
  if (as_preferred) {
    o.lr = r.number(at("lr"), preferred.lr, 0.0, std::numeric_limits<double>::max());
  } else if (o.name == "sgd") {
    o.lr = r.number(at("lr"), std::nullopt, 0.0, std::numeric_limits<double>::max());
  } else {
    o.lr = r.number(at("lr"), o.name == "adadelta" ? 1.0 : o.name == "adam" || o.name == "adamw" ? 1e-3 : 1e-2,
                    0.0, std::numeric_limits<double>::max());
  }
  o.weight_decay = r.non_negative(at("weight_decay"), o.name == "adamw" ? 1e-2 : 0.0);
  o.decay_all = cfg.choice(at("weight_decay_on"), {"weights", "all"}, "weights") == "all";
  o.l1 = r.non_negative(at("l1"), 0.0);
  if (o.name == "sgd") {
    o.momentum = r.number(at("momentum"), 0.0, 0.0, 1.0);
    o.dampening = r.number(at("dampening"), 0.0, 0.0, 1.0);
    o.nesterov = cfg.get_bool(at("nesterov"), false);
  } else if (o.name == "adam" || o.name == "adamw") {
    o.beta1 = r.number(at("beta1"), as_preferred ? preferred.beta1 : 0.9, 0.0, 1.0);
    o.beta2 = r.number(at("beta2"), as_preferred ? preferred.beta2 : 0.999, 0.0, 1.0);
    o.eps = r.number(at("eps"), 1e-8, 0.0, 1.0, true);
  } else if (o.name == "rmsprop") {
    o.alpha = r.number(at("alpha"), 0.99, 0.0, 1.0);
    o.eps = r.number(at("eps"), 1e-8, 0.0, 1.0, true);
    o.momentum = r.number(at("momentum"), 0.0, 0.0, 1.0);
  } else if (o.name == "adagrad") {
    o.eps = r.number(at("eps"), 1e-10, 0.0, 1.0, true);
  } else {
    o.rho = r.number(at("rho"), 0.9, 0.0, 1.0);
    o.eps = r.number(at("eps"), 1e-6, 0.0, 1.0, true);
  }
  return o;
}

ScheduleSection read_schedule(const Reader& r, const std::string& section, const std::string& shared) {
  const Config& cfg = r.cfg();
  const auto at = [&](const char* name) {
    return r.first_present(key(section, name), shared.empty() ? "" : key(shared, name));
  };
  ScheduleSection s;
  s.name = cfg.choice(at("name"), {"constant", "step", "exponential", "linear", "cosine"}, "constant");
  s.warmup_epochs = r.integer(at("warmup_epochs"), 0, 0);
  if (s.warmup_epochs > 0) s.warmup_start_factor = r.number(at("warmup_start_factor"), 0.1, 0.0, 1.0);
  if (s.name == "step") {
    s.step_epochs = r.integer(at("step_epochs"), std::nullopt, 1);
    s.gamma = r.number(at("gamma"), 0.1, 0.0, 1e6);
  } else if (s.name == "exponential") {
    s.gamma = r.number(at("gamma"), std::nullopt, 0.0, std::numeric_limits<double>::max());
  } else if (s.name == "linear") {
    s.end_factor = r.number(at("end_factor"), 0.0, 0.0, 1e6);
  } else if (s.name == "cosine") {
    s.min_lr = r.non_negative(at("min_lr"), 0.0);
  }
  return s;
}

DataSection read_data(const Reader& r, const char* normalize) {
  const Config& cfg = r.cfg();
  DataSection d;
  d.path = cfg.get_string("data.path");
  d.path_key = cfg.locate("data.path");
  d.train_split = cfg.get_string("data.train_split", "train");
  d.test_split = cfg.get_string("data.test_split", "test");
  // Exactly one batch key. An override of one replaces the other given in the file (the command line wins).
  bool per_rank = cfg.has("data.batch_size"), global = cfg.has("data.global_batch_size");
  if (per_rank && global) {
    const ConfigKey p = cfg.locate("data.batch_size"), g = cfg.locate("data.global_batch_size");
    const bool p_override = p.file == Config::kCommandLine, g_override = g.file == Config::kCommandLine;
    if (p_override != g_override) {
      (p_override ? global : per_rank) = false;
    } else {
      g.fail(str_cat("expected either data.batch_size (per rank) or data.global_batch_size, but got both (",
                     cfg.get_int("data.batch_size"), " and ", cfg.get_int("data.global_batch_size"),
                     "). Keep one of them"));
    }
  }
  if (global) {
    d.global_batch_size = r.integer("data.global_batch_size", std::nullopt, 1);
    d.batch_key = cfg.locate("data.global_batch_size");
  } else {
    d.batch_size = r.integer("data.batch_size", std::nullopt, 1);
    d.batch_key = cfg.locate("data.batch_size");
  }
  d.eval_batch_size = r.integer("data.eval_batch_size", 500, 1);
  d.cache_in_memory = cfg.choice("data.cache", {"memory", "none"}, "memory") == "memory";
  d.pad_to = r.integer("data.pad_to", 0, 0, 65536);
  d.crop_padding = r.integer("data.crop_padding", 0, 0, 65536);
  d.flip = cfg.get_bool("data.flip", false);
  d.normalize = cfg.choice("data.normalize", {"dataset", "tanh", "none"}, normalize);
  d.drop_last = cfg.get_bool("data.drop_last", true);
  d.prefetch = r.integer("data.prefetch", 2, 0, 64);
  d.validation_fraction = r.number("data.validation_fraction", 0.0, 0.0, 0.5);
  d.validation_key = cfg.locate("data.validation_fraction");
  return d;
}

AutoencoderSection read_autoencoder(const Reader& r) {
  const Config& cfg = r.cfg();
  AutoencoderSection a;
  a.architecture = cfg.choice("autoencoder.architecture", {"mlp", "conv"}, "mlp");
  a.architecture_key = cfg.locate("autoencoder.architecture");
  // Fully connected layers before the code (after the convolutions for conv).
  a.hidden = cfg.get_ints("autoencoder.hidden",
                          a.architecture == "mlp" ? std::vector<std::int64_t>{512, 256} : std::vector<std::int64_t>{});
  for (const std::int64_t h : a.hidden)
    if (h < 1) cfg.fail("autoencoder.hidden", str_cat("expected layer widths of at least 1, but got ", h));
  a.code = r.integer("autoencoder.code", 32, 1, 1 << 20);
  a.variational = cfg.get_bool("autoencoder.variational", false);
  a.loss = cfg.choice("autoencoder.loss", {"bce", "mse"}, "bce");
  a.samples = r.integer("autoencoder.samples", 64, 1, 4096);
  if (a.variational) {
    a.beta = r.number("autoencoder.beta", 1.0, 0.0, 1e6);
    return a;
  }
  a.sparsity = cfg.choice("autoencoder.sparsity", {"none", "l1", "kl"}, "none");
  a.code_activation =
      cfg.choice("autoencoder.code_activation", {"linear", "sigmoid"}, a.sparsity == "kl" ? "sigmoid" : "linear");
  if (a.sparsity == "kl" && a.code_activation != "sigmoid") {
    cfg.fail("autoencoder.code_activation",
             "expected \"sigmoid\" under autoencoder.sparsity = \"kl\" (the KL penalty needs codes in (0, 1)), "
             "but got \"linear\"");
  }
  if (a.sparsity != "none") {
    a.sparsity_weight = r.number("autoencoder.sparsity_weight", a.sparsity == "kl" ? 0.1 : 1e-3, 0.0, 1e6, true);
    if (a.sparsity == "kl") a.sparsity_target = r.number("autoencoder.sparsity_target", 0.05, 0.0, 1.0, true);
    if (a.sparsity_target >= 1.0)
      cfg.fail("autoencoder.sparsity_target", "expected a target activation below 1, but got 1");
  }
  a.noise = cfg.choice("autoencoder.noise", {"none", "gaussian", "masking"}, "none");
  if (a.noise != "none") a.noise_level = r.number("autoencoder.noise_level", 0.3, 0.0, a.noise == "masking" ? 1.0 : 1e6, true);
  if (a.noise == "masking" && a.noise_level >= 1.0)
    cfg.fail("autoencoder.noise_level", "expected a masking probability below 1, but got 1");
  a.contractive_weight = r.non_negative("autoencoder.contractive_weight", 0.0);
  return a;
}

// [cyclegan] and its four networks: two generators from [generator], two discriminators from
// [discriminator] (each network its own optimizer and schedule of those settings), Adam(2e-4, beta1 0.5) by
// default as in the paper. Pixels must be in [-1, 1] like the generators' tanh (data.normalize = "tanh").
void read_cyclegan(const Reader& r, Settings& s) {
  const Config& cfg = r.cfg();
  if (s.data.normalize != "tanh") {
    cfg.fail("data.normalize", str_cat("expected \"tanh\" for task \"cyclegan\" (the generators' outputs are in "
                                       "[-1, 1]), but got \"", s.data.normalize, "\""));
  }
  CycleGanSection& c = s.cyclegan;
  c.path_b = cfg.get_string("cyclegan.domain_b.path", "");
  c.path_b_key = cfg.locate("cyclegan.domain_b.path");
  const bool own_file = !c.path_b.empty();
  // Domain B of its own file takes every class of it unless domain_b.classes says otherwise.
  if (own_file && !cfg.has("cyclegan.domain_b.classes")) c.classes_b.clear();
  for (auto [name, classes, at] : {std::tuple{"cyclegan.domain_a.classes", &c.classes_a, &c.classes_a_key},
                                   std::tuple{"cyclegan.domain_b.classes", &c.classes_b, &c.classes_b_key}}) {
    *at = cfg.locate(name);
    if (classes->empty()) continue;
    *classes = cfg.get_ints(name, *classes);
    if (classes->empty()) cfg.fail(name, "expected at least one class, but got an empty list");
    for (const std::int64_t k : *classes)
      if (k < 0) cfg.fail(name, str_cat("expected class numbers of at least 0, but got ", k));
  }
  for (const std::int64_t k : c.classes_a) {
    if (!own_file && std::find(c.classes_b.begin(), c.classes_b.end(), k) != c.classes_b.end()) {
      cfg.fail("cyclegan.domain_b.classes",
               str_cat("expected classes apart from cyclegan.domain_a.classes, but both hold class ", k));
    }
  }
  c.lambda_cycle = r.non_negative("cyclegan.lambda_cycle", 10.0);
  c.lambda_identity = r.non_negative("cyclegan.lambda_identity", 0.5);
  c.pool_size = r.integer("cyclegan.pool_size", 50, 0, 1 << 16);
  c.samples = r.integer("cyclegan.samples", 8, 1, 256);
  c.eval_images = r.integer("cyclegan.eval_images", 256, 0);
  s.generator.model = read_model(r, "generator", {"cyclegan-resnet"});
  s.discriminator.model = read_model(r, "discriminator", {"patchgan"});
  OptimizerSection paper;
  paper.name = "adam";
  paper.lr = 2e-4;
  paper.beta1 = 0.5;
  for (auto [section, net] : {std::pair{"generator", &s.generator}, std::pair{"discriminator", &s.discriminator}}) {
    const std::string name = section;
    net->optimizer = read_optimizer(r, name + ".optimizer", "optimizer", paper);
    net->schedule = read_schedule(r, name + ".schedule", "schedule");
    net->clip_grad_norm = r.non_negative(r.first_present(name + ".clip_grad_norm", "train.clip_grad_norm"), 0.0);
  }
}

// [charlm], train.bptt_steps, and the one network's optimizer (Adam 2e-3 by default), schedule and clipping.
void read_charlm(const Reader& r, Settings& s) {
  const Config& cfg = r.cfg();
  CharLmSection& c = s.charlm;
  c.embedding = r.integer("charlm.embedding", 64, 1, 1 << 16);
  c.hidden = r.integer("charlm.hidden", 256, 1, 1 << 16);
  c.layers = r.integer("charlm.layers", 2, 1, 64);
  c.bptt_steps = r.integer("train.bptt_steps", 64, 1, 1 << 20);
  c.samples = r.integer("charlm.samples", 200, 0, 1 << 20);
  c.temperature = r.number("charlm.temperature", 0.8, 0.0, 100.0, true);
  c.prompt = cfg.get_string("charlm.prompt", "The ");
  c.prompt_key = cfg.locate("charlm.prompt");
  if (c.prompt.empty())
    cfg.fail("charlm.prompt", "expected at least one character to start from, but got \"\"");
  s.model.optimizer = read_optimizer(r, "optimizer", "", OptimizerSection{.name = "adam", .lr = 2e-3});
  s.model.schedule = read_schedule(r, "schedule", "");
  s.model.clip_grad_norm = r.non_negative("train.clip_grad_norm", 0.0);
}

// [distributed] deterministic and micro_shards, checked against what deterministic mode supports: the tasks
// whose parameters each get one gradient per backward from ops that know micro-shards (classifiers that are
// not recurrent, unconditional GANs without a gradient penalty), with batch norm over the whole batch.
void read_deterministic(const Reader& r, Settings& s) {
  const Config& cfg = r.cfg();
  s.distributed.deterministic = cfg.get_bool("distributed.deterministic", false);
  if (!s.distributed.deterministic) {
    if (cfg.has("distributed.micro_shards"))
      cfg.fail("distributed.micro_shards",
               "expected it only under distributed.deterministic = true (the default, "
               "fast mode has no micro-shards), but distributed.deterministic is false");
    return;
  }
  s.distributed.micro_shards = r.integer("distributed.micro_shards", 8, 1, 1 << 20);
  s.distributed.micro_shards_key = cfg.locate("distributed.micro_shards");
  const std::int64_t m = s.distributed.micro_shards;
  if ((m & (m - 1)) != 0)
    cfg.fail("distributed.micro_shards",
             str_cat("expected a power of two (the micro-shards are summed in a binary tree), but got ", m));
  if (!s.distributed.sync_batchnorm) {
    cfg.fail("distributed.sync_batchnorm",
             "expected true (or absent) under distributed.deterministic = true: per-rank batch statistics "
             "depend on the world size, which deterministic mode must not");
  }
  const auto refuse = [&](std::string_view key, const std::string& what) {
    cfg.fail(key,
             str_cat("distributed.deterministic = true does not support ", what,
                     " yet; it supports classifiers that are not recurrent and unconditional GANs without a "
                     "gradient penalty"));
  };
  if (s.task != "classifier" && s.task != "gan") refuse("task", str_cat("task \"", s.task, "\""));
  if (s.task == "classifier") {
    const std::string& name = s.model.model.name;
    if (name == "rnn" || name == "rnn-relu" || name == "lstm" || name == "gru")
      refuse("model.name",
             str_cat("recurrent models (\"", name, "\": a weight gets one gradient per time step)"));
  }
  if (s.task == "gan") {
    if (s.gan.loss == "wasserstein-gp") refuse("gan.loss", "the gradient penalty (a double backward)");
    if (s.gan.conditional) refuse("gan.conditional", "conditional GANs (the label embedding's gradient)");
  }
}

}  // namespace

Settings read_settings(const Config& cfg) {
  const Reader r(cfg);
  Settings s;
  s.task = cfg.choice("task", {"classifier", "gan", "autoencoder", "pixelcnn", "cyclegan", "charlm"},
                      "classifier");

  s.run.seed = static_cast<std::uint64_t>(r.integer("run.seed", 0, 0));
  s.seed_key = cfg.locate("run.seed");
  s.run.threads = static_cast<int>(r.integer("run.threads", 0, 0, 4096));
  s.run.output = cfg.get_string("run.output", "runs/latest");
  if (s.run.output.empty()) cfg.fail("run.output", "expected a folder, but got an empty path");
  s.output_key = cfg.locate("run.output");
  s.run.epochs = r.integer("run.epochs", 1, 1);
  s.run.max_steps = r.integer("run.max_steps", 0, 0);
  s.run.sample_log = cfg.get_bool("run.sample_log", false);
  s.run.device = cfg.choice("run.device", {"cpu", "cuda", "auto"}, "cpu");
  s.run.device_key = cfg.locate("run.device");
  s.run.precision = cfg.choice("run.precision", {"f32", "bf16"}, "f32");

  s.distributed.bucket_mb = r.number("distributed.bucket_mb", 4.0, 0.0, 1024.0, true);
  s.distributed.sync_batchnorm = cfg.get_bool("distributed.sync_batchnorm", true);
  s.distributed.timeout_s = r.number("distributed.timeout_s", 300.0, 0.0, 1e9, true);

  // An autoencoder and PixelCNN model intensities in [0, 1].
  const bool intensities = s.task == "autoencoder" || s.task == "pixelcnn";
  s.data = read_data(r, intensities ? "none" : s.task == "cyclegan" ? "tanh" : "dataset");
  if (intensities && s.data.normalize != "none") {
    cfg.fail("data.normalize", str_cat("expected \"none\" for task \"", s.task, "\" (it models intensities in [0, 1]), "
                                       "but got \"", s.data.normalize, "\""));
  }

  s.checkpoint.every_steps = r.integer("checkpoint.every_steps", 0, 0);
  s.checkpoint.keep_last = static_cast<int>(r.integer("checkpoint.keep_last", 3, 1, 1000000));
  s.checkpoint.keep_every = r.integer("checkpoint.keep_every", 0, 0);
  s.checkpoint.dir = cfg.get_string("checkpoint.dir", (s.run.output / "checkpoints").string());

  if (s.task == "classifier") {
    s.model.model = read_model(r, "model",
                               {"mlp", "lenet5", "resnet20", "resnet32", "resnet56", "resnet110", "resnet18",
                                "resnet34", "resnet50", "vgg11", "vgg16", "rnn", "rnn-relu", "lstm", "gru"});
    s.model.optimizer = read_optimizer(r, "optimizer", "", OptimizerSection{.name = ""});
    s.model.schedule = read_schedule(r, "schedule", "");
    s.model.clip_grad_norm = r.non_negative("train.clip_grad_norm", 0.0);
    s.train.label_smoothing = r.number("train.label_smoothing", 0.0, 0.0, 1.0);
    if (s.train.label_smoothing == 1.0)
      cfg.fail("train.label_smoothing", "expected a value below 1, but got 1");
    s.train.early_stopping_patience = r.integer("train.early_stopping_patience", 0, 0);
    s.train.adversarial_epsilon = r.number("train.adversarial_epsilon", 0.0, 0.0, 1.0);
    s.train.input_noise = r.non_negative("train.input_noise", 0.0);
    s.train.label_noise = r.number("train.label_noise", 0.0, 0.0, 1.0);
  } else if (s.task == "pixelcnn") {
    s.pixelcnn.task_key = cfg.locate("task");
    s.pixelcnn.width = r.integer("pixelcnn.width", 64, 2, 4096);
    if (s.pixelcnn.width % 2 != 0) cfg.fail("pixelcnn.width", str_cat("expected an even width, but got ", s.pixelcnn.width));
    s.pixelcnn.blocks = r.integer("pixelcnn.blocks", 5, 0, 1000);
    s.pixelcnn.samples = r.integer("pixelcnn.samples", 16, 0, 1024);
    s.model.optimizer = read_optimizer(r, "optimizer", "", OptimizerSection{.name = "adam", .lr = 1e-3});
    s.model.schedule = read_schedule(r, "schedule", "");
    s.model.clip_grad_norm = r.non_negative("train.clip_grad_norm", 0.0);
  } else if (s.task == "autoencoder") {
    s.autoencoder = read_autoencoder(r);
    s.model.optimizer = read_optimizer(r, "optimizer", "", OptimizerSection{.name = "adam", .lr = 1e-3});
    s.model.schedule = read_schedule(r, "schedule", "");
    s.model.clip_grad_norm = r.non_negative("train.clip_grad_norm", 0.0);
  } else if (s.task == "cyclegan") {
    read_cyclegan(r, s);
  } else if (s.task == "charlm") {
    read_charlm(r, s);
  } else {
    s.gan.latent = r.integer("gan.latent", 100, 1, 1 << 20);
    s.gan.loss = cfg.choice("gan.loss", {"non-saturating", "minimax", "wasserstein", "wasserstein-gp"},
                            "non-saturating");
    const bool clipped = s.gan.loss == "wasserstein", penalised = s.gan.loss == "wasserstein-gp";
    s.gan.d_steps = r.integer("gan.d_steps", clipped || penalised ? 5 : 1, 1, 1000);
    if (clipped) s.gan.weight_clip = r.number("gan.weight_clip", 0.01, 0.0, std::numeric_limits<double>::max());
    if (penalised) s.gan.gp_lambda = r.number("gan.gp_lambda", 10.0, 0.0, 1e6, true);
    s.gan.samples = r.integer("gan.samples", 64, 1, 4096);
    if (!clipped && !penalised) s.gan.real_label = r.number("gan.real_label", 1.0, 0.0, 1.0, true);
    s.gan.ema_decay = r.number("gan.ema_decay", 0.0, 0.0, 1.0);
    if (s.gan.ema_decay == 1.0) cfg.fail("gan.ema_decay", "expected a decay below 1 (0: none), but got 1");
    s.gan.conditional = cfg.get_bool("gan.conditional", false);
    s.gan.conditional_key = cfg.locate("gan.conditional");
    s.generator.model = read_model(r, "generator", {"dcgan", "mlp"});
    s.discriminator.model = read_model(r, "discriminator", {"dcgan", "wgan-critic", "mlp"});
    if (penalised && s.discriminator.model.name == "dcgan") {
      s.discriminator.model.name_key.fail(
          "expected a critic without batch norm under gan.loss = \"wasserstein-gp\" (the penalty is taken per "
          "image, and batch norm makes each image's score depend on the rest of its batch), but the dcgan "
          "discriminator has batch norm. Use \"wgan-critic\" (norm = \"layer\" or \"none\") or \"mlp\"");
    }
    // The papers' optimizers: DCGAN's Adam(2e-4, beta1 0.5); WGAN's RMSprop(5e-5); WGAN-GP's Adam(1e-4,
    // beta1 0, beta2 0.9).
    OptimizerSection paper;
    paper.name = clipped ? "rmsprop" : "adam";
    paper.lr = clipped ? 5e-5 : penalised ? 1e-4 : 2e-4;
    paper.beta1 = penalised ? 0.0 : 0.5;
    if (penalised) paper.beta2 = 0.9;
    for (auto [section, net] : {std::pair{"generator", &s.generator}, std::pair{"discriminator", &s.discriminator}}) {
      const std::string name = section;
      net->optimizer = read_optimizer(r, name + ".optimizer", "optimizer", paper);
      net->schedule = read_schedule(r, name + ".schedule", "schedule");
      net->clip_grad_norm = r.non_negative(r.first_present(name + ".clip_grad_norm", "train.clip_grad_norm"), 0.0);
    }
  }
  read_deterministic(r, s);
  cfg.reject_unknown();
  s.config_text = cfg.to_string();
  return s;
}

}  // namespace lockstep::launch
