// ReflectionPad2d on pad2d's reflect mode.
#include "src/nn/pad.h"

#include "src/core/error.h"

namespace lockstep::nn {

ReflectionPad2d::ReflectionPad2d(std::int64_t padding) : Module("ReflectionPad2d"), padding_(padding) {
  LOCKSTEP_CHECK(padding >= 0, ValueError, "ReflectionPad2d: expected a non-negative padding, but got ",
                 padding);
}

Tensor ReflectionPad2d::forward(const Tensor& input) {
  return pad2d(input, {padding_, padding_, padding_, padding_}, PadMode::kReflect);
}

std::string ReflectionPad2d::describe() const { return std::to_string(padding_); }

}  // namespace lockstep::nn
