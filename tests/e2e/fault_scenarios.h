// What the fault tests (faults_test, kill_stress_test, checkpoint_kill_test) share: the W1
// study with real time per step, its uninterrupted reference run, the comparison of a faulted
// run's results with it, and what to print when a study does not end.
#ifndef HIPPO_TESTS_E2E_FAULT_SCENARIOS_H_
#define HIPPO_TESTS_E2E_FAULT_SCENARIOS_H_

#include <string>

#include "absl/status/statusor.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {

// Writes W1 (examples/workloads/w1.yaml: a grid of 96 schedules to step 120) to `dir`/w1.yaml
// with `seconds_per_step` of real time per step (0: virtual time, no waiting), and returns the
// path. `max_trials` > 0 keeps only the first trials of the grid.
std::string WriteW1(const TempDir& dir, double seconds_per_step, int max_trials = 0);

// Expects `got`, a run of the spec at `spec_path`, to have ended as if nothing had happened:
// completed with `trials` trials, each at a different point of the search space, each with the
// value of every metric at every step equal to what the trainer gives for the trial trained
// straight from step 0 to its target, uninterrupted (nothing lost, nothing counted twice), its
// objective the last of those values, and the best trial the best of them.
void ExpectUninterruptedResults(const EndedStudy& got, const std::string& spec_path, int trials);

// What a study that does not end looks like: its view, its stages by state (with the worker
// of each running one), the workers as the coordinator sees them, and the server log's tail.
std::string DescribeStudy(const std::string& address, const std::string& study_id,
                          const std::string& server_log);

}  // namespace hippo::e2e

#endif  // HIPPO_TESTS_E2E_FAULT_SCENARIOS_H_
