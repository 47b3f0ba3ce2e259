// Study specs: YAML or JSON text mapped onto hippo.v1.StudySpec through protobuf's JSON mapping.
//
// Every error names the field path that is wrong, in the form users write it, for example
//   search_space.parameters[2].float.low: must be below high (got low=1, high=0.5)
// and says how to fix it. Nothing here touches a store: callers validate before they write.
#ifndef HIPPO_PROTO_SPEC_LOADER_H_
#define HIPPO_PROTO_SPEC_LOADER_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::proto {

// The algorithm names built into Hippo. A server that loads plugins accepts more.
const std::vector<std::string>& BuiltInAlgorithmNames();

// Parses YAML or JSON text into a StudySpec and validates it (see ValidateStudySpec).
// `source` names the text in messages (a file name, or "<stdin>").
// Returns InvalidArgument naming the field path on any error: a syntax error (with line and
// column), an unknown field (with the fields that are allowed there), a value of the wrong type,
// or a failed semantic check.
absl::StatusOr<hippo::v1::StudySpec> ParseStudySpec(
    std::string_view text, std::string_view source,
    const std::vector<std::string>& known_algorithms = BuiltInAlgorithmNames());

// Reads and parses a spec file; NotFound or PermissionDenied (naming the path) if it cannot be
// read. Files ending in .json are parsed as JSON, everything else as YAML (a superset).
absl::StatusOr<hippo::v1::StudySpec> LoadStudySpecFile(
    const std::string& path,
    const std::vector<std::string>& known_algorithms = BuiltInAlgorithmNames());

// Semantic checks on a parsed spec: objective metric and direction set; trainer kind known;
// at least one parameter; unique parameter names; every domain non-empty and ordered
// (low < high, log ranges positive, choices non-empty); milestones increasing and inside
// (0, max_steps); budget.max_steps > 0 and no negative counts; algorithm known and its
// config consistent (e.g. asha.min_resource <= max_resource).
absl::Status ValidateStudySpec(
    const hippo::v1::StudySpec& spec,
    const std::vector<std::string>& known_algorithms = BuiltInAlgorithmNames());

// The spec as JSON (protobuf's JSON mapping, snake_case names), for storage and --json output.
std::string StudySpecToJson(const hippo::v1::StudySpec& spec);

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_SPEC_LOADER_H_
