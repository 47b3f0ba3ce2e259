// Trainer configs arrive as JSON text (TrainerSpec.config, a google.protobuf.Struct, printed by
// protobuf's JSON mapping in assignment.cc); the trainers read them with nlohmann::json. This
// header holds the parsing and the typed lookups that every trainer shares.
#ifndef HIPPO_WORKERS_CONFIG_JSON_H_
#define HIPPO_WORKERS_CONFIG_JSON_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace hippo::workers {

// Members keep document order (a duplicated key keeps its last value), so that what a trainer
// writes back (the command trainer's stage file) reads in the order it was given.
using Json = nlohmann::ordered_json;

// Parses one JSON document (RFC 8259). InvalidArgument "invalid JSON at byte N: ..." naming the
// first error.
absl::StatusOr<Json> ParseJson(std::string_view text);

// The member `key` of `object`, or nullptr when it is absent or null (or `object` is not an
// object): an explicit null means "the default", as an absent member does.
const Json* Member(const Json& object, std::string_view key);

// Typed lookups into a config object, with defaults for absent (or null) members.
// InvalidArgument "config.KEY must be ..." when the member has another type.
absl::StatusOr<double> NumberOr(const Json& object, std::string_view key, double fallback);
absl::StatusOr<bool> BoolOr(const Json& object, std::string_view key, bool fallback);

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_CONFIG_JSON_H_
