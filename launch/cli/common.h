// Helpers shared by the `lockstep` subcommands: option parsing with --help over Boost.ProgramOptions, and
// the usage error that makes the tool exit with code 2.
#pragma once

#include <boost/program_options.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/core/error.h"

namespace lockstep::launch {

// A mistake on the command line (a missing or invalid option): reported with a hint to --help, exit code 2.
class UsageError : public Error {
  using Error::Error;
};

// Parses a subcommand's `args` against `options` (a --help/-h option is added) and `positional`. With
// --help, prints "Usage: lockstep <usage>", `description` and the options to std::cout and returns nothing;
// otherwise checks required options and returns the values. Boost.ProgramOptions errors propagate (usage
// errors).
std::optional<boost::program_options::variables_map> parse_options(
    const std::vector<std::string>& args, boost::program_options::options_description options,
    const boost::program_options::positional_options_description& positional, std::string_view usage,
    std::string_view description);
// The same without positional arguments.
std::optional<boost::program_options::variables_map> parse_options(
    const std::vector<std::string>& args, boost::program_options::options_description options,
    std::string_view usage, std::string_view description);

}  // namespace lockstep::launch
