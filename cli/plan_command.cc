#include "cli/plan_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hippo/engine.h"
#include "store/store.h"

namespace hippo::cli {

namespace {

// A store file for one plan, removed with its log files when the plan is done.
class ScratchStore {
 public:
  ScratchStore()
      : path_((std::filesystem::temp_directory_path() /
               absl::StrCat("hippo-plan-", getpid(), "-",
                            std::chrono::steady_clock::now().time_since_epoch().count(), ".db"))
                  .string()) {}
  ScratchStore(const ScratchStore&) = delete;
  ScratchStore& operator=(const ScratchStore&) = delete;
  ~ScratchStore() {
    std::error_code ignored;  // a file left in the temporary directory harms nothing
    for (const char* suffix : {"", "-wal", "-shm"})
      std::filesystem::remove(path_ + suffix, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

absl::StatusOr<PlanFigures> PlanStudies(const std::vector<hippo::v1::StudySpec>& specs, int workers,
                                        const std::string& dot_path) {
  if (specs.empty()) return absl::InvalidArgumentError("no study spec to plan");
  for (const hippo::v1::StudySpec& spec : specs) {
    if (spec.algorithm().name() != "grid") {
      return absl::InvalidArgumentError(absl::StrCat(
          "algorithm.name: plan enumerates grid studies only (got '", spec.algorithm().name(),
          "'); the trials of other algorithms depend on results, so run them with a coordinator"));
    }
  }
  if (workers <= 0) return absl::InvalidArgumentError("--workers must be at least 1");

  // The plan is the engine's own: the studies are created by one Engine on a scratch store, with
  // no worker connected, so every trial is placed in its family's tree exactly as a run places it
  // (studies of one family share one tree) and nothing trains.
  std::ofstream dot;
  if (!dot_path.empty()) {
    dot.open(dot_path);
    if (!dot) return absl::PermissionDeniedError(absl::StrCat("cannot write ", dot_path));
  }
  ScratchStore scratch;
  absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(scratch.path());
  if (!store.ok()) return store.status();
  coordinator::EngineOptions options;
  options.durable_acknowledgements = false;  // the store is thrown away
  coordinator::Engine engine(store->get(), options);
  if (absl::Status status = engine.Recover(); !status.ok()) return status;
  std::vector<hippo::v1::Study> studies;
  for (const hippo::v1::StudySpec& spec : specs) {
    // budget.max_parallel_trials only paces a run; the plan shows every trial.
    hippo::v1::StudySpec planned = spec;
    planned.mutable_budget()->set_max_parallel_trials(0);
    absl::StatusOr<hippo::v1::Study> study = engine.CreateStudy(planned, /*no_merge=*/false);
    if (!study.ok()) return study.status();
    studies.push_back(*std::move(study));
  }

  // Stages are counted once however many studies' trees hold them; a tree's step counts are its
  // family's, so trial_steps adds up each study's own trials (each to its target step).
  PlanFigures figures;
  std::map<int64_t, std::pair<stage_tree::Step, stage_tree::Step>> stages;  // id -> [start, end)
  std::set<std::string> families;
  std::set<std::string> dot_families;
  for (const hippo::v1::Study& study : studies) {
    figures.trials += study.trials_total();
    absl::StatusOr<hippo::v1::StageTree> tree = engine.GetStageTree(study.id(), dot.is_open());
    if (!tree.ok()) return tree.status();
    for (const hippo::v1::Stage& stage : tree->stages()) {
      stages[stage.id()] = {stage.start_step(), stage.end_step()};
      families.insert(stage.family());
    }
    if (specs.size() == 1) figures.steps.trial_steps = tree->steps().trial_steps();
    if (dot.is_open()) {
      bool new_family = false;
      for (const hippo::v1::Stage& stage : tree->stages()) {
        new_family = dot_families.insert(stage.family()).second || new_family;
      }
      if (new_family) dot << tree->dot();
    }
  }
  if (specs.size() > 1) {
    for (const hippo::v1::Study& study : studies) {
      absl::StatusOr<hippo::v1::ListTrialsResponse> trials =
          engine.ListTrials(study.id(), /*with_metrics=*/false);
      if (!trials.ok()) return trials.status();
      for (const hippo::v1::Trial& trial : trials->trials()) {
        figures.steps.trial_steps += trial.target_step();
      }
    }
  }
  // A trial's path covers [0, target) without a gap, and its target is its last stage's end:
  // the longest root-to-leaf chain is the longest trial.
  stage_tree::Step longest_trial = 0;
  for (const auto& [id, range] : stages) {
    figures.steps.unique_steps += range.second - range.first;
    longest_trial = std::max(longest_trial, range.second);
  }
  figures.stages = static_cast<int64_t>(stages.size());
  figures.families = static_cast<int64_t>(families.size());
  figures.critical_path_steps = static_cast<double>(longest_trial);
  figures.makespan_bound = std::max(figures.critical_path_steps,
                                    static_cast<double>(figures.steps.unique_steps) / workers);
  figures.trial_based_makespan_bound = std::max(
      static_cast<double>(longest_trial), static_cast<double>(figures.steps.trial_steps) / workers);
  return figures;
}

absl::StatusOr<PlanFigures> PlanStudy(const hippo::v1::StudySpec& spec, int workers,
                                      const std::string& dot_path) {
  return PlanStudies({spec}, workers, dot_path);
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
