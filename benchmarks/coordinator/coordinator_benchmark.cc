// Coordinator benchmark: simulated workers over real gRPC on loopback, zero-cost stages.
//
// An in-process coordinator (real SQLite file, durable group commit) runs a random-search study
// of N one-step trials; W simulated workers each hold a real WorkerService stream and answer
// every Assign at once, as the worker runtime ends a stage: one Reports message with Progress,
// CheckpointWritten and StageFinished. Reported: dispatches per second, the dispatch latency
// (the stage end sent -> next Assign received) p50/p90/p99/p99.9,
// the CPU time per dispatch (all threads of the process: coordinator and simulated workers,
// which share the machine), the coordinator's resident memory at the end, and the time per trial
// over the first and the last 5% of the study (it must stay flat as the study grows). It also
// reports the load of other processes and the CPU stolen by the hypervisor during the run: on a
// shared two-core machine, runs are comparable only when both are near zero.
//
// With --hostile-rounds N, it runs the study N times on an idle coordinator and N times while a
// hostile client sends it the largest requests the limits allow (hostile_load.h), alternating,
// and prints the medians side by side: the goal is a hostile dispatch rate within 10% of idle.
// The hostile client runs in a process of its own (this binary with --hostile-client ADDRESS,
// at the same nice value), as a real one would: its CPU time is reported apart, and so is the
// coordinator's CPU time per dispatch (the process's, less the simulated workers' thread; their
// streams' I/O runs on gRPC threads the process shares and stays counted), which tells the work
// hostile requests add to the coordinator apart from the cores the client takes from it on a
// small machine.
//
// Usage: coordinator_benchmark [--workers 64] [--trials 100000] [--hostile-rounds N] [--out FILE]
//        coordinator_benchmark --hostile-client ADDRESS   (until its stdin closes)
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "benchmarks/coordinator/hostile_load.h"
#include "hippo/server.h"
#include "hippo/v1/hippo.grpc.pb.h"

namespace {

namespace v1 = ::hippo::v1;
using Clock = std::chrono::steady_clock;

double ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  }
  return 0;
}

v1::StudySpec OneStepRandomStudy(int64_t trials) {
  v1::StudySpec spec;
  spec.set_name("dispatch-benchmark");
  spec.mutable_objective()->set_metric("val_accuracy");
  spec.mutable_objective()->set_direction(v1::MAXIMIZE);
  spec.mutable_trainer()->set_kind("sim");
  v1::Parameter* lr = spec.mutable_search_space()->add_parameters();
  lr->set_name("lr");
  lr->mutable_float_()->set_low(1e-4);
  lr->mutable_float_()->set_high(1e-1);
  lr->mutable_float_()->set_log(true);
  spec.mutable_algorithm()->set_name("random");
  spec.mutable_budget()->set_max_steps(1);
  spec.mutable_budget()->set_max_trials(trials);
  return spec;
}

// One simulated worker: a WorkerService stream driven by the shared completion queue. Writes
// on a stream go one at a time, so outgoing messages wait in a queue. gRPC serializes a message
// when Write is called, and a worker has at most one answer out (the next Assign comes only
// after the coordinator read it), so the answer is one message filled in place each time: the
// load generator allocates nothing per dispatch.
struct SimulatedWorker {
  enum Kind { kStart, kRead, kWrite };
  struct Op {
    SimulatedWorker* worker;
    Kind kind;
  };

  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>> stream;
  v1::CoordinatorMessage incoming;
  std::deque<const v1::WorkerMessage*> outgoing;  // &hello or &answer
  v1::WorkerMessage hello;
  v1::WorkerMessage answer;
  bool writing = false;
  bool alive = true;
  Op start_op{this, kStart};
  Op read_op{this, kRead};
  Op write_op{this, kWrite};
  std::optional<Clock::time_point> finished_at;
  std::vector<double> latencies_ms;
  std::vector<Clock::time_point> assigned_at;

  void Send(const v1::WorkerMessage* message) {
    outgoing.push_back(message);
    if (!writing) WriteNext();
  }

  void WriteNext() {
    if (outgoing.empty()) return;
    writing = true;
    if (outgoing.front()->has_reports()) finished_at = Clock::now();
    stream->Write(*outgoing.front(), &write_op);
  }

  // Answers an Assign at once, as the worker runtime ends a stage: one Reports message with
  // the last step's metric, the end checkpoint and stage done.
  void Answer(const v1::Assign& assign) {
    v1::Reports* reports = answer.mutable_reports();
    if (reports->messages_size() == 0) {
      (*reports->add_messages()->mutable_progress()->mutable_metrics())["val_accuracy"] = 0.5;
      reports->add_messages()->mutable_checkpoint()->set_uri("file:///dev/null");
      reports->add_messages()->mutable_finished()->set_ok(true);
    }
    v1::Progress* progress = reports->mutable_messages(0)->mutable_progress();
    progress->set_attempt_id(assign.attempt_id());
    progress->set_step(assign.end_step() - 1);
    v1::CheckpointWritten* checkpoint = reports->mutable_messages(1)->mutable_checkpoint();
    checkpoint->set_attempt_id(assign.attempt_id());
    checkpoint->set_stage_id(assign.stage_id());
    checkpoint->set_step(assign.end_step());
    reports->mutable_messages(2)->mutable_finished()->set_attempt_id(assign.attempt_id());
    Send(&answer);
  }

  void OnEvent(Kind kind, bool ok) {
    if (!ok) {
      alive = false;
      return;
    }
    switch (kind) {
      case kStart: {
        hello.mutable_hello()->set_worker_id("bench-" +
                                             std::to_string(reinterpret_cast<uintptr_t>(this)));
        hello.mutable_hello()->add_trainers("sim");
        Send(&hello);
        stream->Read(&incoming, &read_op);
        break;
      }
      case kRead:
        if (incoming.has_assign()) {
          const auto now = Clock::now();
          assigned_at.push_back(now);
          if (finished_at) {
            latencies_ms.push_back(
                std::chrono::duration<double, std::milli>(now - *finished_at).count());
          }
          Answer(incoming.assign());
        }
        stream->Read(&incoming, &read_op);
        break;
      case kWrite:
        writing = false;
        outgoing.pop_front();
        WriteNext();
        break;
    }
  }
};

// CPU seconds (user + system) of this process so far.
double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// CPU seconds of one thread of this process so far.
double ThreadCpuSeconds(pthread_t thread) {
  clockid_t clock{};
  timespec now{};
  if (pthread_getcpuclockid(thread, &clock) != 0 || clock_gettime(clock, &now) != 0) return 0;
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

// The hostile client as a child process (this binary with --hostile-client): it runs until its
// stdin closes, then prints its counters on stdout and exits.
class HostileProcess {
 public:
  explicit HostileProcess(const std::string& address) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) {
      std::perror("pipe");
      std::exit(1);
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
    posix_spawn_file_actions_addclose(&actions, to_child[1]);
    posix_spawn_file_actions_addclose(&actions, from_child[0]);
    std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    std::string flag = "--hostile-client";
    std::string target = address;
    char* argv[] = {self.data(), flag.data(), target.data(), nullptr};
    if (posix_spawn(&pid_, self.c_str(), &actions, nullptr, argv, environ) != 0) {
      std::perror("posix_spawn");
      std::exit(1);
    }
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    stdin_ = to_child[1];
    stdout_ = from_child[0];
  }

  // The client's CPU seconds so far (user + system, all its threads).
  double CpuSeconds() const {
    std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the command name (in parentheses, which may hold spaces): state is field 3,
    // utime and stime are fields 14 and 15.
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i >= 14) ticks += std::stod(field);
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

  // Stops the client; returns its counters (requests, refused, request bytes, worker messages,
  // worker bytes).
  void Stop(int64_t* counters) {
    close(stdin_);
    std::string text;
    char buffer[256];
    for (ssize_t n; (n = read(stdout_, buffer, sizeof(buffer))) > 0;) text.append(buffer, n);
    close(stdout_);
    int status = 0;
    waitpid(pid_, &status, 0);
    std::istringstream(text) >> counters[0] >> counters[1] >> counters[2] >> counters[3] >>
        counters[4];
  }

 private:
  pid_t pid_ = 0;
  int stdin_ = -1;
  int stdout_ = -1;
};

int HostileClientMain(const std::string& address) {
  int64_t counters[5];
  {
    hippo::benchmarks::HostileLoad load(address);
    char byte;
    while (read(0, &byte, 1) > 0) {
    }
    counters[0] = load.client_requests();
    counters[1] = load.client_refused();
    counters[2] = load.client_bytes();
    counters[3] = load.worker_messages();
    counters[4] = load.worker_bytes();
  }
  std::printf("%lld %lld %lld %lld %lld\n", (long long)counters[0], (long long)counters[1],
              (long long)counters[2], (long long)counters[3], (long long)counters[4]);
  return 0;
}

// The machine's CPU time so far from /proc/stat, in seconds: busy (all processes) and stolen
// by the hypervisor. A run is comparable with another only when both are low.
struct MachineTimes {
  double busy = 0;
  double steal = 0;
};

MachineTimes ReadMachineTimes() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {(user + nice + system + irq + softirq) / tick, steal / tick};
}

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(fraction * values.size()))];
}

struct Figures {
  bool hostile = false;
  int workers = 0;
  int64_t trials = 0;
  int64_t dispatches = 0;
  double create_seconds = 0, seconds = 0, dispatches_per_second = 0, cpu_per_dispatch_us = 0;
  double coordinator_cpu_per_dispatch_us = 0, hostile_client_cores = 0;
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, first_ms = 0, last_ms = 0, rss_growth = 0;
  double other_cores = 0, stolen_cores = 0;
  int64_t hostile_requests = 0, hostile_refused = 0, hostile_request_bytes = 0,
          hostile_worker_messages = 0, hostile_worker_bytes = 0;
  // The study service's byte budget (hippo/client_pacing.h): requests charged on arrival,
  // answers charged at their estimates before they were built, and bytes built beyond those.
  int64_t paced_request_bytes = 0, paced_answer_reserved_bytes = 0, paced_answer_bytes = 0,
          paced_answer_over_estimate_bytes = 0;
  // The clients' CPU budget (hippo/cpu_budget.h): the CPU time its calls were charged, the time
  // they waited for the bucket, and the calls refused.
  double cpu_charged_seconds = 0, cpu_waited_seconds = 0;
  int64_t cpu_calls = 0, cpu_refused = 0;
};

// One study on a fresh in-process coordinator; with `hostile`, a HostileLoad client hammers it
// meanwhile.
Figures RunOnce(int workers, int64_t trials, bool hostile) {
  const std::filesystem::path db =
      std::filesystem::temp_directory_path() / ("hippo-bench-" + std::to_string(getpid()) + ".db");
  hippo::coordinator::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.db_path = db.string();
  options.insecure = true;  // an in-process benchmark on loopback: the token check is not measured
  auto server = hippo::coordinator::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", std::string(server.status().message()).c_str());
    std::exit(1);
  }
  const double rss_before = ResidentBytes();
  const auto create_start = Clock::now();
  auto study = (*server)->engine().CreateStudy(OneStepRandomStudy(trials), false);
  if (!study.ok()) {
    std::fprintf(stderr, "%s\n", std::string(study.status().message()).c_str());
    std::exit(1);
  }
  const double create_seconds = std::chrono::duration<double>(Clock::now() - create_start).count();
  const std::string address = "127.0.0.1:" + std::to_string((*server)->port());

  // All simulated workers share one thread and one completion queue (asynchronous gRPC), so
  // that the client side takes as little of the machine's two cores as it can.
  auto stub =
      v1::WorkerService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<SimulatedWorker>> simulated;
  const auto start = Clock::now();
  const double cpu_start = CpuSeconds();
  const MachineTimes machine_start = ReadMachineTimes();
  for (int i = 0; i < workers; ++i) {
    simulated.push_back(std::make_unique<SimulatedWorker>());
    SimulatedWorker& worker = *simulated.back();
    worker.stream = stub->PrepareAsyncSession(&worker.context, &queue);
    worker.stream->StartCall(&worker.start_op);
  }
  // The hostile client starts with the workers and stops when the study has ended.
  std::optional<HostileProcess> hostile_load;
  if (hostile) hostile_load.emplace(address);
  std::atomic<bool> stop{false};
  std::thread client([&queue, &stop] {
    pthread_setname_np(pthread_self(), "bench-workers");
    void* tag = nullptr;
    bool ok = false;
    while (queue.Next(&tag, &ok)) {
      auto* op = static_cast<SimulatedWorker::Op*>(tag);
      if (!stop.load()) op->worker->OnEvent(op->kind, ok);
    }
  });
  double peak_rss = 0;
  while (true) {
    auto view = (*server)->engine().GetStudy(study->id());
    peak_rss = std::max(peak_rss, ResidentBytes());
    if (view.ok() && view->state() != v1::STUDY_RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_seconds = CpuSeconds() - cpu_start;
  const double workers_cpu_seconds = ThreadCpuSeconds(client.native_handle());
  const MachineTimes machine_end = ReadMachineTimes();
  Figures figures;
  if (hostile_load) {
    figures.hostile_client_cores = hostile_load->CpuSeconds() / seconds;
    int64_t counters[5] = {0, 0, 0, 0, 0};
    hostile_load->Stop(counters);
    figures.hostile_requests = counters[0];
    figures.hostile_refused = counters[1];
    figures.hostile_request_bytes = counters[2];
    figures.hostile_worker_messages = counters[3];
    figures.hostile_worker_bytes = counters[4];
  }
  // Cores kept busy by other processes, and cores stolen, on average over the dispatch phase.
  const double other_cores = std::max(0.0, machine_end.busy - machine_start.busy - cpu_seconds -
                                               figures.hostile_client_cores * seconds) /
                             seconds;
  const double stolen_cores = (machine_end.steal - machine_start.steal) / seconds;
  const hippo::coordinator::ClientPacingStats pacing = (*server)->client_pacing_stats();
  figures.paced_request_bytes = pacing.request_bytes;
  figures.paced_answer_reserved_bytes = pacing.answer_bytes_reserved;
  figures.paced_answer_bytes = pacing.answer_bytes;
  figures.paced_answer_over_estimate_bytes = pacing.answer_bytes_over_estimate;
  const hippo::coordinator::CpuBudgetStats cpu = (*server)->client_cpu_stats();
  figures.cpu_charged_seconds = cpu.charged_seconds;
  figures.cpu_waited_seconds = cpu.waited_seconds;
  figures.cpu_calls = cpu.calls;
  figures.cpu_refused = cpu.refused;
  stop.store(true);
  for (auto& worker : simulated) worker->context.TryCancel();
  (*server)->Shutdown();
  queue.Shutdown();
  client.join();

  std::vector<double> latencies;
  std::vector<Clock::time_point> assigned;
  for (const auto& worker : simulated) {
    latencies.insert(latencies.end(), worker->latencies_ms.begin(), worker->latencies_ms.end());
    assigned.insert(assigned.end(), worker->assigned_at.begin(), worker->assigned_at.end());
  }
  std::sort(assigned.begin(), assigned.end());
  const size_t window = std::max<size_t>(1, assigned.size() / 20);
  auto per_trial_ms = [&](size_t from) {
    return std::chrono::duration<double, std::milli>(assigned[from + window - 1] - assigned[from])
               .count() /
           static_cast<double>(window - 1);
  };
  const double first_ms = assigned.size() > 2 * window ? per_trial_ms(0) : 0;
  const double last_ms = assigned.size() > 2 * window ? per_trial_ms(assigned.size() - window) : 0;
  const double dispatch_span =
      assigned.size() < 2
          ? seconds
          : std::chrono::duration<double>(assigned.back() - assigned.front()).count();
  const double dispatches_per_second = static_cast<double>(assigned.size()) / dispatch_span;
  const double p50 = Percentile(latencies, 0.50);
  const double p90 = Percentile(latencies, 0.90);
  const double p99 = Percentile(latencies, 0.99);
  const double p999 = Percentile(latencies, 0.999);
  const double rss_growth = peak_rss - rss_before;
  const auto stats = (*server)->engine().stats();
  const double cpu_per_dispatch_us =
      1e6 * cpu_seconds / static_cast<double>(std::max<int64_t>(1, stats.dispatches));
  const double coordinator_cpu_per_dispatch_us =
      1e6 * (cpu_seconds - workers_cpu_seconds) /
      static_cast<double>(std::max<int64_t>(1, stats.dispatches));
  simulated.clear();
  server->reset();
  std::filesystem::remove(db);
  std::filesystem::remove(db.string() + "-wal");
  std::filesystem::remove(db.string() + "-shm");

  figures.hostile = hostile;
  figures.workers = workers;
  figures.trials = trials;
  figures.dispatches = stats.dispatches;
  figures.create_seconds = create_seconds;
  figures.seconds = seconds;
  figures.dispatches_per_second = dispatches_per_second;
  figures.cpu_per_dispatch_us = cpu_per_dispatch_us;
  figures.coordinator_cpu_per_dispatch_us = coordinator_cpu_per_dispatch_us;
  figures.p50 = p50;
  figures.p90 = p90;
  figures.p99 = p99;
  figures.p999 = p999;
  figures.first_ms = first_ms;
  figures.last_ms = last_ms;
  figures.rss_growth = rss_growth;
  figures.other_cores = other_cores;
  figures.stolen_cores = stolen_cores;
  return figures;
}

void Print(const Figures& f) {
  std::printf("%-44s %12d\n", "simulated workers (gRPC streams)", f.workers);
  std::printf("%-44s %12lld\n", "trials (one zero-cost stage each)", (long long)f.trials);
  std::printf("%-44s %12lld\n", "dispatches", (long long)f.dispatches);
  std::printf("%-44s %12.2f\n", "study creation (s)", f.create_seconds);
  std::printf("%-44s %12.2f\n", "dispatch phase (s)", f.seconds);
  std::printf("%-44s %12.0f\n", "dispatches per second", f.dispatches_per_second);
  std::printf("%-44s %12.0f\n", "CPU per dispatch, coordinator + workers (us)",
              f.cpu_per_dispatch_us);
  std::printf("%-44s %12.0f\n", "CPU per dispatch, coordinator alone (us)",
              f.coordinator_cpu_per_dispatch_us);
  std::printf("%-44s %12.2f\n", "dispatch latency p50 (ms)", f.p50);
  std::printf("%-44s %12.2f\n", "dispatch latency p90 (ms)", f.p90);
  std::printf("%-44s %12.2f\n", "dispatch latency p99 (ms)", f.p99);
  std::printf("%-44s %12.2f\n", "dispatch latency p99.9 (ms)", f.p999);
  std::printf("%-44s %12.3f\n", "time per trial, first 5% (ms)", f.first_ms);
  std::printf("%-44s %12.3f\n", "time per trial, last 5% (ms)", f.last_ms);
  std::printf("%-44s %12.1f\n", "peak resident memory growth (MiB)", f.rss_growth / (1 << 20));
  std::printf("%-44s %12.2f\n", "other processes' load (cores)", f.other_cores);
  std::printf("%-44s %12.2f\n", "CPU stolen by the hypervisor (cores)", f.stolen_cores);
  if (f.hostile) {
    std::printf("%-44s %12.2f\n", "hostile client process's CPU (cores)", f.hostile_client_cores);
    std::printf("%-44s %12lld\n", "hostile client: study-service requests",
                (long long)f.hostile_requests);
    std::printf("%-44s %12lld\n", "hostile client: refused as they must be",
                (long long)f.hostile_refused);
    std::printf("%-44s %12.0f\n", "hostile client: MiB of requests sent",
                static_cast<double>(f.hostile_request_bytes) / (1 << 20));
    std::printf("%-44s %12lld\n", "hostile worker: messages", (long long)f.hostile_worker_messages);
    std::printf("%-44s %12.0f\n", "hostile worker: MiB sent",
                static_cast<double>(f.hostile_worker_bytes) / (1 << 20));
    std::printf("%-44s %12.1f\n", "paced: MiB of requests charged on arrival",
                static_cast<double>(f.paced_request_bytes) / (1 << 20));
    std::printf("%-44s %12.1f\n", "paced: MiB of answers charged before built",
                static_cast<double>(f.paced_answer_reserved_bytes) / (1 << 20));
    std::printf("%-44s %12.1f\n", "paced: MiB of answers built",
                static_cast<double>(f.paced_answer_bytes) / (1 << 20));
    std::printf("%-44s %12.1f\n", "paced: MiB built beyond their estimates",
                static_cast<double>(f.paced_answer_over_estimate_bytes) / (1 << 20));
    std::printf("%-44s %12lld\n", "CPU budget: calls admitted", (long long)f.cpu_calls);
    std::printf("%-44s %12lld\n", "CPU budget: calls refused", (long long)f.cpu_refused);
    std::printf("%-44s %12.3f\n", "CPU budget: CPU charged (s)", f.cpu_charged_seconds);
    std::printf("%-44s %12.2f\n", "CPU budget: time calls waited (s)", f.cpu_waited_seconds);
  }
}

std::string Json(const Figures& f) {
  std::ostringstream json;
  json << "{\"hostile\": " << (f.hostile ? "true" : "false") << ", \"workers\": " << f.workers
       << ", \"trials\": " << f.trials << ", \"dispatches\": " << f.dispatches
       << ", \"create_seconds\": " << f.create_seconds << ", \"seconds\": " << f.seconds
       << ", \"dispatches_per_second\": " << f.dispatches_per_second
       << ", \"cpu_per_dispatch_us\": " << f.cpu_per_dispatch_us
       << ", \"coordinator_cpu_per_dispatch_us\": " << f.coordinator_cpu_per_dispatch_us
       << ", \"hostile_client_cores\": " << f.hostile_client_cores
       << ", \"latency_p50_ms\": " << f.p50 << ", \"latency_p90_ms\": " << f.p90
       << ", \"latency_p99_ms\": " << f.p99 << ", \"latency_p999_ms\": " << f.p999
       << ", \"per_trial_first_ms\": " << f.first_ms << ", \"per_trial_last_ms\": " << f.last_ms
       << ", \"rss_growth_bytes\": " << f.rss_growth << ", \"other_load_cores\": " << f.other_cores
       << ", \"stolen_cores\": " << f.stolen_cores
       << ", \"hostile_requests\": " << f.hostile_requests
       << ", \"hostile_refused\": " << f.hostile_refused
       << ", \"hostile_request_bytes\": " << f.hostile_request_bytes
       << ", \"hostile_worker_messages\": " << f.hostile_worker_messages
       << ", \"hostile_worker_bytes\": " << f.hostile_worker_bytes
       << ", \"paced_request_bytes\": " << f.paced_request_bytes
       << ", \"paced_answer_reserved_bytes\": " << f.paced_answer_reserved_bytes
       << ", \"paced_answer_bytes\": " << f.paced_answer_bytes
       << ", \"paced_answer_over_estimate_bytes\": " << f.paced_answer_over_estimate_bytes
       << ", \"cpu_calls\": " << f.cpu_calls << ", \"cpu_refused\": " << f.cpu_refused
       << ", \"cpu_charged_seconds\": " << f.cpu_charged_seconds
       << ", \"cpu_waited_seconds\": " << f.cpu_waited_seconds << "}";
  return json.str();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n == 0 ? 0 : n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // as cli/main.cc does
  if (argc == 3 && !std::strcmp(argv[1], "--hostile-client")) return HostileClientMain(argv[2]);
  int workers = 64;
  int64_t trials = 100'000;
  int rounds = 0;
  std::string out = "coordinator_benchmark.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--workers"))
      workers = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--trials"))
      trials = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--out"))
      out = argv[i + 1];
    else if (!std::strcmp(argv[i], "--hostile-rounds"))
      rounds = std::stoi(argv[i + 1]);
  }
  if (rounds <= 0) {
    const Figures figures = RunOnce(workers, trials, /*hostile=*/false);
    Print(figures);
    std::ofstream(out) << Json(figures) << "\n";
    std::printf("wrote %s\n", out.c_str());
    return 0;
  }
  // Idle and hostile runs alternate, the order swapped every round (idle, hostile, hostile,
  // idle, ...), so that a drift of the machine's speed falls on both alike.
  std::vector<Figures> idle, hostile;
  std::ofstream file(out);
  file << "{\"runs\": [";
  for (int round = 0; round < rounds; ++round) {
    for (int i = 0; i < 2; ++i) {
      const bool is_hostile = (i == 1) != (round % 2 == 1);
      std::printf("--- round %d, %s coordinator\n", round + 1, is_hostile ? "hostile" : "idle");
      Figures figures = RunOnce(workers, trials, is_hostile);
      Print(figures);
      std::fflush(stdout);
      file << (round + i > 0 ? ", " : "") << Json(figures);
      (is_hostile ? hostile : idle).push_back(figures);
    }
  }
  auto median = [](const std::vector<Figures>& runs, double Figures::*field) {
    std::vector<double> values;
    for (const Figures& f : runs) values.push_back(f.*field);
    return Median(values);
  };
  const double idle_rate = median(idle, &Figures::dispatches_per_second);
  const double hostile_rate = median(hostile, &Figures::dispatches_per_second);
  std::printf("--- medians of %d rounds          %12s %12s %8s\n", rounds, "idle", "hostile",
              "ratio");
  for (const auto& [name, field] : std::vector<std::pair<const char*, double Figures::*>>{
           {"dispatches per second", &Figures::dispatches_per_second},
           {"CPU per dispatch, coordinator + workers (us)", &Figures::cpu_per_dispatch_us},
           {"CPU per dispatch, coordinator alone (us)", &Figures::coordinator_cpu_per_dispatch_us},
           {"hostile client process's CPU (cores)", &Figures::hostile_client_cores},
           {"dispatch latency p50 (ms)", &Figures::p50},
           {"dispatch latency p99 (ms)", &Figures::p99},
           {"other processes' load (cores)", &Figures::other_cores}}) {
    const double a = median(idle, field);
    const double b = median(hostile, field);
    std::printf("%-44s %12.2f %12.2f %8.3f\n", name, a, b, a > 0 ? b / a : 0);
  }
  std::printf("%-44s %12s %12s\n", "hostile rate / idle rate (goal: at least 0.9)", "",
              hostile_rate >= 0.9 * idle_rate ? "met" : "missed");
  file << "], \"idle_dispatches_per_second\": " << idle_rate
       << ", \"hostile_dispatches_per_second\": " << hostile_rate << "}\n";
  std::printf("wrote %s\n", out.c_str());
  return 0;
}
