// The command trainer against a small Python program (testdata/command_fixture.py): what
// reaches the program, metrics and checkpoints, bit-identical staged training, mid-stage
// checkpoint requests, and every way a program can fail.
#include "workers/command_trainer.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/support/temp_dir.h"

namespace hippo::workers {
namespace {

namespace fs = std::filesystem;
using stage_tree::Segment;
using stage_tree::SegmentFunction;

constexpr char kTestData[] = HIPPO_TEST_DATA_DIR;

// A scratch directory per test, removed with its contents.
class ScratchDir : public test_support::TempDir {
 public:
  ScratchDir() : TempDir("command-test") {}
};

// lr: linear from 0.1 to 0.0 over [0, 6), then 0.05 from step 6 on.
std::vector<Segment> LrSegments(Step end) {
  return {Segment{.start = 0, .end = 6, .function = SegmentFunction::Linear(0.1, 0.0, 0, 6)},
          Segment{.start = 6, .end = end, .function = SegmentFunction::Constant(0.05)}};
}

StageTask Task(Step start, Step end, const std::string& config_json = R"({"mode": "train"})") {
  StageTask task;
  task.attempt_id = 7;
  task.stage_id = 42;
  task.start_step = start;
  task.end_step = end;
  task.parameters["lr"] = LrSegments(12);
  task.static_parameters["width"] = 64.0;
  task.trainer_kind = "command";
  task.trainer_config_json = config_json;
  task.command = {"/usr/bin/python3", std::string(kTestData) + "/command_fixture.py"};
  task.seed = 5;
  task.checkpoint_steps = {end};
  return task;
}

struct StageRun {
  absl::Status status;
  std::map<Step, Metrics> metrics;
  // Serialised states handed to the checkpoint callback, by step.
  std::map<Step, std::string> checkpoints;
};

StageRun Train(CommandTrainer& trainer, const StageTask& task, TrainingState& state,
               StageControl& control, std::function<void(Step)> on_step = nullptr) {
  control.SetAssignedCheckpoints(task.checkpoint_steps);
  StageRun run;
  TrainCallbacks callbacks;
  callbacks.progress = [&](Step step, const Metrics& metrics) {
    EXPECT_FALSE(run.metrics.contains(step)) << "step " << step << " reported twice";
    run.metrics[step] = metrics;
    if (on_step) on_step(step);
  };
  callbacks.checkpoint = [&](Step step, const TrainingState& at) -> absl::Status {
    EXPECT_EQ(at.step(), step);
    absl::StatusOr<std::string> bytes = at.Serialize();
    if (!bytes.ok()) return bytes.status();
    run.checkpoints[step] = *bytes;
    return absl::OkStatus();
  };
  absl::StatusOr<StageOutcome> outcome = trainer.Train(task, state, control, callbacks);
  run.status = outcome.status();
  return run;
}

// The fixture runs under /usr/bin/python3: a trainer allowing that directory.
AllowedPrograms PythonDirectory() {
  absl::StatusOr<AllowedPrograms> allowed = AllowedPrograms::Create({"/usr/bin"});
  EXPECT_TRUE(allowed.ok()) << allowed.status();
  return allowed.ok() ? *std::move(allowed) : AllowedPrograms();
}

StageRun TrainFresh(const StageTask& task) {
  CommandTrainer trainer(PythonDirectory());
  absl::StatusOr<std::unique_ptr<TrainingState>> state = trainer.NewState(task);
  EXPECT_TRUE(state.ok()) << state.status();
  StageControl control;
  return Train(trainer, task, **state, control);
}

// Alive and not a zombie, per /proc.
bool ProcessAlive(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat) return false;
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(") ");
  if (paren == std::string::npos || paren + 2 >= text.size()) return false;
  const char state = text[paren + 2];
  return state != 'Z' && state != 'X';
}

bool GoneWithin(pid_t pid, absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  while (ProcessAlive(pid)) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

std::pair<pid_t, pid_t> ReadPids(const std::string& path) {
  std::ifstream file(path);
  pid_t program = 0;
  pid_t grandchild = 0;
  file >> program >> grandchild;
  return {program, grandchild};
}

TEST(CommandTrainerTest, ConfigFileAndEnvironmentReachTheProgramForEveryStep) {
  ScratchDir dir;
  StageTask task = Task(4, 9,
                        absl::StrCat(R"({"mode": "echo", "env": {"MY_VAR": 2.5}, "working_dir": ")",
                                     kTestData, R"("})"));
  CommandTrainer trainer(PythonDirectory());
  auto state = *trainer.NewState(task);
  // Train [0, 4) first so that the state at 4 holds a checkpoint the program wrote.
  StageControl first_control;
  StageRun first = Train(trainer, Task(0, 4, task.trainer_config_json), *state, first_control);
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_EQ(first.metrics.at(0).at("has_in"), 0);
  EXPECT_EQ(first.metrics.at(0).at("in_matches"), 1);  // both absent

  StageControl control;
  StageRun run = Train(trainer, task, *state, control);
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.metrics.size(), 5u);
  for (Step step = 4; step < 9; ++step) {
    const Metrics& metrics = run.metrics.at(step);
    EXPECT_EQ(metrics.at("lr"), *task.ValueAt("lr", step)) << "step " << step;
    EXPECT_EQ(metrics.at("env_start"), 4);
    EXPECT_EQ(metrics.at("env_end"), 9);
    EXPECT_EQ(metrics.at("env_seed"), 5);
    EXPECT_EQ(metrics.at("cfg_start"), 4);
    EXPECT_EQ(metrics.at("cfg_end"), 9);
    EXPECT_EQ(metrics.at("cfg_seed"), 5);
    EXPECT_EQ(metrics.at("has_in"), 1);
    EXPECT_EQ(metrics.at("in_matches"), 1);
    EXPECT_EQ(metrics.at("out_matches"), 1);
    EXPECT_EQ(metrics.at("width"), 64);
    EXPECT_EQ(metrics.at("segments"), 2);  // linear [4, 6) and constant [6, 9)
    EXPECT_EQ(metrics.at("my_var"), 2.5);
    EXPECT_EQ(metrics.at("cwd_is_testdata"), 1);
  }
  EXPECT_EQ(state->step(), 9);

  // The file the program reads never depends on the stage id or the attempt.
  StageTask other = Task(0, 4, task.trainer_config_json);
  other.stage_id = 1000;
  other.attempt_id = 2000;
  StageRun again = TrainFresh(other);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.metrics.at(0).at("stable_hash"), first.metrics.at(0).at("stable_hash"));
}

TEST(CommandTrainerTest, StraightAndStagedThroughBytesAndClonesGiveIdenticalMetrics) {
  const StageRun straight = TrainFresh(Task(0, 12));
  ASSERT_TRUE(straight.status.ok()) << straight.status;
  ASSERT_EQ(straight.metrics.size(), 12u);

  CommandTrainer trainer(PythonDirectory());
  // [0, 5) then [5, 12) through Serialize/Deserialize.
  auto state = *trainer.NewState(Task(0, 5));
  StageControl first_control;
  StageRun first = Train(trainer, Task(0, 5), *state, first_control);
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_TRUE(first.checkpoints.contains(5));
  absl::StatusOr<std::unique_ptr<TrainingState>> restored =
      trainer.Deserialize(Task(5, 12), first.checkpoints.at(5));
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->step(), 5);
  // A clone of the in-memory state, trained separately.
  std::unique_ptr<TrainingState> clone = state->Clone();
  StageControl second_control;
  StageRun second = Train(trainer, Task(5, 12), **restored, second_control);
  ASSERT_TRUE(second.status.ok()) << second.status;
  StageControl clone_control;
  StageRun from_clone = Train(trainer, Task(5, 12), *clone, clone_control);
  ASSERT_TRUE(from_clone.status.ok()) << from_clone.status;
  EXPECT_EQ(*clone->Serialize(), *(*restored)->Serialize());

  std::map<Step, Metrics> staged = first.metrics;
  staged.insert(second.metrics.begin(), second.metrics.end());
  EXPECT_EQ(staged, straight.metrics);
  std::map<Step, Metrics> cloned = first.metrics;
  cloned.insert(from_clone.metrics.begin(), from_clone.metrics.end());
  EXPECT_EQ(cloned, straight.metrics);
}

TEST(CommandTrainerTest, CheckpointStepsInsideAStageGiveStatesThatResumeExactly) {
  const StageRun straight = TrainFresh(Task(0, 12));
  ASSERT_TRUE(straight.status.ok()) << straight.status;
  StageTask task = Task(0, 12);
  task.checkpoint_steps = {3, 8, 12};
  const StageRun run = TrainFresh(task);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.metrics, straight.metrics);
  ASSERT_EQ(run.checkpoints.size(), 3u);
  ASSERT_TRUE(run.checkpoints.contains(3) && run.checkpoints.contains(8));

  // Resuming from the state at 8 reproduces steps 8..11.
  CommandTrainer trainer(PythonDirectory());
  auto at8 = trainer.Deserialize(Task(8, 12), run.checkpoints.at(8));
  ASSERT_TRUE(at8.ok()) << at8.status();
  StageControl control;
  StageRun resumed = Train(trainer, Task(8, 12), **at8, control);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  for (Step step = 8; step < 12; ++step)
    EXPECT_EQ(resumed.metrics.at(step), straight.metrics.at(step));
}

TEST(CommandTrainerTest, MidStageRequestsAreHonouredOrRefusedNeverLost) {
  const StageRun straight = TrainFresh(Task(0, 10));
  ASSERT_TRUE(straight.status.ok()) << straight.status;

  CommandTrainer trainer(PythonDirectory());
  StageTask task = Task(0, 10);
  auto state = *trainer.NewState(task);
  StageControl control;
  // Asked before the stage starts: the first run ends there.
  ASSERT_TRUE(control.RequestCheckpoint(4));
  std::map<Step, bool> answers;
  StageRun run = Train(trainer, task, *state, control, [&](Step step) {
    if (step == 1) {
      answers[2] = control.RequestCheckpoint(2);  // inside the running sub-range [0, 4)
      answers[7] = control.RequestCheckpoint(7);  // beyond it
    }
  });
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_FALSE(answers.at(2));
  EXPECT_TRUE(answers.at(7));
  std::vector<Step> written;
  for (const auto& [step, bytes] : run.checkpoints) written.push_back(step);
  EXPECT_EQ(written, (std::vector<Step>{4, 7, 10}));
  EXPECT_TRUE(control.RequestedMidStage(4));
  EXPECT_TRUE(control.RequestedMidStage(7));
  EXPECT_EQ(run.metrics, straight.metrics);
  // Once the stage is over, every step is refused.
  EXPECT_FALSE(control.RequestCheckpoint(9));
}

TEST(CommandTrainerTest, FailingProgramReportsExitStatusAndTheTailOfItsOutput) {
  const StageRun run = TrainFresh(Task(0, 3, R"({"mode": "fail"})"));
  ASSERT_EQ(run.status.code(), absl::StatusCode::kInternal) << run.status;
  const std::string message(run.status.message());
  EXPECT_TRUE(absl::StrContains(message, "exited with status 3")) << message;
  EXPECT_TRUE(absl::StrContains(message, "steps [0, 3)")) << message;
  EXPECT_TRUE(absl::StrContains(message, "error line 30")) << message;
  EXPECT_TRUE(absl::StrContains(message, "error line 11")) << message;
  EXPECT_FALSE(absl::StrContains(message, "error line 10\n")) << message;  // only the last 20

  const StageRun segv = TrainFresh(Task(0, 3, R"({"mode": "segv"})"));
  ASSERT_EQ(segv.status.code(), absl::StatusCode::kInternal) << segv.status;
  EXPECT_TRUE(absl::StrContains(segv.status.message(), "killed by signal 11 (SIGSEGV)"))
      << segv.status;
}

TEST(CommandTrainerTest, HangingProgramIsKilledWithItsGroupAtTheTimeout) {
  ScratchDir dir;
  // The program ignores SIGTERM, so the trainer must escalate to SIGKILL.
  StageTask task = Task(0, 3,
                        absl::StrCat(R"({"mode": "hang", "ignore_term": true, "pid_file": ")",
                                     dir.File("pids"), R"(", "kill_grace_seconds": 0.3})"));
  task.timeout_seconds = 1.5;
  const absl::Time started = absl::Now();
  const StageRun run = TrainFresh(task);
  const absl::Duration took = absl::Now() - started;
  ASSERT_EQ(run.status.code(), absl::StatusCode::kDeadlineExceeded) << run.status;
  EXPECT_TRUE(absl::StrContains(run.status.message(), "timeout_seconds")) << run.status;
  EXPECT_GE(took, absl::Seconds(1.5));
  EXPECT_LT(took, absl::Seconds(5));  // timeout + grace + slack for a loaded machine
  const auto [program, grandchild] = ReadPids(dir.File("pids"));
  ASSERT_GT(program, 0);
  ASSERT_GT(grandchild, 0);
  EXPECT_FALSE(ProcessAlive(program));
  EXPECT_TRUE(GoneWithin(grandchild, absl::Seconds(2)));
}

TEST(CommandTrainerTest, CancellationKillsTheProgramPromptly) {
  ScratchDir dir;
  StageTask task =
      Task(0, 3, absl::StrCat(R"({"mode": "hang", "pid_file": ")", dir.File("pids"), R"("})"));
  CommandTrainer trainer(PythonDirectory());
  auto state = *trainer.NewState(task);
  StageControl control;
  std::thread canceller([&] {
    while (!std::filesystem::exists(dir.File("pids"))) absl::SleepFor(absl::Milliseconds(10));
    control.Cancel();
  });
  const absl::Time started = absl::Now();
  StageRun run = Train(trainer, task, *state, control);
  canceller.join();
  EXPECT_EQ(run.status.code(), absl::StatusCode::kCancelled) << run.status;
  EXPECT_LT(absl::Now() - started, absl::Seconds(10));
  EXPECT_EQ(state->step(), 0);  // still at a step boundary
  const auto [program, grandchild] = ReadPids(dir.File("pids"));
  EXPECT_FALSE(ProcessAlive(program));
  EXPECT_TRUE(GoneWithin(grandchild, absl::Seconds(2)));
}

TEST(CommandTrainerTest, MalformedMetricsLineFailsNamingTheLine) {
  const StageRun run = TrainFresh(Task(0, 3, R"({"mode": "malformed"})"));
  ASSERT_EQ(run.status.code(), absl::StatusCode::kInternal) << run.status;
  // Line 1 is the program's plain text, line 2 step 0, line 3 the broken one.
  EXPECT_TRUE(absl::StrContains(run.status.message(), "stdout line 3")) << run.status;
  EXPECT_TRUE(absl::StrContains(run.status.message(), R"({"step": 1, "loss": )")) << run.status;
  EXPECT_EQ(run.metrics.size(), 1u);

  const StageRun bad_metric = TrainFresh(Task(0, 3, R"({"mode": "bad_metric"})"));
  ASSERT_EQ(bad_metric.status.code(), absl::StatusCode::kInternal) << bad_metric.status;
  EXPECT_TRUE(absl::StrContains(bad_metric.status.message(), "metric \"note\" is not a number"))
      << bad_metric.status;
}

TEST(CommandTrainerTest, MissingStepsOrCheckpointFailTheStage) {
  const StageRun missing_steps = TrainFresh(Task(0, 3, R"({"mode": "missing_steps"})"));
  ASSERT_EQ(missing_steps.status.code(), absl::StatusCode::kInternal) << missing_steps.status;
  EXPECT_TRUE(absl::StrContains(missing_steps.status.message(), "after reporting steps up to 0"))
      << missing_steps.status;

  const StageRun no_checkpoint = TrainFresh(Task(0, 3, R"({"mode": "no_checkpoint"})"));
  ASSERT_EQ(no_checkpoint.status.code(), absl::StatusCode::kInternal) << no_checkpoint.status;
  EXPECT_TRUE(absl::StrContains(no_checkpoint.status.message(), "output checkpoint"))
      << no_checkpoint.status;
}

TEST(CommandTrainerTest, NonMetricOutputGoesToTheLogFile) {
  ScratchDir dir;
  const StageRun run = TrainFresh(
      Task(0, 2, absl::StrCat(R"({"mode": "train", "log_file": ")", dir.File("log"), R"("})")));
  ASSERT_TRUE(run.status.ok()) << run.status;
  std::ifstream log(dir.File("log"));
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "[steps 0-2] training steps [0, 2)\n");
}

TEST(CommandTrainerTest, BadConfigAndMissingProgramAreExplained) {
  CommandTrainer trainer(PythonDirectory());
  StageTask no_command = Task(0, 2);
  no_command.command.clear();
  absl::StatusOr<std::unique_ptr<TrainingState>> fresh = trainer.NewState(no_command);
  ASSERT_EQ(fresh.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(fresh.status().message(), "trainer.command")) << fresh.status();

  StageTask reserved = Task(0, 2, R"({"env": {"HIPPO_SEED": "1"}})");
  absl::StatusOr<std::unique_ptr<TrainingState>> state = trainer.NewState(reserved);
  ASSERT_EQ(state.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(state.status().message(), "config.env.HIPPO_SEED"));

  StageTask missing = Task(0, 2);
  missing.command = {"hippo-no-such-program"};
  const StageRun run = TrainFresh(missing);
  EXPECT_EQ(run.status.code(), absl::StatusCode::kNotFound) << run.status;
  EXPECT_TRUE(absl::StrContains(run.status.message(), "hippo-no-such-program")) << run.status;

  StageTask loader = Task(0, 2, R"({"env": {"LD_PRELOAD": "/tmp/x.so"}})");
  EXPECT_EQ(trainer.NewState(loader).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CommandTrainerTest, ProgramsOutsideTheAllowedDirectoriesNeverStart) {
  ScratchDir dir;
  const std::string marker = dir.File("ran");
  const std::string script = dir.File("mark.sh");
  {
    std::ofstream out(script);
    out << "#!/bin/sh\ntouch " << marker << "\n";
  }
  fs::permissions(script, fs::perms::owner_all);
  StageTask task = Task(0, 2);
  task.command = {script};

  CommandTrainer nothing_allowed;  // what a trainer made without --allow-dir does
  auto state = *nothing_allowed.NewState(task);
  StageControl control;
  StageRun refused = Train(nothing_allowed, task, *state, control);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kPermissionDenied) << refused.status;
  EXPECT_TRUE(absl::StrContains(refused.status.message(), "--allow-dir")) << refused.status;

  const StageRun elsewhere = TrainFresh(task);  // only /usr/bin allowed
  EXPECT_EQ(elsewhere.status.code(), absl::StatusCode::kPermissionDenied) << elsewhere.status;
  EXPECT_TRUE(absl::StrContains(elsewhere.status.message(), "outside")) << elsewhere.status;
  EXPECT_FALSE(fs::exists(marker)) << "a refused program ran";
}

TEST(CommandTrainerTest, TheCoordinatorTokenIsNotInTheProgramsEnvironment) {
  ScratchDir dir;
  // A program that prints its environment (not metrics lines: they go to the log file).
  const fs::path programs = dir.path() / "programs";
  fs::create_directories(programs);
  {
    std::ofstream out(programs / "print-env.sh");
    out << "#!/bin/sh\n"
           "env\n"
           "echo '{\"step\": 0, \"loss\": 1}'\n"
           "echo state > \"$HIPPO_CHECKPOINT_OUT\"\n";
  }
  fs::permissions(programs / "print-env.sh", fs::perms::owner_all);
  absl::StatusOr<AllowedPrograms> allowed = AllowedPrograms::Create({programs.string()});
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  CommandTrainer trainer(*std::move(allowed));
  const std::string log = dir.File("env.log");
  StageTask task = Task(0, 1, absl::StrCat(R"({"log_file": ")", log, R"("})"));
  task.command = {"print-env.sh"};  // relative: looked up in the allowed directory

  ASSERT_EQ(setenv("HIPPO_TOKEN", "s3cret-token", 1), 0);
  ASSERT_EQ(setenv("HIPPO_TOKEN_FILE", "/etc/hippo/token", 1), 0);
  ASSERT_EQ(setenv("HIPPO_TEST_VISIBLE", "passed-through", 1), 0);
  auto state = *trainer.NewState(task);
  StageControl control;
  const StageRun run = Train(trainer, task, *state, control);
  unsetenv("HIPPO_TOKEN");
  unsetenv("HIPPO_TOKEN_FILE");
  unsetenv("HIPPO_TEST_VISIBLE");
  ASSERT_TRUE(run.status.ok()) << run.status;

  std::ifstream in(log);
  const std::string printed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(absl::StrContains(printed, "HIPPO_TEST_VISIBLE=passed-through")) << printed;
  EXPECT_TRUE(absl::StrContains(printed, "HIPPO_START_STEP=0")) << printed;
  EXPECT_FALSE(absl::StrContains(printed, "s3cret-token")) << printed;
  EXPECT_FALSE(absl::StrContains(printed, "HIPPO_TOKEN")) << printed;
}

TEST(CommandTrainerTest, StatesRoundTripAndForeignBytesAreRefused) {
  CommandTrainer trainer(PythonDirectory());
  StageTask task = Task(0, 2);
  EXPECT_EQ(trainer.Deserialize(task, "not a state").status().code(), absl::StatusCode::kDataLoss);
  const StageRun run = TrainFresh(task);
  ASSERT_TRUE(run.status.ok()) << run.status;
  auto restored = trainer.Deserialize(task, run.checkpoints.at(2));
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*(*restored)->Serialize(), run.checkpoints.at(2));
  auto* command_state = dynamic_cast<CommandState*>(restored->get());
  ASSERT_NE(command_state, nullptr);
  ASSERT_TRUE(command_state->checkpoint().has_value());
  EXPECT_TRUE(absl::StrContains(*command_state->checkpoint(), "\"step\": 2"));
  EXPECT_GT((*restored)->SizeBytes(), static_cast<int64_t>(command_state->checkpoint()->size()));
}

TEST(CommandTrainerTest, IsABuiltinKindThatRunsNothingUntilDirectoriesAreAllowed) {
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = MakeBuiltinTrainer("command");
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_EQ((*trainer)->kind(), "command");
  const StageTask task = Task(0, 2);
  auto state = *(*trainer)->NewState(task);
  StageControl control;
  EXPECT_EQ((*trainer)->Train(task, *state, control, TrainCallbacks{}).status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace hippo::workers
