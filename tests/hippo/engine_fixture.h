// The per-test setup of the engine tests, as a GoogleTest fixture: a fresh SQLite file, a
// store and a recovered engine on it, workers connected through recording channels, and a
// restart (the engine and store closed and opened again on the same file). The file is removed
// when the test ends, whether it passed or not.
#ifndef HIPPO_TESTS_HIPPO_ENGINE_FIXTURE_H_
#define HIPPO_TESTS_HIPPO_ENGINE_FIXTURE_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "hippo/engine.h"
#include "store/store.h"
#include "tests/hippo/engine_test_support.h"

namespace hippo::coordinator::engine_test {

class EngineTest : public ::testing::Test {
 protected:
  void TearDown() override {
    engine_.reset();
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db_ + suffix);
  }

  // Opens the store on the test's database and an engine with `options` on it, recovered from
  // what the database holds. Called again, it closes the open engine and store first: a
  // coordinator restart. Call it under ASSERT_NO_FATAL_FAILURE.
  void Start(const EngineOptions& options) {
    engine_.reset();
    store_.reset();
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(db_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    engine_ = std::make_unique<Engine>(store_.get(), options);
    const absl::Status recovered = engine_->Recover();
    ASSERT_TRUE(recovered.ok()) << recovered;
  }

  // Connects worker `worker` (trainer "sim") to the engine; the channel records what the engine
  // sends it. A failed connect fails the test.
  std::shared_ptr<RecordingChannel> Connect(const std::string& worker) {
    auto channel = std::make_shared<RecordingChannel>();
    const absl::StatusOr<int64_t> session = engine_->Connect(Hello(worker), channel);
    EXPECT_TRUE(session.ok()) << worker << ": " << session.status();
    return channel;
  }

  // The engine Start opened.
  Engine& engine() { return *engine_; }

 private:
  const std::string db_ = TempDb();
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace hippo::coordinator::engine_test

#endif  // HIPPO_TESTS_HIPPO_ENGINE_FIXTURE_H_
