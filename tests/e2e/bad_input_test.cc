// Bad input through the command line: every spec of the corpus gets exit code 2 and a message
// naming its field, and the coordinator's database is unchanged. And straight over the RPC,
// where no client-side check runs first: the server's own validation refuses each spec with
// INVALID_ARGUMENT naming the field, and stores nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "search_algos/spec_checks.h"
#include "tests/proto/bad_spec_corpus.h"
#include "tests/support/db_digest.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;

std::string Bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

TEST(BadInputTest, EveryBrokenSpecIsRefusedWithItsFieldAndChangesNothingStored) {
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const std::string db = dir.File("hippo.db");
  Process server({"server", "--listen", address, "--db", db}, dir.File("server.log"));
  ASSERT_TRUE(WaitForServer(address));
  const std::string before = test_support::DatabaseSha256(db);
  for (const auto& bad : proto::testing_corpus::Corpus()) {
    const std::string path = proto::testing_corpus::CorpusDirectory() + bad.file;
    const CommandResult result = RunHippo({"submit", path, "--coordinator", address});
    EXPECT_EQ(result.exit_code, 2) << bad.file << ": " << result.output;
    EXPECT_NE(result.output.find(bad.expected), std::string::npos)
        << bad.file << ": " << result.output;
  }
  const CommandResult missing =
      RunHippo({"submit", dir.File("does-not-exist.yaml"), "--coordinator", address});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.output.find("does-not-exist.yaml"), std::string::npos);
  EXPECT_EQ(test_support::DatabaseSha256(db), before);
  const CommandResult studies = RunHippo({"studies", "--coordinator", address, "--json"});
  EXPECT_EQ(studies.exit_code, 0);
  EXPECT_EQ(studies.output.find("\"id\""), std::string::npos) << studies.output;
}

// A valid spec, to break one field at a time.
v1::StudySpec ValidSpec() {
  absl::StatusOr<v1::StudySpec> spec = search_algos::ParseStudySpec(R"yaml(
name: valid
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer: {kind: sim, step_unit: epoch, config: {dropout: 0.25, layers: [32, 64]}}
search_space:
  parameters:
    - {name: lr, float: {low: 0.001, high: 0.1, log: true}}
    - {name: act, fixed: relu}
algorithm: {name: random}
budget: {max_steps: 10, max_trials: 2}
)yaml",
                                                                    "valid.yaml");
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

TEST(BadInputTest, CreateStudyOverTheRpcRefusesEachBrokenFieldAndStoresNothing) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  struct Case {
    std::string expected;  // the start of the message: the field path, and what is wrong
    std::function<void(v1::StudySpec&)> breaks;
  };
  const std::vector<Case> cases = {
      {"search_space.parameters[1].fixed: must be a finite number (got nan)",
       [&](v1::StudySpec& spec) {
         spec.mutable_search_space()->mutable_parameters(1)->mutable_fixed()->set_number_value(
             kNaN);
       }},
      {"search_space.parameters[0].float.low: must be a finite number (got nan)",
       [&](v1::StudySpec& spec) {
         spec.mutable_search_space()->mutable_parameters(0)->mutable_float_()->set_low(kNaN);
       }},
      {"trainer.config.layers[1]: must be a finite number (got -inf)",
       [&](v1::StudySpec& spec) {
         (*spec.mutable_trainer()->mutable_config()->mutable_fields())["layers"]
             .mutable_list_value()
             ->mutable_values(1)
             ->set_number_value(-kInf);
       }},
      {"resources.weight: must be a finite number (got inf)",
       [&](v1::StudySpec& spec) { spec.mutable_resources()->set_weight(kInf); }},
      {"budget.max_wall_seconds: must be a finite number (got nan)",
       [&](v1::StudySpec& spec) { spec.mutable_budget()->set_max_wall_seconds(kNaN); }},
      {"objective.metric: required", [](v1::StudySpec& spec) { spec.clear_objective(); }},
      {"objective.direction: required",
       [](v1::StudySpec& spec) { spec.mutable_objective()->clear_direction(); }},
      {"algorithm.name: unknown algorithm \"bayesopt\"",
       [](v1::StudySpec& spec) { spec.mutable_algorithm()->set_name("bayesopt"); }},
      {"trainer.kind: required", [](v1::StudySpec& spec) { spec.clear_trainer(); }},
      {"trainer.step_unit: unknown unit \"batch\"",
       [](v1::StudySpec& spec) { spec.mutable_trainer()->set_step_unit("batch"); }},
      {"resources.gpus_per_stage: a stage trains on one device",
       [](v1::StudySpec& spec) { spec.mutable_resources()->set_gpus_per_stage(2); }},
      {"resources.checkpoint_every_steps: must not be negative (got -5)",
       [](v1::StudySpec& spec) { spec.mutable_resources()->set_checkpoint_every_steps(-5); }},
      {"budget.max_wall_seconds: must not be negative (got -2)",
       [](v1::StudySpec& spec) { spec.mutable_budget()->set_max_wall_seconds(-2); }},
      {"budget.max_steps: must be > 0", [](v1::StudySpec& spec) { spec.clear_budget(); }},
      {"search_space.parameters: empty",
       [](v1::StudySpec& spec) { spec.mutable_search_space()->clear_parameters(); }},
      // Bounded inputs (docs/security.md): none of these may reach the engine.
      {"name: holds a control character (code 0) at position 3",
       [](v1::StudySpec& spec) { spec.set_name(std::string("bad\0name", 8)); }},
      {"search_space.parameters[0].name: too long: 300 characters, at most 256",
       [](v1::StudySpec& spec) {
         spec.mutable_search_space()->mutable_parameters(0)->set_name(std::string(300, 'p'));
       }},
      {"objective.metric: too long: 257 characters, at most 256",
       [](v1::StudySpec& spec) { spec.mutable_objective()->set_metric(std::string(257, 'm')); }},
      {"labels: has 65 entries, at most 64",
       [](v1::StudySpec& spec) {
         for (int i = 0; i < 65; ++i) (*spec.mutable_labels())["k" + std::to_string(i)] = "v";
       }},
      {"labels.team: holds a control character (code 10)",
       [](v1::StudySpec& spec) { (*spec.mutable_labels())["team"] = "a\nb"; }},
      {"budget.max_steps: must be at most 1000000000 (got 9223372036854775807)",
       [](v1::StudySpec& spec) {
         spec.mutable_budget()->set_max_steps(std::numeric_limits<int64_t>::max());
       }},
      {"search_space.parameters[0].int.low: must be within ±2^53",
       [](v1::StudySpec& spec) {
         v1::IntParameter& range =
             *spec.mutable_search_space()->mutable_parameters(0)->mutable_int_();
         range.set_low(-(int64_t{1} << 60));
         range.set_high(0);
       }},
      {"search_space.parameters[1].categorical.values[1]: must be a finite number (got nan)",
       [&](v1::StudySpec& spec) {
         auto& values = *spec.mutable_search_space()
                             ->mutable_parameters(1)
                             ->mutable_categorical()
                             ->mutable_values();
         values.Add()->set_number_value(0.5);
         values.Add()->set_number_value(kNaN);
       }},
      {"search_space.parameters[1].categorical.values[1]: is a string, values[0] a number",
       [](v1::StudySpec& spec) {
         auto& values = *spec.mutable_search_space()
                             ->mutable_parameters(1)
                             ->mutable_categorical()
                             ->mutable_values();
         values.Add()->set_number_value(64);
         values.Add()->set_string_value("128");
       }},
      {"search_space.parameters[1].categorical.values[2]: repeats values[0] (\"relu\")",
       [](v1::StudySpec& spec) {
         auto& values = *spec.mutable_search_space()
                             ->mutable_parameters(1)
                             ->mutable_categorical()
                             ->mutable_values();
         for (const char* value : {"relu", "gelu", "relu"}) values.Add()->set_string_value(value);
       }},
      {"trainer.config: holds most of a spec of",
       [](v1::StudySpec& spec) {
         (*spec.mutable_trainer()->mutable_config()->mutable_fields())["blob"].set_string_value(
             std::string(2 << 20, 'b'));
       }},
      {"search_space.parameters[0]: the grid has more than 1000000 points",
       [](v1::StudySpec& spec) {
         spec.mutable_algorithm()->set_name("grid");
         v1::IntParameter& range =
             *spec.mutable_search_space()->mutable_parameters(0)->mutable_int_();
         range.set_low(1);
         range.set_high(2'000'000);
       }},
  };
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const std::string db = dir.File("hippo.db");
  Process server({"server", "--listen", address, "--db", db}, dir.File("server.log"));
  ASSERT_TRUE(WaitForServer(address));
  const std::string before = test_support::DatabaseSha256(db);
  auto stub = Connect(address);
  for (const Case& bad : cases) {
    v1::CreateStudyRequest request;
    *request.mutable_spec() = ValidSpec();
    bad.breaks(*request.mutable_spec());
    grpc::ClientContext context;
    v1::Study study;
    const grpc::Status status = stub->CreateStudy(&context, request, &study);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << bad.expected << ": " << status.error_message();
    EXPECT_EQ(status.error_message().rfind(bad.expected, 0), 0u)
        << "expected " << bad.expected << "\ngot      " << status.error_message();
  }
  EXPECT_EQ(test_support::DatabaseSha256(db), before);
  grpc::ClientContext context;
  v1::ListStudiesResponse studies;
  ASSERT_TRUE(stub->ListStudies(&context, v1::ListStudiesRequest(), &studies).ok());
  EXPECT_EQ(studies.studies_size(), 0);

  // The valid spec itself is accepted: the cases fail for their own field only.
  grpc::ClientContext create;
  v1::CreateStudyRequest valid;
  *valid.mutable_spec() = ValidSpec();
  v1::Study created;
  EXPECT_TRUE(stub->CreateStudy(&create, valid, &created).ok());
}

TEST(BadInputTest, RunRefusesABrokenSpecWithExitCode2) {
  const std::string path = proto::testing_corpus::CorpusDirectory() + "unknown_field_nested.yaml";
  const CommandResult result = RunHippo({"run", path});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.output.find("algorithm.asha.reduction_factr"), std::string::npos)
      << result.output;
}

TEST(BadInputTest, ForeignDatabaseIsRefusedAndLeftUntouched) {
  TempDir dir;
  const std::string db = dir.File("notes.db");
  {
    std::ofstream file(db);
    file << "these are my notes, not a database\n";
  }
  const std::string before = Bytes(db);
  const CommandResult result =
      RunHippo({"server", "--listen", "127.0.0.1:" + std::to_string(FreePort()), "--db", db});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find(db), std::string::npos) << result.output;
  EXPECT_EQ(Bytes(db), before);
}

}  // namespace
}  // namespace hippo::e2e
