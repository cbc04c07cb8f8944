// Progress bar on terminals, plain lines elsewhere.
#include "launch/train/progress.h"

#include <unistd.h>

#include <cmath>

#include "src/core/error.h"

namespace lockstep::launch {

std::string format_duration(double seconds) {
  const auto s = static_cast<std::int64_t>(std::llround(std::max(seconds, 0.0)));
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  } else if (s >= 60) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(s));
  }
  return text;
}

Progress::Progress(std::FILE* out, Style style, double line_every_s)
    : out_(out),
      bar_(out != nullptr && (style == Style::kBar || (style == Style::kAuto && isatty(fileno(out)) != 0))),
      line_every_s_(line_every_s) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::start(std::string label, std::int64_t total, std::int64_t done) {
  label_ = std::move(label);
  total_ = total;
  first_ = done;
  images_ = 0;
  start_ = std::chrono::steady_clock::now();
  last_draw_s_ = 0.0;
}

void Progress::update(std::int64_t done, std::int64_t images, const std::function<std::string()>& metrics) {
  images_ += images;
  if (out_ == nullptr) return;
  const double t = elapsed_s();
  const bool last = done == total_;
  if (!last && t - last_draw_s_ < (bar_ ? 0.25 : line_every_s_)) return;
  last_draw_s_ = t;
  const std::string text = metrics();
  const double rate = t > 0 ? static_cast<double>(images_) / t : 0.0;
  // Time left from this phase's own pace (a resumed epoch starts at `first_`).
  const std::int64_t here = done - first_;
  const double left = here > 0 ? t * static_cast<double>(total_ - done) / static_cast<double>(here) : 0.0;
  if (bar_) {
    constexpr int kWidth = 24;
    const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : kWidth;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(out_, "\r\033[2K%s [%s] %lld/%lld  %s  %.0f img/s  %s left", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), text.c_str(), rate,
                 format_duration(left).c_str());
    bar_visible_ = true;
  } else if (!last) {
    std::fprintf(out_, "%s step %lld/%lld  %s  %.0f img/s  %s left\n", label_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), text.c_str(), rate,
                 format_duration(left).c_str());
  }
  std::fflush(out_);
}

void Progress::finish(const std::string& summary) {
  const double t = elapsed_s();
  print(str_cat(label_, "  ", summary, "  ",
                static_cast<std::int64_t>(std::llround(images_ / std::max(t, 1e-9))), " img/s  ",
                format_duration(t)));
}

void Progress::print(const std::string& line) {
  if (out_ == nullptr) return;
  if (bar_visible_) std::fputs("\r\033[2K", out_);
  bar_visible_ = false;
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

}  // namespace lockstep::launch
