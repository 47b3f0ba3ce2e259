// A small JSON reader for trainer configs (TrainerSpec.config arrives as JSON text), so that
// trainers read their settings without touching protobuf.
#ifndef HIPPO_WORKERS_JSON_H_
#define HIPPO_WORKERS_JSON_H_

#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace hippo::workers {

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  using Array = std::vector<JsonValue>;
  // Members in document order; a duplicated key keeps its last value on lookup.
  using Object = std::vector<std::pair<std::string, JsonValue>>;

  JsonValue() = default;
  static JsonValue Bool(bool value);
  static JsonValue Number(double value);
  static JsonValue String(std::string value);
  static JsonValue FromArray(Array value);
  static JsonValue FromObject(Object value);

  // Parses one JSON document (RFC 8259), nesting at most 64 deep. InvalidArgument with the byte
  // offset of the first error.
  static absl::StatusOr<JsonValue> Parse(std::string_view text);

  Type type() const { return static_cast<Type>(value_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  // The accessors require the matching type().
  bool bool_value() const { return std::get<bool>(value_); }
  double number_value() const { return std::get<double>(value_); }
  const std::string& string_value() const { return std::get<std::string>(value_); }
  const Array& array() const { return std::get<Array>(value_); }
  const Object& object() const { return std::get<Object>(value_); }

  // The member `key` of an object, or nullptr (also when this is not an object).
  const JsonValue* Find(std::string_view key) const;

 private:
  std::variant<std::monostate, bool, double, std::string, Array, Object> value_;
};

// Typed lookups into a config object, with defaults for absent (or null) members.
// InvalidArgument naming the key when the member has another type.
absl::StatusOr<double> NumberOr(const JsonValue& object, std::string_view key, double fallback);
absl::StatusOr<bool> BoolOr(const JsonValue& object, std::string_view key, bool fallback);

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_JSON_H_
