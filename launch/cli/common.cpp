// Option parsing shared by the `lockstep` subcommands.
#include "launch/cli/common.h"

#include <iostream>
#include <utility>

namespace lockstep::launch {

namespace po = boost::program_options;

std::optional<po::variables_map> parse_options(const std::vector<std::string>& args,
                                               po::options_description options,
                                               const po::positional_options_description& positional,
                                               std::string_view usage, std::string_view description) {
  options.add_options()("help,h", "print this help and exit");
  po::variables_map values;
  po::store(po::command_line_parser(args).options(options).positional(positional).run(), values);
  if (values.count("help") != 0) {
    std::cout << "Usage: lockstep " << usage << "\n\n" << description << "\n\n" << options << '\n';
    return std::nullopt;
  }
  po::notify(values);
  return values;
}

std::optional<po::variables_map> parse_options(const std::vector<std::string>& args,
                                               po::options_description options, std::string_view usage,
                                               std::string_view description) {
  return parse_options(args, std::move(options), po::positional_options_description(), usage, description);
}

}  // namespace lockstep::launch
