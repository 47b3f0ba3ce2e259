// Spec text (YAML, or JSON, which is YAML) → JSON typed by the StudySpec descriptor, for
// protobuf's JSON mapping to build the message from. Internal to hippo_proto.
//
// Why walk the YAML tree against the descriptor instead of converting YAML to JSON blindly: only
// the schema knows that `low: abc` must be a number, that `name: 1e3` is the string "1e3", or
// that `values: [3, "3"]` holds a number and a string; and protobuf's own JSON errors name
// neither the field path nor the line. The walk checks types and names and records where every
// field was written; protobuf's JSON mapping still builds the message, so the schema lives only
// in hippo.proto.
#ifndef HIPPO_PROTO_YAML_TO_JSON_H_
#define HIPPO_PROTO_YAML_TO_JSON_H_

#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/spec_issues.h"

namespace hippo::proto {

// Which language the text claims to be; it only changes the words of syntax errors (one parser
// reads both).
enum class SpecFormat { kYaml, kJson };

struct SpecJson {
  std::string json;  // for google::protobuf::util::JsonStringToMessage into a StudySpec
  // Where each field path (proto names, as in SpecIssue::path) was written, to locate the
  // problems later checks find.
  std::map<std::string, TextPosition> positions;
};

// Reads the one document of `text` and writes it as JSON typed by StudySpec. InvalidArgument
// "source:line:column: path: message" on the first problem: a syntax error, more or fewer than
// one document, an unknown field (listing the allowed ones, with a "did you mean"), a value of
// the wrong type, a field set twice, two members of a oneof.
absl::StatusOr<SpecJson> SpecTextToJson(std::string_view text, const std::string& source,
                                        SpecFormat format);

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_YAML_TO_JSON_H_
