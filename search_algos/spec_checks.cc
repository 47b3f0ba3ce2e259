#include "search_algos/spec_checks.h"

#include "proto/spec_loader.h"

namespace hippo::search_algos {

proto::SpecRules SpecRulesOf(const AlgorithmRegistry& registry, UnknownAlgorithms unknown) {
  proto::SpecRules rules;
  rules.algorithms = registry.Names();
  rules.accept_unknown_algorithms = unknown == UnknownAlgorithms::kLeaveToServer;
  // The registry outlives the rules: Global() is never destroyed, and a test's own registry
  // outlives the checks it runs.
  rules.check_algorithm = [&registry](const hippo::v1::StudySpec& spec) {
    return registry.CheckConfig(spec);
  };
  return rules;
}

absl::StatusOr<hippo::v1::StudySpec> ParseStudySpec(std::string_view text, std::string_view source,
                                                    UnknownAlgorithms unknown,
                                                    const AlgorithmRegistry& registry) {
  return proto::ParseStudySpec(text, source, SpecRulesOf(registry, unknown));
}

absl::StatusOr<hippo::v1::StudySpec> LoadStudySpecFile(const std::string& path,
                                                       UnknownAlgorithms unknown,
                                                       const AlgorithmRegistry& registry) {
  return proto::LoadStudySpecFile(path, SpecRulesOf(registry, unknown));
}

absl::Status ValidateStudySpec(const hippo::v1::StudySpec& spec, UnknownAlgorithms unknown,
                               const AlgorithmRegistry& registry) {
  return proto::ValidateStudySpec(spec, SpecRulesOf(registry, unknown));
}

}  // namespace hippo::search_algos
