// `hippo simulate SPEC...`: the study in virtual time with N simulated workers.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "search_algos/spec_checks.h"
#include "simulation/simulator.h"

namespace hippo::cli {
namespace {

namespace v1 = ::hippo::v1;

std::string ResultJson(const simulation::SimulationResult& result) {
  const v1::StepCounts& steps = result.study.steps();
  return absl::StrFormat(
      "{\"status\": \"%s\", \"trials\": %d, \"best_value\": %.17g, \"trial_steps\": %d, "
      "\"unique_steps\": %d, \"executed_steps\": %d, \"recomputed_steps\": %d, %s, "
      "\"makespan\": %.3f, \"makespan_bound\": %.3f, \"critical_path\": %.3f, "
      "\"dispatches\": %d, \"continued\": %d, \"wall_seconds\": %.3f}",
      StudyStateName(result.study.state()), result.study.trials_total(),
      result.study.best_trial().objective_value(), steps.trial_steps(), steps.unique_steps(),
      steps.executed_steps(), steps.recomputed_steps(), SavingsJsonFields(steps), result.makespan,
      result.makespan_bound, result.critical_path, result.dispatches, result.continued,
      result.wall_seconds);
}

void PrintResult(const std::string& title, const simulation::SimulationResult& result) {
  const v1::StepCounts& steps = result.study.steps();
  std::cout << title << "\n";
  PrintStudySummary(result.study, std::cout);
  std::cout << absl::StrFormat(
      "  makespan        %.1f virtual s (bound %.1f: %.3fx of it)\n", result.makespan,
      result.makespan_bound,
      result.makespan_bound > 0 ? result.makespan / result.makespan_bound : 0);
  if (steps.unique_steps() > 0) {
    std::cout << absl::StrFormat("  waste           %.2f%% (executed / unique - 1)\n",
                                 100.0 * (static_cast<double>(steps.executed_steps()) /
                                              static_cast<double>(steps.unique_steps()) -
                                          1));
  }
  std::cout << absl::StrFormat("  simulated in    %.2f s of wall time, %d dispatches\n",
                               result.wall_seconds, result.dispatches);
  std::cout << absl::StrFormat(
      "  continued       %d of %d stages on the worker that had just finished their parent\n",
      result.continued, result.assigned);
}

// Several specs: simulated together (studies of one family share its tree), one result each.
int SimulateTogetherCommand(const SimulateOptions& options,
                            const std::vector<v1::StudySpec>& specs) {
  if (options.compare) {
    std::cerr << "hippo simulate: --compare takes one spec\n";
    return kExitBadInput;
  }
  simulation::SimulationOptions simulation;
  simulation.workers = options.workers;
  simulation.seconds_per_step = options.seconds_per_step;
  simulation.no_merge = options.no_merge;
  absl::StatusOr<std::vector<simulation::SimulationResult>> results =
      simulation::SimulateTogether(specs, simulation);
  if (!results.ok()) {
    std::cerr << "hippo simulate: " << absl::StrJoin(options.spec_paths, ", ") << ": "
              << results.status().message() << "\n";
    return results.status().code() == absl::StatusCode::kInvalidArgument ? kExitBadInput
                                                                         : kExitFailure;
  }
  double makespan = 0;
  for (const simulation::SimulationResult& result : *results) {
    makespan = std::max(makespan, result.makespan);
  }
  if (options.json) {
    std::vector<std::string> studies;
    for (const simulation::SimulationResult& result : *results) {
      studies.push_back(ResultJson(result));
    }
    std::cout << absl::StrFormat("{\"studies\": [%s], \"makespan\": %.3f}\n",
                                 absl::StrJoin(studies, ", "), makespan);
    return kExitOk;
  }
  for (size_t i = 0; i < results->size(); ++i) {
    PrintResult(absl::StrFormat("Simulation of %s with %d workers, together with the others%s",
                                options.spec_paths[i], options.workers,
                                simulation.no_merge ? " (merging off)" : ""),
                (*results)[i]);
  }
  std::cout << absl::StrFormat(
      "all %d studies ended after %.1f virtual s (a study's unique and executed steps are its "
      "families')\n",
      results->size(), makespan);
  return kExitOk;
}

}  // namespace

int SimulateCommand(const SimulateOptions& options) {
  std::vector<v1::StudySpec> specs;
  for (const std::string& path : options.spec_paths) {
    absl::StatusOr<v1::StudySpec> spec = search_algos::LoadStudySpecFile(path);
    if (!spec.ok()) {
      std::cerr << "hippo simulate: " << spec.status().message() << "\n";
      return kExitBadInput;
    }
    specs.push_back(*std::move(spec));
  }
  if (specs.empty()) {
    std::cerr << "hippo simulate: no study spec given\n";
    return kExitBadInput;
  }
  if (specs.size() > 1) return SimulateTogetherCommand(options, specs);
  const std::string& spec_path = options.spec_paths[0];
  const v1::StudySpec* spec = &specs[0];
  simulation::SimulationOptions simulation;
  simulation.workers = options.workers;
  simulation.seconds_per_step = options.seconds_per_step;
  simulation.no_merge = options.no_merge && !options.compare;
  absl::StatusOr<simulation::SimulationResult> merged = simulation::Simulate(*spec, simulation);
  if (!merged.ok()) {
    std::cerr << "hippo simulate: " << spec_path << ": " << merged.status().message() << "\n";
    return merged.status().code() == absl::StatusCode::kInvalidArgument ? kExitBadInput
                                                                        : kExitFailure;
  }
  if (!options.compare) {
    if (options.json) {
      std::cout << ResultJson(*merged) << "\n";
    } else {
      PrintResult(absl::StrFormat("Simulation of %s with %d workers%s", spec_path, options.workers,
                                  simulation.no_merge ? " (merging off)" : ""),
                  *merged);
    }
    return kExitOk;
  }
  simulation.no_merge = true;
  absl::StatusOr<simulation::SimulationResult> baseline = simulation::Simulate(*spec, simulation);
  if (!baseline.ok()) {
    std::cerr << "hippo simulate: " << baseline.status().message() << "\n";
    return kExitFailure;
  }
  const double speedup = merged->makespan > 0 ? baseline->makespan / merged->makespan : 0;
  if (options.json) {
    std::cout << absl::StrFormat("{\"merged\": %s, \"trial_based\": %s, \"speedup\": %.4f}\n",
                                 ResultJson(*merged), ResultJson(*baseline), speedup);
    return kExitOk;
  }
  PrintResult("Merged (Hippo):", *merged);
  PrintResult("Trial by trial (--no-merge):", *baseline);
  std::cout << absl::StrFormat("speedup %.2fx (trial-based makespan / Hippo makespan)\n", speedup);
  const v1::StepCounts& steps = merged->study.steps();
  const std::string unit = StepUnit(*spec);
  std::cout << absl::StrFormat(
      "Hippo executed %s: %s (the --no-merge run executed %d), %s (each trained once)",
      CountOf(steps.executed_steps(), unit),
      Compared(steps.executed_steps(), steps.trial_steps(), unit, "trial by trial"),
      baseline->study.steps().executed_steps(),
      Compared(steps.executed_steps(), steps.distinct_steps(), unit, "distinct configurations"));
  if (steps.checkpoint_copy_steps() != steps.trial_steps()) {
    std::cout << absl::StrFormat(", %s (each fork trains only its own steps)",
                                 Compared(steps.executed_steps(), steps.checkpoint_copy_steps(),
                                          unit, "checkpoint-copying PBT"));
  }
  std::cout << "\n";
  return kExitOk;
}

}  // namespace hippo::cli
