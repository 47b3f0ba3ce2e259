// TrialEntry: one trial as the dashboard's mirror keeps it (mirror.h), and as the aggregates of
// its study's charts (study_aggregates.h) read it.
#ifndef HIPPO_DASHBOARD_SERVER_TRIAL_ENTRY_H_
#define HIPPO_DASHBOARD_SERVER_TRIAL_ENTRY_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace hippo::dashboard {

// One trial as the mirror keeps it.
struct TrialEntry {
  std::string bytes;  // the serialized hippo.v1.Trial
  int64_t version = 0;
  int state = 0;  // hippo.v1.TrialState
  bool has_objective = false;
  double objective = 0;
  int64_t reached_step = 0;
  int64_t target_step = 0;
  // Per parameter of the study (StudyData::parameters): the number a column sorts by: the
  // value of a numeric scalar, the category index of a string, a sequence's value at step 0.
  std::vector<double> parameters;
  std::vector<int32_t> curve_steps;  // the objective metric by step
  std::vector<float> curve_values;
};

// Whether the trial ranks by its objective (in the charts: the best curves, the history, the
// parameters' sample).
inline bool Scored(const TrialEntry& trial) {
  return trial.has_objective && !std::isnan(trial.objective);
}

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_TRIAL_ENTRY_H_
