#include "cli/plan_command.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <ostream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "stage_tree/graph_view.h"
#include "stage_tree/search_space.h"

namespace hippo::cli {

absl::StatusOr<PlanFigures> PlanStudy(const hippo::v1::StudySpec& spec, int workers,
                                      const std::string& dot_path) {
  if (spec.algorithm().name() != "grid") {
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.name: plan enumerates grid studies only (got '", spec.algorithm().name(),
        "'); the trials of other algorithms depend on results, so run them with a coordinator"));
  }
  if (workers <= 0) return absl::InvalidArgumentError("--workers must be at least 1");
  absl::StatusOr<stage_tree::SearchSpace> space =
      stage_tree::SearchSpaceFromProto(spec.search_space());
  if (!space.ok()) return space.status();
  absl::StatusOr<std::vector<stage_tree::Point>> points = stage_tree::GridPoints(*space);
  if (!points.ok()) return points.status();
  if (spec.budget().max_trials() > 0 &&
      points->size() > static_cast<size_t>(spec.budget().max_trials())) {
    points->resize(spec.budget().max_trials());
  }

  const stage_tree::Step max_steps = spec.budget().max_steps();
  const std::string trainer = stage_tree::TrainerIdentity(spec.trainer());
  std::map<std::string, stage_tree::StageTree> families;
  PlanFigures figures;
  stage_tree::Step longest_trial = 0;
  for (const stage_tree::Point& point : *points) {
    absl::StatusOr<stage_tree::TrialPlan> plan = stage_tree::BuildTrial(*space, point, max_steps);
    if (!plan.ok()) return plan.status();
    const std::string key = stage_tree::FamilyKey(trainer, plan->structural);
    auto it = families.find(key);
    if (it == families.end()) {
      std::vector<std::string> names;
      for (const auto& [name, sequence] : plan->sequences) names.push_back(name);
      it = families.try_emplace(key, key, std::move(names)).first;
    }
    absl::StatusOr<stage_tree::TrialId> trial = it->second.Insert(plan->sequences, max_steps);
    if (!trial.ok()) return trial.status();
    longest_trial = std::max(longest_trial, max_steps);
    ++figures.trials;
  }

  std::ofstream dot;
  if (!dot_path.empty()) {
    dot.open(dot_path);
    if (!dot) return absl::PermissionDeniedError(absl::StrCat("cannot write ", dot_path));
  }
  for (const auto& [key, tree] : families) {
    const stage_tree::StepCounts& counts = tree.counts();
    figures.steps.trial_steps += counts.trial_steps;
    figures.steps.unique_steps += counts.unique_steps;
    figures.stages += static_cast<int64_t>(tree.node_count()) - 1;
    figures.critical_path_steps =
        std::max(figures.critical_path_steps, stage_tree::RemainingCriticalPath(tree, 1.0)[0]);
    if (dot.is_open()) dot << stage_tree::ToDot(tree);
  }
  figures.families = static_cast<int64_t>(families.size());
  figures.makespan_bound = std::max(figures.critical_path_steps,
                                    static_cast<double>(figures.steps.unique_steps) / workers);
  figures.trial_based_makespan_bound = std::max(
      static_cast<double>(longest_trial), static_cast<double>(figures.steps.trial_steps) / workers);
  return figures;
}

void PrintPlan(const PlanFigures& figures, bool json, std::ostream& out) {
  const double savings = figures.steps.unique_steps == 0
                             ? 0
                             : static_cast<double>(figures.steps.trial_steps) /
                                   static_cast<double>(figures.steps.unique_steps);
  const double speedup_bound =
      figures.makespan_bound == 0 ? 0 : figures.trial_based_makespan_bound / figures.makespan_bound;
  if (json) {
    out << absl::StrFormat(
        "{\"trials\": %d, \"families\": %d, \"stages\": %d, \"trial_steps\": %d, "
        "\"unique_steps\": %d, \"savings_bound\": %.4f, \"critical_path_steps\": %.0f, "
        "\"makespan_bound_steps\": %.1f, \"trial_based_makespan_bound_steps\": %.1f, "
        "\"speedup_bound\": %.4f}\n",
        figures.trials, figures.families, figures.stages, figures.steps.trial_steps,
        figures.steps.unique_steps, savings, figures.critical_path_steps, figures.makespan_bound,
        figures.trial_based_makespan_bound, speedup_bound);
    return;
  }
  out << absl::StrFormat("%-34s %12d\n", "trials", figures.trials);
  out << absl::StrFormat("%-34s %12d\n", "stage trees (families)", figures.families);
  out << absl::StrFormat("%-34s %12d\n", "stages", figures.stages);
  out << absl::StrFormat("%-34s %12d\n", "trial_steps (trial by trial)", figures.steps.trial_steps);
  out << absl::StrFormat("%-34s %12d\n", "unique_steps (merged)", figures.steps.unique_steps);
  out << absl::StrFormat("%-34s %12.2fx\n", "savings bound (trial/unique)", savings);
  out << absl::StrFormat("%-34s %12.0f\n", "critical path (steps)", figures.critical_path_steps);
  out << absl::StrFormat("%-34s %12.1f\n", "makespan bound, merged (steps)",
                         figures.makespan_bound);
  out << absl::StrFormat("%-34s %12.1f\n", "makespan bound, trial by trial",
                         figures.trial_based_makespan_bound);
  out << absl::StrFormat("%-34s %12.2fx\n", "speedup bound", speedup_bound);
}

}  // namespace hippo::cli
