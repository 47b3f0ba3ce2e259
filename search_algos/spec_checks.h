// The full check of a study spec: the generic checks of proto/ (spec_validator.h) and the named
// algorithm's own (AlgorithmRegistry::CheckConfig), with the algorithm names of the registry.
// The one entry point for specs: `hippo validate/run/submit/plan/simulate` and the coordinator's
// CreateStudy call these, so they refuse the same specs with the same messages.
#ifndef HIPPO_SEARCH_ALGOS_SPEC_CHECKS_H_
#define HIPPO_SEARCH_ALGOS_SPEC_CHECKS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hippo/v1/hippo.pb.h"
#include "proto/spec_validator.h"
#include "search_algos/search_algorithm.h"

namespace hippo::search_algos {

// What to make of an algorithm.name the registry does not have.
enum class UnknownAlgorithms {
  // Refuse it, listing the names there are (the coordinator; `hippo run`, `validate`, `plan`,
  // `simulate`, which run the study here).
  kRefuse,
  // Accept it unchecked (`hippo submit`: the server may have loaded a plugin of that name, and
  // checks the spec again when it arrives). Registered names are still checked fully.
  kLeaveToServer,
};

// The registry's names, and its CheckConfig as the algorithm check.
proto::SpecRules SpecRulesOf(const AlgorithmRegistry& registry, UnknownAlgorithms unknown);

// proto::ParseStudySpec, LoadStudySpecFile and ValidateStudySpec with SpecRulesOf(registry,
// unknown): the same messages ("source:line:column: path: what is wrong; the fix"), and the
// algorithm's own problems located at their line too.
absl::StatusOr<hippo::v1::StudySpec> ParseStudySpec(
    std::string_view text, std::string_view source,
    UnknownAlgorithms unknown = UnknownAlgorithms::kRefuse,
    const AlgorithmRegistry& registry = AlgorithmRegistry::Global());
absl::StatusOr<hippo::v1::StudySpec> LoadStudySpecFile(
    const std::string& path, UnknownAlgorithms unknown = UnknownAlgorithms::kRefuse,
    const AlgorithmRegistry& registry = AlgorithmRegistry::Global());
absl::Status ValidateStudySpec(const hippo::v1::StudySpec& spec,
                               UnknownAlgorithms unknown = UnknownAlgorithms::kRefuse,
                               const AlgorithmRegistry& registry = AlgorithmRegistry::Global());

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_SPEC_CHECKS_H_
