#include "workers/config_json.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hippo::workers {
namespace {

// nlohmann's what() starts "[json.exception.parse_error.101] "; the id helps no reader.
std::string WithoutId(std::string_view what) {
  if (!what.starts_with("[json.exception.")) return std::string(what);
  const size_t end = what.find("] ");
  return std::string(end == std::string_view::npos ? what : what.substr(end + 2));
}

}  // namespace

absl::StatusOr<Json> ParseJson(std::string_view text) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& error) {
    // error.byte locates the error in a one-line config or metrics line.
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON at byte ", error.byte, ": ", WithoutId(error.what())));
  } catch (const Json::exception& error) {
    // A number out of range (out_of_range.406) and the like.
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", WithoutId(error.what())));
  }
}

const Json* Member(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(std::string(key));
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<double> NumberOr(const Json& object, std::string_view key, double fallback) {
  const Json* member = Member(object, key);
  if (member == nullptr) return fallback;
  if (!member->is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.", std::string(key), " must be a number"));
  }
  return member->get<double>();
}

absl::StatusOr<bool> BoolOr(const Json& object, std::string_view key, bool fallback) {
  const Json* member = Member(object, key);
  if (member == nullptr) return fallback;
  if (!member->is_boolean()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.", std::string(key), " must be true or false"));
  }
  return member->get<bool>();
}

}  // namespace hippo::workers
