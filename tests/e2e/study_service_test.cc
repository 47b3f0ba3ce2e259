// StudyService over real gRPC to a `hippo server` process: ListStudies paging (through the RPC
// and `hippo studies`), WatchStudy's trial and metric events, and the step unit in the CLI; and
// that the harness's servers need no dashboard port.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "search_algos/spec_checks.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// A small sim study: `trials` random trials of `steps` steps, sleeping `seconds_per_step`.
v1::StudySpec SimSpec(const std::string& name, int trials, int steps, double seconds_per_step,
                      const std::string& step_unit) {
  absl::StatusOr<v1::StudySpec> spec =
      search_algos::ParseStudySpec("name: " + name + R"yaml(
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer: {kind: sim, config: {model: resnet20, cost_per_step: )yaml" +
                                       std::to_string(seconds_per_step) + R"yaml(}}
search_space:
  parameters:
    - {name: lr, float: {low: 0.001, high: 0.1, log: true}}
algorithm: {name: random, seed: 1}
budget: {max_steps: )yaml" + std::to_string(steps) +
                                       ", max_trials: " + std::to_string(trials) + "}\n",
                                   "sim.yaml");
  EXPECT_TRUE(spec.ok()) << spec.status();
  spec->mutable_trainer()->set_step_unit(step_unit);
  return *spec;
}

class StudyServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    address_ = "127.0.0.1:" + std::to_string(FreePort());
    server_ = std::make_unique<Process>(
        std::vector<std::string>{"server", "--listen", address_, "--db", dir_.File("hippo.db")},
        dir_.File("server.log"));
    ASSERT_TRUE(WaitForServer(address_));
    stub_ = Connect(address_);
  }

  void StartWorker() {
    workers_.push_back(std::make_unique<Process>(
        std::vector<std::string>{"worker", "--coordinator", address_, "--id",
                                 "worker-" + std::to_string(workers_.size()), "--checkpoint-dir",
                                 dir_.File("checkpoints")},
        dir_.File("worker.log")));
  }

  std::string Create(const v1::StudySpec& spec) {
    grpc::ClientContext context;
    v1::CreateStudyRequest request;
    *request.mutable_spec() = spec;
    v1::Study study;
    const grpc::Status status = stub_->CreateStudy(&context, request, &study);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return study.id();
  }

  grpc::Status List(int page_size, const std::string& token, v1::ListStudiesResponse* response) {
    grpc::ClientContext context;
    v1::ListStudiesRequest request;
    request.set_page_size(page_size);
    request.set_page_token(token);
    return stub_->ListStudies(&context, request, response);
  }

  TempDir dir_;
  std::string address_;
  std::unique_ptr<Process> server_;
  std::vector<std::unique_ptr<Process>> workers_;
  std::unique_ptr<v1::StudyService::Stub> stub_;
};

TEST_F(StudyServiceTest, ListStudiesPagesThroughMoreStudiesThanAPage) {
  constexpr int kStudies = 130;  // more than the default page of 100
  std::vector<std::string> created;
  for (int i = 0; i < kStudies; ++i) {
    created.push_back(Create(SimSpec("s" + std::to_string(i), 1, 5, 0, "")));
  }

  // The default page is 100 studies, then the rest; the last page has no token.
  v1::ListStudiesResponse first;
  ASSERT_TRUE(List(0, "", &first).ok());
  EXPECT_EQ(first.studies_size(), 100);
  ASSERT_FALSE(first.next_page_token().empty());
  v1::ListStudiesResponse second;
  ASSERT_TRUE(List(0, first.next_page_token(), &second).ok());
  EXPECT_EQ(second.studies_size(), kStudies - 100);
  EXPECT_TRUE(second.next_page_token().empty());

  // Pages of 7 list every study once, in creation order.
  std::vector<std::string> listed;
  std::string token;
  int pages = 0;
  do {
    v1::ListStudiesResponse page;
    ASSERT_TRUE(List(7, token, &page).ok());
    EXPECT_LE(page.studies_size(), 7);
    for (const v1::Study& study : page.studies()) listed.push_back(study.id());
    token = page.next_page_token();
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(listed, created);
  EXPECT_EQ(pages, (kStudies + 6) / 7);

  // A page larger than the maximum (1000) is lowered to it: here, everything.
  v1::ListStudiesResponse all;
  ASSERT_TRUE(List(100000, "", &all).ok());
  EXPECT_EQ(all.studies_size(), kStudies);

  // A token not handed out by the server, and a negative size, are refused naming the field.
  v1::ListStudiesResponse refused;
  grpc::Status status = List(0, "not-a-token", &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("page_token: ", 0), 0u) << status.error_message();
  status = List(-1, "", &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("page_size: must not be negative", 0), 0u)
      << status.error_message();

  // `hippo studies` goes through every page.
  const CommandResult text = RunHippo({"studies", "--coordinator", address_});
  ASSERT_EQ(text.exit_code, 0) << text.output;
  for (const std::string& id : created) {
    EXPECT_NE(text.output.find(id + " "), std::string::npos) << id;
  }
  const CommandResult json = RunHippo({"studies", "--coordinator", address_, "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_NE(json.output.find("\"" + created.back() + "\""), std::string::npos);
  EXPECT_EQ(json.output.find("next_page_token"), std::string::npos);
}

TEST_F(StudyServiceTest, WatchStudyStreamsTrialChangesAndEveryMetric) {
  constexpr int kTrials = 3;
  constexpr int kSteps = 6;
  const std::string id = Create(SimSpec("watched", kTrials, kSteps, 0.02, "iteration"));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  v1::WatchStudyRequest request;
  request.set_study_id(id);
  std::unique_ptr<grpc::ClientReader<v1::StudyEvent>> reader = stub_->WatchStudy(&context, request);
  StartWorker();

  std::map<int64_t, std::set<int64_t>> metric_steps;  // by trial
  std::map<int64_t, std::vector<v1::TrialState>> trial_states;
  v1::StudyEvent event;
  v1::Study last;
  int study_only = 0;
  while (reader->Read(&event)) {
    ASSERT_TRUE(event.has_study());
    EXPECT_EQ(event.study().id(), id);
    last = event.study();
    if (event.has_metric()) {
      ASSERT_TRUE(event.has_trial()) << "a metric event names its trial";
      EXPECT_TRUE(event.metric().values().contains("val_accuracy"));
      EXPECT_TRUE(metric_steps[event.trial().id()].insert(event.metric().step()).second)
          << "step " << event.metric().step() << " of trial " << event.trial().id() << " twice";
    } else if (event.has_trial()) {
      trial_states[event.trial().id()].push_back(event.trial().state());
    } else {
      ++study_only;
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(last.state(), v1::STUDY_COMPLETED);
  EXPECT_GE(study_only, 1);
  ASSERT_EQ(trial_states.size(), static_cast<size_t>(kTrials));
  for (const auto& [trial, states] : trial_states) {
    EXPECT_EQ(states.back(), v1::TRIAL_COMPLETED) << "trial " << trial;
    std::set<int64_t> all_steps;
    for (int64_t step = 0; step < kSteps; ++step) all_steps.insert(step);
    EXPECT_EQ(metric_steps[trial], all_steps) << "trial " << trial;
  }

  // The step unit heads the trials' step column and counts the study's steps.
  const CommandResult trials = RunHippo({"trials", id, "--coordinator", address_});
  ASSERT_EQ(trials.exit_code, 0) << trials.output;
  EXPECT_NE(trials.output.find("ITERATION"), std::string::npos) << trials.output;
  const CommandResult study = RunHippo({"study", id, "--coordinator", address_});
  ASSERT_EQ(study.exit_code, 0) << study.output;
  EXPECT_NE(study.output.find("trial_steps     18 iterations"), std::string::npos) << study.output;
}

TEST_F(StudyServiceTest, WatchOfAnUnknownStudyIsNotFound) {
  grpc::ClientContext context;
  v1::WatchStudyRequest request;
  request.set_study_id("s-999999");
  std::unique_ptr<grpc::ClientReader<v1::StudyEvent>> reader = stub_->WatchStudy(&context, request);
  v1::StudyEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

// The harness starts servers without a dashboard unless a test passes --http: with the default
// port 8080 held (here by the test itself, as by any other process or test at once), servers
// started by the harness still come up, and none serves a dashboard.
TEST(TestHarnessTest, ServersStartedAtOnceNeedNoDashboardPort) {
  const int held = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(held, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(8080);
  // Taken already (by another process) serves as well as taken here.
  if (bind(held, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    ASSERT_EQ(listen(held, 1), 0);
  }
  TempDir dir;
  std::vector<std::unique_ptr<Process>> servers;
  std::vector<std::string> addresses;
  for (int i = 0; i < 2; ++i) {
    addresses.push_back("127.0.0.1:" + std::to_string(FreePort()));
    servers.push_back(std::make_unique<Process>(
        std::vector<std::string>{"server", "--listen", addresses.back(), "--db",
                                 dir.File("hippo" + std::to_string(i) + ".db")},
        dir.File("server" + std::to_string(i) + ".log")));
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(WaitForServer(addresses[i]))
        << ReadFile(dir.File("server" + std::to_string(i) + ".log"));
    EXPECT_TRUE(servers[i]->Alive());
    EXPECT_EQ(ReadFile(dir.File("server" + std::to_string(i) + ".log")).find("dashboard at"),
              std::string::npos);
  }
  close(held);
}

}  // namespace
}  // namespace hippo::e2e
