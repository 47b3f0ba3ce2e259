#include "proto/spec_validator.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <map>
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
  if (!trainer.step_unit().empty() && trainer.step_unit() != "epoch" &&
      trainer.step_unit() != "iteration") {
    return Problem("trainer.step_unit",
                   absl::StrCat("unknown unit \"", trainer.step_unit(),
                                "\"; use epoch or iteration, or leave it out (steps)"));
  }
  return CheckNotNegative(trainer, "trainer");
}

// Stages train on one device.
Issue CheckResources(const hippo::v1::Resources& resources) {
  if (Issue issue = CheckNotNegative(resources, "resources")) {
    return issue;
  }
  if (resources.gpus_per_stage() > 1) {
    return Problem("resources.gpus_per_stage",
                   absl::StrCat("a stage trains on one device: multi-GPU stages are not "
                                "supported (got ",
                                resources.gpus_per_stage(), "); use 0 or 1"));
  }
  return std::nullopt;
}

Issue CheckBudget(const hippo::v1::Budget& budget) {
  if (budget.max_steps() <= 0) {
    return Problem("budget.max_steps",
                   absl::StrCat("must be > 0 (got ", budget.max_steps(),
                                "); set the steps of a fully trained trial, e.g. max_steps: 120"));
  }
  if (budget.max_steps() > kMaxBudgetSteps) {
    return Problem("budget.max_steps",
                   absl::StrCat("must be at most ", kMaxBudgetSteps, " (got ", budget.max_steps(),
                                "); count steps in epochs or iterations, not samples"));
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

Issue CheckFinite(const google::protobuf::Message& message, const std::string& path) {
  const google::protobuf::Descriptor& type = *message.GetDescriptor();
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  // Struct and Value hold user data: their paths name the user's keys, not the wrappers.
  if (type.full_name() == "google.protobuf.Struct") {
    const FieldDescriptor& fields = *type.FindFieldByName("fields");
    for (int i = 0; i < reflection.FieldSize(message, &fields); ++i) {
      const google::protobuf::Message& entry = reflection.GetRepeatedMessage(message, &fields, i);
      const google::protobuf::Reflection& entry_reflection = *entry.GetReflection();
      const google::protobuf::Descriptor& entry_type = *entry.GetDescriptor();
      const std::string key = entry_reflection.GetString(entry, entry_type.map_key());
      if (Issue issue = CheckFinite(entry_reflection.GetMessage(entry, entry_type.map_value()),
                                    JoinPath(path, key))) {
        return issue;
      }
    }
    return std::nullopt;
  }
  if (type.full_name() == "google.protobuf.ListValue") {
    const FieldDescriptor& values = *type.FindFieldByName("values");
    for (int i = 0; i < reflection.FieldSize(message, &values); ++i) {
      if (Issue issue =
              CheckFinite(reflection.GetRepeatedMessage(message, &values, i), IndexPath(path, i))) {
        return issue;
      }
    }
    return std::nullopt;
  }
  const bool is_value = type.full_name() == "google.protobuf.Value";
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string field_path = is_value ? path : JoinPath(path, field->name());
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
      const int count = field->is_repeated() ? reflection.FieldSize(message, field) : 1;
      for (int i = 0; i < count; ++i) {
        const double value = field->is_repeated() ? reflection.GetRepeatedDouble(message, field, i)
                                                  : reflection.GetDouble(message, field);
        if (!std::isfinite(value)) {
          return Problem(field->is_repeated() ? IndexPath(field_path, i) : field_path,
                         NotFiniteMessage(value));
        }
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field->is_map()) {
      if (!field->is_repeated()) {
        if (Issue issue = CheckFinite(reflection.GetMessage(message, field), field_path)) {
          return issue;
        }
        continue;
      }
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        if (Issue issue = CheckFinite(reflection.GetRepeatedMessage(message, field, i),
                                      IndexPath(field_path, i))) {
          return issue;
        }
      }
    }
  }
  return std::nullopt;
}

// The family name is part of the family key (hippo.proto, StudySpec.family), so it is kept to
// characters that cannot be confused with the key's separators.
Issue CheckFamily(const std::string& family) {
  constexpr size_t kMaxLength = 128;
  const bool allowed = std::all_of(family.begin(), family.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
  if (!allowed || family.size() > kMaxLength) {
    return Problem("family",
                   absl::StrCat("\"", family, "\" is not a family name; use up to ", kMaxLength,
                                " letters, digits, '.', '_' or '-' (or leave it out)"));
  }
  return std::nullopt;
}

namespace {

// The path of the field of `message` (at `path`) that holds most of its encoding, descending
// through messages of our own schema and into the largest entry of a repeated one.
std::string LargestField(const google::protobuf::Message& message, const std::string& path) {
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  const FieldDescriptor* largest = nullptr;
  int largest_index = -1;  // the largest entry of a repeated message field
  size_t largest_size = 0;
  for (const FieldDescriptor* field : fields) {
    size_t size = 0;
    int index = -1;
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && field->is_repeated()) {
      size_t entry_largest = 0;
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        const size_t entry = reflection.GetRepeatedMessage(message, field, i).ByteSizeLong();
        size += entry;
        if (entry > entry_largest) {
          entry_largest = entry;
          index = i;
        }
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      size = reflection.GetMessage(message, field).ByteSizeLong();
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING && !field->is_repeated()) {
      size = reflection.GetString(message, field).size();
    }
    if (size > largest_size) {
      largest = field;
      largest_size = size;
      largest_index = index;
    }
  }
  if (largest == nullptr) return path;
  const std::string field_path = JoinPath(path, largest->name());
  if (largest->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || largest->is_map() ||
      largest->message_type()->file()->package() == "google.protobuf") {
    return field_path;
  }
  if (largest->is_repeated()) {
    return LargestField(reflection.GetRepeatedMessage(message, largest, largest_index),
                        IndexPath(field_path, largest_index));
  }
  return LargestField(reflection.GetMessage(message, largest), field_path);
}

// The spec's encoding within kMaxStudySpecBytes.
Issue CheckSize(const hippo::v1::StudySpec& spec) {
  const size_t size = spec.ByteSizeLong();
  if (size <= kMaxStudySpecBytes) {
    return std::nullopt;
  }
  return Problem(LargestField(spec, ""),
                 absl::StrCat("holds most of a spec of ", size, " bytes (encoded), at most ",
                              kMaxStudySpecBytes,
                              "; keep large data in files the trainer reads, not in the spec"));
}

Issue CheckNames(const hippo::v1::StudySpec& spec) {
  if (Issue issue = CheckText(spec.name(), "name", kMaxNameLength)) {
    return issue;
  }
  if (Issue issue = CheckText(spec.objective().metric(), "objective.metric", kMaxNameLength)) {
    return issue;
  }
  const auto& parameters = spec.search_space().parameters();
  for (int i = 0; i < parameters.size(); ++i) {
    if (Issue issue =
            CheckText(parameters[i].name(),
                      JoinPath(IndexPath("search_space.parameters", i), "name"), kMaxNameLength)) {
      return issue;
    }
  }
  if (spec.labels_size() > kMaxLabels) {
    return Problem("labels", absl::StrCat("has ", spec.labels_size(), " entries, at most ",
                                          kMaxLabels, "; keep fewer labels"));
  }
  // Sorted, so that the problem reported does not depend on the map's order.
  std::map<std::string, std::string> labels(spec.labels().begin(), spec.labels().end());
  for (const auto& [key, value] : labels) {
    if (Issue issue = CheckText(key, "labels", kMaxNameLength)) {
      return Problem(issue->path, absl::StrCat("a key ", issue->message));
    }
    if (Issue issue = CheckText(value, JoinPath("labels", key), kMaxLabelValueLength)) {
      return issue;
    }
  }
  return std::nullopt;
}

}  // namespace

Issue CheckStudySpec(const hippo::v1::StudySpec& spec, const SpecRules& rules) {
  if (Issue issue = CheckSize(spec)) {
    return issue;
  }
  // First: the checks below compare numbers, and a NaN passes every comparison that tests for
  // the wrong case (NaN < low is false).
  if (Issue issue = CheckFinite(spec, "")) {
    return issue;
  }
  if (Issue issue = CheckFamily(spec.family())) {
    return issue;
  }
  if (Issue issue = CheckNames(spec)) {
    return issue;
  }
  if (Issue issue = CheckObjective(spec.objective())) {
    return issue;
  }
  // An ask/tell study's trials are trained by its client, never by Hippo's workers: it needs no
  // trainer section (one given is checked like any other).
  const bool ask_tell_without_trainer =
      !spec.has_trainer() && spec.algorithm().name() == "external";
  if (Issue issue = ask_tell_without_trainer ? std::nullopt : CheckTrainer(spec.trainer())) {
    return issue;
  }
  if (Issue issue = CheckBudget(spec.budget())) {
    return issue;
  }
  if (Issue issue = CheckResources(spec.resources())) {
    return issue;
  }
  if (Issue issue = CheckSearchSpace(spec.search_space(), spec.budget().max_steps())) {
    return issue;
  }
  return CheckAlgorithm(spec, rules);
}

}  // namespace hippo::proto
