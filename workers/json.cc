#include "workers/json.h"

#include <charconv>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hippo::workers {
namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  absl::StatusOr<JsonValue> Document() {
    absl::StatusOr<JsonValue> value = Value(0);
    if (!value.ok()) return value;
    SkipSpace();
    if (pos_ != text_.size()) return Error("trailing characters after the JSON value");
    return value;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON at byte ", pos_, ": ", std::string(what)));
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Consume(std::string_view literal) {
    if (text_.substr(pos_, literal.size()) != literal) return false;
    pos_ += literal.size();
    return true;
  }

  absl::StatusOr<JsonValue> Value(int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    SkipSpace();
    if (pos_ >= text_.size()) return Error("unexpected end of input");
    const char c = text_[pos_];
    if (c == '{') return ObjectValue(depth);
    if (c == '[') return ArrayValue(depth);
    if (c == '"') {
      absl::StatusOr<std::string> text = StringValue();
      if (!text.ok()) return text.status();
      return JsonValue::String(*std::move(text));
    }
    if (Consume("true")) return JsonValue::Bool(true);
    if (Consume("false")) return JsonValue::Bool(false);
    if (Consume("null")) return JsonValue();
    return NumberValue();
  }

  absl::StatusOr<JsonValue> NumberValue() {
    const size_t start = pos_;
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    auto digits = [this] {
      const size_t before = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ - before;
    };
    if (pos_ < text_.size() && text_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      pos_ = start;
      return Error("expected a value");
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return Error("expected digits after '.'");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (digits() == 0) return Error("expected digits in the exponent");
    }
    double value = 0;
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    auto [end, error] = std::from_chars(first, last, value);
    if (error != std::errc() || end != last) {
      pos_ = start;
      return Error("number out of range");
    }
    return JsonValue::Number(value);
  }

  absl::StatusOr<uint32_t> Hex4() {
    if (pos_ + 4 > text_.size()) return Error("truncated \\u escape");
    uint32_t code = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      code <<= 4;
      if (c >= '0' && c <= '9') {
        code |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        code |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        code |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return Error("bad hex digit in \\u escape");
      }
    }
    return code;
  }

  static void AppendUtf8(uint32_t code, std::string& out) {
    if (code < 0x80) {
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (code >> 6)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (code >> 12)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (code >> 18)));
      out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  absl::StatusOr<std::string> StringValue() {
    ++pos_;  // the opening quote
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) return Error("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in a string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) return Error("unterminated escape");
      const char escape = text_[pos_++];
      switch (escape) {
        case '"':
        case '\\':
        case '/':
          out.push_back(escape);
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          absl::StatusOr<uint32_t> code = Hex4();
          if (!code.ok()) return code.status();
          if (*code >= 0xD800 && *code < 0xDC00) {
            if (!Consume("\\u")) return Error("unpaired surrogate in \\u escape");
            absl::StatusOr<uint32_t> low = Hex4();
            if (!low.ok()) return low.status();
            if (*low < 0xDC00 || *low >= 0xE000) return Error("bad low surrogate");
            *code = 0x10000 + ((*code - 0xD800) << 10) + (*low - 0xDC00);
          } else if (*code >= 0xDC00 && *code < 0xE000) {
            return Error("unpaired surrogate in \\u escape");
          }
          AppendUtf8(*code, out);
          break;
        }
        default:
          return Error("unknown escape");
      }
    }
  }

  absl::StatusOr<JsonValue> ArrayValue(int depth) {
    ++pos_;  // '['
    JsonValue::Array items;
    SkipSpace();
    if (Consume("]")) return JsonValue::FromArray(std::move(items));
    while (true) {
      absl::StatusOr<JsonValue> item = Value(depth + 1);
      if (!item.ok()) return item.status();
      items.push_back(*std::move(item));
      SkipSpace();
      if (Consume("]")) return JsonValue::FromArray(std::move(items));
      if (!Consume(",")) return Error("expected ',' or ']'");
    }
  }

  absl::StatusOr<JsonValue> ObjectValue(int depth) {
    ++pos_;  // '{'
    JsonValue::Object members;
    SkipSpace();
    if (Consume("}")) return JsonValue::FromObject(std::move(members));
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Error("expected a member name");
      absl::StatusOr<std::string> key = StringValue();
      if (!key.ok()) return key.status();
      SkipSpace();
      if (!Consume(":")) return Error("expected ':'");
      absl::StatusOr<JsonValue> value = Value(depth + 1);
      if (!value.ok()) return value.status();
      members.emplace_back(*std::move(key), *std::move(value));
      SkipSpace();
      if (Consume("}")) return JsonValue::FromObject(std::move(members));
      if (!Consume(",")) return Error("expected ',' or '}'");
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

JsonValue JsonValue::Bool(bool value) {
  JsonValue result;
  result.value_ = value;
  return result;
}

JsonValue JsonValue::Number(double value) {
  JsonValue result;
  result.value_ = value;
  return result;
}

JsonValue JsonValue::String(std::string value) {
  JsonValue result;
  result.value_ = std::move(value);
  return result;
}

JsonValue JsonValue::FromArray(Array value) {
  JsonValue result;
  result.value_ = std::move(value);
  return result;
}

JsonValue JsonValue::FromObject(Object value) {
  JsonValue result;
  result.value_ = std::move(value);
  return result;
}

absl::StatusOr<JsonValue> JsonValue::Parse(std::string_view text) {
  return Parser(text).Document();
}

const JsonValue* JsonValue::Find(std::string_view key) const {
  if (type() != Type::kObject) return nullptr;
  const Object& members = object();
  for (auto it = members.rbegin(); it != members.rend(); ++it) {
    if (it->first == key) return &it->second;
  }
  return nullptr;
}

absl::StatusOr<double> NumberOr(const JsonValue& object, std::string_view key, double fallback) {
  const JsonValue* member = object.Find(key);
  if (member == nullptr || member->is_null()) return fallback;
  if (member->type() != JsonValue::Type::kNumber) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.", std::string(key), " must be a number"));
  }
  return member->number_value();
}

absl::StatusOr<bool> BoolOr(const JsonValue& object, std::string_view key, bool fallback) {
  const JsonValue* member = object.Find(key);
  if (member == nullptr || member->is_null()) return fallback;
  if (member->type() != JsonValue::Type::kBool) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.", std::string(key), " must be true or false"));
  }
  return member->bool_value();
}

}  // namespace hippo::workers
