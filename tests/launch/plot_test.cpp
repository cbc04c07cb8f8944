// `lockstep plot`: figures drawn from a small synthetic run folder are valid PNG files of the requested size
// with content; a bad run folder, a bad line and a log without figures fail with errors that name them.
#include "launch/plot/plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/image/png.h"
#include "launch/cli/commands.h"
#include "launch/cli/dispatch.h"
#include "src/core/error.h"
#include "src/tensor/tensor.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A classifier-like log of 12 epochs (losses over two decades, so a log axis), a GAN-like Fréchet distance,
// and confusion matrices in the last two records (the latest one is drawn).
std::string synthetic_log() {
  std::string text;
  for (int e = 1; e <= 12; ++e) {
    const double loss = 2.0 * std::exp(-0.45 * e);
    text +=
        "{\"step\":" + std::to_string(100 * e) + ",\"epoch\":" + std::to_string(e) +
        ",\"train_loss\":" + std::to_string(loss) + ",\"train_accuracy\":" + std::to_string(1 - loss / 2.5) +
        ",\"lr\":" + std::to_string(0.1 * std::pow(0.7, e)) + ",\"test_loss\":" + std::to_string(loss * 1.2) +
        ",\"test_accuracy\":" + std::to_string(0.95 - loss / 3) +
        ",\"frechet_distance\":" + std::to_string(100.0 / e) + ",\"never_finite\":null" +
        ",\"grad_norm\":" + (e == 3 ? std::string("null") : std::to_string(1.0 + 0.5 / e));
    if (e >= 11) text += ",\"test_confusion\":[[50,3,1],[4,40,6],[0,2," + std::to_string(40 + e) + "]]";
    text += "}\n";
  }
  return text + "{\"step\":1300,\"epo";  // a torn last line (a killed run)
}

// Width and height from the IHDR chunk, after checking the PNG signature.
std::pair<std::uint32_t, std::uint32_t> png_size(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> head(24);
  in.read(reinterpret_cast<char*>(head.data()), 24);
  const unsigned char signature[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  EXPECT_TRUE(std::equal(signature, signature + 8, head.begin())) << path;
  EXPECT_EQ(std::string(head.begin() + 12, head.begin() + 16), "IHDR") << path;
  const auto be = [&](int at) {
    return (std::uint32_t{head[at]} << 24) | (std::uint32_t{head[at + 1]} << 16) |
           (std::uint32_t{head[at + 2]} << 8) | std::uint32_t{head[at + 3]};
  };
  return {be(16), be(20)};
}

TEST(Plot, SyntheticRunGivesValidPngsOfTheRequestedSize) {
  test::TempDir dir;
  write_text(dir / "metrics.jsonl", synthetic_log());
  const std::vector<MetricsRecord> records = read_metrics(dir.path());
  ASSERT_EQ(records.size(), 12u);
  EXPECT_EQ(records.back().matrices.size(), 1u);
  const std::vector<fs::path> files = plot_metrics(records, dir / "figures", 900, 500);
  std::vector<std::string> names;
  for (const fs::path& f : files) names.push_back(f.filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"loss.png", "accuracy.png", "lr.png", "frechet.png",
                                             "grad_norm.png", "confusion.png"}));
  for (const fs::path& f : files) {
    ASSERT_TRUE(fs::exists(f)) << f;
    EXPECT_GT(fs::file_size(f), 2000u) << f;
    const auto [w, h] = png_size(f);
    EXPECT_EQ(h, 500u) << f;
    EXPECT_EQ(w, f.filename() == "confusion.png" ? 500u : 900u) << f;
    // Decoded, the image has drawn content: many pixels that are not the white background.
    const Tensor image = io::read_png(f);
    EXPECT_EQ(image.size(image.dim() - 1), static_cast<std::int64_t>(w)) << f;
    std::int64_t inked = 0;
    for (const std::int64_t v : image.to_vector<std::int64_t>()) inked += v < 200;
    EXPECT_GT(inked, 2000) << f;
    EXPECT_FALSE(fs::exists(f.string() + ".tmp")) << f;
  }
}

TEST(Plot, BadRunFoldersAndLinesNameTheProblem) {
  test::TempDir dir;
  test::expect_error<IoError>([&] { read_metrics(dir / "missing"); }, {"missing", "does not exist"});
  test::expect_error<IoError>([&] { read_metrics(dir.path()); }, {"metrics.jsonl", "does not exist"});
  write_text(dir / "file", "x");
  test::expect_error<IoError>([&] { read_metrics(dir / "file"); }, {"is not a folder"});
  write_text(dir / "metrics.jsonl", "{\"step\":1,\"epoch\":1,\"train_loss\":1}\n[1,2]\n");
  test::expect_error<IoError>([&] { read_metrics(dir.path()); }, {"metrics.jsonl:2", "numeric \"step\""});
  write_text(dir / "metrics.jsonl", "{\"step\":1,\"train_loss\":1}\n{\"step\": oops}\n");
  EXPECT_THROW(read_metrics(dir.path()), IoError);
  // Records without any figure (only the epoch): nothing to draw.
  write_text(dir / "metrics.jsonl", "{\"step\":1,\"epoch\":1}\n");
  test::expect_error<ValueError>([&] { plot_metrics(read_metrics(dir.path()), dir / "out"); },
                                 {"no", "figures"});
  EXPECT_FALSE(fs::exists(dir / "out" / "loss.png"));
}

TEST(Plot, CommandLineWritesIntoOutputAndFailsCleanly) {
  test::TempDir dir;
  write_text(dir / "metrics.jsonl", synthetic_log());
  constexpr Command kCommands[] = {{"plot", "plot", run_plot}};
  std::ostringstream out, err;
  EXPECT_EQ(run_cli(kCommands, {"plot", dir.path().string(), "--output", (dir / "png").string()}, out, err),
            0)
      << err.str();
  EXPECT_TRUE(fs::exists(dir / "png" / "confusion.png"));
  EXPECT_TRUE(fs::exists(dir / "png" / "loss.png"));
  EXPECT_FALSE(fs::exists(dir / "loss.png"));
  std::ostringstream out2, err2;
  EXPECT_EQ(run_cli(kCommands, {"plot", (dir / "nowhere").string()}, out2, err2), 1);
  EXPECT_NE(err2.str().find("nowhere' does not exist"), std::string::npos) << err2.str();
  std::ostringstream out3, err3;
  EXPECT_EQ(run_cli(kCommands, {"plot", dir.path().string(), "--width", "50"}, out3, err3), 2);
  EXPECT_NE(err3.str().find("--width"), std::string::npos) << err3.str();
}

}  // namespace
}  // namespace lockstep::launch
