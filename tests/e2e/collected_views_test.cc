// The read views after checkpoint collection, with real processes: a coordinator that deletes
// the checkpoints of a study as it ends, workers writing real files, the views read over gRPC,
// `hippo tree` and the dashboard's JSON API. A stage whose state was collected was trained: it
// reads as done, its trials as having reached their targets, and only its missing
// checkpoint_uri says that its state is no longer on disk.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::hippo::v1;
using nlohmann::json;

// Four grid trials of 80 steps sharing their first 40 (then pairwise up to 60): stages shared
// by several trials, all collected once the study ends.
constexpr char kSpec[] = R"(name: collected
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer:
  kind: sim
  seed: 0
  config: {model: resnet20, batch_size: 128, virtual_time: true, state_bytes: 4096}
search_space:
  parameters:
    - name: lr
      sequence:
        step_decay:
          initial: {value: 0.1}
          milestones: {choices: [{steps: [40]}, {steps: [40, 60]}]}
          gamma: {choices: {values: [0.1, 0.5]}}
algorithm: {name: grid, seed: 0}
budget: {max_steps: 80}
)";

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool DirectoryEmpty(const std::string& directory) {
  std::error_code error;
  return fs::is_empty(directory, error) || error;
}

// Collects until the checkpoint directory is empty (the workers deleted every released file).
bool WaitUntilEmpty(const std::string& address, const std::string& directory) {
  for (int i = 0; i < 200 && !DirectoryEmpty(directory); ++i) {
    v1::CollectGarbageResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    (void)Connect(address)->CollectGarbage(&context, v1::CollectGarbageRequest(), &response);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return DirectoryEmpty(directory);
}

// GET `path` from the dashboard with the coordinator's token, as JSON (null on failure).
json DashboardGet(httplib::Client& http, const std::string& token, const std::string& path) {
  const httplib::Result result = http.Get(path, {{"x-hippo-token", token}});
  if (!result || result->status != 200) return json();
  return json::parse(result->body, nullptr, /*allow_exceptions=*/false);
}

// JSON int64 fields are strings (protobuf's JSON mapping); absent means 0.
int64_t Int(const json& value) {
  if (value.is_string()) return std::stoll(value.get<std::string>());
  return value.is_number() ? value.get<int64_t>() : 0;
}

TEST(CollectedViewsTest, CollectedStagesStillReadAsTrainedInEveryView) {
  TempDir dir;
  const std::string spec_path = dir.File("study.yaml");
  std::ofstream(spec_path) << kSpec;
  Cluster cluster(dir, /*workers=*/2, {"--checkpoint-gc", "--http", "127.0.0.1:0"});
  const std::string study_id = cluster.Submit(spec_path);
  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(cluster.address(), study_id, std::chrono::seconds(120));
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_EQ(ended->study.state(), v1::STUDY_COMPLETED);
  // Every state was collected as the study ended: nothing of it is on disk.
  ASSERT_TRUE(WaitUntilEmpty(cluster.address(), dir.File("checkpoints")));

  // The study's step counts: each trial up to its target.
  absl::StatusOr<v1::Study> study = GetStudy(cluster.address(), study_id);
  ASSERT_TRUE(study.ok()) << study.status();
  EXPECT_EQ(study->steps().trial_steps(), 4 * 80);
  EXPECT_EQ(study->steps().reached_trial_steps(), study->steps().trial_steps());
  ASSERT_TRUE(study->has_best_trial());
  EXPECT_EQ(study->best_trial().reached_step(), 80);

  // The trials reached their targets.
  absl::StatusOr<v1::ListTrialsResponse> trials = TrialsWithMetrics(cluster.address(), study_id);
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->trials_size(), 4);
  for (const v1::Trial& trial : trials->trials()) {
    EXPECT_EQ(trial.reached_step(), trial.target_step()) << "trial " << trial.id();
    EXPECT_EQ(trial.target_step(), 80);
  }

  // Every stage is done, and none names a checkpoint: its state is no longer on disk.
  v1::GetStageTreeRequest request;
  request.set_study_id(study_id);
  v1::StageTree tree;
  grpc::ClientContext context;
  ASSERT_TRUE(Connect(cluster.address())->GetStageTree(&context, request, &tree).ok());
  ASSERT_GE(tree.stages_size(), 4);
  for (const v1::Stage& stage : tree.stages()) {
    EXPECT_EQ(stage.state(), v1::STAGE_DONE) << stage.ShortDebugString();
    EXPECT_EQ(stage.checkpoint_uri(), "") << stage.ShortDebugString();
  }
  EXPECT_EQ(tree.steps().reached_trial_steps(), 4 * 80);

  // `hippo tree` says so.
  const CommandResult shown = RunHippo({"tree", study_id, "--coordinator", cluster.address()});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_NE(shown.output.find("not kept"), std::string::npos) << shown.output;
  EXPECT_EQ(shown.output.find("ready"), std::string::npos) << shown.output;
  EXPECT_EQ(shown.output.find("pending"), std::string::npos) << shown.output;

  // The dashboard's JSON, made from the same views.
  const std::string log = ReadText(dir.File("server.log"));
  std::smatch url;
  ASSERT_TRUE(std::regex_search(
      log, url, std::regex("dashboard at http://127\\.0\\.0\\.1:(\\d+)/\\?token=(\\w+)")))
      << log;
  httplib::Client http("127.0.0.1", std::stoi(url[1]));
  const std::string token = url[2];
  // The dashboard mirrors the engine once someone reads it: poll until it shows the four trials.
  json page;
  for (int i = 0; i < 100; ++i) {
    page = DashboardGet(http, token, "/api/v1/studies/" + study_id + "/trials");
    if (page.is_object() && page.value("trials", json::array()).size() == 4) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(page.is_object()) << "no trials page from the dashboard";
  ASSERT_EQ(page.value("trials", json::array()).size(), 4u) << page.dump();
  for (const json& row : page["trials"]) {
    EXPECT_EQ(Int(row["trial"]["reached_step"]), 80) << row.dump();
  }
  const json window = DashboardGet(http, token, "/api/v1/studies/" + study_id + "/tree");
  ASSERT_TRUE(window.is_object()) << "no tree from the dashboard";
  // The window holds the family's root (stage id 0, absent in JSON) and then the stages.
  int stages = 0;
  for (const json& node : window.value("nodes", json::array())) {
    const json stage = node.is_object() ? node.value("stage", json::object()) : json::object();
    if (!stage.contains("id") || Int(stage["id"]) == 0) continue;
    ++stages;
    EXPECT_EQ(stage.value("state", ""), "STAGE_DONE") << node.dump();
    EXPECT_FALSE(stage.contains("checkpoint_uri")) << node.dump();
  }
  EXPECT_EQ(stages, tree.stages_size()) << window.dump();
  EXPECT_EQ(Int(window["steps"]["reached_trial_steps"]), 4 * 80) << window.dump();
}

}  // namespace
}  // namespace hippo::e2e
