#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "search_algos/asha.h"
#include "search_algos/evolution.h"
#include "search_algos/external.h"
#include "search_algos/grid_search.h"
#include "search_algos/hyperband.h"
#include "search_algos/median_stopping.h"
#include "search_algos/morphism.h"
#include "search_algos/pbt.h"
#include "search_algos/search_algorithm.h"
#include "search_algos/tpe.h"

namespace hippo::search_algos {
namespace {

using google::protobuf::FieldDescriptor;

// A config block set for another algorithm is a leftover or a typo in the name; either way it
// would be silently ignored.
proto::Issue CheckNoOtherConfigBlock(const hippo::v1::Algorithm& algorithm,
                                     const std::vector<std::string>& also_read) {
  const google::protobuf::Descriptor& type = *algorithm.GetDescriptor();
  const google::protobuf::Reflection& reflection = *algorithm.GetReflection();
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    if (field.cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field.name() == "plugin_config" ||
        field.name() == algorithm.name() || !reflection.HasField(algorithm, &field) ||
        std::find(also_read.begin(), also_read.end(), field.name()) != also_read.end()) {
      continue;
    }
    return proto::Problem(
        proto::JoinPath("algorithm", field.name()),
        absl::StrCat("configures ", field.name(), ", but algorithm.name is \"", algorithm.name(),
                     "\"; remove it or set name: ", field.name()));
  }
  return std::nullopt;
}

}  // namespace

AlgorithmRegistry::AlgorithmRegistry() {
  definitions_.emplace_back("grid",
                            AlgorithmDefinition{&GridSearch::Create, &GridSearch::CheckConfig, {}});
  // Random search has no config to check: RandomConfig is empty, and any space can be sampled.
  definitions_.emplace_back("random", AlgorithmDefinition{&RandomSearch::Create, nullptr, {}});
  definitions_.emplace_back("tpe",
                            AlgorithmDefinition{&TpeSearch::Create, &TpeSearch::CheckConfig, {}});
  definitions_.emplace_back("asha",
                            AlgorithmDefinition{&Asha::Create, &Asha::CheckConfig, {"tpe"}});
  definitions_.emplace_back("hyperband",
                            AlgorithmDefinition{&Hyperband::Create, &Hyperband::CheckConfig, {}});
  definitions_.emplace_back(
      "median",
      AlgorithmDefinition{&MedianStoppingRule::Create, &MedianStoppingRule::CheckConfig, {}});
  definitions_.emplace_back(
      "pbt", AlgorithmDefinition{
                 &PopulationBasedTraining::Create, &PopulationBasedTraining::CheckConfig, {}});
  definitions_.emplace_back(
      "evolution",
      AlgorithmDefinition{&RegularizedEvolution::Create, &RegularizedEvolution::CheckConfig, {}});
  definitions_.emplace_back(
      "morphism",
      AlgorithmDefinition{&MorphismEvolution::Create, &MorphismEvolution::CheckConfig, {}});
  definitions_.emplace_back(
      "external",
      AlgorithmDefinition{&ExternalAskTell::Create, &ExternalAskTell::CheckConfig, {"tpe"}});
}

AlgorithmRegistry& AlgorithmRegistry::Global() {
  static AlgorithmRegistry* registry = new AlgorithmRegistry();
  return *registry;
}

absl::Status AlgorithmRegistry::Register(const std::string& name, AlgorithmDefinition definition) {
  if (Find(name) != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat("algorithm '", name, "' is already registered"));
  }
  definitions_.emplace_back(name, std::move(definition));
  return absl::OkStatus();
}

absl::Status AlgorithmRegistry::Register(const std::string& name, AlgorithmFactory factory) {
  return Register(name, AlgorithmDefinition{std::move(factory), nullptr, {}});
}

const AlgorithmDefinition* AlgorithmRegistry::Find(const std::string& name) const {
  for (const auto& [known, definition] : definitions_) {
    if (known == name) return &definition;
  }
  return nullptr;
}

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> AlgorithmRegistry::Create(
    const std::string& name, const AlgorithmContext& context) const {
  if (const AlgorithmDefinition* definition = Find(name)) return definition->create(context);
  return absl::NotFoundError(absl::StrCat("algorithm.name: unknown algorithm '", name,
                                          "'; this server has: ", absl::StrJoin(Names(), ", ")));
}

proto::Issue AlgorithmRegistry::CheckConfig(const hippo::v1::StudySpec& spec) const {
  const AlgorithmDefinition* definition = Find(spec.algorithm().name());
  if (definition == nullptr) return std::nullopt;
  if (proto::Issue issue =
          CheckNoOtherConfigBlock(spec.algorithm(), definition->other_config_blocks)) {
    return issue;
  }
  // Only the random samplers read it; elsewhere it would be silently ignored.
  const std::string& name = spec.algorithm().name();
  if (spec.algorithm().sample_with_replacement() && name != "random" &&
      !(name == "asha" && spec.algorithm().asha().sampler() != "tpe")) {
    return proto::Problem(
        "algorithm.sample_with_replacement",
        absl::StrCat("applies to random search and asha's random sampler, not to ",
                     name == "asha" ? "asha with sampler tpe" : name, "; remove it"));
  }
  if (!definition->check_config) return std::nullopt;
  return definition->check_config(spec.algorithm(), spec);
}

std::vector<std::string> AlgorithmRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, unused] : definitions_) names.push_back(name);
  return names;
}

}  // namespace hippo::search_algos
