// The `lockstep` dispatcher: top-level options, command lookup with a suggestion for typos, and the
// translation of every error into a message and an exit code.
#include "launch/cli/dispatch.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <exception>

#include "io/model/model_file.h"
#include "launch/cli/common.h"
#include "launch/config/config.h"
#include "src/core/error.h"

namespace lockstep::launch {
namespace {

namespace po = boost::program_options;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

po::options_description top_level_options() {
  po::options_description options("Options");
  options.add_options()("help,h", "print this help and exit")("version", "print the version and exit");
  return options;
}

void print_usage(std::span<const Command> commands, std::ostream& out) {
  out << "Usage: lockstep [--help] [--version] <command> [<args>]\n\n"
      << "Lockstep: data-parallel deep-learning training in C++20.\n\nCommands:\n";
  std::size_t width = 0;
  for (const Command& c : commands) width = std::max(width, c.name.size());
  for (const Command& c : commands) {
    out << "  " << c.name << std::string(width - c.name.size() + 3, ' ') << c.summary << '\n';
  }
  out << '\n' << top_level_options() << "\nRun 'lockstep <command> --help' for the options of a command.\n";
}

const Command& find_command(std::span<const Command> commands, const std::string& name) {
  for (const Command& c : commands) {
    if (c.name == name) return c;
  }
  std::vector<std::string> names;
  std::string listed;
  for (const Command& c : commands) {
    names.emplace_back(c.name);
    listed += str_cat(listed.empty() ? "" : ", ", c.name);
  }
  const std::optional<std::string> suggestion = launch::closest_match(name, names);
  throw UsageError(str_cat("expected a command (", listed, "), but got '", name, "'.",
                           suggestion ? str_cat(" Did you mean '", *suggestion, "'?") : ""));
}

}  // namespace

int run_cli(std::span<const Command> commands, const std::vector<std::string>& args, std::ostream& out,
            std::ostream& err, FailureHook on_failure) {
  std::string help_hint = "lockstep --help";
  try {
    // Options before the command are the tool's own; everything after the command belongs to it.
    const auto command_at =
        std::find_if(args.begin(), args.end(), [](const std::string& a) { return a.empty() || a[0] != '-'; });
    po::variables_map values;
    po::store(po::command_line_parser(std::vector<std::string>(args.begin(), command_at))
                  .options(top_level_options())
                  .run(),
              values);
    if (values.count("help") != 0) {
      print_usage(commands, out);
      return 0;
    }
    if (values.count("version") != 0) {
      out << "lockstep " << io::library_version() << '\n';
      return 0;
    }
    if (command_at == args.end()) throw UsageError("expected a command, but got none.");
    const Command& command = find_command(commands, *command_at);
    help_hint = str_cat("lockstep ", command.name, " --help");
    return command.run(std::vector<std::string>(command_at + 1, args.end()));
  } catch (const UsageError& e) {
    err << "lockstep: error: " << e.what() << "\nRun '" << help_hint << "' for usage.\n";
    return kExitUsage;
  } catch (const po::error& e) {
    err << "lockstep: error: " << e.what() << "\nRun '" << help_hint << "' for usage.\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    if (on_failure != nullptr) on_failure(e.what());
    err << "lockstep: error: " << e.what() << '\n';
    return kExitFailure;
  } catch (...) {
    const std::string message = "an exception of unknown type escaped the command.";
    if (on_failure != nullptr) on_failure(message);
    err << "lockstep: error: " << message << '\n';
    return kExitFailure;
  }
}

}  // namespace lockstep::launch
