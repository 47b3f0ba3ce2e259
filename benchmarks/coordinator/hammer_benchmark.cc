// Dispatch rate under hostile load: does a client sending the largest requests the limits allow
// (docs/security.md, "Bounded inputs") slow the coordinator's work for everyone else?
//
// An in-process coordinator (real SQLite file, durable group commit) and W in-process workers
// (the real worker runtime over loopback gRPC, the `sim` trainer in virtual time: stages cost
// the coordinator what real ones do and the workers almost nothing) run a random search that
// does not end within the benchmark. The rate is the stages dispatched per second over a window
// of the given length, in rounds that alternate an idle window (only the workers talk to the
// coordinator) with a hammered one, where H client threads send, in a loop, one after another:
//   - a grid study at the 10^6-point cap (the sim trainer, 20 trials: its stages are dispatched
//     too, and count);
//   - an ask/tell study whose spec is just under the 1 MiB limit, names at their 256 bytes;
//   - Ask(count = 1000) on an ask/tell study;
//   - a spec twice the size limit (refused by the checks) and a message above the server's
//     receive limit (refused by gRPC).
// Reported: the median rate of the idle and of the hammered windows, each window's rate, and
// the requests the hammer made.
//
// Usage: hammer_benchmark [--workers 4] [--hammers 1] [--window 10] [--rounds 5] [--out FILE]
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "hippo/server.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "workers/worker.h"

namespace {

namespace v1 = ::hippo::v1;
using Clock = std::chrono::steady_clock;

v1::StudySpec SimStudy(const std::string& name, int64_t trials, uint64_t seed) {
  v1::StudySpec spec;
  spec.set_name(name);
  spec.mutable_objective()->set_metric("val_accuracy");
  spec.mutable_objective()->set_direction(v1::MAXIMIZE);
  spec.mutable_trainer()->set_kind("sim");
  auto& config = *spec.mutable_trainer()->mutable_config()->mutable_fields();
  config["virtual_time"].set_bool_value(true);
  config["cost_per_step"].set_number_value(1);
  v1::Parameter* lr = spec.mutable_search_space()->add_parameters();
  lr->set_name("lr");
  lr->mutable_float_()->set_low(1e-4);
  lr->mutable_float_()->set_high(1e-1);
  lr->mutable_float_()->set_log(true);
  spec.mutable_algorithm()->set_name("random");
  spec.mutable_algorithm()->set_seed(seed);
  spec.mutable_budget()->set_max_steps(4);
  spec.mutable_budget()->set_max_trials(trials);
  return spec;
}

v1::StudySpec GridAtTheCap(int n) {
  v1::StudySpec spec = SimStudy("grid-" + std::to_string(n), 20, n);
  spec.mutable_search_space()->clear_parameters();
  for (const char* name : {"a", "b"}) {
    v1::Parameter& parameter = *spec.mutable_search_space()->add_parameters();
    parameter.set_name(name);
    parameter.mutable_int_()->set_low(1);
    parameter.mutable_int_()->set_high(1000);
  }
  spec.mutable_algorithm()->set_name("grid");
  return spec;
}

v1::StudySpec AskTell(const std::string& name, size_t config_bytes) {
  v1::StudySpec spec;
  spec.set_name(name);
  spec.mutable_objective()->set_metric(std::string(256, 'm'));
  spec.mutable_objective()->set_direction(v1::MINIMIZE);
  v1::Parameter& parameter = *spec.mutable_search_space()->add_parameters();
  parameter.set_name(std::string(256, 'p'));
  parameter.mutable_float_()->set_low(0.001);
  parameter.mutable_float_()->set_high(0.1);
  spec.mutable_algorithm()->set_name("external");
  spec.mutable_budget()->set_max_steps(10);
  spec.mutable_budget()->set_max_trials(1'000'000'000);
  if (config_bytes > 0) {
    spec.mutable_trainer()->set_kind("sim");
    (*spec.mutable_trainer()->mutable_config()->mutable_fields())["blob"].set_string_value(
        std::string(config_bytes, 'b'));
  }
  return spec;
}

struct HammerCounts {
  std::atomic<int64_t> accepted{0};
  std::atomic<int64_t> refused{0};
  std::atomic<int64_t> asked_trials{0};
};

// One client sending the largest requests, until `stop`.
void Hammer(const std::string& address, int id, const std::atomic<bool>& stop,
            HammerCounts& counts) {
  auto stub =
      v1::StudyService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  auto create = [&](const v1::StudySpec& spec, v1::Study* study) {
    grpc::ClientContext context;
    v1::CreateStudyRequest request;
    *request.mutable_spec() = spec;
    const grpc::Status status = stub->CreateStudy(&context, request, study);
    (status.ok() ? counts.accepted : counts.refused)++;
    return status.ok();
  };
  v1::Study external;
  if (!create(AskTell(std::string(255, 'n') + "a", 0), &external)) return;
  for (int round = 0; !stop.load(); ++round) {
    v1::Study study;
    create(GridAtTheCap(id * 1'000'000 + round), &study);
    create(AskTell(std::string(250, 'n') + std::to_string(round % 100000), (1 << 20) - 4096),
           &study);
    {
      grpc::ClientContext context;
      v1::AskRequest ask;
      ask.set_study_id(external.id());
      ask.set_count(1000);
      v1::AskResponse response;
      if (stub->Ask(&context, ask, &response).ok()) {
        counts.asked_trials += response.trials_size();
        counts.accepted++;
      } else {
        counts.refused++;
      }
    }
    create(AskTell("twice", 2 << 20), &study);
    create(AskTell(std::string(9 << 20, 'n'), 0), &study);
  }
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

// The load of other processes: busy CPU time of the machine, from /proc/stat.
double MachineBusySeconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq;
  return (user + nice + system + irq + softirq) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // as cli/main.cc does
  int workers = 4;
  int hammers = 1;
  double window = 10;
  int rounds = 5;
  std::string out = "hammer_benchmark.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--workers")) {
      workers = std::stoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--hammers")) {
      hammers = std::stoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--window")) {
      window = std::stod(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--rounds")) {
      rounds = std::stoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--out")) {
      out = argv[i + 1];
    }
  }
  const std::filesystem::path scratch =
      std::filesystem::temp_directory_path() / ("hippo-hammer-" + std::to_string(getpid()));
  std::filesystem::create_directories(scratch);
  hippo::coordinator::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.db_path = (scratch / "hippo.db").string();
  auto server = hippo::coordinator::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  hippo::coordinator::Engine& engine = (*server)->engine();
  const std::string address = "127.0.0.1:" + std::to_string((*server)->port());
  if (!engine.CreateStudy(SimStudy("measured", 1'000'000'000, 1), false).ok()) return 1;

  std::vector<std::unique_ptr<hippo::workers::Worker>> pool;
  std::vector<std::thread> threads;
  for (int i = 0; i < workers; ++i) {
    hippo::workers::WorkerOptions worker_options;
    worker_options.coordinator = address;
    worker_options.worker_id = "bench-" + std::to_string(i);
    worker_options.checkpoint_dir = (scratch / "checkpoints").string();
    worker_options.log = [](std::string_view) {};
    pool.push_back(std::make_unique<hippo::workers::Worker>(worker_options));
    // Run returns when Stop is called; its status says only why the session ended.
    threads.emplace_back([worker = pool.back().get()] { (void)worker->Run(); });
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));  // every worker connected and busy

  std::vector<double> idle_rates, hammered_rates, idle_load, hammered_load;
  HammerCounts counts;
  for (int round = 0; round < 2 * rounds; ++round) {
    const bool hammered = round % 2 == 1;
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    if (hammered) {
      for (int h = 0; h < hammers; ++h) {
        clients.emplace_back(Hammer, address, round * 100 + h, std::cref(stop), std::ref(counts));
      }
    }
    const int64_t before = engine.stats().dispatches;
    const double busy_before = MachineBusySeconds();
    const auto start = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(window));
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double rate = static_cast<double>(engine.stats().dispatches - before) / seconds;
    const double load = (MachineBusySeconds() - busy_before) / seconds;
    stop.store(true);
    for (std::thread& client : clients) client.join();
    (hammered ? hammered_rates : idle_rates).push_back(rate);
    (hammered ? hammered_load : idle_load).push_back(load);
    std::printf("%-9s window %2d: %8.1f stages/s (machine busy %.2f cores)\n",
                hammered ? "hammered" : "idle", round / 2 + 1, rate, load);
    std::fflush(stdout);
  }
  for (auto& worker : pool) worker->Stop();
  for (std::thread& thread : threads) thread.join();
  pool.clear();
  (*server)->Shutdown();
  server->reset();
  std::filesystem::remove_all(scratch);

  const double idle = Median(idle_rates);
  const double busy = Median(hammered_rates);
  std::printf("%-44s %12d\n", "workers (sim trainer, virtual time)", workers);
  std::printf("%-44s %12d\n", "hammering clients", hammers);
  std::printf("%-44s %12.1f\n", "idle: stages per second (median)", idle);
  std::printf("%-44s %12.1f\n", "hammered: stages per second (median)", busy);
  std::printf("%-44s %11.1f%%\n", "change", idle > 0 ? 100.0 * (busy - idle) / idle : 0.0);
  std::printf("%-44s %12lld\n", "hammer requests accepted", (long long)counts.accepted.load());
  std::printf("%-44s %12lld\n", "hammer requests refused", (long long)counts.refused.load());
  std::printf("%-44s %12lld\n", "trials asked by the hammer",
              (long long)counts.asked_trials.load());
  std::ofstream file(out);
  auto list = [](const std::vector<double>& values) {
    std::string text = "[";
    for (size_t i = 0; i < values.size(); ++i) {
      text += (i ? ", " : "") + std::to_string(values[i]);
    }
    return text + "]";
  };
  file << "{\"workers\": " << workers << ", \"hammers\": " << hammers
       << ", \"window_s\": " << window << ", \"idle_rate_median\": " << idle
       << ", \"hammered_rate_median\": " << busy << ", \"idle_rates\": " << list(idle_rates)
       << ", \"hammered_rates\": " << list(hammered_rates)
       << ", \"idle_machine_cores\": " << list(idle_load)
       << ", \"hammered_machine_cores\": " << list(hammered_load)
       << ", \"accepted\": " << counts.accepted.load() << ", \"refused\": " << counts.refused.load()
       << "}\n";
  std::printf("wrote %s\n", out.c_str());
  return 0;
}
