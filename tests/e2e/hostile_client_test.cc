// Hostile input from the client side, beyond the study specs of bad_input_test.cc: tells out of
// bounds change nothing stored (the database's SHA-256 is compared), and a coordinator whose
// address space is limited (as `ulimit -v` limits it) to what a normal study needs stays up
// and answers while a client sends it the largest requests the limits allow, and many it
// refuses (docs/security.md, "Bounded inputs"); the rates large requests are held to are
// `hippo server` flags ("Rates").
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "hippo/engine.h"
#include "tests/support/db_digest.h"
#include "tests/support/e2e_harness.h"
#include "tests/support/study_specs.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
using test_support::DatabaseSha256;

// The coordinator's address-space limit: its threads' stacks and malloc's arenas are reserved
// address space (a coordinator answering a few dozen calls at once reserves about 2 GiB, and
// Ask(1000) needed more than 4 GiB of it while keeping under 200 MiB resident), so this is far
// above what it keeps resident, which is bounded separately (kResidentLimitKiB). A normal study
// fits in it (the last part of the test runs one).
constexpr size_t kAddressSpaceLimit = size_t{8} << 30;

constexpr int64_t kResidentLimitKiB = 1 << 20;  // 1 GiB

// A line "Name:   123 kB" of /proc/PID/status, in KiB; -1 if absent.
int64_t StatusKiB(pid_t pid, const std::string& name) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(name + ":", 0) == 0) return std::stoll(line.substr(name.size() + 1));
  }
  return -1;
}

std::string Bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

v1::StudySpec ExternalStudy(int64_t max_trials) { return test_support::AskTellSpec(max_trials); }

v1::StudySpec SimStudy(const std::string& name, int64_t max_trials) {
  v1::StudySpec spec;
  spec.set_name(name);
  spec.mutable_objective()->set_metric("val_loss");
  spec.mutable_objective()->set_direction(v1::MINIMIZE);
  spec.mutable_trainer()->set_kind("sim");
  v1::Parameter& lr = *spec.mutable_search_space()->add_parameters();
  lr.set_name("lr");
  lr.mutable_float_()->set_low(0.001);
  lr.mutable_float_()->set_high(0.1);
  spec.mutable_algorithm()->set_name("random");
  spec.mutable_budget()->set_max_steps(4);
  spec.mutable_budget()->set_max_trials(max_trials);
  return spec;
}

grpc::Status Create(v1::StudyService::Stub& stub, const v1::StudySpec& spec, v1::Study* study) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::CreateStudyRequest request;
  *request.mutable_spec() = spec;
  return stub.CreateStudy(&context, request, study);
}

grpc::Status Tell(v1::StudyService::Stub& stub, const v1::TellRequest& request) {
  grpc::ClientContext context;
  v1::TellResponse response;
  return stub.Tell(&context, request, &response);
}

TEST(HostileClientTest, TellsOutOfBoundsAreRefusedNamingTheFieldAndChangeNothing) {
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const std::string db = dir.File("hippo.db");
  Process server({"server", "--listen", address, "--db", db}, dir.File("server.log"));
  ASSERT_TRUE(WaitForServer(address));
  auto stub = Connect(address);
  v1::Study study;
  ASSERT_TRUE(Create(*stub, ExternalStudy(10), &study).ok());
  grpc::ClientContext ask_context;
  v1::AskRequest ask;
  ask.set_study_id(study.id());
  ask.set_count(1);
  v1::AskResponse asked;
  ASSERT_TRUE(stub->Ask(&ask_context, ask, &asked).ok());
  const std::string before = DatabaseSha256(db);

  struct Case {
    std::string expected;  // the start of the message
    std::map<std::string, double> values;
  };
  std::map<std::string, double> too_many;
  for (int i = 0; i < 257; ++i) too_many["m" + std::to_string(i)] = i;
  const std::vector<Case> cases = {
      {"values: a metric name is empty", {{"", 1.0}}},
      {"values: a metric name too long: 100000 characters, at most 256",
       {{std::string(100'000, 'm'), 1.0}}},
      {"values: a metric name holds a control character (code 10)", {{"lo\nss", 1.0}}},
      {"values: has 257 metrics, at most 256", too_many},
      {"values[\"loss\"]: must be a finite number (got nan)",
       {{"loss", std::numeric_limits<double>::quiet_NaN()}}},
      {"values[\"loss\"]: must be a finite number (got inf)",
       {{"loss", std::numeric_limits<double>::infinity()}}},
  };
  for (const Case& bad : cases) {
    v1::TellRequest request;
    request.set_study_id(study.id());
    request.set_trial_id(asked.trials(0).id());
    request.set_step(1);
    for (const auto& [name, value] : bad.values) (*request.mutable_values())[name] = value;
    const grpc::Status status = Tell(*stub, request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad.expected;
    EXPECT_EQ(status.error_message().rfind(bad.expected, 0), 0u)
        << "expected " << bad.expected << "\ngot      " << status.error_message();
  }
  EXPECT_EQ(DatabaseSha256(db), before);
}

TEST(HostileClientTest, TheCoordinatorStaysUpUnderTheLargestRequestsWithinAMemoryLimit) {
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server({"server", "--listen", address, "--db", dir.File("hippo.db")},
                 dir.File("server.log"), /*env=*/{}, ProcessLimits{kAddressSpaceLimit});
  ASSERT_TRUE(WaitForServer(address)) << Bytes(dir.File("server.log"));
  auto stub = Connect(address);
  std::mutex mutex;
  std::vector<std::string> created;  // stopped before the normal study runs
  auto keep = [&](const v1::Study& study) {
    std::lock_guard<std::mutex> lock(mutex);
    created.push_back(study.id());
  };

  // Grids at the cap: 1000 x 1000 points each.
  for (int i = 0; i < 3; ++i) {
    v1::StudySpec grid = SimStudy("grid-" + std::to_string(i), 5);
    grid.mutable_search_space()->clear_parameters();
    for (const char* name : {"a", "b"}) {
      v1::Parameter& parameter = *grid.mutable_search_space()->add_parameters();
      parameter.set_name(name);
      parameter.mutable_int_()->set_low(1);
      parameter.mutable_int_()->set_high(1000);
    }
    grid.mutable_algorithm()->set_name("grid");
    v1::Study study;
    const grpc::Status status = Create(*stub, grid, &study);
    EXPECT_TRUE(status.ok()) << status.error_message();
    keep(study);
  }
  // The most trials one Ask may ask for, three times over.
  v1::Study external;
  ASSERT_TRUE(Create(*stub, ExternalStudy(100'000), &external).ok());
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::AskRequest ask;
    ask.set_study_id(external.id());
    ask.set_count(1000);
    v1::AskResponse asked;
    const grpc::Status status = stub->Ask(&context, ask, &asked);
    ASSERT_TRUE(status.ok()) << status.error_message() << "\n"
                             << Bytes(dir.File("server.log")).substr(0, 4000);
    EXPECT_EQ(asked.trials_size(), 1000);
  }
  // Specs just under the size limit, with names at theirs, from four clients at once; and
  // requests over the limits: a spec twice the limit, one above the server's receive limit,
  // names of megabytes.
  std::vector<std::thread> clients;
  for (int client = 0; client < 4; ++client) {
    clients.emplace_back([&address, &keep, client] {
      auto own = Connect(address);
      for (int i = 0; i < 3; ++i) {
        v1::StudySpec large = SimStudy(std::string(256, 'n'), 2);
        large.set_name(std::string(255, 'n') + std::to_string(client));
        large.mutable_objective()->set_metric(std::string(256, 'm'));
        large.mutable_search_space()->mutable_parameters(0)->set_name(std::string(256, 'p'));
        (*large.mutable_trainer()->mutable_config()->mutable_fields())["blob"].set_string_value(
            std::string((1 << 20) - 4096, 'b'));
        v1::Study study;
        grpc::Status status = Create(*own, large, &study);
        EXPECT_TRUE(status.ok()) << status.error_message();
        keep(study);

        v1::StudySpec twice = SimStudy("twice", 2);
        (*twice.mutable_trainer()->mutable_config()->mutable_fields())["blob"].set_string_value(
            std::string(2 << 20, 'b'));
        status = Create(*own, twice, &study);
        EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

        v1::StudySpec huge = SimStudy(std::string(5 << 20, 'n'), 2);
        status = Create(*own, huge, &study);
        EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

        v1::StudySpec named = SimStudy(std::string(3 << 20, 'n'), 2);
        status = Create(*own, named, &study);
        EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      }
    });
  }
  for (std::thread& client : clients) client.join();
  // Reading it all back.
  {
    grpc::ClientContext context;
    v1::ListTrialsRequest request;
    request.set_study_id(external.id());
    request.set_with_metrics(true);
    v1::ListTrialsResponse trials;
    const grpc::Status status = stub->ListTrials(&context, request, &trials);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  // Twelve studies of 1 MiB specs list in pages that fit a client's default 4 MiB receive
  // limit (the stub keeps gRPC's default), however large a page_size is asked for.
  {
    size_t listed = 0;
    int pages = 0;
    std::string token;
    do {
      grpc::ClientContext context;
      v1::ListStudiesRequest request;
      request.set_page_size(1000);
      request.set_page_token(token);
      v1::ListStudiesResponse page;
      const grpc::Status status = stub->ListStudies(&context, request, &page);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ASSERT_GT(page.studies_size(), 0);
      EXPECT_LE(page.ByteSizeLong(), size_t{4} << 20);
      listed += static_cast<size_t>(page.studies_size());
      token = page.next_page_token();
      ++pages;
    } while (!token.empty() && pages < 100);
    EXPECT_EQ(listed, created.size() + 1);  // and the external study
    EXPECT_GE(pages, 4);
  }
  ASSERT_TRUE(server.Alive()) << Bytes(dir.File("server.log"));
  for (const std::string& id : created) {
    grpc::ClientContext context;
    v1::StopStudyRequest request;
    request.set_study_id(id);
    v1::Study stopped;
    EXPECT_TRUE(stub->StopStudy(&context, request, &stopped).ok()) << id;
  }

  // It still runs a normal study to its end, with a worker.
  v1::Study normal;
  // Its own family (another trainer config): the grids' family has other parameters.
  v1::StudySpec normal_spec = SimStudy("normal", 4);
  (*normal_spec.mutable_trainer()->mutable_config()->mutable_fields())["state_bytes"]
      .set_number_value(0);
  const grpc::Status normal_status = Create(*stub, normal_spec, &normal);
  ASSERT_TRUE(normal_status.ok()) << normal_status.error_message();
  Process worker({"worker", "--coordinator", address, "--id", "worker-0", "--checkpoint-dir",
                  dir.File("checkpoints")},
                 dir.File("worker.log"));
  absl::StatusOr<v1::Study> ended = WaitForStudy(address, normal.id(), std::chrono::seconds(120));
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->state(), v1::STUDY_COMPLETED) << ended->message();
  EXPECT_TRUE(server.Alive());
  const int64_t resident_peak = StatusKiB(server.pid(), "VmHWM");
  EXPECT_GT(resident_peak, 0);
  EXPECT_LT(resident_peak, kResidentLimitKiB);
  std::printf("coordinator: resident peak %lld KiB, address space peak %lld KiB\n",
              static_cast<long long>(resident_peak),
              static_cast<long long>(StatusKiB(server.pid(), "VmPeak")));
  EXPECT_EQ(Bytes(dir.File("server.log")).find("bad_alloc"), std::string::npos)
      << Bytes(dir.File("server.log"));
}

// A study's trials are planned in windows of kMaxTrialsPlannedAhead, refilled once half ended: a
// max_trials of 10^9 (with max_parallel_trials unset, or as large) answers as quickly as a small
// one and plans one window, whatever the algorithm; hyperband, which lays out its brackets for
// the whole budget, refuses a max_trials beyond its documented limit, naming the field.
TEST(HostileClientTest, AHugeMaxTrialsIsPlannedInWindowsAnsweredQuicklyInBoundedMemory) {
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server({"server", "--listen", address, "--db", dir.File("hippo.db")},
                 dir.File("server.log"), /*env=*/{}, ProcessLimits{kAddressSpaceLimit});
  ASSERT_TRUE(WaitForServer(address)) << Bytes(dir.File("server.log"));
  auto stub = Connect(address);
  constexpr int64_t kHuge = 1'000'000'000;
  struct Case {
    std::string algorithm;
    int64_t max_parallel_trials;
    std::function<void(v1::Algorithm&)> configure;  // the fields the algorithm requires
  };
  const auto none = [](v1::Algorithm&) {};
  const std::vector<Case> cases = {
      {"random", 0, none},
      {"random", kHuge, none},
      {"tpe", 0, none},
      {"asha", 0, [](v1::Algorithm& a) { a.mutable_asha()->set_min_resource(5); }},
      {"median", 0, none},
      {"pbt", 0,
       [](v1::Algorithm& a) {
         a.mutable_pbt()->set_population_size(16);
         a.mutable_pbt()->set_perturbation_interval(10);
       }},
      {"evolution", 0,
       [](v1::Algorithm& a) {
         a.mutable_evolution()->set_population_size(16);
         a.mutable_evolution()->set_children(kHuge);
       }},
  };
  for (const Case& huge : cases) {
    v1::StudySpec spec = SimStudy("huge-" + huge.algorithm, kHuge);
    spec.mutable_budget()->set_max_steps(100);
    spec.mutable_budget()->set_max_parallel_trials(huge.max_parallel_trials);
    spec.mutable_algorithm()->set_name(huge.algorithm);
    huge.configure(*spec.mutable_algorithm());
    const auto start = std::chrono::steady_clock::now();
    v1::Study study;
    // Create's deadline is 60 s; planning 10^9 trials would take hours.
    const grpc::Status status = Create(*stub, spec, &study);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(status.ok()) << huge.algorithm << ": " << status.error_message();
    EXPECT_GT(study.trials_total(), 0) << huge.algorithm;
    EXPECT_LE(study.trials_total(), coordinator::kMaxTrialsPlannedAhead) << huge.algorithm;
    std::printf("%s (max_parallel_trials %lld): created in %.2f s, %lld trials planned\n",
                huge.algorithm.c_str(), static_cast<long long>(huge.max_parallel_trials), seconds,
                static_cast<long long>(study.trials_total()));
    grpc::ClientContext context;
    v1::StopStudyRequest stop;
    stop.set_study_id(study.id());
    v1::Study stopped;
    EXPECT_TRUE(stub->StopStudy(&context, stop, &stopped).ok()) << huge.algorithm;
  }
  v1::StudySpec hyperband = SimStudy("huge-hyperband", kHuge);
  hyperband.mutable_budget()->set_max_steps(100);
  hyperband.mutable_algorithm()->set_name("hyperband");
  v1::Study refused;
  const grpc::Status status = Create(*stub, hyperband, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("budget.max_trials: at most ", 0), 0u)
      << status.error_message();
  ASSERT_TRUE(server.Alive()) << Bytes(dir.File("server.log"));
  const int64_t resident_peak = StatusKiB(server.pid(), "VmHWM");
  EXPECT_GT(resident_peak, 0);
  EXPECT_LT(resident_peak, kResidentLimitKiB / 2);
  std::printf("coordinator: resident peak %lld KiB\n", static_cast<long long>(resident_peak));
}

// The rates of large messages are `hippo server` flags (docs/security.md, "Rates"): listed by
// --help, a rate that cannot work refused at start naming its flag, and the clients' rate the
// pace large requests are held to. At 64 KiB/s the 8 MiB burst pays for four specs of 1 MiB
// with their answers (a study's view holds its spec); the fifth spec would wait 16 s, past the
// longest wait (10 s), so it is refused at once, the message naming the rate.
TEST(HostileClientTest, TheRatesOfLargeMessagesAreServerFlags) {
  const CommandResult help = RunHippo({"server", "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.output;
  TempDir dir;
  for (const std::string flag : {"--worker-bytes-per-second", "--client-bytes-per-second"}) {
    EXPECT_NE(help.output.find(flag), std::string::npos) << help.output;
    for (const std::string rate : {"0", "fast"}) {
      const CommandResult refused =
          RunHippo({"server", "--listen", "127.0.0.1:" + std::to_string(FreePort()), "--db",
                    dir.File("refused.db"), "--insecure", flag, rate});
      EXPECT_EQ(refused.exit_code, 2) << flag << " " << rate << ": " << refused.output;
      EXPECT_NE(refused.output.find(flag), std::string::npos) << refused.output;
    }
  }

  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server({"server", "--listen", address, "--db", dir.File("hippo.db"),
                  "--client-bytes-per-second", "64KiB"},
                 dir.File("server.log"));
  ASSERT_TRUE(WaitForServer(address)) << Bytes(dir.File("server.log"));
  auto stub = Connect(address);
  int created = 0;
  grpc::Status status;
  for (int i = 0; i < 8 && status.ok(); ++i) {
    v1::StudySpec large = SimStudy("large-" + std::to_string(i), 2);
    (*large.mutable_trainer()->mutable_config()->mutable_fields())["blob"].set_string_value(
        std::string((1 << 20) - 4096, 'b'));
    v1::Study study;
    status = Create(*stub, large, &study);
    if (status.ok()) ++created;
  }
  EXPECT_EQ(created, 4);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("at 0.0625 MiB/s from all clients together"),
            std::string::npos)
      << status.error_message();
}

// The clients' CPU budget is a `hippo server` flag (docs/security.md, "Rates"): listed by --help,
// a value that cannot work refused at start naming it, and the value given the rate calls are
// held to. At 0.0001 of a core the bucket holds 0.25 ms of CPU and the longest wait, 10 s, covers
// 1 ms more: the create or an Ask of 1000 trials (each takes the engine milliseconds) leaves a
// debt the next call would wait over 10 s for, so that one is refused at once, the message
// naming the flag and the rate. At the default half a core the bucket holds 1.25 s, and none
// of these calls would be refused.
TEST(HostileClientTest, TheClientsCpuBudgetIsAServerFlag) {
  const CommandResult help = RunHippo({"server", "--help"});
  EXPECT_NE(help.output.find("--client-cpu-cores"), std::string::npos) << help.output;
  TempDir dir;
  for (const std::string cores : {"0", "-1", "fast"}) {
    const CommandResult refused = RunHippo(
        {"server", "--listen", "127.0.0.1:" + std::to_string(FreePort()), "--db",
         dir.File("refused.db"), "--insecure", "--http", "off", "--client-cpu-cores", cores});
    EXPECT_EQ(refused.exit_code, 2) << cores << ": " << refused.output;
    EXPECT_NE(refused.output.find("--client-cpu-cores: must be a positive number of cores"),
              std::string::npos)
        << refused.output;
  }

  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server(
      {"server", "--listen", address, "--db", dir.File("hippo.db"), "--client-cpu-cores", "0.0001"},
      dir.File("server.log"));
  // The create is the server's first call, so it finds the bucket full and nothing reserved for
  // it. The test waits for the server's log to say it listens instead of calling WaitForServer:
  // that helper's call would come first, and on a cold machine its CPU time alone can leave a
  // debt over the longest wait. The token file is written before the server listens.
  const auto started = std::chrono::steady_clock::now();
  while (Bytes(dir.File("server.log")).find("listening on") == std::string::npos &&
         std::chrono::steady_clock::now() - started < ServerStartTimeout()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto stub = Connect(address);
  v1::Study study;
  const grpc::Status created = Create(*stub, ExternalStudy(100'000), &study);
  ASSERT_TRUE(created.ok()) << created.error_message() << "\n" << Bytes(dir.File("server.log"));
  grpc::Status status;
  int answered = 0;
  for (int i = 0; i < 5 && status.ok(); ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::AskRequest ask;
    ask.set_study_id(study.id());
    ask.set_count(1000);
    v1::AskResponse asked;
    status = stub->Ask(&context, ask, &asked);
    if (status.ok()) ++answered;
  }
  std::printf("asks of 1000 trials answered before the refusal: %d\n", answered);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("at most 0.0001 of a core"), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("--client-cpu-cores"), std::string::npos)
      << status.error_message();
}

}  // namespace
}  // namespace hippo::e2e
