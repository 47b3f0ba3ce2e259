#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "search_algos/asha.h"
#include "search_algos/evolution.h"
#include "search_algos/external.h"
#include "search_algos/grid_search.h"
#include "search_algos/hyperband.h"
#include "search_algos/median_stopping.h"
#include "search_algos/pbt.h"
#include "search_algos/search_algorithm.h"
#include "search_algos/tpe.h"

namespace hippo::search_algos {

AlgorithmRegistry::AlgorithmRegistry() {
  factories_.emplace_back("grid", &GridSearch::Create);
  factories_.emplace_back("random", &RandomSearch::Create);
  factories_.emplace_back("tpe", &TpeSearch::Create);
  factories_.emplace_back("asha", &Asha::Create);
  factories_.emplace_back("hyperband", &Hyperband::Create);
  factories_.emplace_back("median", &MedianStoppingRule::Create);
  factories_.emplace_back("pbt", &PopulationBasedTraining::Create);
  factories_.emplace_back("evolution", &RegularizedEvolution::Create);
  factories_.emplace_back("external", &ExternalAskTell::Create);
}

AlgorithmRegistry& AlgorithmRegistry::Global() {
  static AlgorithmRegistry* registry = new AlgorithmRegistry();
  return *registry;
}

absl::Status AlgorithmRegistry::Register(const std::string& name, AlgorithmFactory factory) {
  for (const auto& [known, unused] : factories_) {
    if (known == name) {
      return absl::AlreadyExistsError(absl::StrCat("algorithm '", name, "' is already registered"));
    }
  }
  factories_.emplace_back(name, std::move(factory));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> AlgorithmRegistry::Create(
    const std::string& name, const AlgorithmContext& context) const {
  for (const auto& [known, factory] : factories_) {
    if (known == name) return factory(context);
  }
  return absl::NotFoundError(absl::StrCat("algorithm.name: unknown algorithm '", name,
                                          "'; this server has: ", absl::StrJoin(Names(), ", ")));
}

std::vector<std::string> AlgorithmRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, unused] : factories_) names.push_back(name);
  return names;
}

}  // namespace hippo::search_algos
