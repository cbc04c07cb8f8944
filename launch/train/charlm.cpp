// The character-level language model task: teacher forcing (inputs the characters t, targets t + 1) with
// truncated BPTT over the text's streams (io/data/token_streams.h), the recurrent state carried across the
// consecutive chunks of each stream and detached between them, and checkpointed; after each epoch the test
// split's bits per character (against an add-one-smoothed bigram model of the training text) and a sample.
#include "launch/train/charlm.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numbers>

#include "distributed/data_parallel.h"
#include "io/data/token_streams.h"
#include "io/h5/h5.h"
#include "io/model/model_file.h"
#include "io/state/state_file.h"
#include "launch/train/task.h"
#include "src/autograd/grad_mode.h"
#include "src/optim/clip.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {

std::shared_ptr<models::CharLM> make_char_lm(const CharLmSection& c, const std::u32string& vocabulary) {
  return std::make_shared<models::CharLM>(
      vocabulary, models::CharLmOptions{.embedding = c.embedding, .hidden = c.hidden, .layers = c.layers});
}

LoadedCharLm load_char_lm(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  const io::ModelFileInfo info = io::read_model_file_info(file);
  if (info.kind != "charlm") {
    throw ValueError(str_cat("expected a character model's file (kind \"charlm\"), but ", in_quotes(file),
                             " holds a model of kind \"", info.kind, "\""));
  }
  LoadedCharLm loaded{nullptr, read_settings(Config::parse(info.config, file.string(), overrides))};
  std::u32string vocabulary;
  {
    const io::h5::File h5file(file, io::h5::Access::kRead);
    const nn::StateDict state = io::read_state_dict(h5file.root().group("model"));
    const Tensor* stored = state.find("vocabulary");
    if (stored == nullptr) {
      throw IoError(
          str_cat("expected the vocabulary at /model/vocabulary in ", in_quotes(file), ", but it is missing"),
          file.string(), "/model/vocabulary");
    }
    for (const std::int64_t c : stored->to_vector<std::int64_t>())
      vocabulary.push_back(static_cast<char32_t>(c));
  }
  loaded.model = make_char_lm(loaded.settings.charlm, vocabulary);
  io::load_model_group(file, "model", *loaded.model);
  return loaded;
}

TextLoss text_loss(models::CharLM& model, std::span<const std::uint8_t> tokens, std::int64_t streams,
                   std::int64_t steps, int rank, int world) {
  LOCKSTEP_CHECK(streams >= 1 && steps >= 1 && world >= 1 && rank >= 0 && rank < world, ValueError,
                 "text_loss: expected streams >= 1, steps >= 1 and 0 <= rank < world, but got ", streams,
                 ", ", steps, ", ", rank, ", ", world);
  const auto total = static_cast<std::int64_t>(tokens.size());
  TextLoss loss;
  if (total < 2) return loss;
  const std::int64_t predictions = total - 1;
  streams = std::min(streams, predictions);
  const std::int64_t length = predictions / streams;
  NoGradGuard no_grad;
  const bool training = model.is_training();
  model.eval();
  // Streams [first, first + count) of `len` predictions each, the first predicting position begin + 1.
  const auto run = [&](std::int64_t begin, std::int64_t count, std::int64_t len) {
    if (count <= 0 || len <= 0) return;
    models::LstmState state;
    for (std::int64_t at = 0; at < len; at += steps) {
      const std::int64_t width = std::min(steps, len - at);
      std::vector<std::int64_t> in(static_cast<std::size_t>(count * width)), out(in.size());
      for (std::int64_t s = 0; s < count; ++s) {
        for (std::int64_t t = 0; t < width; ++t) {
          const std::int64_t position = begin + s * len + at + t;
          in[s * width + t] = tokens[position];
          out[s * width + t] = tokens[position + 1];
        }
      }
      const Tensor logits = model.forward(from_vector(in, {count, width}), state);
      loss.nats += models::next_token_loss(logits, from_vector(out, {count, width}), Reduction::kSum).item();
      loss.tokens += static_cast<double>(count * width);
    }
  };
  const std::int64_t first = streams * rank / world, last = streams * (rank + 1) / world;
  run(first * length, last - first, length);
  if (rank == world - 1) run(streams * length, 1, predictions - streams * length);  // the remainder
  if (training) model.train();
  return loss;
}

std::string sample_text(models::CharLM& model, const std::string& prompt, std::int64_t length,
                        double temperature, std::uint64_t seed, const std::string& what) {
  std::u32string text;
  try {
    text = io::decode_utf8({reinterpret_cast<const std::uint8_t*>(prompt.data()), prompt.size()}, what);
  } catch (const IoError& e) {
    throw ValueError(str_cat(what, ": expected UTF-8 text, but got another encoding (", e.what(), ")"));
  }
  LOCKSTEP_CHECK(!text.empty(), ValueError, what,
                 ": expected at least one character to start from, but got none");
  const std::u32string vocabulary = model.vocabulary();
  const std::vector<std::int64_t> ids = io::encode_tokens(text, vocabulary, what);
  Generator generator(seed);
  std::u32string drawn;
  for (const std::int64_t id : models::sample_char_lm(model, ids, length, temperature, &generator))
    drawn.push_back(vocabulary[static_cast<std::size_t>(id)]);
  return io::encode_utf8(drawn);
}

namespace {

// Sums over an epoch's steps: [nats x tokens, tokens, steps].
enum Sum : std::size_t { kNats, kTokens, kSteps };

double bits(double nats) { return nats / std::numbers::ln2; }

// The recurrent state of every stream of the global batch ({h_0, c_0, h_1, ...} as buffers "h0", "c0", ...
// [G, H]), gathered from the ranks before a checkpoint: the part of trainer.h5 (TrainingParts::states) that
// lets a resumed run continue its streams exactly.
class CarriedState final : public nn::Module {
 public:
  CarriedState(std::int64_t layers, std::int64_t streams, std::int64_t hidden) : Module("CarriedState") {
    for (std::int64_t l = 0; l < layers; ++l) {
      tensors_.push_back(register_buffer(str_cat("h", l), zeros({streams, hidden})));
      tensors_.push_back(register_buffer(str_cat("c", l), zeros({streams, hidden})));
    }
  }
  // Buffers in place (the checkpoint loads into them; the names keep the order h0, c0, h1...).
  const std::vector<Tensor>& tensors() const { return tensors_; }

 private:
  std::vector<Tensor> tensors_;
};

class CharLmTask final : public Task {
 public:
  explicit CharLmTask(const TaskContext& c)
      : settings_(c.settings),
        run_(c.run),
        train_(c.data.train_text),
        test_(c.data.test_text),
        model_(make_char_lm(c.settings.charlm, c.data.train_text->vocabulary())),
        dp_(model_, c.run.group, c.run.reducer),
        optimizer_(make_optimizer(c.settings.model.optimizer, *model_)),
        params_(model_->parameters()),
        batch_(c.data.train_options.batch_size),
        eval_streams_(c.data.test_options.batch_size) {
    // The prompt is checked before anything trains.
    try {
      io::encode_tokens(
          io::decode_utf8({reinterpret_cast<const std::uint8_t*>(settings_.charlm.prompt.data()),
                           settings_.charlm.prompt.size()},
                          "charlm.prompt"),
          train_->vocabulary(), "charlm.prompt");
    } catch (const Error& e) {
      settings_.charlm.prompt_key.fail(e.what());
    }
    if (test_)
      bigram_bits_ = io::bigram_bits_per_char(train_->tokens(), test_->tokens(), model_->vocabulary_size());
  }

  TrainingParts parts() override {
    return {"charlm",
            {{"model", model_.get()}},
            {{"optimizer", optimizer_.get()}},
            {{"schedule", scheduler_.get()}},
            {{"bptt_state", carried_.get()}}};
  }

  std::string describe() const override {
    const CharLmSection& c = settings_.charlm;
    return str_cat("character LSTM (vocabulary ", model_->vocabulary_size(), ", embedding ", c.embedding,
                   ", ", c.layers, " x ", c.hidden, ", bptt ", c.bptt_steps, "): ", model_->num_parameters(),
                   " parameters");
  }

  std::unique_ptr<io::BatchSource> training_batches(const DataSplits& data) override {
    const std::int64_t steps = settings_.charlm.bptt_steps;
    auto streams = std::make_unique<io::TokenStreams>(
        train_, io::StreamOptions{.batch_size = data.train_options.batch_size,
                                  .steps = steps,
                                  .seed = run_.seed,
                                  .rank = run_.rank(),
                                  .world = run_.world()});
    if (streams->batches_per_epoch() == 0) {
      const std::int64_t global = data.train_options.batch_size * run_.world();
      settings_.data.batch_key.fail(str_cat("expected streams of at least train.bptt_steps = ", steps,
                                            " characters, but the ", train_->size(),
                                            " training characters cut into ", global, " streams leave ",
                                            streams->stream_length(), " per stream"));
    }
    // The per-rank batch after any resume at another world size (the global batch is the saved one).
    batch_ = data.train_options.batch_size;
    carried_ = std::make_unique<CarriedState>(settings_.charlm.layers, batch_ * run_.world(),
                                              settings_.charlm.hidden);
    return streams;
  }

  void start(std::int64_t steps_per_epoch) override {
    steps_per_epoch_ = steps_per_epoch;
    scheduler_ = make_scheduler(settings_.model.schedule, *optimizer_, steps_per_epoch, run_.epochs);
  }

  std::vector<std::string> sum_names() const override { return {"the cross-entropy", "characters", "steps"}; }

  std::int64_t step(const io::Batch& batch, std::int64_t step, StepSums& sums) override {
    if ((step - 1) % steps_per_epoch_ == 0) state_.clear();  // every epoch starts its streams afresh
    const std::int64_t width = batch.tokens.size(1) - 1;
    const Tensor inputs = batch.tokens.slice(1, 0, width), targets = batch.tokens.slice(1, 1, width + 1);
    state_ = models::detach(state_);  // truncated BPTT: no gradient into the previous chunk
    dp_.prepare_forward();
    const Tensor loss = models::next_token_loss(model_->forward(inputs, state_), targets);
    optimizer_->zero_grad();
    loss.backward();  // averages the gradients over the ranks
    if (settings_.model.clip_grad_norm > 0) optim::clip_grad_norm_(params_, settings_.model.clip_grad_norm);
    optimizer_->step();
    scheduler_->step();
    const auto n = static_cast<double>(inputs.numel());
    sums.add(kNats, loss, n);
    sums.add(kTokens, n);
    sums.add(kSteps, 1);
    return inputs.numel();
  }

  void before_save() override {
    const std::vector<Tensor>& global = carried_->tensors();
    for (std::size_t i = 0; i < global.size(); ++i) {
      const Tensor mine = i < state_.size() && state_[i].defined() ? state_[i].detach().contiguous()
                                                                   : zeros({batch_, settings_.charlm.hidden});
      const Tensor gathered = zeros(global[i].shape());
      run_.group->all_gather(mine, gathered)->wait();
      NoGradGuard no_grad;
      Tensor target = global[i];  // a handle on the buffer's storage
      target.copy_(gathered);
    }
  }

  void restore(const io::TrainerState& /*state*/) override {
    // The checkpoint loaded every stream's state into carried_; this rank continues its own rows.
    state_.clear();
    for (const Tensor& t : carried_->tensors())
      state_.push_back(t.slice(0, run_.rank() * batch_, (run_.rank() + 1) * batch_).clone());
  }

  std::string progress_text(std::span<const double> sums) const override {
    return str_cat(format_fixed(bits(sums[kNats] / std::max(sums[kTokens], 1.0)), 3), " bits/char");
  }

  EpochEnd end_epoch(std::int64_t epoch, std::int64_t /*step*/, std::span<const double> job,
                     RunLog* log) override {
    EpochEnd e;
    const double train_bits = bits(job[kNats] / std::max(job[kTokens], 1.0));
    e.fields = {{"train_bits_per_char", train_bits}};
    e.line = str_cat("train ", format_fixed(train_bits, 4), " bits/char");
    if (test_) {
      TextLoss loss = text_loss(*model_, test_->tokens(), eval_streams_, settings_.charlm.bptt_steps,
                                run_.rank(), run_.world());
      std::vector<double> sums = {loss.nats, loss.tokens};
      sum_over_ranks(*run_.group, sums);
      const double test_bits = bits(sums[0] / std::max(sums[1], 1.0));
      e.fields.emplace_back("test_bits_per_char", test_bits);
      e.fields.emplace_back("bigram_test_bits_per_char", bigram_bits_);
      e.line +=
          str_cat("  test ", format_fixed(test_bits, 4), " (bigram ", format_fixed(bigram_bits_, 4), ")");
      e.score = -test_bits;  // lower is better: the best model and early stopping watch it
      e.score_name = "negative test bits/char";
    }
    if (log != nullptr && settings_.charlm.samples > 0) {  // rank 0, its own stream: training untouched
      const CharLmSection& c = settings_.charlm;
      const std::string text =
          sample_text(*model_, c.prompt, c.samples, c.temperature,
                      run_.seed ^ 0x43484152ULL ^ static_cast<std::uint64_t>(epoch), "charlm.prompt");
      const std::filesystem::path path = run_.output / str_cat("samples_epoch_", epoch + 1, ".txt");
      std::ofstream(path) << c.prompt << text << '\n';
      e.line += str_cat("  sample ", path.string());
    }
    return e;
  }

  // 1e3 nats per character (against ln 256 = 5.5 for a uniform guess).
  std::string exploded(std::span<const double> added, std::int64_t n) const override {
    return beyond("the cross-entropy", added[kNats] / static_cast<double>(std::max<std::int64_t>(n, 1)), 1e3,
                  " nats per character");
  }

  std::string divergence_hint() const override { return "Lower optimizer.lr, or set train.clip_grad_norm"; }

  std::string summary(const std::vector<std::pair<std::string, double>>& last) const override {
    std::string text;
    double test_bits = 0.0;
    for (const auto& [name, value] : last) {
      if (name == "bigram_test_bits_per_char") continue;
      if (name == "test_bits_per_char") test_bits = value;
      text += str_cat(text.empty() ? "" : ", ", name.substr(0, name.find('_')), " ", format_fixed(value, 4),
                      " bits/char");
    }
    if (test_ && test_bits > 0.0) {
      const double lower = 100.0 * (1.0 - test_bits / bigram_bits_);
      text += str_cat(", add-one bigram ", format_fixed(bigram_bits_, 4), " bits/char (the model ",
                      format_fixed(std::abs(lower), 1), lower >= 0 ? "% lower)" : "% higher)");
    }
    return text;
  }

 private:
  const launch::Settings& settings_;
  const RunSettings& run_;
  std::shared_ptr<io::TextDataset> train_, test_;
  std::shared_ptr<models::CharLM> model_;
  distributed::DataParallel dp_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<optim::LRScheduler> scheduler_;
  std::vector<Tensor> params_;
  std::int64_t batch_;         // streams on this rank
  std::int64_t eval_streams_;  // data.eval_batch_size
  std::int64_t steps_per_epoch_ = 1;
  double bigram_bits_ = 0.0;
  models::LstmState state_;                // this rank's streams' state after the last step
  std::unique_ptr<CarriedState> carried_;  // built with the batch, in training_batches
};

}  // namespace

std::unique_ptr<Task> make_charlm_task(const TaskContext& context) {
  return std::make_unique<CharLmTask>(context);
}

}  // namespace lockstep::launch
