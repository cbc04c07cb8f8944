// Reading metrics.jsonl and drawing its figures with PLplot (pngcairo): line plots with titles, axis labels,
// legends and a log scale for figures spanning more than a decade; the confusion matrix as a heat map with
// its counts. PLplot is not thread-safe and exits the process on its own internal errors, so every input is
// checked here before PLplot sees it, and one stream is used at a time.
#include "launch/plot/plot.h"

#include <plplot/plstream.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "io/json/json.h"
#include "src/core/error.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;

double number_of(const io::JsonValue& v) {
  if (v.kind == io::JsonValue::Kind::kNull) return std::numeric_limits<double>::quiet_NaN();
  double d = 0.0;
  std::from_chars(v.text.data(), v.text.data() + v.text.size(), d);
  return d;
}

// A matrix: an array of arrays of numbers, all rows of one length; nullopt for anything else.
std::optional<std::vector<std::vector<double>>> matrix_of(const io::JsonValue& v) {
  if (v.kind != io::JsonValue::Kind::kArray || v.items.empty()) return std::nullopt;
  std::vector<std::vector<double>> m;
  for (const io::JsonValue& row : v.items) {
    if (row.kind != io::JsonValue::Kind::kArray || row.items.size() != v.items.front().items.size())
      return std::nullopt;
    std::vector<double> values;
    for (const io::JsonValue& x : row.items) {
      if (x.kind != io::JsonValue::Kind::kNumber) return std::nullopt;
      values.push_back(number_of(x));
    }
    m.push_back(std::move(values));
  }
  return m;
}

// The colours of the curves (Tableau's ten), and the fixed colours, as cmap0 indices.
constexpr int kBlack = 1, kGrid = 2, kWhite = 3, kFirstCurve = 4;
constexpr int kPalette[][3] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                               {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                               {188, 189, 34},  {23, 190, 207}};
constexpr int kCurves = static_cast<int>(std::size(kPalette));

// "pngcairo" among PLplot's loadable devices (plplot-driver-cairo).
void require_png_driver() {
  const char** menu = nullptr;
  const char** names = nullptr;
  int count = 64;
  std::vector<const char*> menu_buffer(64), name_buffer(64);
  menu = menu_buffer.data();
  names = name_buffer.data();
  plgDevs(&menu, &names, &count);
  for (int i = 0; i < count; ++i)
    if (std::string(names[i]) == "pngcairo") return;
  throw IoError(
      "plot: expected PLplot's \"pngcairo\" device, but it is not installed. Install the Debian package "
      "plplot-driver-cairo (launch/setup.sh does)",
      "pngcairo");
}

// One PNG written through a temporary name and renamed into place when the stream ends.
class Figure {
 public:
  Figure(const fs::path& path, int width, int height) : path_(path), temp_(path.string() + ".tmp") {
    plstream& stream_ = stream_holder_.emplace();
    stream_.sdev("pngcairo");
    stream_.sfnam(temp_.c_str());
    stream_.spage(0, 0, width, height, 0, 0);
    stream_.scolbg(255, 255, 255);
    stream_.scol0(kBlack, 30, 30, 30);
    stream_.scol0(kGrid, 215, 215, 215);
    stream_.scol0(kWhite, 255, 255, 255);
    stream_.scmap0n(kFirstCurve + kCurves);
    stream_.scol0(0, 255, 255, 255);
    stream_.scol0(kBlack, 30, 30, 30);
    stream_.scol0(kGrid, 215, 215, 215);
    stream_.scol0(kWhite, 255, 255, 255);
    for (int i = 0; i < kCurves; ++i)
      stream_.scol0(kFirstCurve + i, kPalette[i][0], kPalette[i][1], kPalette[i][2]);
    stream_.init();
    stream_.adv(0);
  }
  plstream& operator*() { return *stream_holder_; }
  // Ends the page, flushes the file and renames it; IoError when it was not written.
  fs::path finish() {
    stream_holder_->eop();
    stream_holder_.reset();
    finished_ = true;
    std::error_code ec;
    if (!fs::exists(temp_, ec) || fs::file_size(temp_, ec) == 0)
      throw IoError(str_cat("plot: could not write '", temp_.string(), "' (PLplot's pngcairo wrote nothing)"),
                    temp_.string());
    fs::rename(temp_, path_, ec);
    if (ec)
      throw IoError(str_cat("plot: could not rename '", temp_.string(), "': ", ec.message()), path_.string());
    return path_;
  }
  ~Figure() {
    if (!finished_) {
      stream_holder_.reset();
      std::error_code ec;
      fs::remove(temp_, ec);
    }
  }
  Figure(const Figure&) = delete;
  Figure& operator=(const Figure&) = delete;

 private:
  fs::path path_, temp_;
  std::optional<plstream> stream_holder_;  // PLplot writes the file when the stream ends
  bool finished_ = false;
};

struct Curve {
  std::string label;
  std::vector<double> x, y;
};

// Nice tick spacing for [lo, hi].
double tick_of(double lo, double hi) {
  const double span = std::max(hi - lo, 1e-12);
  const double raw = span / 6.0, magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * magnitude) return m * magnitude;
  return 10.0 * magnitude;
}

fs::path draw_curves(const fs::path& path, const std::string& title, const std::string& x_label,
                     const std::string& y_label, const std::vector<Curve>& curves, bool integer_x, int width,
                     int height) {
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  for (const Curve& c : curves) {
    for (std::size_t i = 0; i < c.x.size(); ++i) {
      if (!std::isfinite(c.y[i])) continue;
      x_lo = std::min(x_lo, c.x[i]), x_hi = std::max(x_hi, c.x[i]);
      y_lo = std::min(y_lo, c.y[i]), y_hi = std::max(y_hi, c.y[i]);
    }
  }
  // Log scale when every value is positive and they span more than a factor of 30.
  const bool log_y = y_lo > 0.0 && y_hi / y_lo > 30.0;
  const auto ty = [&](double y) { return log_y ? std::log10(y) : y; };
  double lo = ty(y_lo), hi = ty(y_hi);
  const double pad = hi > lo ? 0.06 * (hi - lo) : std::max(std::abs(hi) * 0.05, 0.05);
  lo -= pad, hi += pad;
  if (x_hi <= x_lo) x_lo -= 0.5, x_hi += 0.5;
  const double x_tick = integer_x ? std::max(1.0, tick_of(x_lo, x_hi)) : tick_of(x_lo, x_hi);
  const double x_pad = 0.02 * (x_hi - x_lo);  // room for the end markers
  x_lo -= x_pad, x_hi += x_pad;

  Figure figure(path, width, height);
  plstream& pls = *figure;
  pls.schr(0.0, 1.15);
  pls.vpor(0.12, 0.96, 0.13, 0.90);
  pls.wind(x_lo, x_hi, lo, hi);
  // Grid first, in light grey, then the frame and labels over it.
  pls.col0(kGrid);
  pls.width(1.0);
  pls.box("g", x_tick, 0, log_y ? "gl" : "g", log_y ? 0.0 : tick_of(lo, hi), 0);
  pls.col0(kBlack);
  pls.box("bcnst", x_tick, 0, log_y ? "bcnstvl" : "bcnstv", log_y ? 0.0 : tick_of(lo, hi), 0);
  pls.schr(0.0, 1.4);
  pls.mtex("t", 1.2, 0.5, 0.5, title.c_str());
  pls.schr(0.0, 1.15);
  pls.mtex("b", 3.0, 0.5, 0.5, x_label.c_str());
  pls.mtex("l", 5.5, 0.5, 0.5, (log_y ? y_label + " (log scale)" : y_label).c_str());

  std::vector<PLINT> opts, colors, styles, text_colors, symbol_colors, symbol_numbers;
  std::vector<PLFLT> widths, symbol_scales;
  std::vector<const char*> labels, symbols;
  for (std::size_t k = 0; k < curves.size(); ++k) {
    const Curve& c = curves[k];
    const int color = kFirstCurve + static_cast<int>(k % kCurves);
    std::vector<PLFLT> xs, ys;
    for (std::size_t i = 0; i < c.x.size(); ++i) {
      if (!std::isfinite(c.y[i]) || (log_y && c.y[i] <= 0.0)) continue;
      xs.push_back(c.x[i]);
      ys.push_back(ty(c.y[i]));
    }
    pls.col0(color);
    pls.width(2.5);
    if (xs.size() > 1) pls.line(static_cast<PLINT>(xs.size()), xs.data(), ys.data());
    // Markers for short series (a few epochs), so that single points show.
    const bool marked = xs.size() <= 25;
    if (marked && !xs.empty()) {
      pls.ssym(0.0, 0.8);
      pls.string(static_cast<PLINT>(xs.size()), xs.data(), ys.data(), "#(728)");
    }
    opts.push_back(PL_LEGEND_LINE | (marked ? PL_LEGEND_SYMBOL : 0));
    colors.push_back(color);
    styles.push_back(1);
    widths.push_back(2.5);
    text_colors.push_back(kBlack);
    symbol_colors.push_back(color);
    symbol_scales.push_back(0.8);
    symbol_numbers.push_back(1);
    labels.push_back(c.label.c_str());
    symbols.push_back("#(728)");
  }
  // The legend goes into the corner whose area (a third of the width, a quarter of the height per curve,
  // at most half) holds the fewest points.
  const double box_h = std::min(0.5, 0.12 + 0.06 * static_cast<double>(curves.size()));
  int best_corner = 0;
  std::int64_t best_count = std::numeric_limits<std::int64_t>::max();
  for (int corner = 0; corner < 4; ++corner) {
    const bool right = corner % 2 == 0, top = corner < 2;
    std::int64_t count = 0;
    for (const Curve& c : curves) {
      for (std::size_t i = 0; i < c.x.size(); ++i) {
        if (!std::isfinite(c.y[i]) || (log_y && c.y[i] <= 0.0)) continue;
        const double fx = (c.x[i] - x_lo) / (x_hi - x_lo), fy = (ty(c.y[i]) - lo) / (hi - lo);
        count += (right ? fx > 0.62 : fx < 0.38) && (top ? fy > 1.0 - box_h : fy < box_h);
      }
    }
    if (count < best_count) best_count = count, best_corner = corner;
  }
  const PLINT position = (best_corner < 2 ? PL_POSITION_TOP : PL_POSITION_BOTTOM) |
                         (best_corner % 2 == 0 ? PL_POSITION_RIGHT : PL_POSITION_LEFT) | PL_POSITION_INSIDE;
  PLFLT legend_width = 0, legend_height = 0;
  pls.width(1.0);
  pls.legend(&legend_width, &legend_height, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, position, 0.02,
             0.03, 0.08, 0, kGrid, 1, 0, 0, static_cast<PLINT>(curves.size()), opts.data(), 1.0, 1.0, 2.0,
             0.0, text_colors.data(), labels.data(), nullptr, nullptr, nullptr, nullptr, colors.data(),
             styles.data(), widths.data(), symbol_colors.data(), symbol_scales.data(), symbol_numbers.data(),
             symbols.data());
  return figure.finish();
}

fs::path draw_confusion(const fs::path& path, const std::string& title,
                        const std::vector<std::vector<double>>& m, int size) {
  const auto n = static_cast<PLINT>(m.size());
  // Colour by the share of the true class's samples (rows), so that classes of any size read alike.
  std::vector<std::vector<double>> share(m.size(), std::vector<double>(m.size(), 0.0));
  for (std::size_t t = 0; t < m.size(); ++t) {
    double total = 0;
    for (const double v : m[t]) total += v;
    for (std::size_t p = 0; p < m.size(); ++p) share[t][p] = total > 0 ? m[t][p] / total : 0.0;
  }

  Figure figure(path, size, size);
  plstream& pls = *figure;
  const PLFLT intensity[] = {0.0, 1.0}, r[] = {0.97, 0.03}, g[] = {0.98, 0.19}, b[] = {1.0, 0.42};
  pls.scmap1l(true, 2, intensity, r, g, b, nullptr);
  pls.schr(0.0, n > 12 ? 0.8 : 1.1);
  pls.vpor(0.13, 0.93, 0.11, 0.91);
  pls.wind(0.0, n, 0.0, n);
  // True class t is row t from the top; predicted class p is column p.
  for (PLINT t = 0; t < n; ++t) {
    for (PLINT p = 0; p < n; ++p) {
      const PLFLT xs[] = {static_cast<PLFLT>(p), static_cast<PLFLT>(p + 1), static_cast<PLFLT>(p + 1),
                          static_cast<PLFLT>(p)};
      const PLFLT ys[] = {static_cast<PLFLT>(n - t - 1), static_cast<PLFLT>(n - t - 1),
                          static_cast<PLFLT>(n - t), static_cast<PLFLT>(n - t)};
      pls.col1(share[static_cast<std::size_t>(t)][static_cast<std::size_t>(p)]);
      pls.fill(4, xs, ys);
    }
  }
  pls.col0(kBlack);
  pls.box("bc", 1.0, 0, "bc", 1.0, 0);
  for (PLINT k = 0; k < n; ++k) {
    const std::string label = std::to_string(k);
    pls.mtex("b", 1.3, (k + 0.5) / n, 0.5, label.c_str());
    pls.mtex("lv", 0.8, (n - k - 0.5) / n, 1.0, label.c_str());
  }
  if (n <= 20) {
    for (PLINT t = 0; t < n; ++t) {
      for (PLINT p = 0; p < n; ++p) {
        const double v = m[static_cast<std::size_t>(t)][static_cast<std::size_t>(p)];
        std::ostringstream text;
        text << static_cast<long long>(std::llround(v));
        pls.col0(share[static_cast<std::size_t>(t)][static_cast<std::size_t>(p)] > 0.5 ? kWhite : kBlack);
        pls.ptex(p + 0.5, n - t - 0.5, 1.0, 0.0, 0.5, text.str().c_str());
      }
    }
  }
  pls.col0(kBlack);
  pls.schr(0.0, 1.3);
  pls.mtex("t", 1.5, 0.5, 0.5, title.c_str());
  pls.schr(0.0, 1.1);
  pls.mtex("b", 3.2, 0.5, 0.5, "predicted class");
  pls.mtex("l", 3.6, 0.5, 0.5, "true class");
  return figure.finish();
}

// The figure a field belongs to: "loss" for every loss, "accuracy" for accuracies, "frechet" for Fréchet
// distances; otherwise its name without a train_/test_/validation_ prefix.
std::string figure_of(const std::string& field) {
  if (field.find("loss") != std::string::npos) return "loss";
  if (field.find("frechet") != std::string::npos) return "frechet";
  if (field.size() >= 8 && field.compare(field.size() - 8, 8, "accuracy") == 0) return "accuracy";
  for (const char* prefix : {"train_", "test_", "validation_"}) {
    const std::string p = prefix;
    if (field.rfind(p, 0) == 0 && field.size() > p.size()) return field.substr(p.size());
  }
  return field;
}

std::string title_of(const std::string& figure) {
  if (figure == "loss") return "Losses";
  if (figure == "accuracy") return "Accuracy";
  if (figure == "lr") return "Learning rate";
  if (figure == "frechet") return "Fréchet distance";  // the Cairo driver draws UTF-8
  std::string t = figure;
  std::replace(t.begin(), t.end(), '_', ' ');
  if (!t.empty()) t[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(t[0])));
  return t;
}

std::string y_label_of(const std::string& figure) {
  if (figure == "lr") return "learning rate";
  if (figure == "frechet") return "Fréchet distance";
  std::string t = figure;
  std::replace(t.begin(), t.end(), '_', ' ');
  return t;
}

}  // namespace

std::vector<MetricsRecord> read_metrics(const fs::path& run_dir) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) {
    throw IoError(
        str_cat("plot: expected a run folder (the run.output of a training run), but '", run_dir.string(),
                "' ", fs::exists(run_dir, ec) ? "is not a folder" : "does not exist"),
        run_dir.string());
  }
  const fs::path file = run_dir / "metrics.jsonl";
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw IoError(str_cat("plot: expected '", file.string(), "' (written by `lockstep train`), but it ",
                          fs::exists(file, ec) ? "cannot be read" : "does not exist"),
                  file.string());
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<MetricsRecord> records;
  std::size_t start = 0;
  for (int line = 1; start < text.size(); ++line) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // a torn last line of a killed run
    const std::string_view row(text.data() + start, end - start);
    start = end + 1;
    if (row.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = str_cat(file.string(), ":", line);
    const io::JsonValue v = io::parse_json(row, where);
    const io::JsonValue* step = v.member("step");
    if (v.kind != io::JsonValue::Kind::kObject || step == nullptr ||
        step->kind != io::JsonValue::Kind::kNumber) {
      throw IoError(str_cat("plot: expected a JSON object with a numeric \"step\" at ", where, ", but got '",
                            std::string(row.substr(0, 80)), "'"),
                    file.string());
    }
    MetricsRecord r;
    r.step = static_cast<std::int64_t>(number_of(*step));
    for (const auto& [name, value] : v.members) {
      if (name == "step") continue;
      if (value.kind == io::JsonValue::Kind::kNumber || value.kind == io::JsonValue::Kind::kNull) {
        r.numbers.emplace_back(name, number_of(value));
      } else if (auto m = matrix_of(value)) {
        r.matrices.emplace_back(name, std::move(*m));
      }
    }
    records.push_back(std::move(r));
  }
  return records;
}

std::vector<fs::path> plot_metrics(const std::vector<MetricsRecord>& records, const fs::path& output_dir,
                                   int width, int height) {
  LOCKSTEP_CHECK(width >= 200 && height >= 200 && width <= 8000 && height <= 8000, ValueError,
                 "plot: expected a size of 200 to 8000 pixels, but got ", width, "x", height);
  // Figures in first-seen order, each with its fields in first-seen order.
  std::vector<std::string> figures;
  std::map<std::string, std::vector<std::string>> fields_of;
  bool every_epoch = !records.empty();
  for (const MetricsRecord& r : records) {
    bool has_epoch = false;
    for (const auto& [name, value] : r.numbers) {
      if (name == "epoch") {
        has_epoch = true;
        continue;
      }
      if (!std::isfinite(value)) continue;
      const std::string figure = figure_of(name);
      auto& fields = fields_of[figure];
      if (fields.empty()) figures.push_back(figure);
      if (std::find(fields.begin(), fields.end(), name) == fields.end()) fields.push_back(name);
    }
    every_epoch = every_epoch && has_epoch;
  }
  const MetricsRecord* confusion_record = nullptr;
  std::string confusion_name;
  for (const MetricsRecord& r : records) {
    for (const auto& [name, m] : r.matrices) {
      const bool is_confusion = name.size() > 10 && name.compare(name.size() - 10, 10, "_confusion") == 0;
      if (!is_confusion || m.size() != m.front().size() || m.size() > 1000) continue;
      // The latest record wins; within one record test before validation before any other split.
      const auto rank = [](const std::string& n) {
        return n == "test_confusion" ? 0 : n == "validation_confusion" ? 1 : 2;
      };
      if (confusion_record != &r || rank(name) < rank(confusion_name)) {
        confusion_record = &r;
        confusion_name = name;
      }
    }
  }
  if (figures.empty() && confusion_record == nullptr) {
    throw ValueError(str_cat("plot: expected metrics records with figures to draw, but got ", records.size(),
                             " record(s) with none (a run that has not finished an epoch yet?)"));
  }
  require_png_driver();
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec || !fs::is_directory(output_dir, ec)) {
    throw IoError(str_cat("plot: could not create the output folder '", output_dir.string(), "'",
                          ec ? ": " + ec.message() : std::string()),
                  output_dir.string());
  }
  std::vector<fs::path> written;
  // The fixed figures first, then the rest as logged.
  std::vector<std::string> order;
  for (const char* f : {"loss", "accuracy", "lr", "frechet"})
    if (fields_of.count(f) != 0) order.emplace_back(f);
  for (const std::string& f : figures)
    if (std::find(order.begin(), order.end(), f) == order.end()) order.push_back(f);
  for (const std::string& figure : order) {
    std::vector<Curve> curves;
    for (const std::string& field : fields_of[figure]) {
      Curve c;
      c.label = field;
      std::replace(c.label.begin(), c.label.end(), '_', ' ');
      for (const MetricsRecord& r : records) {
        double epoch = 0.0;
        std::optional<double> value;
        for (const auto& [name, v] : r.numbers) {
          if (name == "epoch") epoch = v;
          if (name == field) value = v;
        }
        if (!value) continue;
        c.x.push_back(every_epoch ? epoch : static_cast<double>(r.step));
        c.y.push_back(*value);
      }
      // A field that was never finite (null throughout) has nothing to draw.
      if (std::any_of(c.y.begin(), c.y.end(), [](double v) { return std::isfinite(v); }))
        curves.push_back(std::move(c));
    }
    if (curves.empty()) continue;
    written.push_back(draw_curves(output_dir / (figure + ".png"), title_of(figure),
                                  every_epoch ? "epoch" : "step", y_label_of(figure), curves, every_epoch,
                                  width, height));
  }
  if (confusion_record != nullptr) {
    const std::string split = confusion_name.substr(0, confusion_name.size() - 10);
    double epoch = -1;
    for (const auto& [name, v] : confusion_record->numbers)
      if (name == "epoch") epoch = v;
    const std::string title =
        str_cat("Confusion matrix (", split, ", ",
                epoch >= 0 ? str_cat("epoch ", static_cast<long long>(epoch)) : std::string(),
                epoch >= 0 ? ", " : "", "step ", confusion_record->step, ")");
    for (const auto& [name, m] : confusion_record->matrices)
      if (name == confusion_name)
        written.push_back(draw_confusion(output_dir / "confusion.png", title, m, height));
  }
  return written;
}

}  // namespace lockstep::launch
