#include "proto/yaml_scalars.h"

#include <cctype>
#include <charconv>
#include <limits>
#include <system_error>

namespace hippo::proto {
namespace {

// [-+]? (digits [. digits*] | . digits) ([eE] [-+]? digits)?
bool IsDecimalFloatSyntax(std::string_view text) {
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
    }
    return i - start;
  };
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    ++i;
  }
  size_t mantissa_digits = digits();
  if (i < text.size() && text[i] == '.') {
    ++i;
    mantissa_digits += digits();
  }
  if (mantissa_digits == 0) {
    return false;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
      ++i;
    }
    if (digits() == 0) {
      return false;
    }
  }
  return i == text.size();
}

}  // namespace

std::optional<bool> ParseYamlBool(std::string_view text) {
  if (text == "true" || text == "True" || text == "TRUE") {
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    return false;
  }
  return std::nullopt;
}

std::optional<YamlInteger> ParseYamlInteger(std::string_view text) {
  YamlInteger integer;
  int base = 10;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    integer.negative = text[0] == '-';
    text.remove_prefix(1);
  } else if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'o')) {
    base = text[1] == 'x' ? 16 : 8;
    text.remove_prefix(2);
  }
  if (text.empty() || !std::isxdigit(static_cast<unsigned char>(text[0]))) {
    return std::nullopt;
  }
  const auto result =
      std::from_chars(text.data(), text.data() + text.size(), integer.magnitude, base);
  if (result.ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  integer.overflow = result.ec == std::errc::result_out_of_range;
  return integer;
}

std::optional<double> ParseYamlNumber(std::string_view text) {
  if (text == ".inf" || text == ".Inf" || text == ".INF" || text == "+.inf" || text == "+.Inf" ||
      text == "+.INF") {
    return std::numeric_limits<double>::infinity();
  }
  if (text == "-.inf" || text == "-.Inf" || text == "-.INF") {
    return -std::numeric_limits<double>::infinity();
  }
  if (text == ".nan" || text == ".NaN" || text == ".NAN") {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (IsDecimalFloatSyntax(text)) {
    if (text[0] == '+') {
      text.remove_prefix(1);  // from_chars takes no '+'
    }
    double value = 0;
    const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
    if (result.ec == std::errc::result_out_of_range) {
      return text[0] == '-' ? -std::numeric_limits<double>::infinity()
                            : std::numeric_limits<double>::infinity();
    }
    return value;
  }
  if (const auto integer = ParseYamlInteger(text); integer.has_value() && !integer->overflow) {
    const auto magnitude = static_cast<double>(integer->magnitude);
    return integer->negative ? -magnitude : magnitude;
  }
  return std::nullopt;
}

}  // namespace hippo::proto
