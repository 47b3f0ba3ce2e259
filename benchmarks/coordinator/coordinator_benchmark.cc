// Coordinator benchmark: simulated workers over real gRPC on loopback, zero-cost stages.
//
// An in-process coordinator (real SQLite file, durable group commit) runs a random-search study
// of N one-step trials; W worker threads each hold a real WorkerService stream and answer every
// Assign at once with Progress, CheckpointWritten and StageFinished. Reported: dispatches per
// second, the dispatch latency (StageFinished sent -> next Assign received) p50/p99, the
// coordinator's resident memory at the end, and the time per trial over the first and the last
// 5% of the study (it must stay flat as the study grows).
//
// Usage: coordinator_benchmark [--workers 64] [--trials 100000] [--out FILE]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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

struct WorkerResult {
  std::vector<double> latencies_ms;
  std::vector<Clock::time_point> assigned_at;
};

// `context` outlives the thread: main cancels it to end the stream.
void RunWorker(const std::string& address, int index, std::atomic<bool>& stop,
               WorkerResult& result, grpc::ClientContext* context) {
  auto stub = v1::WorkerService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  auto stream = stub->Session(context);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id("bench-" + std::to_string(index));
  hello.mutable_hello()->add_trainers("sim");
  stream->Write(hello);
  v1::CoordinatorMessage message;
  std::optional<Clock::time_point> finished_at;
  while (!stop.load() && stream->Read(&message)) {
    if (!message.has_assign()) continue;
    const auto now = Clock::now();
    result.assigned_at.push_back(now);
    if (finished_at) {
      result.latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(now - *finished_at).count());
    }
    const v1::Assign& assign = message.assign();
    v1::WorkerMessage progress;
    progress.mutable_progress()->set_attempt_id(assign.attempt_id());
    progress.mutable_progress()->set_step(assign.end_step() - 1);
    (*progress.mutable_progress()->mutable_metrics())["val_accuracy"] = 0.5;
    v1::WorkerMessage checkpoint;
    checkpoint.mutable_checkpoint()->set_attempt_id(assign.attempt_id());
    checkpoint.mutable_checkpoint()->set_stage_id(assign.stage_id());
    checkpoint.mutable_checkpoint()->set_step(assign.end_step());
    checkpoint.mutable_checkpoint()->set_uri("file:///dev/null");
    v1::WorkerMessage finished;
    finished.mutable_finished()->set_attempt_id(assign.attempt_id());
    finished.mutable_finished()->set_ok(true);
    stream->Write(progress);
    stream->Write(checkpoint);
    finished_at = Clock::now();
    stream->Write(finished);
  }
  stream->WritesDone();
}

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(fraction * values.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  int workers = 64;
  int64_t trials = 100'000;
  std::string out = "coordinator_benchmark.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--workers")) workers = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--trials")) trials = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--out")) out = argv[i + 1];
  }
  const std::filesystem::path db =
      std::filesystem::temp_directory_path() / ("hippo-bench-" + std::to_string(getpid()) + ".db");
  hippo::coordinator::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.db_path = db.string();
  auto server = hippo::coordinator::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  const double rss_before = ResidentBytes();
  const auto create_start = Clock::now();
  auto study = (*server)->engine().CreateStudy(OneStepRandomStudy(trials), false);
  if (!study.ok()) {
    std::fprintf(stderr, "%s\n", std::string(study.status().message()).c_str());
    return 1;
  }
  const double create_seconds =
      std::chrono::duration<double>(Clock::now() - create_start).count();
  const std::string address = "127.0.0.1:" + std::to_string((*server)->port());

  std::atomic<bool> stop{false};
  std::vector<WorkerResult> results(workers);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int i = 0; i < workers; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    threads.emplace_back(RunWorker, address, i, std::ref(stop), std::ref(results[i]),
                         contexts.back().get());
  }
  double peak_rss = 0;
  while (true) {
    auto view = (*server)->engine().GetStudy(study->id());
    peak_rss = std::max(peak_rss, ResidentBytes());
    if (view.ok() && view->state() != v1::STUDY_RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stop.store(true);
  for (auto& context : contexts) context->TryCancel();
  for (std::thread& thread : threads) thread.join();

  std::vector<double> latencies;
  std::vector<Clock::time_point> assigned;
  for (const WorkerResult& result : results) {
    latencies.insert(latencies.end(), result.latencies_ms.begin(), result.latencies_ms.end());
    assigned.insert(assigned.end(), result.assigned_at.begin(), result.assigned_at.end());
  }
  std::sort(assigned.begin(), assigned.end());
  const size_t window = std::max<size_t>(1, assigned.size() / 20);
  auto per_trial_ms = [&](size_t from) {
    return std::chrono::duration<double, std::milli>(assigned[from + window - 1] -
                                                     assigned[from]).count() /
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
  const double p99 = Percentile(latencies, 0.99);
  const double rss_growth = peak_rss - rss_before;
  const auto stats = (*server)->engine().stats();
  (*server)->Shutdown();
  server->reset();
  std::filesystem::remove(db);
  std::filesystem::remove(db.string() + "-wal");
  std::filesystem::remove(db.string() + "-shm");

  std::printf("%-44s %12d\n", "simulated workers (gRPC streams)", workers);
  std::printf("%-44s %12lld\n", "trials (one zero-cost stage each)", (long long)trials);
  std::printf("%-44s %12lld\n", "dispatches", (long long)stats.dispatches);
  std::printf("%-44s %12.2f\n", "study creation (s)", create_seconds);
  std::printf("%-44s %12.2f\n", "dispatch phase (s)", seconds);
  std::printf("%-44s %12.0f\n", "dispatches per second", dispatches_per_second);
  std::printf("%-44s %12.2f\n", "dispatch latency p50 (ms)", p50);
  std::printf("%-44s %12.2f\n", "dispatch latency p99 (ms)", p99);
  std::printf("%-44s %12.3f\n", "time per trial, first 5% (ms)", first_ms);
  std::printf("%-44s %12.3f\n", "time per trial, last 5% (ms)", last_ms);
  std::printf("%-44s %12.1f\n", "peak resident memory growth (MiB)", rss_growth / (1 << 20));
  std::ofstream file(out);
  file << "{\"workers\": " << workers << ", \"trials\": " << trials
       << ", \"dispatches\": " << stats.dispatches << ", \"create_seconds\": " << create_seconds
       << ", \"seconds\": " << seconds << ", \"dispatches_per_second\": " << dispatches_per_second
       << ", \"latency_p50_ms\": " << p50 << ", \"latency_p99_ms\": " << p99
       << ", \"per_trial_first_ms\": " << first_ms << ", \"per_trial_last_ms\": " << last_ms
       << ", \"rss_growth_bytes\": " << rss_growth << "}\n";
  std::printf("wrote %s\n", out.c_str());
  return 0;
}
