#include "cli/output.h"

#include <ostream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"

namespace hippo::cli {
namespace {

namespace v1 = ::hippo::v1;

std::string Lower(std::string text, size_t drop_prefix) {
  text = text.substr(drop_prefix);
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string ScalarText(const google::protobuf::Value& value) {
  if (value.kind_case() == google::protobuf::Value::kStringValue) return value.string_value();
  return absl::StrFormat("%g", value.number_value());
}

std::string SegmentText(const v1::Segment& segment) {
  switch (segment.function_case()) {
    case v1::Segment::kConstant:
      return absl::StrFormat("%g", segment.constant());
    case v1::Segment::kLinear:
      return absl::StrFormat("ramp(%g→%g)", segment.linear().from(), segment.linear().to());
    case v1::Segment::kExponential:
      return absl::StrFormat("%g×%g^s", segment.exponential().initial(),
                             segment.exponential().rate());
    case v1::Segment::kCosine:
      return absl::StrFormat("cos(%g→%g)", segment.cosine().max(), segment.cosine().min());
    default:
      return "?";
  }
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // Fails only for an Any whose type is unknown; the v1 views hold none.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

std::string StudyStateName(v1::StudyState state) {
  return Lower(v1::StudyState_Name(state), 6);  // STUDY_
}

std::string TrialStateName(v1::TrialState state) {
  return Lower(v1::TrialState_Name(state), 6);  // TRIAL_
}

std::string StageStateName(v1::StageState state) {
  return Lower(v1::StageState_Name(state), 6);  // STAGE_
}

std::string ParametersLine(const v1::Trial& trial) {
  std::vector<std::string> names;
  for (const auto& [name, value] : trial.parameters()) names.push_back(name);
  std::sort(names.begin(), names.end());
  std::vector<std::string> parts;
  for (const std::string& name : names) {
    const v1::ParameterValue& value = trial.parameters().at(name);
    if (value.has_scalar()) {
      parts.push_back(absl::StrCat(name, "=", ScalarText(value.scalar())));
      continue;
    }
    std::vector<std::string> segments;
    for (const v1::Segment& segment : value.segments()) {
      segments.push_back(segment.start() == 0
                             ? SegmentText(segment)
                             : absl::StrCat(SegmentText(segment), "@", segment.start()));
    }
    parts.push_back(absl::StrCat(name, "=", absl::StrJoin(segments, ",")));
  }
  return absl::StrJoin(parts, " ");
}

std::string StepUnit(const v1::StudySpec& spec) {
  return spec.trainer().step_unit().empty() ? "step" : spec.trainer().step_unit();
}

std::string CountOf(int64_t count, const std::string& unit) {
  return absl::StrCat(count, " ", unit, count == 1 ? "" : "s");
}

void PrintStudySummary(const v1::Study& study, std::ostream& out) {
  const v1::StepCounts& steps = study.steps();
  const std::string unit = StepUnit(study.spec());
  out << absl::StrFormat("study %s (%s): %s\n", study.id(), study.spec().name(),
                         StudyStateName(study.state()));
  if (!study.message().empty()) out << "  " << study.message() << "\n";
  if (!study.waiting().empty()) out << "  " << study.waiting() << "\n";
  // It names a worker's directory: escaped, so that no escape code reaches the terminal.
  if (!study.checkpoint_budget().empty()) {
    out << "  " << absl::CHexEscape(study.checkpoint_budget()) << "\n";
  }
  out << absl::StrFormat("  trials          %d completed of %d\n", study.trials_completed(),
                         study.trials_total());
  if (study.has_best_trial()) {
    out << absl::StrFormat("  best trial      #%d  %s = %.4f\n", study.best_trial().id(),
                           study.spec().objective().metric(), study.best_trial().objective_value());
    out << "                  " << ParametersLine(study.best_trial()) << "\n";
  }
  out << absl::StrFormat("  trial_steps     %s   (trained trial by trial, to every target)\n",
                         CountOf(steps.trial_steps(), unit));
  out << absl::StrFormat("  distinct_steps  %s   (each distinct configuration once)\n",
                         CountOf(steps.distinct_steps(), unit));
  if (steps.checkpoint_copy_steps() != steps.trial_steps()) {
    out << absl::StrFormat("  checkpoint_copy %s   (trial by trial, forks copying a checkpoint)\n",
                           CountOf(steps.checkpoint_copy_steps(), unit));
  }
  out << absl::StrFormat("  unique_steps    %s   (no system can train fewer)\n",
                         CountOf(steps.unique_steps(), unit));
  out << absl::StrFormat("  executed_steps  %s   (recomputed %d)\n",
                         CountOf(steps.executed_steps(), unit), steps.recomputed_steps());
  PrintSavings(study, out);
}

void PrintSavings(const v1::Study& study, std::ostream& out) {
  const v1::StepCounts& steps = study.steps();
  const std::string unit = StepUnit(study.spec());
  const int64_t executed = steps.executed_steps();
  if (executed <= 0) return;
  const bool whole = WorkIsWhole(study);
  // The work done, trial by trial: each trial up to the step it reached. For a whole study
  // that is trial_steps.
  const int64_t done = whole ? steps.trial_steps() : steps.reached_trial_steps();
  out << absl::StrFormat(
      "  merging saved   %s: %s%s\n", done > executed ? CountOf(done - executed, unit) : "nothing",
      Compared(executed, done, unit, "trial by trial"),
      whole ? "" : " on the work done so far (each trial up to the step it reached)");
  if (whole) {
    out << absl::StrFormat(
        "  executed        %s (each trained once: what is left once duplicate trials are "
        "taken out)\n",
        Compared(executed, steps.distinct_steps(), unit, "distinct configurations"));
    if (steps.checkpoint_copy_steps() != steps.trial_steps()) {
      out << absl::StrFormat(
          "                  %s (each fork trains only its own steps)\n",
          Compared(executed, steps.checkpoint_copy_steps(), unit, "checkpoint-copying PBT"));
    }
  } else if (study.state() == v1::STUDY_RUNNING && steps.unique_steps() > 0) {
    out << absl::StrFormat(
        "  projection      %s if the trials known now reach their current targets "
        "(unique_steps against trial_steps; the algorithm may still add trials or raise "
        "targets)\n",
        Compared(steps.unique_steps(), steps.trial_steps(), unit, "trial by trial"));
  }
}

std::string Compared(int64_t executed, int64_t reference, const std::string& unit,
                     const std::string& baseline) {
  const std::string units = absl::StrCat(unit, "s");
  if (executed == reference) return absl::StrFormat("as many %s as %s", units, baseline);
  if (executed <= 0) return absl::StrFormat("no %s (%s: %d)", units, baseline, reference);
  if (executed < reference) {
    return absl::StrFormat("%.2fx fewer %s than %s", Ratio(reference, executed), units, baseline);
  }
  return absl::StrFormat("%.2fx more %s than %s", Ratio(executed, reference), units, baseline);
}

bool WorkIsWhole(const v1::Study& study) {
  return study.state() == v1::STUDY_COMPLETED &&
         study.steps().reached_trial_steps() >= study.steps().trial_steps();
}

double Ratio(int64_t steps, int64_t executed) {
  return executed > 0 ? static_cast<double>(steps) / static_cast<double>(executed) : 0;
}

std::string SavingsJsonFields(const v1::StepCounts& steps) {
  return absl::StrFormat(
      "\"distinct_steps\": %d, \"checkpoint_copy_steps\": %d, \"reached_trial_steps\": %d, "
      "\"savings_vs_trial_by_trial\": %.4f, \"savings_vs_distinct\": %.4f, "
      "\"savings_vs_checkpoint_copy\": %.4f, \"savings_so_far\": %.4f",
      steps.distinct_steps(), steps.checkpoint_copy_steps(), steps.reached_trial_steps(),
      Ratio(steps.trial_steps(), steps.executed_steps()),
      Ratio(steps.distinct_steps(), steps.executed_steps()),
      Ratio(steps.checkpoint_copy_steps(), steps.executed_steps()),
      Ratio(steps.reached_trial_steps(), steps.executed_steps()));
}

}  // namespace hippo::cli
