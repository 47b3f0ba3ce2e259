// Study specs: YAML or JSON text mapped onto hippo.v1.StudySpec through protobuf's JSON mapping.
//
// Every error names the field path that is wrong, in the form users write it, for example
//   search_space.parameters[2].float.low: must be below high (got low=1, high=0.5)
// and says how to fix it. Nothing here touches a store: callers validate before they write.
//
// Messages from text begin with the source and, when known, the 1-based line and column, like
// a compiler's: `w1.yaml:14:20: search_space.parameters[0].float.low: expected a number, got
// "abc"`. Paths use the snake_case names of hippo.proto whichever spelling the text used (an
// unknown field appears as written).
//
// The text is read against the StudySpec descriptor: field names in snake_case or lowerCamelCase,
// enum values by exact name, numbers in any YAML spelling (5.0e-4, 1e-4, quoted "120" too,
// since protobuf's JSON writes 64-bit integers that way), null meaning "unset". Struct and Value
// fields take any YAML: plain true/false are booleans, plain numbers numbers, the rest strings.
#ifndef HIPPO_PROTO_SPEC_LOADER_H_
#define HIPPO_PROTO_SPEC_LOADER_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hippo/v1/hippo.pb.h"
#include "proto/spec_validator.h"

namespace hippo::proto {

// These take the rules of the algorithms (spec_validator.h) from the caller: this layer knows no
// algorithm. search_algos/spec_checks.h has the same three functions with the rules of the
// algorithm registry; the CLI and the coordinator call those.

// Parses YAML or JSON text into a StudySpec and checks it (see ValidateStudySpec).
// `source` names the text in messages (a file name, or "<stdin>").
// Returns InvalidArgument naming the field path on any error: a syntax error (with line and
// column), an unknown field (with the fields that are allowed there), a value of the wrong type,
// or a failed check (at the line of the field, or of the mapping that lacks it).
absl::StatusOr<hippo::v1::StudySpec> ParseStudySpec(std::string_view text, std::string_view source,
                                                    const SpecRules& rules);

// Reads and parses a spec file; NotFound or PermissionDenied (naming the path) if it cannot be
// read, InvalidArgument for a directory, a binary file or one over 16 MiB. Files ending in .json
// are parsed as JSON, everything else as YAML (a superset; one parser reads both, and a syntax
// error in a .json file says JSON). Messages begin with `path` as given.
absl::StatusOr<hippo::v1::StudySpec> LoadStudySpecFile(const std::string& path,
                                                       const SpecRules& rules);

// Checks a parsed spec: the generic checks of CheckStudySpec (objective, trainer, budget,
// resources, search space, algorithm name), then rules.check_algorithm. Returns InvalidArgument
// "path: what is wrong; the fix" for the first problem.
absl::Status ValidateStudySpec(const hippo::v1::StudySpec& spec, const SpecRules& rules);

// The spec as JSON (protobuf's JSON mapping, snake_case names), for storage and --json output.
// Map and Struct keys come out sorted, so equal specs give equal text. ParseStudySpec reads it
// back into an equal message.
std::string StudySpecToJson(const hippo::v1::StudySpec& spec);

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_SPEC_LOADER_H_
