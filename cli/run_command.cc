// `hippo run SPEC`: an embedded coordinator with its own SQLite file, N local workers over
// loopback gRPC, a progress bar, and a summary when the study ends.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "dashboard/server/http_server.h"
#include "hippo/server.h"
#include "proto/spec_issues.h"
#include "search_algos/spec_checks.h"
#include "workers/worker.h"

namespace hippo::cli {
namespace {

namespace v1 = ::hippo::v1;
using Clock = std::chrono::steady_clock;

std::atomic<bool> interrupted{false};

void OnInterrupt(int) { interrupted.store(true); }

std::string ProgressBar(const v1::Study& study, double seconds) {
  const v1::StepCounts& steps = study.steps();
  const double fraction =
      steps.unique_steps() == 0
          ? 0
          : std::min(1.0, static_cast<double>(steps.executed_steps() - steps.recomputed_steps()) /
                              static_cast<double>(steps.unique_steps()));
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(std::lround(fraction * kWidth));
  return absl::StrFormat("\r[%s%s] %3.0f%%  trials %d/%d  steps %d/%d  %.1fs ",
                         std::string(filled, '#'), std::string(kWidth - filled, '.'),
                         100 * fraction, study.trials_completed(), study.trials_total(),
                         steps.executed_steps(), steps.unique_steps(), seconds);
}

// {"lr": 0.1, "schedule": [{"start": 0, ...}, ...]}: scalars as values, sequences as segments.
std::string ParametersJson(const v1::Trial& trial) {
  std::vector<std::string> fields;
  for (const auto& [name, value] : trial.parameters()) {
    std::string json;
    if (value.has_scalar()) {
      json = ToJson(value.scalar());
    } else {
      std::vector<std::string> segments;
      for (const v1::Segment& segment : value.segments()) segments.push_back(ToJson(segment));
      json = absl::StrCat("[", absl::StrJoin(segments, ", "), "]");
    }
    fields.push_back(absl::StrCat(proto::QuoteJson(name), ": ", json));
  }
  std::sort(fields.begin(), fields.end());
  return absl::StrCat("{", absl::StrJoin(fields, ", "), "}");
}

std::string SummaryJson(const v1::Study& study, double seconds, const RunOptions& options) {
  std::string best = "null";
  if (study.has_best_trial()) {
    best = absl::StrFormat("{\"id\": %d, \"value\": %.17g, \"parameters\": %s}",
                           study.best_trial().id(), study.best_trial().objective_value(),
                           ParametersJson(study.best_trial()));
  }
  const v1::StepCounts& steps = study.steps();
  return absl::StrFormat(
      "{\"study_id\": %s, \"status\": \"%s\", \"trials\": %d, \"trials_completed\": %d, "
      "\"best_trial\": %s, \"trial_steps\": %d, \"unique_steps\": %d, \"executed_steps\": %d, "
      "\"recomputed_steps\": %d, \"workers\": %d, \"no_merge\": %s, \"wall_seconds\": %.3f}",
      proto::QuoteJson(study.id()), StudyStateName(study.state()), study.trials_total(),
      study.trials_completed(), best, steps.trial_steps(), steps.unique_steps(),
      steps.executed_steps(), steps.recomputed_steps(), options.workers,
      options.no_merge ? "true" : "false", seconds);
}

}  // namespace

int RunCommand(const RunOptions& options) {
  absl::StatusOr<v1::StudySpec> spec = search_algos::LoadStudySpecFile(options.spec_path);
  if (!spec.ok()) {
    std::cerr << "hippo run: " << spec.status().message() << "\n";
    return kExitBadInput;
  }
  if (const std::vector<std::string> kinds = workers::BuiltinTrainerKinds();
      std::find(kinds.begin(), kinds.end(), spec->trainer().kind()) == kinds.end()) {
    std::cerr << "hippo run: " << options.spec_path << ": trainer.kind: '" << spec->trainer().kind()
              << "' is not available in this build; local workers serve: "
              << absl::StrJoin(kinds, ", ") << "\n";
    return kExitBadInput;
  }
  if (options.workers < 1) {
    std::cerr << "hippo run: --workers must be at least 1\n";
    return kExitBadInput;
  }
  // A trainer that cannot start (a bad --device) would leave the study waiting forever.
  if (absl::StatusOr<std::unique_ptr<workers::Trainer>> trainer =
          workers::MakeBuiltinTrainer(spec->trainer().kind(), options.device);
      !trainer.ok()) {
    std::cerr << "hippo run: " << trainer.status().message() << "\n";
    return kExitBadInput;
  }

  // A private directory for what the user did not name; removed at the end.
  std::filesystem::path scratch;
  if (options.db.empty() || options.checkpoint_dir.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "hippo-run-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      std::cerr << "hippo run: cannot create a temporary directory\n";
      return kExitFailure;
    }
    scratch = pattern;
  }
  const std::string db = options.db.empty() ? (scratch / "study.db").string() : options.db;
  const std::string checkpoints =
      options.checkpoint_dir.empty() ? (scratch / "checkpoints").string() : options.checkpoint_dir;

  coordinator::ServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  server_options.db_path = db;
  absl::StatusOr<std::unique_ptr<coordinator::Server>> server =
      coordinator::Server::Start(server_options);
  if (!server.ok()) {
    std::cerr << "hippo run: " << server.status().message() << "\n";
    return kExitFailure;
  }
  const auto start = Clock::now();
  absl::StatusOr<v1::Study> study = (*server)->engine().CreateStudy(*spec, options.no_merge);
  if (!study.ok()) {
    std::cerr << "hippo run: " << options.spec_path << ": " << study.status().message() << "\n";
    return study.status().code() == absl::StatusCode::kInvalidArgument ? kExitBadInput
                                                                       : kExitFailure;
  }

  std::unique_ptr<dashboard::HttpServer> http;
  if (options.dashboard) {
    dashboard::HttpOptions http_options;
    http_options.listen = options.dashboard_listen;
    absl::StatusOr<std::unique_ptr<dashboard::HttpServer>> started =
        dashboard::HttpServer::Start(&(*server)->engine(), http_options);
    if (!started.ok()) {
      std::cerr << "hippo run: --dashboard-listen: " << started.status().message() << "\n";
      return started.status().code() == absl::StatusCode::kUnavailable ? kExitFailure
                                                                       : kExitBadInput;
    }
    http = *std::move(started);
    std::cerr << "hippo run: dashboard at " << http->url() << std::endl;
  }

  std::vector<std::unique_ptr<workers::Worker>> local_workers;
  std::vector<std::thread> threads;
  for (int i = 0; i < options.workers; ++i) {
    workers::WorkerOptions worker_options;
    worker_options.coordinator = absl::StrFormat("127.0.0.1:%d", (*server)->port());
    worker_options.worker_id = absl::StrFormat("local-%d", i);
    worker_options.checkpoint_dir = checkpoints;
    worker_options.trainers = {spec->trainer().kind()};
    worker_options.device = options.device;
    worker_options.cache_bytes = int64_t{256} << 20;
    worker_options.log = [](std::string_view) {};
    local_workers.push_back(std::make_unique<workers::Worker>(worker_options));
    threads.emplace_back([worker = local_workers.back().get()] { (void)worker->Run(); });
  }

  std::signal(SIGINT, OnInterrupt);
  const bool show_progress = !options.json && isatty(STDERR_FILENO);
  v1::Study current = *study;
  while (true) {
    absl::StatusOr<v1::Study> latest = (*server)->engine().GetStudy(study->id());
    if (latest.ok()) current = *latest;
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (show_progress) std::cerr << ProgressBar(current, seconds) << std::flush;
    if (current.state() != v1::STUDY_RUNNING) break;
    if (interrupted.load()) {
      absl::StatusOr<v1::Study> stopped =
          (*server)->engine().StopStudy(study->id(), "interrupted (Ctrl-C)");
      if (stopped.ok()) current = *stopped;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (show_progress) std::cerr << "\n";

  for (auto& worker : local_workers) worker->Stop();
  for (std::thread& thread : threads) thread.join();
  if (http) http->Shutdown();
  (*server)->Shutdown();

  if (options.json) {
    std::cout << SummaryJson(current, seconds, options) << std::endl;
  } else {
    PrintStudySummary(current, std::cout);
    std::cout << absl::StrFormat("  wall time       %.2f s with %d workers%s\n", seconds,
                                 options.workers, options.no_merge ? " (merging off)" : "");
    if (!options.db.empty()) std::cout << "  database        " << options.db << "\n";
  }
  server->reset();
  if (!scratch.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(scratch, ignored);
  }
  return current.state() == v1::STUDY_COMPLETED ? kExitOk : kExitFailure;
}

}  // namespace hippo::cli
