// Typed-error expectations shared by the test suites: run a callable, expect it to throw E, and check that
// the message names every one of the given parts. A failure is recorded when nothing or another error is
// thrown.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <initializer_list>
#include <optional>
#include <utility>
#include <string>

namespace lockstep::test {

// Expects `fn` to throw E whose message contains every one of `parts`; returns a copy of the error, for
// checks of its other fields (e.g. IoError::file()), or nullopt when no E was thrown.
template <class E, class Fn>
std::optional<E> expect_thrown(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& p : parts)
      EXPECT_NE(what.find(p), std::string::npos) << "message '" << what << "' lacks '" << p << "'";
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a different error: " << e.what();
    return std::nullopt;
  }
  ADD_FAILURE() << "expected an exception, but none was thrown";
  return std::nullopt;
}

// Expects `fn` to throw E whose message contains every one of `parts`; returns the message ("" if none).
template <class E, class Fn>
std::string expect_error(Fn&& fn, std::initializer_list<std::string> parts) {
  const std::optional<E> e = expect_thrown<E>(std::forward<Fn>(fn), parts);
  return e ? std::string(e->what()) : std::string();
}

}  // namespace lockstep::test
