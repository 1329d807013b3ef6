// A minimal JSON object writer for metrics lines, provenance and CLI output. Numbers are
// printed with enough digits to round-trip (%.17g for double), so metrics compare exactly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

class JsonObject {
 public:
  JsonObject& add(std::string_view key, std::string_view value);
  JsonObject& add(std::string_view key, const char* value) { return add(key, std::string_view(value)); }
  JsonObject& add(std::string_view key, double value);
  JsonObject& add(std::string_view key, int64_t value);
  JsonObject& add(std::string_view key, int value) { return add(key, static_cast<int64_t>(value)); }
  JsonObject& add(std::string_view key, bool value);
  JsonObject& add_raw(std::string_view key, std::string_view json);  // value already JSON
  JsonObject& add(std::string_view key, const std::vector<std::string>& values);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(std::string_view k);
  std::string body_;
};

std::string json_quote(std::string_view s);

}  // namespace tessera
