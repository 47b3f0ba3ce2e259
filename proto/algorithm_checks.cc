// Interim: the built-in algorithms' own config checks, until each algorithm checks its own.
#include "proto/algorithm_checks.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "proto/search_space_checks.h"

namespace hippo::proto {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using hippo::v1::StudySpec;

class AlgorithmChecker {
 public:
  explicit AlgorithmChecker(const StudySpec& spec)
      : spec_(spec), max_steps_(spec.budget().max_steps()) {}

  Issue Check() const;

 private:
  Issue CheckGridIsFinite() const;
  Issue CheckAsha(const hippo::v1::AshaConfig& asha, const std::string& path) const;
  Issue CheckHyperband() const;
  Issue CheckTpe() const;
  Issue CheckMedian() const;
  Issue CheckPbt() const;
  Issue CheckEvolution() const;

  const StudySpec& spec_;
  const std::int64_t max_steps_;
};

Issue AlgorithmChecker::Check() const {
  const hippo::v1::Algorithm& algorithm = spec_.algorithm();
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

Issue AlgorithmChecker::CheckGridIsFinite() const {
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
    for (const SequenceDomain& at :
         SequenceDomains(parameters[i].sequence(), JoinPath(path, "sequence"), max_steps_)) {
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

Issue AlgorithmChecker::CheckAsha(const hippo::v1::AshaConfig& asha,
                                  const std::string& path) const {
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

Issue AlgorithmChecker::CheckHyperband() const {
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

Issue AlgorithmChecker::CheckTpe() const {
  const double gamma = spec_.algorithm().tpe().gamma();
  if (gamma >= 1) {
    return Problem("algorithm.tpe.gamma",
                   absl::StrCat("must be below 1 (got ", FormatNumber(gamma),
                                "); it is the fraction of trials in the good group, e.g. 0.25"));
  }
  return std::nullopt;
}

Issue AlgorithmChecker::CheckMedian() const {
  const std::string& sampler = spec_.algorithm().median().sampler();
  if (!sampler.empty() && sampler != "random" && sampler != "tpe") {
    return Problem("algorithm.median.sampler",
                   absl::StrCat("unknown sampler \"", sampler, "\"; known: random, tpe"));
  }
  return std::nullopt;
}

Issue AlgorithmChecker::CheckPbt() const {
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

Issue AlgorithmChecker::CheckEvolution() const {
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

}  // namespace

Issue CheckBuiltInAlgorithm(const StudySpec& spec) { return AlgorithmChecker(spec).Check(); }

}  // namespace hippo::proto
