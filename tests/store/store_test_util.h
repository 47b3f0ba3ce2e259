// Helpers shared by the store tests: a fresh directory per test, raw SQLite access to build
// and inspect files behind the store's back, and equality/printing of the record structs.
#ifndef HIPPO_TESTS_STORE_STORE_TEST_UTIL_H_
#define HIPPO_TESTS_STORE_STORE_TEST_UTIL_H_

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>

#include "gtest/gtest.h"
#include "store/store.h"

namespace hippo::store {

// Every field compared: the round-trip tests rely on these to check "every field".
inline auto Fields(const FamilyRecord& r) {
  return std::tie(r.id, r.key, r.parameter_names, r.inherits_family, r.inherits_lineage,
                  r.inherits_step);
}
inline auto Fields(const StudyRecord& r) {
  return std::tie(r.id, r.name, r.spec_json, r.state, r.created_ms, r.finished_ms, r.no_merge,
                  r.message);
}
inline auto Fields(const TrialRecord& r) {
  return std::tie(r.study_id, r.trial_id, r.family_id, r.tree_trial, r.point_json, r.target_step,
                  r.state, r.forked_from, r.forked_at_step);
}
inline auto Fields(const TreeOp& r) {
  return std::tie(r.family_id, r.sequence, r.kind, r.a, r.b, r.payload);
}
inline auto Fields(const StageRecord& r) {
  return std::tie(r.family_id, r.node_id, r.parent_id, r.lineage, r.start_step, r.end_step, r.state,
                  r.attempts, r.checkpoint_uri, r.worker_id);
}
inline auto Fields(const AttemptRecord& r) {
  return std::tie(r.attempt_id, r.family_id, r.node_id, r.worker_id, r.lease_expires_ms, r.state);
}
inline auto Fields(const CheckpointRecord& r) {
  return std::tie(r.family_id, r.node_id, r.step, r.uri, r.size_bytes, r.checksum);
}
inline auto Fields(const WorkerRecord& r) {
  return std::tie(r.worker_id, r.host, r.hello_json, r.last_seen_ms, r.connected);
}
inline auto Fields(const WorkerHealthRecord& r) {
  return std::tie(r.worker_id, r.consecutive_failures, r.drains, r.drained_until_ms, r.last_error);
}
inline auto Fields(const EventRecord& r) {
  return std::tie(r.sequence, r.study_id, r.kind, r.payload_json, r.time_ms);
}
inline auto Fields(const AlgorithmDelta& r) { return std::tie(r.study_id, r.sequence, r.delta); }

#define HIPPO_STORE_TEST_EQUALITY(Type)                                                   \
  inline bool operator==(const Type& a, const Type& b) { return Fields(a) == Fields(b); } \
  inline void PrintTo(const Type& r, std::ostream* os) {                                  \
    *os << #Type << "{" << ::testing::PrintToString(Fields(r)) << "}";                    \
  }
HIPPO_STORE_TEST_EQUALITY(FamilyRecord)
HIPPO_STORE_TEST_EQUALITY(StudyRecord)
HIPPO_STORE_TEST_EQUALITY(TrialRecord)
HIPPO_STORE_TEST_EQUALITY(TreeOp)
HIPPO_STORE_TEST_EQUALITY(StageRecord)
HIPPO_STORE_TEST_EQUALITY(AttemptRecord)
HIPPO_STORE_TEST_EQUALITY(CheckpointRecord)
HIPPO_STORE_TEST_EQUALITY(WorkerRecord)
HIPPO_STORE_TEST_EQUALITY(WorkerHealthRecord)
HIPPO_STORE_TEST_EQUALITY(EventRecord)
HIPPO_STORE_TEST_EQUALITY(AlgorithmDelta)
#undef HIPPO_STORE_TEST_EQUALITY

// Metrics compare NaN equal to NaN (a stored NaN must come back as NaN).
inline bool operator==(const MetricRecord& a, const MetricRecord& b) {
  bool same_value = (std::isnan(a.value) && std::isnan(b.value)) || a.value == b.value;
  return std::tie(a.family_id, a.lineage, a.step, a.name) ==
             std::tie(b.family_id, b.lineage, b.step, b.name) &&
         same_value;
}
inline void PrintTo(const MetricRecord& r, std::ostream* os) {
  *os << "MetricRecord{" << r.family_id << ", " << r.lineage << ", " << r.step << ", " << r.name
      << ", " << r.value << "}";
}
inline void PrintTo(TreeOpKind kind, std::ostream* os) { *os << static_cast<int>(kind); }

namespace testing_util {

// A fresh, empty directory per test, removed afterwards.
class StoreDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    directory_ = std::filesystem::path(::testing::TempDir()) /
                 (std::string("hippo_store_") + info->test_suite_name() + "_" + info->name() + "_" +
                  std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(directory_);
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  std::string PathOf(const std::string& name) const { return (directory_ / name).string(); }
  std::string DatabasePath() const { return PathOf("hippo.db"); }

  std::filesystem::path directory_;
};

inline std::unique_ptr<Store> OpenOrDie(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

inline bool Exists(const std::string& path) { return std::filesystem::exists(path); }

// A raw SQLite connection, for building files the store must refuse and for peeking at what
// the store wrote.
class RawDatabase {
 public:
  explicit RawDatabase(const std::string& path,
                       int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    int code = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    EXPECT_EQ(code, SQLITE_OK) << "raw open " << path << ": " << sqlite3_errstr(code);
  }
  RawDatabase(const RawDatabase&) = delete;
  RawDatabase& operator=(const RawDatabase&) = delete;
  ~RawDatabase() { sqlite3_close_v2(db_); }

  int Exec(const std::string& sql) {
    char* error = nullptr;
    int code = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(code, SQLITE_OK) << sql << ": " << (error != nullptr ? error : "");
    sqlite3_free(error);
    return code;
  }

  // The first column of the first row, as text ("" when there is no row).
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    int code = sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr);
    EXPECT_EQ(code, SQLITE_OK) << sql << ": " << sqlite3_errmsg(db_);
    std::string result;
    if (code == SQLITE_OK && sqlite3_step(statement) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(statement, 0);
      if (text != nullptr) result = reinterpret_cast<const char*>(text);
    }
    sqlite3_finalize(statement);
    return result;
  }
  int64_t QueryInt(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    int code = sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr);
    EXPECT_EQ(code, SQLITE_OK) << sql << ": " << sqlite3_errmsg(db_);
    int64_t result = 0;
    if (code == SQLITE_OK && sqlite3_step(statement) == SQLITE_ROW) {
      result = sqlite3_column_int64(statement, 0);
    }
    sqlite3_finalize(statement);
    return result;
  }

  sqlite3* handle() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace testing_util
}  // namespace hippo::store

#endif  // HIPPO_TESTS_STORE_STORE_TEST_UTIL_H_
