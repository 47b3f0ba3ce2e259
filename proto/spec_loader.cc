// Study specs: YAML (or JSON) → JSON typed by the StudySpec descriptor → protobuf's JSON mapping.
//
// Why walk the YAML tree against the descriptor instead of converting YAML to JSON blindly: only
// the schema knows that `low: abc` must be a number, that `name: 1e3` is the string "1e3", or that
// `values: [3, "3"]` holds a number and a string; and protobuf's own JSON errors name neither the
// field path nor the line. The walk checks types and names and records where
// every field was written; protobuf's JSON mapping still builds the message, so the schema lives
// only in hippo.proto. Semantic checks then run on the typed message (ValidateStudySpec).

#include "proto/spec_loader.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "yaml-cpp/yaml.h"

namespace hippo::proto {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::OneofDescriptor;
using hippo::v1::StudySpec;

// Specs are a few kilobytes; the limit only keeps a wrong path (a dataset, a checkpoint) from
// being read into memory.
constexpr std::uintmax_t kMaxSpecFileBytes = 16 << 20;
// google.protobuf.Value nests without a schema; bound it so a hostile document cannot exhaust
// the stack.
constexpr int kMaxValueDepth = 64;
constexpr char kTypeUrlPrefix[] = "type.googleapis.com";

const std::vector<std::string>& KnownTrainerKinds() {
  static const auto* const kinds =
      new std::vector<std::string>{"command", "sim", "torch", "external"};
  return *kinds;
}

bool Contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// ---------------------------------------------------------------------------------------------
// Issues: what is wrong, at which field path, and (when the spec came from text) where.
// ---------------------------------------------------------------------------------------------

struct SpecIssue {
  std::string path;  // snake_case field names as in hippo.proto, e.g. budget.max_steps
  std::string message;
  std::optional<YAML::Mark> mark;  // 0-based line and column in the source text
};

using Issue = std::optional<SpecIssue>;

Issue Problem(std::string path, std::string message) {
  return SpecIssue{std::move(path), std::move(message), std::nullopt};
}

std::string JoinPath(const std::string& parent, const std::string& child) {
  return parent.empty() ? child : absl::StrCat(parent, ".", child);
}

std::string IndexPath(const std::string& parent, size_t index) {
  return absl::StrCat(parent, "[", index, "]");
}

// "source:line:column: path: message", the form compilers use, so editors can jump to it.
std::string FormatIssue(const std::string& source, const SpecIssue& issue) {
  std::string where = source;
  if (issue.mark.has_value() && !issue.mark->is_null()) {
    absl::StrAppend(&where, ":", issue.mark->line + 1, ":", issue.mark->column + 1);
  }
  if (issue.path.empty()) {
    return absl::StrCat(where, ": ", issue.message);
  }
  return absl::StrCat(where, ": ", issue.path, ": ", issue.message);
}

// A semantic issue names a path; point it at the nearest enclosing field that was written
// (a missing objective.direction points at the objective mapping).
void LocateIssue(const std::map<std::string, YAML::Mark>& marks, SpecIssue& issue) {
  std::string path = issue.path;
  while (!path.empty()) {
    if (auto it = marks.find(path); it != marks.end()) {
      issue.mark = it->second;
      return;
    }
    const size_t cut = path.find_last_of(".[");
    path.resize(cut == std::string::npos ? 0 : cut);
  }
}

// ---------------------------------------------------------------------------------------------
// Scalars: YAML 1.2 core-schema numbers and booleans, JSON text.
// ---------------------------------------------------------------------------------------------

std::string FormatNumber(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string QuoteJson(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escape[8];
          std::snprintf(escape, sizeof(escape), "\\u%04x", static_cast<unsigned>(c));
          out += escape;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// How a node reads in an error message: `"abc"`, `a list`, `a mapping`, `nothing`.
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      constexpr size_t kShown = 40;
      const std::string& text = node.Scalar();
      if (text.size() <= kShown) {
        return QuoteJson(text);
      }
      return QuoteJson(text.substr(0, kShown)) + "...";
    }
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// Quoted ('!') and !!str-tagged scalars are strings whatever they look like.
bool IsStringScalar(const YAML::Node& node) {
  return node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str";
}

std::optional<bool> ParseYamlBool(std::string_view text) {
  if (text == "true" || text == "True" || text == "TRUE") {
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    return false;
  }
  return std::nullopt;
}

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

// A YAML integer: decimal with an optional sign, 0x hexadecimal or 0o octal.
struct YamlInteger {
  bool negative = false;
  std::uint64_t magnitude = 0;
  bool overflow = false;
};

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

// Any YAML number as a double; .inf and .nan come back non-finite for the caller to refuse.
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

// Edit distance, to suggest the field a typo meant.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::optional<std::string> ClosestName(const std::string& typo,
                                       const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (absl::EqualsIgnoreCase(name, typo)) {
      return name;
    }
  }
  std::optional<std::string> best;
  size_t best_distance = std::max<size_t>(2, typo.size() / 4) + 1;
  for (const std::string& name : names) {
    const size_t distance = EditDistance(typo, name);
    if (distance < best_distance) {
      best = name;
      best_distance = distance;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// YAML → JSON, typed by a descriptor.
// ---------------------------------------------------------------------------------------------

bool IsValueMessage(const Descriptor& type) { return type.full_name() == "google.protobuf.Value"; }

bool IsValueField(const FieldDescriptor& field) {
  return field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
         IsValueMessage(*field.message_type());
}

const FieldDescriptor* FindField(const Descriptor& type, const std::string& name) {
  if (const FieldDescriptor* field = type.FindFieldByName(name)) {
    return field;
  }
  for (int i = 0; i < type.field_count(); ++i) {
    if (type.field(i)->json_name() == name) {
      return type.field(i);
    }
  }
  return nullptr;
}

std::vector<std::string> FieldNames(const Descriptor& type) {
  std::vector<std::string> names;
  names.reserve(type.field_count());
  for (int i = 0; i < type.field_count(); ++i) {
    names.push_back(type.field(i)->name());
  }
  return names;
}

std::vector<std::string> OneofMemberNames(const OneofDescriptor& oneof) {
  std::vector<std::string> names;
  names.reserve(oneof.field_count());
  for (int i = 0; i < oneof.field_count(); ++i) {
    names.push_back(oneof.field(i)->name());
  }
  return names;
}

class YamlToJson {
 public:
  // Converts `root` to JSON for `type`. Returns false on the first problem (see FirstIssue()).
  bool Convert(const YAML::Node& root, const Descriptor& type) { return Message(root, type, ""); }

  const std::string& JsonText() const { return json_; }
  const SpecIssue& FirstIssue() const { return issue_; }
  // Where each field path (proto names) was written, to locate later semantic errors.
  const std::map<std::string, YAML::Mark>& FieldMarks() const { return marks_; }

 private:
  bool Fail(const YAML::Node& node, std::string path, std::string message) {
    issue_ = SpecIssue{std::move(path), std::move(message), node.Mark()};
    return false;
  }

  bool Message(const YAML::Node& node, const Descriptor& type, const std::string& path);
  bool Field(const YAML::Node& value, const FieldDescriptor& field, const std::string& path);
  bool MapField(const YAML::Node& value, const FieldDescriptor& field, const std::string& path);
  bool Singular(const YAML::Node& node, const FieldDescriptor& field, const std::string& path);
  bool WellKnown(const YAML::Node& node, const Descriptor& type, const std::string& path);
  bool Natural(const YAML::Node& node, const std::string& path, int depth);
  bool NaturalScalar(const YAML::Node& node, const std::string& path);
  bool NaturalMapping(const YAML::Node& node, const std::string& path, int depth);
  bool Enum(const YAML::Node& node, const EnumDescriptor& type, const std::string& path);
  bool Bool(const YAML::Node& node, const std::string& path);
  bool Float(const YAML::Node& node, const std::string& path);
  bool Integer(const YAML::Node& node, const FieldDescriptor& field, const std::string& path);
  bool String(const YAML::Node& node, const std::string& path);
  bool RequireScalar(const YAML::Node& node, const std::string& path, const std::string& expected);
  bool UnknownField(const YAML::Node& key, const Descriptor& type, const std::string& path);

  std::string json_;
  SpecIssue issue_;
  std::map<std::string, YAML::Mark> marks_;
};

bool YamlToJson::Message(const YAML::Node& node, const Descriptor& type, const std::string& path) {
  if (type.file()->package() == "google.protobuf") {
    return WellKnown(node, type, path);
  }
  if (!node.IsMap()) {
    return Fail(node, path,
                absl::StrCat("expected a mapping (", type.name(), "), got ", Describe(node)));
  }
  std::map<const FieldDescriptor*, std::string> written;    // field → the key as written
  std::map<const OneofDescriptor*, std::string> oneof_set;  // oneof → the member set
  json_ += '{';
  bool first = true;
  for (const auto& entry : node) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    if (!key.IsScalar()) {
      return Fail(key, path, absl::StrCat("a field name must be a word, got ", Describe(key)));
    }
    const FieldDescriptor* field = FindField(type, key.Scalar());
    if (field == nullptr) {
      return UnknownField(key, type, JoinPath(path, key.Scalar()));
    }
    const std::string field_path = JoinPath(path, field->name());
    if (auto [it, inserted] = written.emplace(field, key.Scalar()); !inserted) {
      return Fail(key, field_path,
                  it->second == key.Scalar() ? "set twice; keep one"
                                             : absl::StrCat("set twice (as ", it->second, " and ",
                                                            key.Scalar(), "); keep one"));
    }
    marks_[field_path] = value.IsNull() ? key.Mark() : value.Mark();
    // Null leaves a field unset, as in protobuf's JSON mapping; a Value holds null itself.
    if (value.IsNull() && !IsValueField(*field)) {
      continue;
    }
    if (const OneofDescriptor* oneof = field->containing_oneof(); oneof != nullptr) {
      if (auto [it, inserted] = oneof_set.emplace(oneof, field->name()); !inserted) {
        return Fail(
            key, path,
            absl::StrCat("both ", it->second, " and ", field->name(), " are set, but only one of ",
                         absl::StrJoin(OneofMemberNames(*oneof), ", "),
                         " may be (they are alternatives); keep one"));
      }
    }
    if (!first) {
      json_ += ',';
    }
    first = false;
    absl::StrAppend(&json_, QuoteJson(field->name()), ":");
    if (!Field(value, *field, field_path)) {
      return false;
    }
  }
  json_ += '}';
  return true;
}

bool YamlToJson::UnknownField(const YAML::Node& key, const Descriptor& type,
                              const std::string& path) {
  const std::vector<std::string> allowed = FieldNames(type);
  std::string message = absl::StrCat("unknown field; allowed here: ", absl::StrJoin(allowed, ", "));
  if (const auto suggestion = ClosestName(key.Scalar(), allowed)) {
    absl::StrAppend(&message, " (did you mean ", *suggestion, "?)");
  }
  return Fail(key, path, std::move(message));
}

bool YamlToJson::Field(const YAML::Node& value, const FieldDescriptor& field,
                       const std::string& path) {
  if (field.is_map()) {
    return MapField(value, field, path);
  }
  if (!field.is_repeated()) {
    return Singular(value, field, path);
  }
  if (!value.IsSequence()) {
    return Fail(value, path,
                absl::StrCat("expected a list, got ", Describe(value),
                             "; write [a, b] or one '- item' per line"));
  }
  json_ += '[';
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string element_path = IndexPath(path, i);
    marks_[element_path] = value[i].Mark();
    if (i > 0) {
      json_ += ',';
    }
    if (!Singular(value[i], field, element_path)) {
      return false;
    }
  }
  json_ += ']';
  return true;
}

bool YamlToJson::MapField(const YAML::Node& value, const FieldDescriptor& field,
                          const std::string& path) {
  if (!value.IsMap()) {
    return Fail(value, path, absl::StrCat("expected a mapping, got ", Describe(value)));
  }
  const FieldDescriptor& key_field = *field.message_type()->map_key();
  const FieldDescriptor& value_field = *field.message_type()->map_value();
  std::set<std::string> keys;
  json_ += '{';
  bool first = true;
  for (const auto& entry : value) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      return Fail(key, path, absl::StrCat("a key must be a scalar, got ", Describe(key)));
    }
    const std::string entry_path = JoinPath(path, key.Scalar());
    if (!keys.insert(key.Scalar()).second) {
      return Fail(key, entry_path, "set twice; keep one");
    }
    marks_[entry_path] = entry.second.Mark();
    if (!first) {
      json_ += ',';
    }
    first = false;
    // JSON object keys are strings; a typed key (an integer, a bool) is checked, then quoted.
    if (key_field.cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      json_ += QuoteJson(key.Scalar());
    } else {
      const size_t start = json_.size();
      if (!Singular(key, key_field, entry_path)) {
        return false;
      }
      json_.insert(start, "\"");
      json_ += '"';
    }
    json_ += ':';
    if (!Singular(entry.second, value_field, entry_path)) {
      return false;
    }
  }
  json_ += '}';
  return true;
}

bool YamlToJson::Singular(const YAML::Node& node, const FieldDescriptor& field,
                          const std::string& path) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return Message(node, *field.message_type(), path);
    case FieldDescriptor::CPPTYPE_ENUM:
      return Enum(node, *field.enum_type(), path);
    case FieldDescriptor::CPPTYPE_STRING:
      return String(node, path);
    case FieldDescriptor::CPPTYPE_BOOL:
      return Bool(node, path);
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return Float(node, path);
    default:
      return Integer(node, field, path);
  }
}

// Struct, Value and ListValue take any YAML of their shape; other well-known types (wrappers,
// Timestamp, Duration) are written as their JSON scalar.
bool YamlToJson::WellKnown(const YAML::Node& node, const Descriptor& type,
                           const std::string& path) {
  const std::string& name = type.full_name();
  if (name == "google.protobuf.Struct" && !node.IsMap()) {
    return Fail(node, path, absl::StrCat("expected a mapping, got ", Describe(node)));
  }
  if (name == "google.protobuf.ListValue" && !node.IsSequence()) {
    return Fail(node, path, absl::StrCat("expected a list, got ", Describe(node)));
  }
  if (name == "google.protobuf.Struct" || name == "google.protobuf.ListValue" ||
      IsValueMessage(type)) {
    return Natural(node, path, 0);
  }
  if (const FieldDescriptor* wrapped = type.FindFieldByName("value");
      wrapped != nullptr && name.size() > 5 && name.substr(name.size() - 5) == "Value") {
    return Singular(node, *wrapped, path);
  }
  return String(node, path);
}

// YAML as it reads: plain true/false are booleans, plain numbers are numbers, anything quoted
// is a string.
bool YamlToJson::Natural(const YAML::Node& node, const std::string& path, int depth) {
  if (depth > kMaxValueDepth) {
    return Fail(node, path, "nested too deeply");
  }
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return NaturalScalar(node, path);
    case YAML::NodeType::Sequence:
      json_ += '[';
      for (size_t i = 0; i < node.size(); ++i) {
        if (i > 0) {
          json_ += ',';
        }
        if (!Natural(node[i], IndexPath(path, i), depth + 1)) {
          return false;
        }
      }
      json_ += ']';
      return true;
    case YAML::NodeType::Map:
      return NaturalMapping(node, path, depth);
    default:
      json_ += "null";
      return true;
  }
}

bool YamlToJson::NaturalScalar(const YAML::Node& node, const std::string& path) {
  const std::string& text = node.Scalar();
  const bool is_string = IsStringScalar(node);
  if (const auto boolean = is_string ? std::nullopt : ParseYamlBool(text)) {
    json_ += *boolean ? "true" : "false";
    return true;
  }
  if (const auto number = is_string ? std::nullopt : ParseYamlNumber(text)) {
    if (!std::isfinite(*number)) {
      return Fail(node, path, absl::StrCat("expected a finite number, got ", text));
    }
    json_ += FormatNumber(*number);
    return true;
  }
  json_ += QuoteJson(text);
  return true;
}

bool YamlToJson::NaturalMapping(const YAML::Node& node, const std::string& path, int depth) {
  std::set<std::string> keys;
  json_ += '{';
  bool first = true;
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) {
      return Fail(entry.first, path,
                  absl::StrCat("a key must be a scalar, got ", Describe(entry.first)));
    }
    const std::string entry_path = JoinPath(path, entry.first.Scalar());
    if (!keys.insert(entry.first.Scalar()).second) {
      return Fail(entry.first, entry_path, "set twice; keep one");
    }
    if (!first) {
      json_ += ',';
    }
    first = false;
    absl::StrAppend(&json_, QuoteJson(entry.first.Scalar()), ":");
    if (!Natural(entry.second, entry_path, depth + 1)) {
      return false;
    }
  }
  json_ += '}';
  return true;
}

bool YamlToJson::RequireScalar(const YAML::Node& node, const std::string& path,
                               const std::string& expected) {
  if (node.IsScalar()) {
    return true;
  }
  return Fail(node, path, absl::StrCat("expected ", expected, ", got ", Describe(node)));
}

bool YamlToJson::Enum(const YAML::Node& node, const EnumDescriptor& type, const std::string& path) {
  std::vector<std::string> allowed;
  for (int i = 0; i < type.value_count(); ++i) {
    // The zero value means "unset"; it parses, but is not offered.
    if (type.value(i)->number() != 0) {
      allowed.push_back(type.value(i)->name());
    }
  }
  const std::string expected = absl::StrCat("one of ", absl::StrJoin(allowed, ", "));
  if (!RequireScalar(node, path, expected)) {
    return false;
  }
  if (type.FindValueByName(node.Scalar()) == nullptr) {
    std::string message =
        absl::StrCat("unknown value ", Describe(node), "; allowed: ", absl::StrJoin(allowed, ", "));
    if (const auto suggestion = ClosestName(node.Scalar(), allowed)) {
      const bool only_case_differs = absl::EqualsIgnoreCase(*suggestion, node.Scalar());
      absl::StrAppend(&message, " (did you mean ", *suggestion, "?",
                      only_case_differs ? " names are case-sensitive" : "", ")");
    }
    return Fail(node, path, std::move(message));
  }
  json_ += QuoteJson(node.Scalar());
  return true;
}

bool YamlToJson::Bool(const YAML::Node& node, const std::string& path) {
  if (!RequireScalar(node, path, "true or false")) {
    return false;
  }
  const auto value = ParseYamlBool(node.Scalar());
  if (!value.has_value()) {
    return Fail(node, path, absl::StrCat("expected true or false, got ", Describe(node)));
  }
  json_ += *value ? "true" : "false";
  return true;
}

// Quoted numbers are accepted: protobuf's JSON mapping writes 64-bit integers as strings, and
// what StudySpecToJson writes must parse again.
bool YamlToJson::Float(const YAML::Node& node, const std::string& path) {
  if (!RequireScalar(node, path, "a number")) {
    return false;
  }
  const auto value = ParseYamlNumber(node.Scalar());
  if (!value.has_value()) {
    return Fail(node, path, absl::StrCat("expected a number, got ", Describe(node)));
  }
  if (!std::isfinite(*value)) {
    return Fail(node, path, absl::StrCat("expected a finite number, got ", node.Scalar()));
  }
  json_ += FormatNumber(*value);
  return true;
}

bool YamlToJson::Integer(const YAML::Node& node, const FieldDescriptor& field,
                         const std::string& path) {
  if (!RequireScalar(node, path, "an integer")) {
    return false;
  }
  auto integer = ParseYamlInteger(node.Scalar());
  if (!integer.has_value()) {
    // 1e3 and 120.0 are whole numbers too; doubles stay exact up to 2^53.
    const auto number = ParseYamlNumber(node.Scalar());
    if (!number.has_value() || !std::isfinite(*number) || std::trunc(*number) != *number ||
        std::fabs(*number) > 9007199254740992.0) {
      return Fail(node, path, absl::StrCat("expected an integer, got ", Describe(node)));
    }
    integer = YamlInteger{*number < 0, static_cast<std::uint64_t>(std::fabs(*number)), false};
  }
  const bool is_signed = field.cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                         field.cpp_type() == FieldDescriptor::CPPTYPE_INT64;
  const bool is_32 = field.cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                     field.cpp_type() == FieldDescriptor::CPPTYPE_UINT32;
  if (integer->negative && integer->magnitude != 0 && !is_signed) {
    return Fail(node, path, absl::StrCat("must be >= 0 (got ", node.Scalar(), ")"));
  }
  const std::uint64_t positive_limit =
      is_32 ? (is_signed ? INT32_MAX : UINT32_MAX) : (is_signed ? INT64_MAX : UINT64_MAX);
  const std::uint64_t limit = integer->negative ? positive_limit + 1 : positive_limit;
  if (integer->overflow || integer->magnitude > limit) {
    return Fail(node, path, absl::StrCat("integer out of range (got ", node.Scalar(), ")"));
  }
  absl::StrAppend(&json_, integer->negative && integer->magnitude != 0 ? "-" : "",
                  integer->magnitude);
  return true;
}

bool YamlToJson::String(const YAML::Node& node, const std::string& path) {
  if (!RequireScalar(node, path, "a string")) {
    return false;
  }
  json_ += QuoteJson(node.Scalar());
  return true;
}

// ---------------------------------------------------------------------------------------------
// Semantic checks on the typed spec.
// ---------------------------------------------------------------------------------------------

bool IsValidParameterName(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  });
}

// Values that count steps (warm-up length, cosine period) must be whole numbers in [min, max].
struct StepBounds {
  std::int64_t min;
  std::int64_t max;
};

// A NumberDomain inside a sequence parameter, with its path and, for step counts, its bounds.
struct DomainAt {
  std::string path;
  const hippo::v1::NumberDomain* domain;
  std::optional<StepBounds> bounds;
};

// Every NumberDomain of a sequence parameter; required ones are listed even when unset, so an
// unset one is reported.
std::vector<DomainAt> DomainsOf(const hippo::v1::SequenceParameter& sequence,
                                const std::string& path, std::int64_t max_steps) {
  using hippo::v1::SequenceParameter;
  std::vector<DomainAt> domains;
  auto add = [&](const std::string& sub, const hippo::v1::NumberDomain& domain) {
    domains.push_back({JoinPath(path, sub), &domain, std::nullopt});
  };
  switch (sequence.shape_case()) {
    case SequenceParameter::kConstant:
      add("constant", sequence.constant());
      break;
    case SequenceParameter::kStepDecay:
      add("step_decay.initial", sequence.step_decay().initial());
      add("step_decay.gamma", sequence.step_decay().gamma());
      break;
    case SequenceParameter::kCosine:
      add("cosine.max", sequence.cosine().max());
      add("cosine.min", sequence.cosine().min());
      if (sequence.cosine().has_period()) {
        domains.push_back({JoinPath(path, "cosine.period"), &sequence.cosine().period(),
                           StepBounds{1, std::numeric_limits<std::int64_t>::max()}});
      }
      break;
    case SequenceParameter::kExponential:
      add("exponential.initial", sequence.exponential().initial());
      add("exponential.rate", sequence.exponential().rate());
      break;
    default:
      break;
  }
  if (sequence.has_warmup_steps()) {
    domains.push_back({JoinPath(path, "warmup_steps"), &sequence.warmup_steps(),
                       StepBounds{0, std::max<std::int64_t>(max_steps - 1, 0)}});
  }
  return domains;
}

Issue CheckNumberNotNegative(double value, const std::string& path) {
  if (value >= 0) {
    return std::nullopt;
  }
  return Problem(path, absl::StrCat("must not be negative (got ", FormatNumber(value), ")"));
}

// Counts and amounts in budget, resources, trainer and algorithm configs are never negative.
Issue CheckNotNegative(const google::protobuf::Message& message, const std::string& path) {
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string field_path = JoinPath(path, field->name());
    auto number = [&](int index) -> std::optional<double> {
      const bool repeated = index >= 0;
      switch (field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          return repeated ? reflection.GetRepeatedInt32(message, field, index)
                          : reflection.GetInt32(message, field);
        case FieldDescriptor::CPPTYPE_INT64:
          return repeated ? reflection.GetRepeatedInt64(message, field, index)
                          : reflection.GetInt64(message, field);
        case FieldDescriptor::CPPTYPE_DOUBLE:
          return repeated ? reflection.GetRepeatedDouble(message, field, index)
                          : reflection.GetDouble(message, field);
        default:
          return std::nullopt;
      }
    };
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated() || field->message_type()->file()->package() == "google.protobuf") {
        continue;
      }
      if (Issue issue = CheckNotNegative(reflection.GetMessage(message, field), field_path)) {
        return issue;
      }
    } else if (field->is_repeated()) {
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        const auto value = number(i);
        if (!value.has_value()) {
          break;
        }
        if (Issue issue = CheckNumberNotNegative(*value, IndexPath(field_path, i))) {
          return issue;
        }
      }
    } else if (const auto value = number(-1)) {
      if (Issue issue = CheckNumberNotNegative(*value, field_path)) {
        return issue;
      }
    }
  }
  return std::nullopt;
}

class SpecValidator {
 public:
  SpecValidator(const StudySpec& spec, const std::vector<std::string>& known_algorithms)
      : spec_(spec), known_algorithms_(known_algorithms), max_steps_(spec.budget().max_steps()) {}

  // The first problem found, in the order a reader goes through a spec.
  Issue Check() const;

 private:
  Issue CheckObjective() const;
  Issue CheckTrainer() const;
  Issue CheckBudget() const;
  Issue CheckSearchSpace() const;
  Issue CheckParameter(const hippo::v1::Parameter& parameter, const std::string& path) const;
  Issue CheckIntParameter(const hippo::v1::IntParameter& range, const std::string& path) const;
  Issue CheckFloatParameter(const hippo::v1::FloatParameter& range, const std::string& path) const;
  Issue CheckCategorical(const hippo::v1::CategoricalParameter& categorical,
                         const std::string& path) const;
  Issue CheckSequence(const hippo::v1::SequenceParameter& sequence, bool structural,
                      const std::string& path) const;
  Issue CheckNumberDomain(const DomainAt& at) const;
  Issue CheckStepValue(double value, const StepBounds& bounds, const std::string& path) const;
  Issue CheckStepList(const google::protobuf::RepeatedField<std::int64_t>& steps,
                      const std::string& path) const;
  Issue CheckAlgorithm() const;
  Issue CheckGridIsFinite() const;
  Issue CheckAsha(const hippo::v1::AshaConfig& asha, const std::string& path) const;
  Issue CheckHyperband() const;
  Issue CheckTpe() const;
  Issue CheckMedian() const;
  Issue CheckPbt() const;
  Issue CheckEvolution() const;

  const StudySpec& spec_;
  const std::vector<std::string>& known_algorithms_;
  const std::int64_t max_steps_;
};

Issue SpecValidator::Check() const {
  if (Issue issue = CheckObjective()) {
    return issue;
  }
  if (Issue issue = CheckTrainer()) {
    return issue;
  }
  if (Issue issue = CheckBudget()) {
    return issue;
  }
  if (Issue issue = CheckNotNegative(spec_.resources(), "resources")) {
    return issue;
  }
  if (Issue issue = CheckSearchSpace()) {
    return issue;
  }
  return CheckAlgorithm();
}

Issue SpecValidator::CheckObjective() const {
  if (spec_.objective().metric().empty()) {
    return Problem("objective.metric",
                   "required; name the metric the trainer reports, e.g. metric: val_accuracy");
  }
  if (spec_.objective().direction() == hippo::v1::DIRECTION_UNSPECIFIED) {
    return Problem("objective.direction", "required; set direction: MINIMIZE or MAXIMIZE");
  }
  return std::nullopt;
}

Issue SpecValidator::CheckTrainer() const {
  // An ask/tell study's trials are trained by its client, never by Hippo's workers: it needs no
  // trainer section (one given is checked like any other).
  if (!spec_.has_trainer() && spec_.algorithm().name() == "external") {
    return std::nullopt;
  }
  const hippo::v1::TrainerSpec& trainer = spec_.trainer();
  const std::string known = absl::StrJoin(KnownTrainerKinds(), ", ");
  if (trainer.kind().empty()) {
    return Problem("trainer.kind", absl::StrCat("required; set kind: to one of ", known));
  }
  if (!Contains(KnownTrainerKinds(), trainer.kind())) {
    return Problem("trainer.kind",
                   absl::StrCat("unknown trainer \"", trainer.kind(), "\"; known: ", known));
  }
  if (trainer.kind() == "command" && trainer.command().empty()) {
    return Problem("trainer.command",
                   "required when kind is command; give the program and its arguments, e.g. "
                   "command: [python3, train.py]");
  }
  if (trainer.kind() == "command" && trainer.command(0).empty()) {
    return Problem("trainer.command[0]", "the program name is empty");
  }
  if (trainer.kind() != "command" && !trainer.command().empty()) {
    return Problem("trainer.command", absl::StrCat("only used when kind is command (kind is ",
                                                   trainer.kind(), "); remove it"));
  }
  return CheckNotNegative(trainer, "trainer");
}

Issue SpecValidator::CheckBudget() const {
  if (max_steps_ <= 0) {
    return Problem("budget.max_steps",
                   absl::StrCat("must be > 0 (got ", max_steps_,
                                "); set the steps of a fully trained trial, e.g. max_steps: 120"));
  }
  return CheckNotNegative(spec_.budget(), "budget");
}

Issue SpecValidator::CheckSearchSpace() const {
  const auto& parameters = spec_.search_space().parameters();
  if (parameters.empty()) {
    return Problem("search_space.parameters",
                   "empty; list at least one parameter, e.g. "
                   "- {name: lr, float: {low: 0.001, high: 0.1, log: true}}");
  }
  std::map<std::string, int> first_index;
  for (int i = 0; i < parameters.size(); ++i) {
    const std::string path = IndexPath("search_space.parameters", i);
    const std::string& name = parameters[i].name();
    if (auto [it, inserted] = first_index.emplace(name, i); !inserted && !name.empty()) {
      return Problem(JoinPath(path, "name"),
                     absl::StrCat("\"", name, "\" is also the name of search_space.parameters[",
                                  it->second, "]; parameter names must be unique"));
    }
    if (Issue issue = CheckParameter(parameters[i], path)) {
      return issue;
    }
  }
  return std::nullopt;
}

Issue SpecValidator::CheckParameter(const hippo::v1::Parameter& parameter,
                                    const std::string& path) const {
  using hippo::v1::Parameter;
  if (parameter.name().empty()) {
    return Problem(JoinPath(path, "name"), "required; give the parameter a name, e.g. name: lr");
  }
  if (!IsValidParameterName(parameter.name())) {
    return Problem(JoinPath(path, "name"),
                   absl::StrCat("\"", parameter.name(),
                                "\" is not a valid name; use letters, digits, _ and ., starting "
                                "with a letter or _"));
  }
  switch (parameter.kind_case()) {
    case Parameter::kCategorical:
      return CheckCategorical(parameter.categorical(), JoinPath(path, "categorical"));
    case Parameter::kInt:
      return CheckIntParameter(parameter.int_(), JoinPath(path, "int"));
    case Parameter::kFloat:
      return CheckFloatParameter(parameter.float_(), JoinPath(path, "float"));
    case Parameter::kSequence:
      return CheckSequence(parameter.sequence(), parameter.structural(),
                           JoinPath(path, "sequence"));
    case Parameter::kFixed:
      if (parameter.fixed().kind_case() == google::protobuf::Value::kNullValue) {
        return Problem(JoinPath(path, "fixed"), "is null; give the constant value");
      }
      return std::nullopt;
    default:
      return Problem(path, "no domain; set one of categorical, int, float, sequence or fixed");
  }
}

Issue SpecValidator::CheckCategorical(const hippo::v1::CategoricalParameter& categorical,
                                      const std::string& path) const {
  const std::string values_path = JoinPath(path, "values");
  if (categorical.values().empty()) {
    return Problem(values_path, "empty; list at least one value, e.g. values: [relu, gelu]");
  }
  std::map<std::string, int> seen;  // the value's JSON text → its index
  for (int i = 0; i < categorical.values_size(); ++i) {
    const google::protobuf::Value& value = categorical.values(i);
    std::string key;
    if (value.kind_case() == google::protobuf::Value::kNumberValue) {
      key = FormatNumber(value.number_value());
    } else if (value.kind_case() == google::protobuf::Value::kStringValue) {
      key = QuoteJson(value.string_value());
    } else {
      return Problem(IndexPath(values_path, i), "must be a number or a string");
    }
    if (auto [it, inserted] = seen.emplace(key, i); !inserted) {
      return Problem(IndexPath(values_path, i), absl::StrCat("repeats values[", it->second, "] (",
                                                             key, "); list each value once"));
    }
  }
  return std::nullopt;
}

Issue SpecValidator::CheckIntParameter(const hippo::v1::IntParameter& range,
                                       const std::string& path) const {
  if (range.low() > range.high()) {
    return Problem(JoinPath(path, "low"),
                   absl::StrCat("must not exceed high (got low=", range.low(),
                                ", high=", range.high(), "); high is inclusive"));
  }
  if (range.log() && range.low() <= 0) {
    return Problem(JoinPath(path, "low"),
                   absl::StrCat("must be > 0 when log is true (got ", range.low(), ")"));
  }
  if (range.step() < 0) {
    return Problem(JoinPath(path, "step"),
                   absl::StrCat("must not be negative (got ", range.step(), ")"));
  }
  return std::nullopt;
}

Issue SpecValidator::CheckFloatParameter(const hippo::v1::FloatParameter& range,
                                         const std::string& path) const {
  if (range.low() >= range.high()) {
    return Problem(JoinPath(path, "low"),
                   absl::StrCat("must be below high (got low=", FormatNumber(range.low()),
                                ", high=", FormatNumber(range.high()), ")"));
  }
  if (range.log() && range.low() <= 0) {
    return Problem(JoinPath(path, "low"),
                   absl::StrCat("must be > 0 when log is true (got ", FormatNumber(range.low()),
                                "); a log scale cannot reach 0 or negative numbers"));
  }
  return CheckNumberNotNegative(range.step(), JoinPath(path, "step"));
}

Issue SpecValidator::CheckSequence(const hippo::v1::SequenceParameter& sequence, bool structural,
                                   const std::string& path) const {
  using hippo::v1::SequenceParameter;
  if (sequence.shape_case() == SequenceParameter::SHAPE_NOT_SET) {
    return Problem(path,
                   "no shape; set one of constant, step_decay, cosine, exponential or "
                   "piecewise, e.g. constant: {value: 0.1}");
  }
  if (structural && sequence.shape_case() != SequenceParameter::kConstant) {
    return Problem(path,
                   "a structural parameter cannot change during training; use constant, or "
                   "drop structural: true");
  }
  for (const DomainAt& at : DomainsOf(sequence, path, max_steps_)) {
    if (Issue issue = CheckNumberDomain(at)) {
      return issue;
    }
  }
  if (sequence.has_step_decay()) {
    const std::string milestones_path = JoinPath(path, "step_decay.milestones.choices");
    const auto& choices = sequence.step_decay().milestones().choices();
    if (choices.empty()) {
      return Problem(milestones_path,
                     "empty; list at least one set of milestones, e.g. "
                     "milestones: {choices: [{steps: [60, 90]}]}");
    }
    for (int i = 0; i < choices.size(); ++i) {
      const std::string steps_path = JoinPath(IndexPath(milestones_path, i), "steps");
      if (Issue issue = CheckStepList(choices[i].steps(), steps_path)) {
        return issue;
      }
    }
  }
  if (sequence.has_piecewise()) {
    const hippo::v1::PiecewiseSequence& piecewise = sequence.piecewise();
    const std::string piecewise_path = JoinPath(path, "piecewise");
    if (Issue issue =
            CheckStepList(piecewise.boundaries(), JoinPath(piecewise_path, "boundaries"))) {
      return issue;
    }
    if (piecewise.values_size() != piecewise.boundaries_size() + 1) {
      return Problem(
          JoinPath(piecewise_path, "values"),
          absl::StrCat("has ", piecewise.values_size(), " values for ", piecewise.boundaries_size(),
                       " boundaries; give one more value than boundaries"));
    }
  }
  return std::nullopt;
}

Issue SpecValidator::CheckNumberDomain(const DomainAt& at) const {
  using hippo::v1::NumberDomain;
  const NumberDomain& domain = *at.domain;
  switch (domain.domain_case()) {
    case NumberDomain::kValue:
      if (at.bounds.has_value()) {
        return CheckStepValue(domain.value(), *at.bounds, JoinPath(at.path, "value"));
      }
      return std::nullopt;
    case NumberDomain::kChoices: {
      const std::string values_path = JoinPath(at.path, "choices.values");
      if (domain.choices().values().empty()) {
        return Problem(values_path, "empty; list at least one value, e.g. values: [0.1, 0.01]");
      }
      if (!at.bounds.has_value()) {
        return std::nullopt;
      }
      for (int i = 0; i < domain.choices().values_size(); ++i) {
        if (Issue issue =
                CheckStepValue(domain.choices().values(i), *at.bounds, IndexPath(values_path, i))) {
          return issue;
        }
      }
      return std::nullopt;
    }
    case NumberDomain::kRange: {
      const hippo::v1::NumberRange& range = domain.range();
      const std::string range_path = JoinPath(at.path, "range");
      if (range.low() >= range.high()) {
        return Problem(JoinPath(range_path, "low"),
                       absl::StrCat("must be below high (got low=", FormatNumber(range.low()),
                                    ", high=", FormatNumber(range.high()), ")"));
      }
      if (range.log() && range.low() <= 0) {
        return Problem(JoinPath(range_path, "low"),
                       absl::StrCat("must be > 0 when log is true (got ", FormatNumber(range.low()),
                                    "); a log scale cannot reach 0 or negative numbers"));
      }
      if (at.bounds.has_value()) {
        if (Issue issue = CheckStepValue(range.low(), *at.bounds, JoinPath(range_path, "low"))) {
          return issue;
        }
        return CheckStepValue(range.high(), *at.bounds, JoinPath(range_path, "high"));
      }
      return CheckNumberNotNegative(range.step(), JoinPath(range_path, "step"));
    }
    default:
      return Problem(at.path, "required; set one of value, choices or range, e.g. {value: 0.1}");
  }
}

Issue SpecValidator::CheckStepValue(double value, const StepBounds& bounds,
                                    const std::string& path) const {
  if (std::trunc(value) != value) {
    return Problem(path,
                   absl::StrCat("must be a whole number of steps (got ", FormatNumber(value), ")"));
  }
  if (value < static_cast<double>(bounds.min)) {
    return Problem(
        path, absl::StrCat("must be at least ", bounds.min, " (got ", FormatNumber(value), ")"));
  }
  if (value > static_cast<double>(bounds.max)) {
    return Problem(path, absl::StrCat("must be below budget.max_steps (", max_steps_, ") (got ",
                                      FormatNumber(value), ")"));
  }
  return std::nullopt;
}

// Milestones and piecewise boundaries: strictly increasing steps inside (0, max_steps).
Issue SpecValidator::CheckStepList(const google::protobuf::RepeatedField<std::int64_t>& steps,
                                   const std::string& path) const {
  for (int i = 0; i < steps.size(); ++i) {
    const std::string step_path = IndexPath(path, i);
    if (steps[i] <= 0) {
      return Problem(step_path, absl::StrCat("must be > 0 (got ", steps[i], ")"));
    }
    if (steps[i] >= max_steps_) {
      return Problem(step_path, absl::StrCat("must be below budget.max_steps (", max_steps_,
                                             ") (got ", steps[i], ")"));
    }
    if (i > 0 && steps[i] <= steps[i - 1]) {
      return Problem(step_path,
                     absl::StrCat("must be greater than the step before it (got ", steps[i],
                                  " after ", steps[i - 1], "); list steps in increasing order"));
    }
  }
  return std::nullopt;
}

Issue SpecValidator::CheckAlgorithm() const {
  const hippo::v1::Algorithm& algorithm = spec_.algorithm();
  const std::string known = absl::StrJoin(known_algorithms_, ", ");
  if (algorithm.name().empty()) {
    return Problem("algorithm.name", absl::StrCat("required; set name: to one of ", known));
  }
  // An empty list means "any name": a client cannot know which plugins a server has loaded,
  // so it leaves the name to the server.
  if (!known_algorithms_.empty() && !Contains(known_algorithms_, algorithm.name())) {
    return Problem("algorithm.name",
                   absl::StrCat("unknown algorithm \"", algorithm.name(), "\"; known: ", known));
  }
  // A config block for another algorithm is a leftover or a typo in name; either way it would
  // be silently ignored.
  const Descriptor& type = *algorithm.GetDescriptor();
  const google::protobuf::Reflection& reflection = *algorithm.GetReflection();
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    if (field.cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field.name() == "plugin_config" ||
        field.name() == algorithm.name() || !reflection.HasField(algorithm, &field) ||
        // external's suggestions come from TPE, which algorithm.tpe configures.
        (algorithm.name() == "external" && field.name() == "tpe")) {
      continue;
    }
    return Problem(JoinPath("algorithm", field.name()),
                   absl::StrCat("configures ", field.name(), ", but algorithm.name is \"",
                                algorithm.name(), "\"; remove it or set name: ", field.name()));
  }
  if (Issue issue = CheckNotNegative(algorithm, "algorithm")) {
    return issue;
  }
  const std::string& name = algorithm.name();
  if (name == "grid") {
    return CheckGridIsFinite();
  }
  if (name == "asha") {
    return CheckAsha(algorithm.asha(), "algorithm.asha");
  }
  if (name == "hyperband") {
    return CheckHyperband();
  }
  if (name == "tpe") {
    return CheckTpe();
  }
  if (name == "median") {
    return CheckMedian();
  }
  if (name == "pbt") {
    return CheckPbt();
  }
  if (name == "evolution") {
    return CheckEvolution();
  }
  return std::nullopt;
}

Issue SpecValidator::CheckGridIsFinite() const {
  const auto& parameters = spec_.search_space().parameters();
  for (int i = 0; i < parameters.size(); ++i) {
    const std::string path = IndexPath("search_space.parameters", i);
    if (parameters[i].has_float_()) {
      return Problem(JoinPath(path, "float"),
                     "grid search needs a finite domain, but a float range is continuous; list "
                     "the values to try with categorical: {values: [...]}, or use another "
                     "algorithm (random, tpe, asha)");
    }
    if (!parameters[i].has_sequence()) {
      continue;
    }
    for (const DomainAt& at :
         DomainsOf(parameters[i].sequence(), JoinPath(path, "sequence"), max_steps_)) {
      if (at.domain->has_range()) {
        return Problem(JoinPath(at.path, "range"),
                       "grid search needs a finite domain, but a range is continuous; list the "
                       "values to try with choices: {values: [...]}, or use another algorithm "
                       "(random, tpe, asha)");
      }
    }
  }
  return std::nullopt;
}

Issue SpecValidator::CheckAsha(const hippo::v1::AshaConfig& asha, const std::string& path) const {
  if (asha.min_resource() == 0) {
    return Problem(JoinPath(path, "min_resource"),
                   "required; the steps of the first rung, e.g. min_resource: 5");
  }
  if (asha.max_resource() > max_steps_) {
    return Problem(JoinPath(path, "max_resource"),
                   absl::StrCat("must not exceed budget.max_steps (", max_steps_, ") (got ",
                                asha.max_resource(), ")"));
  }
  const bool max_is_default = asha.max_resource() == 0;
  const std::int64_t max_resource = max_is_default ? max_steps_ : asha.max_resource();
  if (asha.min_resource() > max_resource) {
    return Problem(
        JoinPath(path, "min_resource"),
        absl::StrCat("must not exceed ", max_is_default ? "budget.max_steps" : "max_resource",
                     " (got ", asha.min_resource(), " > ", max_resource, ")"));
  }
  if (asha.reduction_factor() != 0 && asha.reduction_factor() <= 1) {
    return Problem(JoinPath(path, "reduction_factor"),
                   absl::StrCat("must be > 1 (got ", FormatNumber(asha.reduction_factor()),
                                "); each rung keeps 1/reduction_factor of the trials, e.g. 3"));
  }
  if (!asha.sampler().empty() && asha.sampler() != "random" && asha.sampler() != "tpe") {
    return Problem(JoinPath(path, "sampler"),
                   absl::StrCat("unknown sampler \"", asha.sampler(), "\"; known: random, tpe"));
  }
  return std::nullopt;
}

Issue SpecValidator::CheckHyperband() const {
  const hippo::v1::HyperbandConfig& hyperband = spec_.algorithm().hyperband();
  if (hyperband.max_resource() > max_steps_) {
    return Problem("algorithm.hyperband.max_resource",
                   absl::StrCat("must not exceed budget.max_steps (", max_steps_, ") (got ",
                                hyperband.max_resource(), ")"));
  }
  if (hyperband.reduction_factor() != 0 && hyperband.reduction_factor() <= 1) {
    return Problem("algorithm.hyperband.reduction_factor",
                   absl::StrCat("must be > 1 (got ", FormatNumber(hyperband.reduction_factor()),
                                "), e.g. reduction_factor: 3"));
  }
  return std::nullopt;
}

Issue SpecValidator::CheckTpe() const {
  const double gamma = spec_.algorithm().tpe().gamma();
  if (gamma >= 1) {
    return Problem("algorithm.tpe.gamma",
                   absl::StrCat("must be below 1 (got ", FormatNumber(gamma),
                                "); it is the fraction of trials in the good group, e.g. 0.25"));
  }
  return std::nullopt;
}

Issue SpecValidator::CheckMedian() const {
  const std::string& sampler = spec_.algorithm().median().sampler();
  if (!sampler.empty() && sampler != "random" && sampler != "tpe") {
    return Problem("algorithm.median.sampler",
                   absl::StrCat("unknown sampler \"", sampler, "\"; known: random, tpe"));
  }
  return std::nullopt;
}

Issue SpecValidator::CheckPbt() const {
  const hippo::v1::PbtConfig& pbt = spec_.algorithm().pbt();
  if (pbt.population_size() < 2) {
    return Problem("algorithm.pbt.population_size",
                   absl::StrCat("must be at least 2 (got ", pbt.population_size(),
                                "), e.g. population_size: 16"));
  }
  if (pbt.perturbation_interval() <= 0 || pbt.perturbation_interval() >= max_steps_) {
    return Problem("algorithm.pbt.perturbation_interval",
                   absl::StrCat("must be between 1 and budget.max_steps - 1 (got ",
                                pbt.perturbation_interval(),
                                "); the steps between exploit/explore rounds, e.g. 10"));
  }
  if (pbt.quantile_fraction() > 0.5) {
    return Problem("algorithm.pbt.quantile_fraction",
                   absl::StrCat("must be at most 0.5 (got ", FormatNumber(pbt.quantile_fraction()),
                                "); the bottom fraction is replaced by the top one"));
  }
  if (pbt.resample_probability() > 1) {
    return Problem(
        "algorithm.pbt.resample_probability",
        absl::StrCat("must be at most 1 (got ", FormatNumber(pbt.resample_probability()), ")"));
  }
  for (int i = 0; i < pbt.perturbation_factors_size(); ++i) {
    if (pbt.perturbation_factors(i) <= 0) {
      return Problem(IndexPath("algorithm.pbt.perturbation_factors", i), "must be > 0");
    }
  }
  for (int i = 0; i < pbt.perturbed_parameters_size(); ++i) {
    const std::string path = IndexPath("algorithm.pbt.perturbed_parameters", i);
    const std::string& name = pbt.perturbed_parameters(i);
    const auto& parameters = spec_.search_space().parameters();
    const auto it = std::find_if(parameters.begin(), parameters.end(),
                                 [&](const auto& parameter) { return parameter.name() == name; });
    if (it == parameters.end()) {
      return Problem(path, absl::StrCat("no parameter named \"", name, "\" in search_space"));
    }
    if (it->structural() || it->has_fixed()) {
      return Problem(path,
                     absl::StrCat("\"", name, "\" is ", it->structural() ? "structural" : "fixed",
                                  ", so PBT cannot change it during training"));
    }
  }
  return std::nullopt;
}

Issue SpecValidator::CheckEvolution() const {
  const hippo::v1::EvolutionConfig& evolution = spec_.algorithm().evolution();
  if (evolution.population_size() == 0) {
    return Problem("algorithm.evolution.population_size",
                   "required; the number of models kept alive, e.g. population_size: 16");
  }
  if (evolution.children() == 0) {
    return Problem("algorithm.evolution.children",
                   "required; the number of children to train, e.g. children: 64");
  }
  if (evolution.sample_size() > evolution.population_size()) {
    return Problem("algorithm.evolution.sample_size",
                   absl::StrCat("must not exceed population_size (got ", evolution.sample_size(),
                                " > ", evolution.population_size(), ")"));
  }
  if (evolution.has_asha()) {
    return CheckAsha(evolution.asha(), "algorithm.evolution.asha");
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Parsing text and files.
// ---------------------------------------------------------------------------------------------

enum class SpecFormat { kYaml, kJson };

// The one document of `text`; a syntax error names its line and column.
absl::StatusOr<YAML::Node> LoadDocument(std::string_view text, const std::string& source,
                                        SpecFormat format) {
  const char* const language = format == SpecFormat::kJson ? "JSON" : "YAML";
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::ParserException& error) {
    return absl::InvalidArgumentError(FormatIssue(
        source, SpecIssue{"", absl::StrCat(language, " syntax error: ", error.msg), error.mark}));
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": cannot read as ", language, ": ", error.what()));
  }
  if (documents.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": holds ", documents.size(),
                     " YAML documents (separated by ---); a spec is one study, one document"));
  }
  if (documents.empty() || documents[0].IsNull()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     ": the spec is empty; expected a mapping with name, objective, "
                     "trainer, search_space, algorithm and budget"));
  }
  if (!documents[0].IsMap()) {
    return absl::InvalidArgumentError(FormatIssue(
        source, SpecIssue{"",
                          absl::StrCat("expected a mapping of study fields (name, objective, "
                                       "trainer, ...) at the top level, got ",
                                       Describe(documents[0])),
                          documents[0].Mark()}));
  }
  return documents[0];
}

absl::StatusOr<StudySpec> ParseSpecText(std::string_view text, const std::string& source,
                                        SpecFormat format,
                                        const std::vector<std::string>& known_algorithms) {
  absl::StatusOr<YAML::Node> document = LoadDocument(text, source, format);
  if (!document.ok()) {
    return document.status();
  }
  YamlToJson converter;
  try {
    if (!converter.Convert(*document, *StudySpec::descriptor())) {
      return absl::InvalidArgumentError(FormatIssue(source, converter.FirstIssue()));
    }
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", error.what()));
  }
  StudySpec spec;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      converter.JsonText(), &spec, google::protobuf::util::JsonParseOptions());
  if (!parsed.ok()) {
    // The walk above checks what the JSON mapping checks, so this is a loader bug.
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": cannot convert to StudySpec: ", parsed.message().ToString()));
  }
  if (Issue issue = SpecValidator(spec, known_algorithms).Check()) {
    LocateIssue(converter.FieldMarks(), *issue);
    return absl::InvalidArgumentError(FormatIssue(source, *issue));
  }
  return spec;
}

absl::StatusOr<std::string> ReadSpecFile(const std::string& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  // A parent directory we may not search is not the same as a missing file.
  if (error && error != std::errc::no_such_file_or_directory &&
      error != std::errc::not_a_directory) {
    return absl::ErrnoToStatus(error.value(), path);
  }
  if (!std::filesystem::exists(status)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  if (std::filesystem::is_directory(status)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a spec file"));
  }
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (!error && size > kMaxSpecFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", size, " bytes is too large for a ",
                                                   "spec (the limit is ", kMaxSpecFileBytes,
                                                   " bytes)"));
  }
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                             &std::fclose);
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno, path);
  }
  std::string text;
  char buffer[1 << 16];
  while (const size_t read = std::fread(buffer, 1, sizeof(buffer), file.get())) {
    text.append(buffer, read);
    if (text.size() > kMaxSpecFileBytes) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": too large for a spec"));
    }
  }
  if (std::ferror(file.get())) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": read"));
  }
  if (const size_t zero = text.find('\0'); zero != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a text file (a NUL byte at offset ", zero, ")"));
  }
  return text;
}

}  // namespace

const std::vector<std::string>& BuiltInAlgorithmNames() {
  static const auto* const names = new std::vector<std::string>{
      "grid", "random", "tpe", "asha", "hyperband", "median", "pbt", "evolution", "external"};
  return *names;
}

absl::StatusOr<StudySpec> ParseStudySpec(std::string_view text, std::string_view source,
                                         const std::vector<std::string>& known_algorithms) {
  return ParseSpecText(text, std::string(source), SpecFormat::kYaml, known_algorithms);
}

absl::StatusOr<StudySpec> LoadStudySpecFile(const std::string& path,
                                            const std::vector<std::string>& known_algorithms) {
  absl::StatusOr<std::string> text = ReadSpecFile(path);
  if (!text.ok()) {
    return text.status();
  }
  const bool is_json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  return ParseSpecText(*text, path, is_json ? SpecFormat::kJson : SpecFormat::kYaml,
                       known_algorithms);
}

absl::Status ValidateStudySpec(const StudySpec& spec,
                               const std::vector<std::string>& known_algorithms) {
  if (Issue issue = SpecValidator(spec, known_algorithms).Check()) {
    return absl::InvalidArgumentError(absl::StrCat(issue->path, ": ", issue->message));
  }
  return absl::OkStatus();
}

std::string StudySpecToJson(const StudySpec& spec) {
  // MessageToJsonString writes map entries (labels, Struct fields) in hash order, which differs
  // between runs. Serializing deterministically sorts them by key, and printing JSON from those
  // bytes keeps that order, so equal specs always give equal text.
  std::string binary;
  {
    google::protobuf::io::StringOutputStream stream(&binary);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }
  static google::protobuf::util::TypeResolver* const resolver =
      google::protobuf::util::NewTypeResolverForDescriptorPool(
          kTypeUrlPrefix, google::protobuf::DescriptorPool::generated_pool());
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // Cannot fail: the bytes were just written from a message of this very type.
  (void)google::protobuf::util::BinaryToJsonString(
      resolver, absl::StrCat(kTypeUrlPrefix, "/", StudySpec::descriptor()->full_name()), binary,
      &json, options);
  return json;
}

}  // namespace hippo::proto
