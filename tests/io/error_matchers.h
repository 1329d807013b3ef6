// Test helper: run a callable, require that it throws exactly error type E, and return the
// message so tests can check that it names the key, file, dataset or row.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <initializer_list>
#include <string>
#include <typeinfo>

namespace tessera::testing {

template <class E, class F>
std::string thrown_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected " << typeid(E).name() << ", got " << typeid(e).name() << ": "
                  << e.what();
    return "";
  }
  ADD_FAILURE() << "expected " << typeid(E).name() << ", nothing was thrown";
  return "";
}

// EXPECT that f throws E and that the message contains every one of `parts`.
#define TESSERA_EXPECT_THROW_NAMING(E, stmt, ...)                                              \
  do {                                                                                         \
    const std::string tessera_msg_ = ::tessera::testing::thrown_message<E>([&] { stmt; });     \
    for (const std::string& tessera_part_ : std::initializer_list<std::string>{__VA_ARGS__}) { \
      EXPECT_NE(tessera_msg_.find(tessera_part_), std::string::npos)                           \
          << "message does not name '" << tessera_part_ << "': " << tessera_msg_;              \
    }                                                                                          \
  } while (0)

}  // namespace tessera::testing
