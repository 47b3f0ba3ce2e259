// Fixtures shared by the engine tests (engine_dispatch_test.cc, engine_split_test.cc): a
// recording worker channel, the small grid study, fresh SQLite paths and an in-test worker that
// trains one Assign.
#ifndef HIPPO_TESTS_HIPPO_ENGINE_TEST_SUPPORT_H_
#define HIPPO_TESTS_HIPPO_ENGINE_TEST_SUPPORT_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "hippo/engine.h"

namespace hippo::coordinator::engine_test {

namespace v1 = ::hippo::v1;

class RecordingChannel : public WorkerChannel {
 public:
  bool Send(v1::CoordinatorMessage message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    messages_.push_back(std::move(message));
    return true;
  }
  std::optional<v1::CoordinatorMessage> Next() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (messages_.empty()) return std::nullopt;
    v1::CoordinatorMessage message = messages_.front();
    messages_.pop_front();
    return message;
  }

 private:
  std::mutex mutex_;
  std::deque<v1::CoordinatorMessage> messages_;
};

// Two trials that share [0, 50) of their learning rate, then differ.
inline v1::StudySpec SmallGrid() {
  v1::StudySpec spec;
  spec.set_name("small");
  spec.mutable_objective()->set_metric("score");
  spec.mutable_objective()->set_direction(v1::MAXIMIZE);
  spec.mutable_trainer()->set_kind("sim");
  v1::Parameter* lr = spec.mutable_search_space()->add_parameters();
  lr->set_name("lr");
  v1::StepDecaySequence* decay = lr->mutable_sequence()->mutable_step_decay();
  decay->mutable_initial()->set_value(0.1);
  decay->mutable_gamma()->mutable_choices()->add_values(0.1);
  decay->mutable_gamma()->mutable_choices()->add_values(0.5);
  decay->mutable_milestones()->add_choices()->add_steps(50);
  spec.mutable_algorithm()->set_name("grid");
  spec.mutable_budget()->set_max_steps(100);
  return spec;
}

// Deletes, when the test process exits, the databases TempDb named and SQLite's files beside
// them (a test may reopen its database after a simulated restart, so not before).
class TempDbFiles {
 public:
  ~TempDbFiles() {
    for (const std::string& path : paths_) {
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        std::error_code ignored;  // a file the test never created is not an error
        std::filesystem::remove(path + suffix, ignored);
      }
    }
  }
  void Add(std::string path) { paths_.push_back(std::move(path)); }

 private:
  std::vector<std::string> paths_;
};

inline std::string TempDb() {
  static TempDbFiles files;
  static int counter = 0;
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("hippo-engine-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + ".db");
  std::filesystem::remove(path);
  files.Add(path.string());
  return path.string();
}

inline v1::WorkerHello Hello(const std::string& id) {
  v1::WorkerHello hello;
  hello.set_worker_id(id);
  hello.add_trainers("sim");
  return hello;
}

// Plays a worker for one Assign: a score per step that depends on the lr, then the end
// checkpoint and the finish; `packed`: the last step's progress, the checkpoint and the finish
// go as one Reports message, as the worker runtime sends them.
inline void Train(Engine& engine, const std::string& worker, const v1::Assign& assign,
                  bool packed = false) {
  std::vector<v1::WorkerMessage> reports;
  for (int64_t step = assign.start_step(); step < assign.end_step(); ++step) {
    v1::WorkerMessage& progress = reports.emplace_back();
    progress.mutable_progress()->set_attempt_id(assign.attempt_id());
    progress.mutable_progress()->set_step(step);
    double lr = 0;
    for (const v1::Segment& segment : assign.parameters(0).segments()) {
      if (step >= segment.start() && step < segment.end()) lr = segment.constant();
    }
    (*progress.mutable_progress()->mutable_metrics())["score"] = step + lr;
  }
  v1::WorkerMessage& checkpoint = reports.emplace_back();
  checkpoint.mutable_checkpoint()->set_attempt_id(assign.attempt_id());
  checkpoint.mutable_checkpoint()->set_stage_id(assign.stage_id());
  checkpoint.mutable_checkpoint()->set_step(assign.end_step());
  checkpoint.mutable_checkpoint()->set_uri("file:///checkpoints/" +
                                           std::to_string(assign.stage_id()));
  v1::WorkerMessage& finished = reports.emplace_back();
  finished.mutable_finished()->set_attempt_id(assign.attempt_id());
  finished.mutable_finished()->set_ok(true);
  const size_t one_by_one = packed ? reports.size() - 3 : reports.size();
  for (size_t i = 0; i < one_by_one; ++i) {
    ASSERT_TRUE(engine.OnWorkerMessage(worker, reports[i]).ok());
  }
  if (!packed) return;
  v1::WorkerMessage end;
  for (size_t i = one_by_one; i < reports.size(); ++i) {
    *end.mutable_reports()->add_messages() = reports[i];
  }
  ASSERT_TRUE(engine.OnWorkerMessage(worker, end).ok());
}

}  // namespace hippo::coordinator::engine_test

#endif  // HIPPO_TESTS_HIPPO_ENGINE_TEST_SUPPORT_H_
