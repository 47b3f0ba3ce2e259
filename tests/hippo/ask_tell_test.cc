// Ask/tell (algorithm `external`) over real gRPC on loopback: a client asks for trials, trains
// them itself, tells their metrics; Hippo's workers never see them.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "hippo/server.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "search_algos/spec_checks.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;

constexpr char kSpec[] = R"(
name: ask-tell
objective: {metric: loss, direction: MINIMIZE}
trainer: {kind: sim}
search_space:
  parameters:
    - {name: x, float: {low: -4.0, high: 4.0}}
    - {name: width, int: {low: 1, high: 8}, structural: true}
algorithm: {name: external, seed: 7, tpe: {n_startup_trials: 4}}
budget: {max_steps: 3, max_trials: 10}
)";

std::string TempDb(const std::string& name) {
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("hippo-ask-tell-" + std::to_string(getpid()) + "-" + name);
  std::filesystem::remove(path);
  return path.string();
}

// The client's own "training": a loss per step from the trial's x.
double Loss(double x, int64_t step) { return (x - 1.5) * (x - 1.5) + 1.0 / (step + 1); }

double ScalarOf(const v1::Trial& trial, const std::string& name) {
  const v1::ParameterValue& value = trial.parameters().at(name);
  if (value.has_scalar()) return value.scalar().number_value();
  return value.segments(0).constant();
}

class Client {
 public:
  explicit Client(int port, const std::string& token = "")
      : stub_(v1::StudyService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                            grpc::InsecureChannelCredentials()))),
        token_(token) {}

  grpc::Status Create(const v1::StudySpec& spec, v1::Study* study) {
    v1::CreateStudyRequest request;
    *request.mutable_spec() = spec;
    auto context = Context();
    return stub_->CreateStudy(context.get(), request, study);
  }
  grpc::Status Ask(const std::string& study, int count, v1::AskResponse* response) {
    v1::AskRequest request;
    request.set_study_id(study);
    request.set_count(count);
    auto context = Context();
    return stub_->Ask(context.get(), request, response);
  }
  grpc::Status Tell(const std::string& study, int64_t trial, int64_t step,
                    std::map<std::string, double> values,
                    v1::TrialState final_state = v1::TRIAL_STATE_UNSPECIFIED) {
    v1::TellRequest request;
    request.set_study_id(study);
    request.set_trial_id(trial);
    request.set_step(step);
    for (const auto& [name, value] : values) (*request.mutable_values())[name] = value;
    request.set_final_state(final_state);
    v1::TellResponse response;
    auto context = Context();
    return stub_->Tell(context.get(), request, &response);
  }
  v1::Study Get(const std::string& study) {
    v1::GetStudyRequest request;
    request.set_study_id(study);
    v1::Study response;
    auto context = Context();
    EXPECT_TRUE(stub_->GetStudy(context.get(), request, &response).ok());
    return response;
  }
  v1::ListTrialsResponse Trials(const std::string& study) {
    v1::ListTrialsRequest request;
    request.set_study_id(study);
    request.set_with_metrics(true);
    v1::ListTrialsResponse response;
    auto context = Context();
    EXPECT_TRUE(stub_->ListTrials(context.get(), request, &response).ok());
    return response;
  }
  grpc::Status List(v1::ListStudiesResponse* response) {
    auto context = Context();
    return stub_->ListStudies(context.get(), v1::ListStudiesRequest(), response);
  }

 private:
  std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!token_.empty()) context->AddMetadata("x-hippo-token", token_);
    return context;
  }
  std::unique_ptr<v1::StudyService::Stub> stub_;
  std::string token_;
};

std::unique_ptr<Server> StartServer(const std::string& db, const std::string& token = "") {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.db_path = db;
  options.token = token;
  options.insecure = token.empty();  // the in-process tests without a token trust every caller
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

v1::StudySpec Spec() {
  absl::StatusOr<v1::StudySpec> spec = search_algos::ParseStudySpec(kSpec, "ask-tell.yaml");
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

// A coordinator on a fresh database, a client of it, one study of the spec above created and
// `ask` of its trials asked.
struct Session {
  Session(const std::string& name, int ask) : db(TempDb(name)), server(StartServer(db)) {
    if (server == nullptr) return;
    client = std::make_unique<Client>(server->port());
    created = client->Create(Spec(), &study).ok() && client->Ask(study.id(), ask, &asked).ok();
  }
  ~Session() {
    server.reset();
    std::filesystem::remove(db);
  }
  bool ok() const { return server != nullptr && created; }

  std::string db;
  std::unique_ptr<Server> server;
  std::unique_ptr<Client> client;
  v1::Study study;
  v1::AskResponse asked;
  bool created = false;
};

// Trains and tells every step of `trial`, then completes it.
void TrainAndTell(Client& client, const std::string& study, const v1::Trial& trial) {
  const double x = ScalarOf(trial, "x");
  for (int64_t step = 0; step < trial.target_step(); ++step) {
    ASSERT_TRUE(client.Tell(study, trial.id(), step, {{"loss", Loss(x, step)}}).ok());
  }
  ASSERT_TRUE(client.Tell(study, trial.id(), 0, {}, v1::TRIAL_COMPLETED).ok());
}

TEST(AskTellTest, ClientTrainsAskedTrialsAndTheStudyCompletesWithTheBestTold) {
  const std::string db = TempDb("full.db");
  std::unique_ptr<Server> server = StartServer(db);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  v1::Study study;
  ASSERT_TRUE(client.Create(Spec(), &study).ok());

  std::vector<v1::Trial> asked;
  while (true) {
    v1::AskResponse response;
    grpc::Status status = client.Ask(study.id(), 3, &response);
    if (!status.ok()) {
      // The last tell completed the study: the budget is spent.
      EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
          << status.error_message();
      EXPECT_NE(status.error_message().find("budget.max_trials"), std::string::npos);
      break;
    }
    for (const v1::Trial& trial : response.trials()) {
      EXPECT_EQ(trial.state(), v1::TRIAL_RUNNING);
      EXPECT_EQ(trial.target_step(), 3);
      asked.push_back(trial);
      TrainAndTell(client, study.id(), trial);
    }
  }
  ASSERT_EQ(asked.size(), 10u);
  const v1::Study done = client.Get(study.id());
  EXPECT_EQ(done.state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(done.trials_completed(), 10);
  // Nothing was dispatched to a worker: the client trained every step.
  EXPECT_EQ(server->engine().stats().dispatches, 0);

  double best = INFINITY;
  for (const v1::Trial& trial : asked) best = std::min(best, Loss(ScalarOf(trial, "x"), 2));
  EXPECT_DOUBLE_EQ(done.best_trial().objective_value(), best);
  // Every told metric is stored, per step.
  const v1::ListTrialsResponse trials = client.Trials(study.id());
  ASSERT_EQ(trials.metrics_size(), 10);
  for (const v1::TrialMetrics& metrics : trials.metrics()) {
    const double x = ScalarOf(trials.trials(metrics.trial_id()), "x");
    ASSERT_EQ(metrics.metrics_size(), 3);
    for (const v1::Metric& metric : metrics.metrics()) {
      EXPECT_DOUBLE_EQ(metric.values().at("loss"), Loss(x, metric.step()));
    }
  }
  // After the random start-up trials, TPE moves towards the minimum at x = 1.5.
  double random_gap = 0, model_gap = 0;
  for (int i = 0; i < 4; ++i) random_gap += std::abs(ScalarOf(asked[i], "x") - 1.5) / 4;
  for (int i = 4; i < 10; ++i) model_gap += std::abs(ScalarOf(asked[i], "x") - 1.5) / 6;
  EXPECT_LT(model_gap, random_gap);
  server.reset();
  std::filesystem::remove(db);
}

// The study's best trial is kept as trials are told (not found by walking every trial): a
// better objective wins, of equal objectives the earlier trial, a trial still running does
// not count; a restarted coordinator finds the same best.
TEST(AskTellTest, BestTrialIsTheEarliestOfTheBestTold) {
  Session session("best.db", 5);
  ASSERT_TRUE(session.ok());
  Client& client = *session.client;
  const v1::Study& study = session.study;
  const v1::AskResponse& asked = session.asked;
  ASSERT_EQ(asked.trials_size(), 5);
  auto complete = [&](int index, double loss) {
    const int64_t trial = asked.trials(index).id();
    ASSERT_TRUE(client.Tell(study.id(), trial, 0, {{"loss", loss}}).ok());
    ASSERT_TRUE(client.Tell(study.id(), trial, 0, {}, v1::TRIAL_COMPLETED).ok());
  };
  auto best_id = [&] {
    const v1::Study view = client.Get(study.id());
    return view.has_best_trial() ? view.best_trial().id() : -1;
  };

  EXPECT_EQ(best_id(), -1);
  complete(0, 3.0);
  EXPECT_EQ(best_id(), asked.trials(0).id());
  complete(1, 2.0);
  EXPECT_EQ(best_id(), asked.trials(1).id());
  complete(2, 2.0);
  EXPECT_EQ(best_id(), asked.trials(1).id());  // a tie: the earlier trial stays
  ASSERT_TRUE(client.Tell(study.id(), asked.trials(3).id(), 0, {{"loss", 0.5}}).ok());
  EXPECT_EQ(best_id(), asked.trials(1).id());  // told, but still running
  complete(4, 1.0);
  EXPECT_EQ(best_id(), asked.trials(4).id());
  ASSERT_TRUE(client.Tell(study.id(), asked.trials(3).id(), 0, {}, v1::TRIAL_COMPLETED).ok());
  EXPECT_EQ(best_id(), asked.trials(3).id());
  EXPECT_EQ(client.Get(study.id()).trials_completed(), 5);

  session.server.reset();
  session.server = StartServer(session.db);
  ASSERT_NE(session.server, nullptr);
  Client restarted(session.server->port());
  const v1::Study recovered = restarted.Get(study.id());
  EXPECT_EQ(recovered.best_trial().id(), asked.trials(3).id());
  EXPECT_DOUBLE_EQ(recovered.best_trial().objective_value(), 0.5);
  EXPECT_EQ(recovered.trials_completed(), 5);
  EXPECT_EQ(recovered.steps().trial_steps(), 5 * 3);
}

// A study whose only parameter is a categorical of strings has no sequence parameters (the
// choice is structural): its trials ask, tell and complete, and a restarted coordinator
// recovers them and goes on asking.
TEST(AskTellTest, StudyOfOneCategoricalOfStringsAsksTellsAndRecovers) {
  constexpr char kCategorical[] = R"(
name: one-categorical
objective: {metric: loss, direction: MINIMIZE}
search_space:
  parameters:
    - {name: optimizer, categorical: {values: [sgd, adam, lion]}}
algorithm: {name: external, seed: 3, tpe: {n_startup_trials: 2}}
budget: {max_steps: 2, max_trials: 6}
)";
  absl::StatusOr<v1::StudySpec> spec = search_algos::ParseStudySpec(kCategorical, "cat.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  const std::string db = TempDb("categorical.db");
  std::unique_ptr<Server> server = StartServer(db);
  ASSERT_NE(server, nullptr);
  auto client = std::make_unique<Client>(server->port());
  v1::Study study;
  ASSERT_TRUE(client->Create(*spec, &study).ok());
  const std::map<std::string, double> loss = {{"sgd", 3.0}, {"adam", 1.0}, {"lion", 2.0}};
  for (int round = 0; round < 3; ++round) {
    if (round == 2) {
      client.reset();
      server.reset();
      server = StartServer(db);
      ASSERT_NE(server, nullptr);
      client = std::make_unique<Client>(server->port());
    }
    v1::AskResponse response;
    const grpc::Status asked = client->Ask(study.id(), 2, &response);
    ASSERT_TRUE(asked.ok()) << asked.error_message();
    ASSERT_EQ(response.trials_size(), 2);
    for (const v1::Trial& trial : response.trials()) {
      EXPECT_EQ(trial.target_step(), 2);
      const v1::ParameterValue& value = trial.parameters().at("optimizer");
      ASSERT_TRUE(value.has_scalar());
      const double told = loss.at(value.scalar().string_value());
      ASSERT_TRUE(client->Tell(study.id(), trial.id(), 0, {{"loss", told + 1}}).ok());
      ASSERT_TRUE(client->Tell(study.id(), trial.id(), 1, {{"loss", told}}).ok());
      ASSERT_TRUE(client->Tell(study.id(), trial.id(), 0, {}, v1::TRIAL_COMPLETED).ok());
    }
  }
  const v1::Study done = client->Get(study.id());
  EXPECT_EQ(done.state(), v1::STUDY_COMPLETED);
  EXPECT_EQ(done.trials_completed(), 6);
  EXPECT_EQ(done.steps().trial_steps(), 6 * 2);
  client.reset();
  server.reset();
  std::filesystem::remove(db);
}

// One Ask cannot hold the engine: a count past the limit is refused at once, and the study
// still answers a reasonable Ask afterwards.
TEST(AskTellTest, AskForTooManyTrialsIsRefusedNamingCount) {
  Session session("too_many.db", 1);
  ASSERT_TRUE(session.ok());
  Client& client = *session.client;
  const v1::Study& study = session.study;
  v1::AskResponse response;
  const grpc::Status just_over = client.Ask(study.id(), 1001, &response);
  ASSERT_EQ(just_over.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << just_over.error_message();
  EXPECT_NE(just_over.error_message().find("count: ask for 1 to 1000"), std::string::npos)
      << just_over.error_message();
  const grpc::Status huge = client.Ask(study.id(), 1'000'000'000, &response);
  EXPECT_EQ(huge.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << huge.error_message();
  EXPECT_NE(huge.error_message().find("(got 1000000000)"), std::string::npos)
      << huge.error_message();
  ASSERT_TRUE(client.Ask(study.id(), 2, &response).ok());
  EXPECT_EQ(response.trials_size(), 2);
}

TEST(AskTellTest, BadAsksAndTellsAreRefusedNamingTheFieldAndChangeNothing) {
  Session session("errors.db", 1);
  ASSERT_TRUE(session.ok());
  Client& client = *session.client;
  const v1::Study& study = session.study;
  ASSERT_EQ(session.asked.trials_size(), 1);
  const int64_t trial = session.asked.trials(0).id();
  v1::AskResponse response;
  ASSERT_TRUE(client.Tell(study.id(), trial, 1, {{"loss", 2.0}}).ok());

  auto expect = [](const grpc::Status& status, grpc::StatusCode code, const std::string& text) {
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_NE(status.error_message().find(text), std::string::npos) << status.error_message();
  };
  expect(client.Ask(study.id(), 0, &response), grpc::StatusCode::INVALID_ARGUMENT, "count");
  expect(client.Ask("s-999999", 1, &response), grpc::StatusCode::NOT_FOUND, "s-999999");
  expect(client.Tell(study.id(), 42, 0, {{"loss", 1.0}}), grpc::StatusCode::NOT_FOUND, "trial 42");
  expect(client.Tell(study.id(), trial, 1, {{"loss", 1.0}}), grpc::StatusCode::INVALID_ARGUMENT,
         "increasing");
  expect(client.Tell(study.id(), trial, 3, {{"loss", 1.0}}), grpc::StatusCode::INVALID_ARGUMENT,
         "step");
  expect(client.Tell(study.id(), trial, 2, {{"loss", NAN}}), grpc::StatusCode::INVALID_ARGUMENT,
         "values[\"loss\"]");
  expect(client.Tell(study.id(), trial, 2, {}), grpc::StatusCode::INVALID_ARGUMENT, "values");

  v1::StudySpec grid = Spec();
  grid.mutable_algorithm()->set_name("random");
  grid.mutable_algorithm()->clear_tpe();
  v1::Study other;
  ASSERT_TRUE(client.Create(grid, &other).ok());
  expect(client.Ask(other.id(), 1, &response), grpc::StatusCode::FAILED_PRECONDITION, "external");
  expect(client.Tell(other.id(), 0, 0, {{"loss", 1.0}}), grpc::StatusCode::FAILED_PRECONDITION,
         "external");

  // Only the accepted tell is stored.
  v1::ListTrialsResponse trials = client.Trials(study.id());
  ASSERT_EQ(trials.metrics_size(), 1);
  ASSERT_EQ(trials.metrics(0).metrics_size(), 1);
  EXPECT_EQ(trials.metrics(0).metrics(0).step(), 1);

  // A trial that never told its objective cannot complete; one that ended takes no more tells.
  ASSERT_TRUE(client.Ask(study.id(), 1, &response).ok());
  const int64_t silent = response.trials(0).id();
  expect(client.Tell(study.id(), silent, 0, {}, v1::TRIAL_COMPLETED),
         grpc::StatusCode::INVALID_ARGUMENT, "objective 'loss'");
  ASSERT_TRUE(client.Tell(study.id(), silent, 0, {}, v1::TRIAL_FAILED).ok());
  expect(client.Tell(study.id(), silent, 0, {{"loss", 1.0}}), grpc::StatusCode::FAILED_PRECONDITION,
         "already ended");
}

// A coordinator restarted between tells continues exactly: the trials asked after the restart
// are the ones an uninterrupted coordinator would have made.
TEST(AskTellTest, RestartedCoordinatorAsksTheSameTrialsAsAnUninterruptedOne) {
  auto run = [](bool restart) {
    const std::string db = TempDb(restart ? "restart.db" : "straight.db");
    std::unique_ptr<Server> server = StartServer(db);
    auto client = std::make_unique<Client>(server->port());
    v1::Study study;
    EXPECT_TRUE(client->Create(Spec(), &study).ok());
    std::vector<std::string> points;
    for (int round = 0; round < 5; ++round) {
      if (restart && (round == 2 || round == 4)) {
        client.reset();
        server.reset();
        server = StartServer(db);
        client = std::make_unique<Client>(server->port());
      }
      v1::AskResponse response;
      EXPECT_TRUE(client->Ask(study.id(), 2, &response).ok());
      for (const v1::Trial& trial : response.trials()) {
        points.push_back(
            absl::StrCat(trial.id(), ":", ScalarOf(trial, "x"), ":", ScalarOf(trial, "width")));
        TrainAndTell(*client, study.id(), trial);
      }
    }
    const v1::Study done = client->Get(study.id());
    EXPECT_EQ(done.state(), v1::STUDY_COMPLETED);
    points.push_back(absl::StrCat("best ", done.best_trial().id()));
    client.reset();
    server.reset();
    std::filesystem::remove(db);
    return points;
  };
  const std::vector<std::string> straight = run(false);
  EXPECT_EQ(straight.size(), 11u);
  EXPECT_EQ(run(true), straight);
}

TEST(AskTellTest, CallsWithoutTheTokenAreRefusedBeforeTheyChangeAnything) {
  const std::string db = TempDb("token.db");
  std::unique_ptr<Server> server = StartServer(db, "secret");
  ASSERT_NE(server, nullptr);
  Client stranger(server->port());
  v1::Study study;
  EXPECT_EQ(stranger.Create(Spec(), &study).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  Client owner(server->port(), "secret");
  v1::ListStudiesResponse studies;
  ASSERT_TRUE(owner.List(&studies).ok());
  EXPECT_EQ(studies.studies_size(), 0);
  server.reset();
  std::filesystem::remove(db);
}

}  // namespace
}  // namespace hippo::coordinator
