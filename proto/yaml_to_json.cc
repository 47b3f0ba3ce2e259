#include "proto/yaml_to_json.h"

#include <cmath>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "hippo/v1/hippo.pb.h"
#include "proto/spec_issues.h"
#include "proto/yaml_scalars.h"
#include "yaml-cpp/yaml.h"

namespace hippo::proto {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::OneofDescriptor;

// google.protobuf.Value nests without a schema; bound it so a hostile document cannot exhaust
// the stack.
constexpr int kMaxValueDepth = 64;

// A YAML alias (*name) repeats its anchor's whole subtree, so a short document can expand to
// billions of nodes ("billion laughs"). Conversion counts every node it writes, aliases
// included, and stops past these bounds; a real spec has a few hundred nodes.
constexpr int64_t kMaxNodes = 100'000;
constexpr size_t kMaxJsonBytes = 16 << 20;  // the limit on a spec file (spec_loader.cc)

std::optional<TextPosition> PositionOf(const YAML::Mark& mark) {
  if (mark.is_null()) {
    return std::nullopt;
  }
  return TextPosition{mark.line, mark.column};
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

  std::string& JsonText() { return json_; }
  const SpecIssue& FirstIssue() const { return issue_; }
  // Where each field path (proto names) was written, to locate later semantic errors.
  std::map<std::string, TextPosition>& FieldPositions() { return positions_; }

 private:
  bool Fail(const YAML::Node& node, std::string path, std::string message) {
    issue_ = SpecIssue{std::move(path), std::move(message), PositionOf(node.Mark())};
    return false;
  }

  // Counts `node` (at `path`) towards kMaxNodes and checks the output against kMaxJsonBytes.
  bool Count(const YAML::Node& node, const std::string& path);
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
  int64_t nodes_ = 0;
  SpecIssue issue_;
  std::map<std::string, TextPosition> positions_;
};

bool YamlToJson::Count(const YAML::Node& node, const std::string& path) {
  if (++nodes_ > kMaxNodes || json_.size() > kMaxJsonBytes) {
    return Fail(
        node, path,
        absl::StrCat("the document expands to more than ", kMaxNodes, " nodes or ", kMaxJsonBytes,
                     " bytes (YAML aliases repeat their anchor's content each time); "
                     "remove the aliases (*name) that repeat large parts, or shrink it"));
  }
  return true;
}

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
    if (const auto position = PositionOf(value.IsNull() ? key.Mark() : value.Mark())) {
      positions_[field_path] = *position;
    }
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
    if (const auto position = PositionOf(value[i].Mark())) {
      positions_[element_path] = *position;
    }
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
    if (const auto position = PositionOf(entry.second.Mark())) {
      positions_[entry_path] = *position;
    }
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
  if (!Count(node, path)) {
    return false;
  }
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
  if (!Count(node, path)) {
    return false;
  }
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
        const std::string element_path = IndexPath(path, i);
        if (const auto position = PositionOf(node[i].Mark())) {
          positions_[element_path] = *position;
        }
        if (!Natural(node[i], element_path, depth + 1)) {
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
      return Fail(node, path, NotFiniteMessage(*number));
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
    if (const auto position = PositionOf(entry.second.Mark())) {
      positions_[entry_path] = *position;
    }
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
    return Fail(node, path, NotFiniteMessage(*value));
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

// The one document of `text`; a syntax error names its line and column.
absl::StatusOr<YAML::Node> LoadDocument(std::string_view text, const std::string& source,
                                        SpecFormat format) {
  const char* const language = format == SpecFormat::kJson ? "JSON" : "YAML";
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::ParserException& error) {
    return absl::InvalidArgumentError(
        FormatIssue(source, SpecIssue{"", absl::StrCat(language, " syntax error: ", error.msg),
                                      PositionOf(error.mark)}));
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
                          PositionOf(documents[0].Mark())}));
  }
  return documents[0];
}

}  // namespace

absl::StatusOr<SpecJson> SpecTextToJson(std::string_view text, const std::string& source,
                                        SpecFormat format) {
  absl::StatusOr<YAML::Node> document = LoadDocument(text, source, format);
  if (!document.ok()) {
    return document.status();
  }
  YamlToJson converter;
  try {
    if (!converter.Convert(*document, *hippo::v1::StudySpec::descriptor())) {
      return absl::InvalidArgumentError(FormatIssue(source, converter.FirstIssue()));
    }
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", error.what()));
  }
  return SpecJson{std::move(converter.JsonText()), std::move(converter.FieldPositions())};
}

}  // namespace hippo::proto
