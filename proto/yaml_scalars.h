// YAML 1.2 core-schema scalars: how plain text reads as a boolean, an integer or a number.
// Internal to hippo_proto (the spec loader's YAML reading).
#ifndef HIPPO_PROTO_YAML_SCALARS_H_
#define HIPPO_PROTO_YAML_SCALARS_H_

#include <cstdint>
#include <optional>
#include <string_view>

namespace hippo::proto {

// true/True/TRUE and false/False/FALSE; nullopt for anything else.
std::optional<bool> ParseYamlBool(std::string_view text);

// A YAML integer: decimal with an optional sign, 0x hexadecimal or 0o octal.
struct YamlInteger {
  bool negative = false;
  std::uint64_t magnitude = 0;
  bool overflow = false;  // the magnitude does not fit 64 bits
};
std::optional<YamlInteger> ParseYamlInteger(std::string_view text);

// Any YAML number (integer, decimal, exponent, .inf, .nan) as a double; .inf and .nan come back
// non-finite for the caller to refuse. nullopt when `text` is not a number.
std::optional<double> ParseYamlNumber(std::string_view text);

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_YAML_SCALARS_H_
