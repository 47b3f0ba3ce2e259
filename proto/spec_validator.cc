#include "proto/spec_validator.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/search_space_checks.h"
#include "proto/trainer_kinds.h"

namespace hippo::proto {
namespace {

using google::protobuf::FieldDescriptor;

Issue CheckObjective(const hippo::v1::Objective& objective) {
  if (objective.metric().empty()) {
    return Problem("objective.metric",
                   "required; name the metric the trainer reports, e.g. metric: val_accuracy");
  }
  if (objective.direction() == hippo::v1::DIRECTION_UNSPECIFIED) {
    return Problem("objective.direction", "required; set direction: MINIMIZE or MAXIMIZE");
  }
  return std::nullopt;
}

Issue CheckTrainer(const hippo::v1::TrainerSpec& trainer) {
  const std::string known = absl::StrJoin(
      kTrainerKinds, ", ",
      [](std::string* out, std::string_view kind) { out->append(kind.data(), kind.size()); });
  if (trainer.kind().empty()) {
    return Problem("trainer.kind", absl::StrCat("required; set kind: to one of ", known));
  }
  if (std::find(kTrainerKinds.begin(), kTrainerKinds.end(), trainer.kind()) ==
      kTrainerKinds.end()) {
    return Problem("trainer.kind",
                   absl::StrCat("unknown trainer \"", trainer.kind(), "\"; known: ", known));
  }
  const bool is_command = trainer.kind() == kCommandTrainerKind;
  if (is_command && trainer.command().empty()) {
    return Problem("trainer.command",
                   "required when kind is command; give the program and its arguments, e.g. "
                   "command: [python3, train.py]");
  }
  if (is_command && trainer.command(0).empty()) {
    return Problem("trainer.command[0]", "the program name is empty");
  }
  if (!is_command && !trainer.command().empty()) {
    return Problem("trainer.command", absl::StrCat("only used when kind is command (kind is ",
                                                   trainer.kind(), "); remove it"));
  }
  return CheckNotNegative(trainer, "trainer");
}

Issue CheckBudget(const hippo::v1::Budget& budget) {
  if (budget.max_steps() <= 0) {
    return Problem("budget.max_steps",
                   absl::StrCat("must be > 0 (got ", budget.max_steps(),
                                "); set the steps of a fully trained trial, e.g. max_steps: 120"));
  }
  return CheckNotNegative(budget, "budget");
}

Issue CheckAlgorithm(const hippo::v1::StudySpec& spec, const SpecRules& rules) {
  const hippo::v1::Algorithm& algorithm = spec.algorithm();
  const std::vector<std::string>& names = rules.algorithms;
  const std::string known = absl::StrJoin(names, ", ");
  if (algorithm.name().empty()) {
    return Problem("algorithm.name", absl::StrCat("required; set name: to one of ", known));
  }
  const bool is_known = std::find(names.begin(), names.end(), algorithm.name()) != names.end();
  if (!is_known && !rules.accept_unknown_algorithms) {
    return Problem("algorithm.name",
                   absl::StrCat("unknown algorithm \"", algorithm.name(), "\"; known: ", known));
  }
  if (Issue issue = CheckNotNegative(algorithm, "algorithm")) {
    return issue;
  }
  if (is_known && rules.check_algorithm) {
    return rules.check_algorithm(spec);
  }
  return std::nullopt;
}

}  // namespace

Issue CheckNotNegative(const google::protobuf::Message& message, const std::string& path) {
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string field_path = JoinPath(path, field->name());
    auto number = [&](int index) -> std::optional<double> {
      const bool repeated = index >= 0;
      switch (field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          return repeated ? reflection.GetRepeatedInt32(message, field, index)
                          : reflection.GetInt32(message, field);
        case FieldDescriptor::CPPTYPE_INT64:
          return repeated ? reflection.GetRepeatedInt64(message, field, index)
                          : reflection.GetInt64(message, field);
        case FieldDescriptor::CPPTYPE_DOUBLE:
          return repeated ? reflection.GetRepeatedDouble(message, field, index)
                          : reflection.GetDouble(message, field);
        default:
          return std::nullopt;
      }
    };
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated() || field->message_type()->file()->package() == "google.protobuf") {
        continue;
      }
      if (Issue issue = CheckNotNegative(reflection.GetMessage(message, field), field_path)) {
        return issue;
      }
    } else if (field->is_repeated()) {
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        const auto value = number(i);
        if (!value.has_value()) {
          break;
        }
        if (Issue issue = CheckNumberNotNegative(*value, IndexPath(field_path, i))) {
          return issue;
        }
      }
    } else if (const auto value = number(-1)) {
      if (Issue issue = CheckNumberNotNegative(*value, field_path)) {
        return issue;
      }
    }
  }
  return std::nullopt;
}

Issue CheckStudySpec(const hippo::v1::StudySpec& spec, const SpecRules& rules) {
  if (Issue issue = CheckObjective(spec.objective())) {
    return issue;
  }
  if (Issue issue = CheckTrainer(spec.trainer())) {
    return issue;
  }
  if (Issue issue = CheckBudget(spec.budget())) {
    return issue;
  }
  if (Issue issue = CheckNotNegative(spec.resources(), "resources")) {
    return issue;
  }
  if (Issue issue = CheckSearchSpace(spec.search_space(), spec.budget().max_steps())) {
    return issue;
  }
  return CheckAlgorithm(spec, rules);
}

}  // namespace hippo::proto
