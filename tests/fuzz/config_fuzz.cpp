// libFuzzer harness of the run configuration (launch/config/config.h, public API only): the input up to
// the first NUL byte is the TOML text, each following NUL-separated part an override; the harness reads a
// few keys of every type, dumps the effective configuration and rejects unknown keys.
#include <string>
#include <string_view>
#include <vector>

#include "launch/config/config.h"
#include "src/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t end = input.find('\0');
  const std::string_view text = input.substr(0, end);
  std::vector<std::string> overrides;
  for (std::size_t start = end; start != std::string_view::npos && start < input.size();) {
    const std::size_t next = input.find('\0', start + 1);
    overrides.emplace_back(input.substr(start + 1, next == std::string_view::npos ? next : next - start - 1));
    start = next;
  }
  try {
    const auto config = lockstep::launch::Config::parse(text, "fuzz.toml", overrides);
    const auto read = [](auto&& get) {
      try {
        get();
      } catch (const lockstep::Error&) {
      }
    };
    read([&] { (void)config.get_int("run.epochs", 1); });
    read([&] { (void)config.get_double("optimizer.lr"); });
    read([&] { (void)config.get_string("data.path", "x.h5"); });
    read([&] { (void)config.get_bool("run.deterministic", false); });
    read([&] { (void)config.get_ints("model.hidden", {}); });
    read([&] { (void)config.get_doubles("optimizer.betas", {0.9, 0.999}); });
    read([&] { (void)config.get_strings("data.splits", {}); });
    read([&] { (void)config.choice("optimizer.name", {"sgd", "adam"}, "sgd"); });
    read([&] { (void)config.has("model"); });
    read([&] { (void)config.to_string(); });
    read([&] { config.reject_unknown(); });
  } catch (const lockstep::Error&) {
  }
  return 0;
}
