// Simulator: a study in virtual time. The real engine (search plan, stage trees, critical-path
// scheduler, store) drives N simulated workers that train with the real `sim` trainer but take
// no wall time: each step costs `seconds_per_step` of virtual time and the simulator jumps from
// one event to the next. So studies far larger than this machine (1 024 workers and more) run
// in seconds, and their makespan can be set against the bound no scheduler can beat.
#ifndef HIPPO_SIMULATION_SIMULATOR_H_
#define HIPPO_SIMULATION_SIMULATOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::simulation {

struct SimulationOptions {
  int workers = 8;
  bool no_merge = false;          // trial by trial: the baseline
  double seconds_per_step = 1.0;  // virtual cost of one step (every family alike)
  std::string db_path;            // empty: a temporary file, removed at the end
};

struct SimulationResult {
  hippo::v1::Study study;     // the final view (state, best trial, step counts)
  double makespan = 0;        // virtual seconds from start to the last stage done
  double critical_path = 0;   // longest root-to-leaf chain of the final trees, in seconds
  double makespan_bound = 0;  // max(critical path, unique work / workers)
  int64_t dispatches = 0;
  // Stages given to a worker that had just finished their parent stage: it continues with the
  // model in memory, as real workers do, instead of loading a state (all studies together).
  int64_t continued = 0;
  int64_t assigned = 0;  // stages given, the denominator of `continued`
  // distinct_steps of all the studies simulated together (a configuration several of them
  // train counts once, to its furthest target): the figure of a multi-study workload.
  int64_t distinct_steps_together = 0;
  double wall_seconds = 0;  // real time the simulation took
};

// InvalidArgument for a trainer other than sim, or a budget.max_wall_seconds (virtual time has
// no wall clock to bound).
absl::StatusOr<SimulationResult> Simulate(const hippo::v1::StudySpec& spec,
                                          const SimulationOptions& options);

// Several studies submitted together (W5: studies of one family share its stage tree). Each
// result's step counts are its families' (shared ones count once per study that uses them);
// the makespan is the time the last study ended.
absl::StatusOr<std::vector<SimulationResult>> SimulateTogether(
    const std::vector<hippo::v1::StudySpec>& specs, const SimulationOptions& options);

}  // namespace hippo::simulation

#endif  // HIPPO_SIMULATION_SIMULATOR_H_
