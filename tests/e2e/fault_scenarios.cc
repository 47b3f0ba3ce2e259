#include "tests/e2e/fault_scenarios.h"

#include <gtest/gtest.h>

#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "search_algos/spec_checks.h"

namespace hippo::e2e {

namespace v1 = ::hippo::v1;

std::string WriteW1(const TempDir& dir, double seconds_per_step, int max_trials) {
  const std::string config =
      seconds_per_step > 0
          ? absl::StrCat("{model: resnet20, batch_size: 128, cost_per_step: ", seconds_per_step,
                         "}")
          : "{model: resnet20, batch_size: 128, cost_per_step: 1.0, virtual_time: true}";
  std::string yaml = WorkloadWithConfig("w1.yaml", config);
  if (max_trials > 0) {
    const std::string budget = "budget: {max_steps: 120}";
    const size_t at = yaml.find(budget);
    EXPECT_NE(at, std::string::npos) << "examples/workloads/w1.yaml changed its budget line";
    if (at != std::string::npos) {
      yaml.replace(at, budget.size(),
                   absl::StrCat("budget: {max_steps: 120, max_trials: ", max_trials, "}"));
    }
  }
  const std::string path = dir.File("w1.yaml");
  std::ofstream(path) << yaml;
  return path;
}

void ExpectUninterruptedResults(const EndedStudy& got, const std::string& spec_path, int trials) {
  absl::StatusOr<v1::StudySpec> spec = search_algos::LoadStudySpecFile(spec_path);
  ASSERT_TRUE(spec.ok()) << spec.status();
  const std::string& objective = spec->objective().metric();
  const bool minimize = spec->objective().direction() == v1::MINIMIZE;
  EXPECT_EQ(got.study.state(), v1::STUDY_COMPLETED) << got.study.message();
  EXPECT_EQ(got.study.trials_completed(), trials);
  ASSERT_EQ(got.trials.trials_size(), trials);
  std::set<std::string> points;
  std::optional<v1::Trial> best;
  for (const v1::Trial& trial : got.trials.trials()) {
    EXPECT_EQ(trial.state(), v1::TRIAL_COMPLETED) << "trial " << trial.id();
    std::map<std::string, std::string> parameters;  // ordered, so that equal points compare equal
    for (const auto& [name, value] : trial.parameters()) {
      parameters[name] = value.SerializeAsString();
    }
    std::string point;
    for (const auto& [name, value] : parameters) point += name + "=" + value + ";";
    EXPECT_TRUE(points.insert(point).second) << "trial " << trial.id() << " repeats a point";

    absl::StatusOr<std::map<int64_t, std::map<std::string, double>>> straight =
        StraightRun(*spec, trial);
    ASSERT_TRUE(straight.ok()) << straight.status();
    ASSERT_EQ(straight->size(), static_cast<size_t>(trial.target_step()));
    auto curve = got.curves.find(trial.id());
    if (curve == got.curves.end()) {
      ADD_FAILURE() << "trial " << trial.id() << " has no metrics";
      continue;
    }
    EXPECT_EQ(curve->second.size(), straight->size()) << "trial " << trial.id();
    EXPECT_TRUE(curve->second == *straight) << "trial " << trial.id() << ": metric history differs";
    const double last = straight->rbegin()->second.at(objective);
    EXPECT_TRUE(trial.has_objective_value()) << "trial " << trial.id();
    EXPECT_EQ(trial.objective_value(), last) << "trial " << trial.id();
    if (!best || (minimize ? last < best->objective_value() : last > best->objective_value())) {
      best = trial;
      best->set_objective_value(last);
    }
  }
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(got.study.best_trial().id(), best->id());
  EXPECT_EQ(got.study.best_trial().objective_value(), best->objective_value());
}

std::string DescribeStudy(const std::string& address, const std::string& study_id,
                          const std::string& server_log) {
  std::ostringstream out;
  absl::StatusOr<v1::Study> study = GetStudy(address, study_id);
  if (study.ok()) {
    out << "study " << study_id << ": state " << v1::StudyState_Name(study->state()) << ", "
        << study->trials_completed() << " trials completed, steps executed "
        << study->steps().executed_steps() << " of " << study->steps().unique_steps() << "\n";
  } else {
    out << "study " << study_id << ": " << study.status() << "\n";
  }
  auto stub = Connect(address);
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::GetStageTreeRequest request;
    request.set_study_id(study_id);
    v1::StageTree tree;
    if (stub->GetStageTree(&context, request, &tree).ok()) {
      std::map<std::string, int> by_state;
      for (const v1::Stage& stage : tree.stages()) {
        ++by_state[v1::StageState_Name(stage.state())];
        if (stage.state() == v1::STAGE_RUNNING) {
          out << "  running stage " << stage.id() << " [" << stage.start_step() << ", "
              << stage.end_step() << ") attempts " << stage.attempts() << " worker '"
              << stage.worker() << "'\n";
        }
      }
      for (const auto& [state, count] : by_state) out << "  " << state << ": " << count << "\n";
    }
  }
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListWorkersResponse workers;
    if (stub->ListWorkers(&context, v1::ListWorkersRequest(), &workers).ok()) {
      for (const v1::WorkerInfo& worker : workers.workers()) {
        out << "  worker " << worker.worker_id() << (worker.connected() ? " connected" : " gone")
            << ", running stage " << worker.running_stage_id() << "\n";
      }
    }
  }
  std::ifstream log(server_log);
  std::deque<std::string> tail;
  for (std::string line; std::getline(log, line);) {
    tail.push_back(line);
    if (tail.size() > 30) tail.pop_front();
  }
  out << "last lines of " << server_log << ":\n";
  for (const std::string& line : tail) out << "  " << line << "\n";
  return out.str();
}

}  // namespace hippo::e2e
