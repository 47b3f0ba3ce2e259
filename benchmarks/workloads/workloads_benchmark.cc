// Workloads benchmark: W1–W6 of docs/workloads.md in virtual time (the real engine, scheduler and
// sim trainer; each step costs one virtual second). For each workload: trial_steps,
// distinct_steps (each distinct configuration once; a workload of several studies: across
// them), checkpoint_copy_steps (PBT forks copying a checkpoint), unique_steps, executed_steps,
// the savings against each of the three baselines (baseline / executed), waste
// (executed / unique - 1); and
// with W simulated workers: Hippo's makespan, the bound no scheduler can beat, the makespan of
// the same studies trial by trial (--no-merge), and the speedup; and the best objective found
// (of the first study, for a workload of several), since the order of events changes what an
// adaptive algorithm decides.
//
// Usage: workloads_benchmark [--workers 8] [--out FILE] [--db-dir DIR]
// --db-dir keeps each workload's store (Hippo's run) as DIR/w1.db ... DIR/w6.db, to inspect.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "search_algos/spec_checks.h"
#include "simulation/simulator.h"

namespace {

namespace v1 = ::hippo::v1;

struct Workload {
  std::string id;
  std::string db_name;
  std::vector<std::string> files;
  // Draw without replacement (the default of random samplers) although the file asks for
  // independent draws: W2 as a user writing it today would get it.
  bool without_replacement = false;
};

struct Row {
  std::string id;
  std::string status;  // "ok" or why it did not run
  int64_t trials = 0, trial_steps = 0, distinct_steps = 0, checkpoint_copy_steps = 0,
          unique_steps = 0, executed_steps = 0;
  double makespan = 0, bound = 0, trial_based_makespan = 0;
  bool has_best = false;  // the best trial's objective (the first study's, for several)
  double best_objective = 0;
  int64_t best_trial = 0;
};

Row Measure(const Workload& workload, int workers, const std::string& db_dir) {
  Row row;
  row.id = workload.id;
  std::vector<v1::StudySpec> specs;
  for (const std::string& file : workload.files) {
    absl::StatusOr<v1::StudySpec> spec = hippo::search_algos::LoadStudySpecFile(
        std::string(HIPPO_SOURCE_DIR) + "/examples/workloads/" + file);
    if (!spec.ok()) {
      row.status = std::string(spec.status().message());
      return row;
    }
    if (workload.without_replacement) spec->mutable_algorithm()->set_sample_with_replacement(false);
    specs.push_back(*spec);
  }
  hippo::simulation::SimulationOptions options;
  options.workers = workers;
  if (!db_dir.empty()) {
    options.db_path = db_dir + "/" + workload.db_name + ".db";
    for (const char* suffix : {"", "-wal", "-shm"})
      std::filesystem::remove(options.db_path + suffix);
  }
  auto merged = hippo::simulation::SimulateTogether(specs, options);
  options.no_merge = true;
  options.db_path.clear();
  auto baseline = hippo::simulation::SimulateTogether(specs, options);
  if (!merged.ok() || !baseline.ok()) {
    row.status = std::string((merged.ok() ? baseline : merged).status().message());
    return row;
  }
  row.status = "ok";
  for (const auto& result : *merged) {
    row.trials += result.study.trials_total();
    row.trial_steps += result.study.steps().trial_steps();
    row.checkpoint_copy_steps += result.study.steps().checkpoint_copy_steps();
  }
  row.distinct_steps = merged->front().distinct_steps_together;
  // The studies of one workload share one family: its counts are the same in each view.
  const v1::StepCounts& family = merged->front().study.steps();
  row.unique_steps = family.unique_steps();
  row.executed_steps = family.executed_steps();
  row.makespan = merged->front().makespan;
  double critical_path = 0;
  for (const auto& result : *merged) critical_path = std::max(critical_path, result.critical_path);
  row.bound = std::max(critical_path, static_cast<double>(row.unique_steps) / workers);
  row.trial_based_makespan = baseline->front().makespan;
  const v1::Study& study = merged->front().study;
  if (study.has_best_trial() && study.best_trial().has_objective_value()) {
    row.has_best = true;
    row.best_objective = study.best_trial().objective_value();
    row.best_trial = study.best_trial().id();
  }
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  int workers = 8;
  std::string out = "workloads_benchmark.json";
  std::string db_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--workers"))
      workers = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--out"))
      out = argv[i + 1];
    else if (!std::strcmp(argv[i], "--db-dir"))
      db_dir = argv[i + 1];
  }
  const std::vector<Workload> workloads = {
      {"W1 grid", "w1", {"w1.yaml"}},
      {"W2 asha", "w2", {"w2.yaml"}},
      {"W2d asha distinct", "w2d", {"w2.yaml"}, true},
      {"W3 hyperband", "w3", {"w3.yaml"}},
      {"W4 pbt", "w4", {"w4.yaml"}},
      {"W5 multi-study", "w5", {"w5-grid.yaml", "w5-asha-seed1.yaml", "w5-asha-seed2.yaml"}},
      {"W6 nas", "w6", {"w6.yaml"}},
  };
  std::printf("%-18s %6s %11s %8s %9s %7s %8s %8s %8s %8s %7s %8s %7s %8s %7s %7s %14s\n",
              "workload", "trials", "trial_steps", "distinct", "ckpt_copy", "unique", "executed",
              "vs_trial", "vs_dist", "vs_ckpt", "waste", "makespan", "bound", "no-merge", "m/bound",
              "speedup", "best (trial)");
  std::ofstream file(out);
  file << "{\"workers\": " << workers << ", \"workloads\": [";
  bool first = true;
  for (const Workload& workload : workloads) {
    const Row row = Measure(workload, workers, db_dir);
    if (row.status != "ok") {
      std::printf("%-16s not run: %s\n", row.id.c_str(), row.status.c_str());
      continue;
    }
    const double savings = static_cast<double>(row.trial_steps) / row.executed_steps;
    const double distinct_savings = static_cast<double>(row.distinct_steps) / row.executed_steps;
    const double checkpoint_copy_savings =
        static_cast<double>(row.checkpoint_copy_steps) / row.executed_steps;
    const double waste = static_cast<double>(row.executed_steps) / row.unique_steps - 1;
    const double speedup = row.trial_based_makespan / row.makespan;
    char best[32] = "-";
    if (row.has_best) {
      std::snprintf(best, sizeof(best), "%.4f (#%lld)", row.best_objective,
                    (long long)row.best_trial);
    }
    std::printf(
        "%-18s %6lld %11lld %8lld %9lld %7lld %8lld %7.2fx %7.2fx %7.2fx %6.2f%% %8.0f %7.1f %8.0f "
        "%7.3f %6.2fx %14s\n",
        row.id.c_str(), (long long)row.trials, (long long)row.trial_steps,
        (long long)row.distinct_steps, (long long)row.checkpoint_copy_steps,
        (long long)row.unique_steps, (long long)row.executed_steps, savings, distinct_savings,
        checkpoint_copy_savings, 100 * waste, row.makespan, row.bound, row.trial_based_makespan,
        row.makespan / row.bound, speedup, best);
    file << (first ? "" : ", ") << "{\"id\": \"" << row.id << "\", \"trials\": " << row.trials
         << ", \"trial_steps\": " << row.trial_steps
         << ", \"distinct_steps\": " << row.distinct_steps
         << ", \"checkpoint_copy_steps\": " << row.checkpoint_copy_steps
         << ", \"unique_steps\": " << row.unique_steps
         << ", \"executed_steps\": " << row.executed_steps << ", \"savings\": " << savings
         << ", \"distinct_savings\": " << distinct_savings
         << ", \"checkpoint_copy_savings\": " << checkpoint_copy_savings << ", \"waste\": " << waste
         << ", \"makespan\": " << row.makespan << ", \"makespan_bound\": " << row.bound
         << ", \"trial_based_makespan\": " << row.trial_based_makespan
         << ", \"speedup\": " << speedup;
    if (row.has_best) {
      file << ", \"best_objective\": " << row.best_objective
           << ", \"best_trial\": " << row.best_trial;
    }
    file << "}";
    first = false;
  }
  file << "]}\n";
  std::printf("wrote %s\n", out.c_str());
  return 0;
}
