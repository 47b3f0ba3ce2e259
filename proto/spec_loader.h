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
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::proto {

// The algorithm names built into Hippo. A server that loads plugins accepts more. Functions
// below that take `known_algorithms` accept any algorithm name when it is empty (a client that
// leaves the name to its server).
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
// read, InvalidArgument for a directory, a binary file or one over 16 MiB. Files ending in .json
// are parsed as JSON, everything else as YAML (a superset; one parser reads both, and a syntax
// error in a .json file says JSON). Messages begin with `path` as given.
absl::StatusOr<hippo::v1::StudySpec> LoadStudySpecFile(
    const std::string& path,
    const std::vector<std::string>& known_algorithms = BuiltInAlgorithmNames());

// Semantic checks on a parsed spec: objective metric and direction set; trainer kind known
// (an ask/tell study, algorithm external, may have no trainer);
// at least one parameter; unique parameter names; every domain non-empty and ordered
// (low < high, log ranges positive, choices non-empty); milestones increasing and inside
// (0, max_steps); budget.max_steps > 0 and no negative counts; algorithm known and its
// config consistent (e.g. asha.min_resource <= max_resource).
// Also: the command trainer has a command (and no other kind has one); grid searches only
// finite domains; no config block for an algorithm other than algorithm.name; pbt perturbs
// searched, non-structural parameters. Returns InvalidArgument "path: what is wrong; the fix"
// for the first problem, checking objective, trainer, budget, resources (later checks use
// max_steps), then search_space, then algorithm.
absl::Status ValidateStudySpec(
    const hippo::v1::StudySpec& spec,
    const std::vector<std::string>& known_algorithms = BuiltInAlgorithmNames());

// The spec as JSON (protobuf's JSON mapping, snake_case names), for storage and --json output.
// Map and Struct keys come out sorted, so equal specs give equal text. ParseStudySpec reads it
// back into an equal message.
std::string StudySpecToJson(const hippo::v1::StudySpec& spec);

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_SPEC_LOADER_H_
