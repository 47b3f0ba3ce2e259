// `hippo validate` and `hippo plan`: offline commands that need no coordinator.
#ifndef HIPPO_CLI_PLAN_COMMAND_H_
#define HIPPO_CLI_PLAN_COMMAND_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hippo/v1/hippo.pb.h"
#include "stage_tree/stage_tree.h"

namespace hippo::cli {

struct PlanOptions {
  std::vector<std::string> spec_paths;  // one or more; studies of one family share one tree
  std::string dot_path;                 // empty: no Graphviz file
  int workers = 8;
  bool json = false;
};

// The figures of docs/workloads.md for a planned study, before anything is trained.
struct PlanFigures {
  int64_t trials = 0;
  int64_t families = 0;
  int64_t stages = 0;
  stage_tree::StepCounts steps;
  double critical_path_steps = 0;         // longest root-to-leaf chain of unique steps
  double makespan_bound = 0;              // max(critical path, unique_steps / workers)
  double trial_based_makespan_bound = 0;  // max(longest trial, trial_steps / workers)
};

// The stage trees of every trial a grid study would run, built by the engine itself (an Engine
// on a scratch store, no worker connected), so that a plan and a run never disagree; returns
// their figures and writes DOT to `dot_path` when set. InvalidArgument for a non-grid study or a
// bad spec.
absl::StatusOr<PlanFigures> PlanStudy(const hippo::v1::StudySpec& spec, int workers,
                                      const std::string& dot_path);

// The same for several grid studies planned together in one engine, as `hippo run` with several
// specs runs them: studies of one family share its tree, so a stage is counted once; trial_steps
// adds up every study's trials.
absl::StatusOr<PlanFigures> PlanStudies(const std::vector<hippo::v1::StudySpec>& specs, int workers,
                                        const std::string& dot_path);

void PrintPlan(const PlanFigures& figures, bool json, std::ostream& out);

}  // namespace hippo::cli

#endif  // HIPPO_CLI_PLAN_COMMAND_H_
