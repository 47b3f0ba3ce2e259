// hippo: the command line of the Hippo hyper-parameter optimization service.
#include <cmath>
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/debugging/failure_signal_handler.h"
#include "absl/debugging/symbolize.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "cli/commands.h"
#include "cli/plan_command.h"
#include "search_algos/spec_checks.h"
#ifdef HIPPO_WITH_TORCH
#include "workers/torch/register_torch_trainer.h"
#endif

namespace {

using hippo::cli::kExitBadInput;

int Validate(const std::string& spec_path) {
  absl::StatusOr<hippo::v1::StudySpec> spec = hippo::search_algos::LoadStudySpecFile(spec_path);
  if (!spec.ok()) {
    std::cerr << "hippo validate: " << spec.status().message() << "\n";
    return kExitBadInput;
  }
  std::cout << spec_path << ": valid study spec '" << spec->name() << "' ("
            << spec->search_space().parameters_size() << " parameters, algorithm "
            << spec->algorithm().name() << ")\n";
  return 0;
}

int Plan(const hippo::cli::PlanOptions& options) {
  std::vector<hippo::v1::StudySpec> specs;
  for (const std::string& path : options.spec_paths) {
    absl::StatusOr<hippo::v1::StudySpec> spec = hippo::search_algos::LoadStudySpecFile(path);
    if (!spec.ok()) {
      std::cerr << "hippo plan: " << spec.status().message() << "\n";
      return kExitBadInput;
    }
    specs.push_back(*std::move(spec));
  }
  const std::string paths = absl::StrJoin(options.spec_paths, ", ");
  absl::StatusOr<hippo::cli::PlanFigures> figures =
      hippo::cli::PlanStudies(specs, options.workers, options.dot_path);
  if (!figures.ok()) {
    std::cerr << "hippo plan: " << paths << ": " << figures.status().message() << "\n";
    return figures.status().code() == absl::StatusCode::kInvalidArgument ? kExitBadInput
                                                                         : hippo::cli::kExitFailure;
  }
  if (!options.json) {
    std::vector<std::string> names;
    for (const hippo::v1::StudySpec& spec : specs) names.push_back("'" + spec.name() + "'");
    std::cout << "Stage tree" << (specs.size() > 1 ? "s" : "") << " of " << paths << " (stud"
              << (specs.size() > 1 ? "ies " : "y ") << absl::StrJoin(names, ", ") << ", "
              << options.workers << " workers)\n";
  }
  hippo::cli::PrintPlan(*figures, options.json, std::cout);
  if (!options.dot_path.empty() && !options.json) {
    std::cout << "Graphviz: " << options.dot_path << "  (render: dot -Tsvg " << options.dot_path
              << " -o tree.svg)\n";
  }
  return 0;
}

// --coordinator, --token-file, --tls-ca and --json, shared by the client commands.
void AddClientOptions(CLI::App* command, hippo::cli::ClientOptions& options, bool json = true) {
  command->add_option("--coordinator", options.coordinator,
                      "Coordinator address host:port (default: $HIPPO_COORDINATOR, else "
                      "127.0.0.1:50051)");
  command->add_option("--token-file", options.token_file,
                      "File holding the coordinator's token, the one `hippo server` printed "
                      "(default: $HIPPO_TOKEN, else the file $HIPPO_TOKEN_FILE, else "
                      "./hippo.db.token if it exists)");
  command->add_option("--tls-ca", options.tls_ca,
                      "Speak TLS, trusting the coordinator's certificate if this PEM file's CA "
                      "signed it");
  if (json) command->add_flag("--json", options.json, "Print JSON");
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex (gRPC's locks included) would
  // keep a lock graph for deadlock detection on each lock and unlock: a debugging aid, off here.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // A crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) prints the signal and the stack, with
  // function names, to stderr before the process dies as it would have: a coordinator's or
  // worker's log then says where. SIGTERM keeps its default (a plain stop), which the handler
  // would otherwise report as a failure.
  absl::InitializeSymbolizer(argv[0]);
  absl::InstallFailureSignalHandler(absl::FailureSignalHandlerOptions());
  std::signal(SIGTERM, SIG_DFL);
#ifdef HIPPO_WITH_TORCH
  hippo::workers::RegisterTorchTrainer();
#endif
  CLI::App app{
      "Hippo: hyper-parameter optimization that trains the stages trials share only once.\n"
      "Start with `hippo run SPEC` (one machine), or `hippo server` + `hippo worker` + "
      "`hippo submit SPEC` (a cluster)."};
  app.require_subcommand(1);
  app.fallthrough(false);
  // HIPPO_VERSION is the project version of the root CMakeLists.txt (cli/CMakeLists.txt).
  app.set_version_flag("--version", std::string("hippo ") + HIPPO_VERSION);

  std::string spec_path;
  std::string study_id;
  hippo::cli::ClientOptions client;

  CLI::App* validate = app.add_subcommand("validate", "Check a study spec (YAML or JSON)");
  validate->add_option("spec", spec_path, "Study spec file")->required();

  hippo::cli::PlanOptions plan_options;
  CLI::App* plan = app.add_subcommand(
      "plan",
      "Build the stage tree of a grid study without training: stages, trial_steps, "
      "unique_steps and the makespan bound");
  plan->add_option("spec", plan_options.spec_paths,
                   "Study spec files; several are planned together (one family shares one tree)")
      ->required();
  plan->add_option("--dot", plan_options.dot_path, "Write the stage tree as Graphviz DOT here");
  plan->add_option("--workers", plan_options.workers, "Workers for the makespan bound")
      ->default_val(8)
      ->check(CLI::PositiveNumber);
  plan->add_flag("--json", plan_options.json, "Print one JSON object");

  hippo::cli::RunOptions run_options;
  CLI::App* run =
      app.add_subcommand("run",
                         "Run studies on this machine: an embedded coordinator, local workers, a "
                         "progress bar and a summary");
  run->add_option("spec", run_options.spec_paths,
                  "Study spec files; several run together, studies of one family sharing its tree")
      ->required();
  run->add_option("--workers", run_options.workers, "Local workers")
      ->default_val(4)
      ->check(CLI::PositiveNumber);
  run->add_option("--db", run_options.db,
                  "Keep the study in this SQLite file (default: a temporary one)");
  run->add_option("--checkpoint-dir", run_options.checkpoint_dir,
                  "Keep checkpoints here (default: a temporary directory)");
  run->add_flag("--no-merge", run_options.no_merge,
                "Train trial by trial, sharing nothing (the baseline merging is measured "
                "against)");
  run->add_flag("--json", run_options.json, "Print one JSON object at the end");
  run->add_flag("--checkpoint-gc,!--no-checkpoint-gc", run_options.checkpoint_gc,
                "Delete the checkpoints no stage can need as studies end (on by default; "
                "--no-checkpoint-gc keeps them, with --checkpoint-dir, for later studies)");
  run->add_option("--device", run_options.device,
                  "Where the local workers train: cpu or cuda:N (trainers that ignore it: sim)")
      ->default_val("cpu");
  run->add_flag("--dashboard", run_options.dashboard,
                "Serve the dashboard while the study runs (prints its URL)");
  run->add_option("--dashboard-listen", run_options.dashboard_listen,
                  "The dashboard's address with --dashboard (port 0: a free one)")
      ->default_val("127.0.0.1:0");

  hippo::cli::SimulateOptions simulate_options;
  CLI::App* simulate = app.add_subcommand(
      "simulate",
      "Run a sim-trainer study in virtual time with N simulated workers: makespan "
      "against its bound, steps saved, and with --compare the speedup over trial by "
      "trial");
  simulate
      ->add_option("spec", simulate_options.spec_paths,
                   "Study spec files (trainer sim); several are simulated together")
      ->required();
  simulate->add_option("--workers", simulate_options.workers, "Simulated workers")
      ->default_val(8)
      ->check(CLI::PositiveNumber);
  simulate
      ->add_option("--seconds-per-step", simulate_options.seconds_per_step,
                   "Virtual cost of one step")
      ->default_val(1.0)
      ->check(CLI::PositiveNumber);
  simulate->add_flag("--no-merge", simulate_options.no_merge, "Trial by trial");
  simulate->add_flag("--compare", simulate_options.compare,
                     "Also run trial by trial and report the speedup");
  simulate->add_flag("--json", simulate_options.json, "Print JSON");

  hippo::cli::ServerCommandOptions server_options;
  CLI::App* server = app.add_subcommand("server", "Run the coordinator");
  server
      ->add_option("--listen", server_options.listen,
                   "Address to listen on; a non-loopback one needs TLS (or --insecure)")
      ->default_val("127.0.0.1:50051");
  server->add_option("--db", server_options.db, "SQLite database file")->default_val("hippo.db");
  server
      ->add_option("--http", server_options.http,
                   "Address of the dashboard (HTTP, HTTPS with TLS); a non-loopback one needs "
                   "TLS (or --insecure); off: none")
      ->default_val("127.0.0.1:8080");
  server->add_option("--token-file", server_options.token_file,
                     "File holding the token clients and workers must present (default: "
                     "$HIPPO_TOKEN, else DB.token beside the database, created with mode 0600 "
                     "on first start)");
  server->add_flag("--insecure", server_options.insecure,
                   "Check no token and allow plaintext off loopback: whoever reaches the "
                   "address can run programs on the workers");
  server->add_option("--tls-cert", server_options.tls_cert,
                     "PEM certificate chain: serve gRPC and the dashboard over TLS (with "
                     "--tls-key)");
  server->add_option("--tls-key", server_options.tls_key, "PEM private key of --tls-cert");
  server
      ->add_option("--lease-seconds", server_options.lease_seconds,
                   "A stage whose worker is silent this long goes back to the queue")
      ->default_val(10)
      ->check(CLI::PositiveNumber);
  server
      ->add_option("--retry-backoff-seconds", server_options.retry_backoff_seconds,
                   "A failed stage waits this long before its second attempt, doubling for "
                   "each further one (at most 30 s, +-20 % at random); 0: at once")
      ->default_val(0.5)
      ->check(CLI::NonNegativeNumber);
  server
      ->add_option("--unhealthy-after", server_options.unhealthy_after,
                   "A worker whose last N stages failed is drained (given no stage) for "
                   "--drain-seconds, then given one stage on probation; 0: never")
      ->default_val(3)
      ->check(CLI::NonNegativeNumber);
  server
      ->add_option("--drain-seconds", server_options.drain_seconds,
                   "How long an unhealthy worker is drained, doubling while it keeps failing")
      ->default_val(60)
      ->check(CLI::PositiveNumber);
  server
      ->add_option("--plugin", server_options.plugins,
                   "Shared library of search algorithms to load (repeatable; see "
                   "examples/plugins)")
      ->check(CLI::ExistingFile);
  server->add_flag("--checkpoint-gc,!--no-checkpoint-gc", server_options.checkpoint_gc,
                   "Delete the checkpoints no stage can need as studies end, and hold workers' "
                   "--checkpoint-budget (on by default; --no-checkpoint-gc keeps every "
                   "checkpoint until `hippo gc`)");
  server
      ->add_option("--keep-best-checkpoints", server_options.keep_best_checkpoints,
                   "Keep the final states of each study's N best trials")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  server
      ->add_option("--compact-ops", server_options.compact_ops,
                   "Compact a family's tree-operation log once N operations (and at least as "
                   "many as its tree has stages) follow its last snapshot: a snapshot of the "
                   "tree replaces them, so a restart replays at most that many. 0: never")
      ->default_val(10000)
      ->check(CLI::NonNegativeNumber);
  server
      ->add_option("--worker-bytes-per-second", server_options.worker_bytes_per_second,
                   "Rate at which the coordinator reads workers' messages of 64 KiB or more, "
                   "all workers together (e.g. 1MiB); a stream's next message waits for its "
                   "share. Small messages (a worker's usual reports) never wait")
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/false))
      ->default_val("1MiB")
      ->check(CLI::PositiveNumber);
  server
      ->add_option("--client-bytes-per-second", server_options.client_bytes_per_second,
                   "Rate at which the coordinator takes study-service requests and sends their "
                   "answers, all clients together (every size counts, and an Ask 2 KiB per "
                   "trial besides); past 10 s of queue a request is refused with "
                   "RESOURCE_EXHAUSTED")
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/false))
      ->default_val("1MiB")
      ->check(CLI::PositiveNumber);
  server
      ->add_option("--client-cpu-cores", server_options.client_cpu_cores,
                   "CPU time the coordinator spends on study-service calls, all clients "
                   "together, in cores: each call is charged the CPU time it took, and calls "
                   "wait while more was spent than this rate pays for (2.5 s of the rate may "
                   "be spent at once: 1.25 s of CPU at 0.5); past 10 s of queue a call is "
                   "refused with RESOURCE_EXHAUSTED")
      ->default_val(0.5)
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            double cores = 0;
            if (absl::SimpleAtod(value, &cores) && cores > 0 && std::isfinite(cores)) return "";
            return "must be a positive number of cores, e.g. 0.1 or 0.5 (got '" + value + "')";
          },
          "CORES"));

  hippo::cli::WorkerCommandOptions worker_options;
  CLI::App* worker = app.add_subcommand("worker", "Run a worker that trains stages");
  AddClientOptions(worker, worker_options.client, /*json=*/false);
  worker->add_option("--id", worker_options.id,
                     "Worker id, stable across restarts (default: host-pid)");
  worker
      ->add_option("--checkpoint-dir", worker_options.checkpoint_dir,
                   "Checkpoint directory, shared by all workers of a study")
      ->default_val("hippo-checkpoints");
  worker
      ->add_option("--checkpoint-budget", worker_options.checkpoint_budget_bytes,
                   "Bytes of checkpoints its directory may hold (e.g. 2GiB). The coordinator "
                   "gives a stage only when its state fits, deleting first states that can be "
                   "recomputed; if the states unfinished work needs do not fit, it goes over "
                   "and says so in hippo study / hippo workers. Default: no budget")
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/false));
  worker
      ->add_option("--cache-mb", worker_options.cache_mb,
                   "Memory for states kept to fork children without a reload")
      ->default_val(1024);
  worker
      ->add_option("--device", worker_options.device,
                   "Where it trains: cpu, cuda:N, or auto (one worker process per visible GPU, "
                   "else one on the CPU)")
      ->default_val("auto");
  worker
      ->add_option("--trainers", worker_options.trainers,
                   "Trainer kinds it serves, comma-separated (default: sim and, where built, "
                   "torch); command must be named, with --allow-dir")
      ->delimiter(',');
  worker->add_option("--allow-dir", worker_options.allow_dirs,
                     "Directory whose programs the command trainer may run (repeatable; none by "
                     "default, which refuses --trainers command)");

  bool no_merge = false;
  CLI::App* submit = app.add_subcommand("submit", "Submit a study to a coordinator");
  submit->add_option("spec", spec_path, "Study spec file")->required();
  submit->add_flag("--no-merge", no_merge, "Train trial by trial, sharing nothing");
  AddClientOptions(submit, client);

  CLI::App* studies = app.add_subcommand("studies", "List studies");
  AddClientOptions(studies, client);

  CLI::App* study = app.add_subcommand("study", "Show a study");
  study->add_option("study_id", study_id, "Study id")->required();
  AddClientOptions(study, client);

  bool with_metrics = false;
  CLI::App* trials = app.add_subcommand("trials", "List the trials of a study");
  trials->add_option("study_id", study_id, "Study id")->required();
  trials->add_flag("--metrics", with_metrics, "Include every metric at every step (with --json)");
  AddClientOptions(trials, client);

  CLI::App* best = app.add_subcommand("best", "Show the best trial of a study");
  best->add_option("study_id", study_id, "Study id")->required();
  AddClientOptions(best, client);

  bool dot = false;
  CLI::App* tree = app.add_subcommand("tree", "Show the stage tree of a study");
  tree->add_option("study_id", study_id, "Study id")->required();
  tree->add_flag("--dot", dot, "Print Graphviz DOT");
  AddClientOptions(tree, client);

  std::string reason;
  CLI::App* stop = app.add_subcommand("stop", "Stop a study");
  stop->add_option("study_id", study_id, "Study id")->required();
  stop->add_option("--reason", reason, "Why, kept with the study");
  AddClientOptions(stop, client);

  CLI::App* workers = app.add_subcommand("workers", "List the workers of a coordinator");
  AddClientOptions(workers, client);

  CLI::App* gc = app.add_subcommand(
      "gc", "Delete the checkpoints no study needs now; print what was freed per directory");
  AddClientOptions(gc, client);

  CLI::App* remove = app.add_subcommand(
      "delete",
      "Delete a study (stopping it first), its trials, metrics and the checkpoints "
      "only it used");
  remove->add_option("study_id", study_id, "Study id")->required();
  AddClientOptions(remove, client);

  std::vector<int64_t> trial_ids;
  CLI::App* retry = app.add_subcommand(
      "retry", "Train failed trials of a study again (all of them when none is named)");
  retry->add_option("study_id", study_id, "Study id")->required();
  retry->add_option("trial_ids", trial_ids, "Trial ids")->check(CLI::NonNegativeNumber);
  AddClientOptions(retry, client);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : kExitBadInput;
  }
  if (*validate) return Validate(spec_path);
  if (*plan) return Plan(plan_options);
  if (*run) return hippo::cli::RunCommand(run_options);
  if (*simulate) return hippo::cli::SimulateCommand(simulate_options);
  if (*server) return hippo::cli::ServerCommand(server_options);
  if (*worker) {
#ifdef HIPPO_WITH_TORCH
    worker_options.count_cuda_devices = &hippo::workers::CudaDeviceCount;
#endif
    return hippo::cli::WorkerCommand(worker_options);
  }
  if (*submit) return hippo::cli::SubmitCommand(client, spec_path, no_merge);
  if (*studies) return hippo::cli::StudiesCommand(client);
  if (*study) return hippo::cli::StudyCommand(client, study_id);
  if (*trials) return hippo::cli::TrialsCommand(client, study_id, with_metrics);
  if (*best) return hippo::cli::BestCommand(client, study_id);
  if (*tree) return hippo::cli::TreeCommand(client, study_id, dot);
  if (*stop) return hippo::cli::StopCommand(client, study_id, reason);
  if (*workers) return hippo::cli::WorkersCommand(client);
  if (*gc) return hippo::cli::GcCommand(client);
  if (*remove) return hippo::cli::DeleteCommand(client, study_id);
  if (*retry) return hippo::cli::RetryCommand(client, study_id, trial_ids);
  return kExitBadInput;
}
