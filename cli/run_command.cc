// `hippo run SPEC...`: an embedded coordinator with its own SQLite file, N local workers over
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
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/token.h"
#include "dashboard/server/http_server.h"
#include "hippo/server.h"
#include "proto/spec_issues.h"
#include "search_algos/spec_checks.h"
#include "workers/command_trainer.h"
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
  // The saving on the work done so far (each trial up to the step it reached), like for like.
  const std::string saved =
      steps.executed_steps() > 0
          ? absl::StrCat("  ",
                         Compared(steps.executed_steps(), steps.reached_trial_steps(),
                                  StepUnit(study.spec()), "trial by trial"),
                         " so far")
          : "";
  return absl::StrFormat("\r[%s%s] %3.0f%%  trials %d/%d  steps %d/%d%s  %.1fs ",
                         std::string(filled, '#'), std::string(kWidth - filled, '.'),
                         100 * fraction, study.trials_completed(), study.trials_total(),
                         steps.executed_steps(), steps.unique_steps(), saved, seconds);
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
      "\"recomputed_steps\": %d, %s, \"message\": %s, \"workers\": %d, \"no_merge\": %s, "
      "\"wall_seconds\": %.3f}",
      proto::QuoteJson(study.id()), StudyStateName(study.state()), study.trials_total(),
      study.trials_completed(), best, steps.trial_steps(), steps.unique_steps(),
      steps.executed_steps(), steps.recomputed_steps(), SavingsJsonFields(steps),
      proto::QuoteJson(study.message()), options.workers, options.no_merge ? "true" : "false",
      seconds);
}

// Several studies at once: the share of their trials completed.
std::string CombinedProgressBar(const std::vector<v1::Study>& studies, double seconds) {
  int64_t completed = 0, total = 0, running = 0;
  for (const v1::Study& study : studies) {
    completed += study.trials_completed();
    total += study.trials_total();
    if (study.state() == v1::STUDY_RUNNING) ++running;
  }
  const double fraction =
      total == 0 ? 0 : std::min(1.0, static_cast<double>(completed) / static_cast<double>(total));
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(std::lround(fraction * kWidth));
  return absl::StrFormat("\r[%s%s] %3.0f%%  studies running %d/%d  trials %d/%d  %.1fs ",
                         std::string(filled, '#'), std::string(kWidth - filled, '.'),
                         100 * fraction, running, studies.size(), completed, total, seconds);
}

// The directories `hippo run`'s local workers allow (--allow-dir) for a command spec: where its
// program is found as the command trainer used to find it (a bare name on PATH, a relative path
// under config.working_dir or the current directory), and where its links lead. `hippo run` is
// the user's own command on their own machine, so it runs what the spec names, and says so.
absl::StatusOr<std::vector<std::string>> CommandAllowDirs(const v1::StudySpec& spec) {
  namespace fs = std::filesystem;
  if (spec.trainer().command().empty() || spec.trainer().command(0).empty()) {
    return absl::InvalidArgumentError(
        "trainer.command is empty; give the program and its arguments");
  }
  const std::string& program = spec.trainer().command(0);
  std::error_code error;
  fs::path base = fs::current_path(error);
  if (auto it = spec.trainer().config().fields().find("working_dir");
      it != spec.trainer().config().fields().end() && it->second.has_string_value()) {
    base = fs::absolute(it->second.string_value(), error);
  }
  fs::path found;
  fs::path found_in;
  if (fs::path(program).is_absolute()) {
    found = program;
    found_in = found.parent_path();
  } else if (program.find('/') != std::string::npos) {
    found = base / program;
    found_in = base;
  } else {
    const char* path = std::getenv("PATH");
    for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "", ':')) {
      const fs::path candidate = fs::path(std::string(dir.empty() ? "." : dir)) / program;
      if (::access(candidate.c_str(), X_OK) == 0 && fs::is_regular_file(candidate, error)) {
        found = fs::absolute(candidate, error);
        found_in = found.parent_path();
        break;
      }
    }
  }
  const fs::path resolved = found.empty() ? fs::path() : fs::canonical(found, error);
  if (found.empty() || error) {
    return absl::NotFoundError(absl::StrCat("trainer.command[0] '", program,
                                            "': no such program on this machine (PATH, or "
                                            "relative to ",
                                            base.string(), ")"));
  }
  std::vector<std::string> dirs = {fs::canonical(found_in, error).string()};
  if (resolved.parent_path() != dirs.front()) dirs.push_back(resolved.parent_path().string());
  return dirs;
}

}  // namespace

int RunCommand(const RunOptions& options) {
  if (options.spec_paths.empty()) {
    std::cerr << "hippo run: no study spec given\n";
    return kExitBadInput;
  }
  // `hippo run`'s dashboard is plain HTTP with no --tls-cert or --insecure of its own (those
  // are `hippo server`'s): off loopback its token would cross the network in plaintext.
  if (options.dashboard && !coordinator::IsLoopback(options.dashboard_listen)) {
    std::cerr << "hippo run: --dashboard-listen " << options.dashboard_listen
              << " is not a loopback address: hippo run serves its dashboard over plain HTTP, "
                 "on loopback only; use a loopback address (e.g. 127.0.0.1:0) and reach it "
                 "through an SSH tunnel (ssh -L), or run hippo server with --http ADDRESS "
                 "--tls-cert FILE --tls-key FILE and start hippo worker processes beside it\n";
    return kExitBadInput;
  }
  std::vector<v1::StudySpec> specs;
  std::vector<std::string> kinds;       // the trainer kinds the local workers serve
  std::vector<std::string> allow_dirs;  // where their command trainer may run programs
  for (const std::string& path : options.spec_paths) {
    absl::StatusOr<v1::StudySpec> spec = search_algos::LoadStudySpecFile(path);
    if (!spec.ok()) {
      std::cerr << "hippo run: " << spec.status().message() << "\n";
      return kExitBadInput;
    }
    if (const std::vector<std::string> builtin = workers::BuiltinTrainerKinds();
        std::find(builtin.begin(), builtin.end(), spec->trainer().kind()) == builtin.end()) {
      std::cerr << "hippo run: " << path << ": trainer.kind: '" << spec->trainer().kind()
                << "' is not available in this build; local workers serve: "
                << absl::StrJoin(builtin, ", ") << "\n";
      return kExitBadInput;
    }
    if (std::find(kinds.begin(), kinds.end(), spec->trainer().kind()) == kinds.end()) {
      // A trainer that cannot start (a bad --device) would leave the study waiting forever.
      if (absl::StatusOr<std::unique_ptr<workers::Trainer>> trainer =
              workers::MakeBuiltinTrainer(spec->trainer().kind(), options.device);
          !trainer.ok()) {
        std::cerr << "hippo run: " << trainer.status().message() << "\n";
        return kExitBadInput;
      }
      kinds.push_back(spec->trainer().kind());
    }
    if (spec->trainer().kind() == workers::CommandTrainer::kKind) {
      absl::StatusOr<std::vector<std::string>> dirs = CommandAllowDirs(*spec);
      if (!dirs.ok()) {
        std::cerr << "hippo run: " << path << ": " << dirs.status().message() << "\n";
        return kExitBadInput;
      }
      std::cerr << "hippo run: " << path
                << " uses the command trainer: the local workers serve it and run programs "
                   "under "
                << absl::StrJoin(*dirs, " and ") << " (as hippo worker --trainers command"
                << absl::StrCat(" --allow-dir ", absl::StrJoin(*dirs, " --allow-dir ")) << ")\n";
      for (std::string& dir : *dirs) {
        if (std::find(allow_dirs.begin(), allow_dirs.end(), dir) == allow_dirs.end()) {
          allow_dirs.push_back(std::move(dir));
        }
      }
    }
    specs.push_back(*std::move(spec));
  }
  if (options.workers < 1) {
    std::cerr << "hippo run: --workers must be at least 1\n";
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
  server_options.collect_checkpoints = options.checkpoint_gc;
  // The embedded coordinator listens on loopback for its own workers only: a token made for
  // this run keeps every other local process out.
  absl::StatusOr<std::string> token = NewToken();
  if (!token.ok()) {
    std::cerr << "hippo run: " << token.status().message() << "\n";
    return kExitFailure;
  }
  server_options.token = *token;
  absl::StatusOr<std::unique_ptr<coordinator::Server>> server =
      coordinator::Server::Start(server_options);
  if (!server.ok()) {
    std::cerr << "hippo run: " << server.status().message() << "\n";
    return kExitFailure;
  }
  const auto start = Clock::now();
  // All studies are created before any worker connects, so studies of one family are planned
  // into one tree from the start.
  std::vector<v1::Study> current;
  for (size_t i = 0; i < specs.size(); ++i) {
    absl::StatusOr<v1::Study> study = (*server)->engine().CreateStudy(specs[i], options.no_merge);
    if (!study.ok()) {
      std::cerr << "hippo run: " << options.spec_paths[i] << ": " << study.status().message()
                << "\n";
      return study.status().code() == absl::StatusCode::kInvalidArgument ? kExitBadInput
                                                                         : kExitFailure;
    }
    current.push_back(*std::move(study));
  }

  std::unique_ptr<dashboard::HttpServer> http;
  if (options.dashboard) {
    dashboard::HttpOptions http_options;
    http_options.listen = options.dashboard_listen;
    http_options.token = *token;
    absl::StatusOr<std::unique_ptr<dashboard::HttpServer>> started =
        dashboard::HttpServer::Start(&(*server)->engine(), http_options);
    if (!started.ok()) {
      std::cerr << "hippo run: --dashboard-listen: " << started.status().message() << "\n";
      return started.status().code() == absl::StatusCode::kUnavailable ? kExitFailure
                                                                       : kExitBadInput;
    }
    http = *std::move(started);
    // The URL carries the token once (Jupyter's way): the page then keeps it in a cookie.
    std::cerr << "hippo run: dashboard at " << http->login_url() << std::endl;
  }

  std::vector<std::unique_ptr<workers::Worker>> local_workers;
  std::vector<std::thread> threads;
  for (int i = 0; i < options.workers; ++i) {
    workers::WorkerOptions worker_options;
    worker_options.coordinator = absl::StrFormat("127.0.0.1:%d", (*server)->port());
    worker_options.token = *token;
    worker_options.worker_id = absl::StrFormat("local-%d", i);
    worker_options.checkpoint_dir = checkpoints;
    worker_options.trainers = kinds;
    worker_options.allow_dirs = allow_dirs;
    worker_options.device = options.device;
    worker_options.cache_bytes = int64_t{256} << 20;
    worker_options.log = [](std::string_view) {};
    local_workers.push_back(std::make_unique<workers::Worker>(worker_options));
    // Run returns when Stop is called; its status says only why the session ended.
    threads.emplace_back([worker = local_workers.back().get()] { (void)worker->Run(); });
  }

  std::signal(SIGINT, OnInterrupt);
  const bool show_progress = !options.json && isatty(STDERR_FILENO);
  while (true) {
    bool running = false;
    for (v1::Study& study : current) {
      absl::StatusOr<v1::Study> latest = (*server)->engine().GetStudy(study.id());
      if (latest.ok()) study = *std::move(latest);
      running = running || study.state() == v1::STUDY_RUNNING;
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (show_progress) {
      std::cerr << (current.size() == 1 ? ProgressBar(current[0], seconds)
                                        : CombinedProgressBar(current, seconds))
                << std::flush;
    }
    if (!running) break;
    if (interrupted.load()) {
      for (v1::Study& study : current) {
        if (study.state() != v1::STUDY_RUNNING) continue;
        absl::StatusOr<v1::Study> stopped =
            (*server)->engine().StopStudy(study.id(), "interrupted (Ctrl-C)");
        if (stopped.ok()) study = *std::move(stopped);
      }
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

  bool all_completed = true;
  for (const v1::Study& study : current) {
    all_completed = all_completed && study.state() == v1::STUDY_COMPLETED;
  }
  if (options.json) {
    if (current.size() == 1) {
      std::cout << SummaryJson(current[0], seconds, options) << std::endl;
    } else {
      std::vector<std::string> studies;
      for (const v1::Study& study : current)
        studies.push_back(SummaryJson(study, seconds, options));
      // Distinct configurations across the studies (a configuration several of them train
      // counts once): the baseline of a multi-study run. -1 if it could not be read.
      std::vector<std::string> ids;
      for (const v1::Study& study : current) ids.push_back(study.id());
      absl::StatusOr<int64_t> distinct = (*server)->engine().DistinctStepsOf(ids);
      std::cout << absl::StrFormat(
                       "{\"studies\": [%s], \"distinct_steps_together\": %d, \"workers\": %d, "
                       "\"wall_seconds\": %.3f}",
                       absl::StrJoin(studies, ", "), distinct.ok() ? *distinct : -1,
                       options.workers, seconds)
                << std::endl;
    }
  } else {
    for (size_t i = 0; i < current.size(); ++i) {
      if (current.size() > 1) std::cout << options.spec_paths[i] << ":\n";
      PrintStudySummary(current[i], std::cout);
    }
    if (current.size() > 1) {
      std::cout << "  (a study's unique and executed steps are its families'; studies of one "
                   "family share them)\n";
    }
    std::cout << absl::StrFormat("  wall time       %.2f s with %d workers%s\n", seconds,
                                 options.workers, options.no_merge ? " (merging off)" : "");
    if (!options.db.empty()) std::cout << "  database        " << options.db << "\n";
  }
  server->reset();
  if (!scratch.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(scratch, ignored);
  }
  return all_completed ? kExitOk : kExitFailure;
}

}  // namespace hippo::cli
