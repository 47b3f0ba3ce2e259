// Opening a file: new files get the schema and Hippo's markers, existing Hippo files keep their
// data, and anything else is refused and left byte-for-byte as it was.
#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/schema.h"
#include "store/store.h"
#include "tests/store/store_test_util.h"

namespace hippo::store {
namespace {

using ::testing::HasSubstr;
using testing_util::Exists;
using testing_util::OpenOrDie;
using testing_util::RawDatabase;
using testing_util::ReadBytes;
using testing_util::WriteBytes;

using StoreMigration = testing_util::StoreDirectoryTest;

class StoreRefusal : public testing_util::StoreDirectoryTest {
 protected:
  // Opens `path` expecting a refusal that names the file and contains `reason`, and checks
  // that the file and its companions are exactly as they were.
  void ExpectRefusedAndUntouched(const std::string& path, const std::string& reason) {
    const std::string bytes = ReadBytes(path);
    const std::string wal_bytes = ReadBytes(path + "-wal");
    const bool had_wal = Exists(path + "-wal");
    const bool had_shm = Exists(path + "-shm");
    ASSERT_FALSE(bytes.empty());

    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path);
    ASSERT_FALSE(store.ok()) << "opened a file that should be refused";
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
    EXPECT_THAT(std::string(store.status().message()), HasSubstr(path));
    EXPECT_THAT(std::string(store.status().message()), HasSubstr(reason));

    EXPECT_TRUE(ReadBytes(path) == bytes) << "the refused file changed";
    EXPECT_EQ(Exists(path + "-wal"), had_wal);
    EXPECT_EQ(Exists(path + "-shm"), had_shm);
    EXPECT_FALSE(Exists(path + "-journal"));
    EXPECT_TRUE(ReadBytes(path + "-wal") == wal_bytes) << "the refused file's log changed";
  }
};

// The header fields SQLite keeps at fixed offsets, read from the file's bytes.
int64_t BigEndianAt(const std::string& bytes, size_t offset) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i)
    value = (value << 8) | static_cast<unsigned char>(bytes[offset + i]);
  return static_cast<int32_t>(value);
}
constexpr size_t kUserVersionOffset = 60;
constexpr size_t kApplicationIdOffset = 68;

WriteBatch OneStudy(const std::string& id) {
  WriteBatch batch;
  StudyRecord study;
  study.id = id;
  study.name = "kept";
  batch.studies = {study};
  return batch;
}

TEST_F(StoreMigration, NewFileGetsTheSchemaVersionAndHipposApplicationId) {
  {
    std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
    ASSERT_NE(store, nullptr);
  }
  RawDatabase raw(DatabasePath(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), kSchemaVersion);
  EXPECT_EQ(raw.QueryInt("PRAGMA application_id"), internal::kApplicationId);
  EXPECT_EQ(raw.QueryText("PRAGMA journal_mode"), "wal");
  for (const char* table : {"families", "studies", "trials", "tree_ops", "stages", "metrics",
                            "attempts", "checkpoints", "workers", "algorithm_states",
                            "algorithm_journal", "events", "settings", "worker_health"}) {
    EXPECT_EQ(raw.QueryInt(std::string("SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                                       "AND name = '") +
                           table + "'"),
              1)
        << table;
  }
}

TEST_F(StoreMigration, MigrationsAreNumberedOneByOneUpToTheSchemaVersion) {
  std::span<const internal::Migration> migrations = internal::Migrations();
  ASSERT_EQ(migrations.size(), static_cast<size_t>(kSchemaVersion));
  for (size_t i = 0; i < migrations.size(); ++i) {
    EXPECT_EQ(migrations[i].version, static_cast<int>(i) + 1);
  }
}

TEST_F(StoreMigration, EmptyFileBecomesANewDatabase) {
  WriteBytes(DatabasePath(), "");
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Commit(OneStudy("s-1")).ok());
}

TEST_F(StoreMigration, SqliteFileWithNoTablesAndNoMarkerBecomesANewDatabase) {
  {
    RawDatabase raw(DatabasePath());
    raw.Exec("CREATE TABLE t (x); DROP TABLE t;");  // a real, non-empty SQLite file
  }
  ASSERT_GT(ReadBytes(DatabasePath()).size(), 0u);
  {
    std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
    ASSERT_NE(store, nullptr);
  }
  RawDatabase raw(DatabasePath(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), kSchemaVersion);
  EXPECT_EQ(raw.QueryInt("PRAGMA application_id"), internal::kApplicationId);
}

TEST_F(StoreMigration, ReopeningAnExistingDatabaseKeepsItsDataAndVersion) {
  {
    std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Commit(OneStudy("s-kept")).ok());
  }
  for (int reopen = 0; reopen < 2; ++reopen) {
    std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
    ASSERT_NE(store, nullptr);
    absl::StatusOr<std::optional<StudyRecord>> study = store->GetStudy("s-kept");
    ASSERT_TRUE(study.ok()) << study.status();
    ASSERT_TRUE(study->has_value());
    EXPECT_EQ((*study)->name, "kept");
  }
  const std::string bytes = ReadBytes(DatabasePath());
  EXPECT_EQ(BigEndianAt(bytes, kUserVersionOffset), kSchemaVersion);
  EXPECT_EQ(BigEndianAt(bytes, kApplicationIdOffset), internal::kApplicationId);
}

// A database of the schema before families recorded inherited states (the migration "record the
// state a family inherits") opens with its families inheriting nothing, at the current version.
TEST_F(StoreMigration, FamiliesOfTheSchemaBeforeInheritanceMigrateToInheritingNothing) {
  int before = 0;
  for (const internal::Migration& migration : internal::Migrations()) {
    if (migration.description == absl::string_view("record the state a family inherits")) {
      before = migration.version - 1;
    }
  }
  ASSERT_GT(before, 0) << "no migration adds the families' inherits_* columns";
  {
    RawDatabase raw(DatabasePath());
    for (const internal::Migration& migration : internal::Migrations()) {
      if (migration.version > before) break;
      raw.Exec(std::string(migration.sql));
    }
    raw.Exec("PRAGMA application_id = " + std::to_string(internal::kApplicationId));
    raw.Exec("PRAGMA user_version = " + std::to_string(before));
    raw.Exec("INSERT INTO families (id, key, parameter_names) VALUES (1, 'old', '[\"lr\"]')");
  }
  std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
  ASSERT_NE(store, nullptr);
  absl::StatusOr<Snapshot> snapshot = store->LoadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->families.size(), 1u);
  EXPECT_EQ(snapshot->families[0].key, "old");
  EXPECT_EQ(snapshot->families[0].inherits_family, 0);
  EXPECT_EQ(snapshot->families[0].inherits_lineage, 0);
  EXPECT_EQ(snapshot->families[0].inherits_step, 0);
  store.reset();
  RawDatabase raw(DatabasePath(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), kSchemaVersion);
}

TEST_F(StoreMigration, ClosingTheStoreLeavesNoLogBehind) {
  {
    std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Commit(OneStudy("s-1")).ok());
  }
  EXPECT_FALSE(Exists(DatabasePath() + "-wal"));
  EXPECT_FALSE(Exists(DatabasePath() + "-shm"));
}

TEST_F(StoreRefusal, TextFileIsRefusedAndLeftUntouched) {
  WriteBytes(DatabasePath(), "study: mnist\nalgorithm: asha\n");
  ExpectRefusedAndUntouched(DatabasePath(), "not an SQLite database");
}

TEST_F(StoreRefusal, FileWithAnSqliteHeaderButGarbageIsRefusedAndLeftUntouched) {
  std::string bytes("SQLite format 3\0", 16);
  bytes += std::string(4096 - bytes.size(), '\xAB');
  WriteBytes(DatabasePath(), bytes);
  ExpectRefusedAndUntouched(DatabasePath(), "cannot be read as an SQLite database");
}

TEST_F(StoreRefusal, DatabaseOfAnotherApplicationIsRefusedAndLeftUntouched) {
  {
    RawDatabase raw(DatabasePath());
    raw.Exec(
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);"
        "INSERT INTO invoices VALUES (1, 9.5);");
  }
  ExpectRefusedAndUntouched(DatabasePath(), "not a Hippo database");
}

TEST_F(StoreRefusal, DatabaseWithAnotherApplicationIdIsRefusedAndLeftUntouched) {
  {
    RawDatabase raw(DatabasePath());
    raw.Exec("PRAGMA application_id = 1234; PRAGMA user_version = 1;");
  }
  ExpectRefusedAndUntouched(DatabasePath(), "application_id 0x000004D2");
}

TEST_F(StoreRefusal, HippoDatabaseOfANewerSchemaIsRefusedAndLeftUntouched) {
  {
    std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Commit(OneStudy("s-1")).ok());
  }
  {
    RawDatabase raw(DatabasePath());
    raw.Exec("PRAGMA user_version = " + std::to_string(kSchemaVersion + 1));
    raw.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }  // the last connection closes: the log is folded in and removed
  ASSERT_FALSE(Exists(DatabasePath() + "-wal"));
  ASSERT_EQ(BigEndianAt(ReadBytes(DatabasePath()), kUserVersionOffset), kSchemaVersion + 1);
  ExpectRefusedAndUntouched(
      DatabasePath(), "written by a newer Hippo (schema " + std::to_string(kSchemaVersion + 1) +
                          ", this build reads up to " + std::to_string(kSchemaVersion) +
                          "); upgrade hippo");
}

// A coordinator of a newer Hippo that crashed: the new version is committed in the log only,
// and the main file's header still says an older one. The store must read through the log.
TEST_F(StoreRefusal, NewerSchemaCommittedOnlyToTheLogIsRefusedAndLeftUntouched) {
  {
    std::unique_ptr<Store> store = OpenOrDie(DatabasePath());
    ASSERT_NE(store, nullptr);
  }
  {
    RawDatabase raw(DatabasePath());
    int unused = 0;
    ASSERT_EQ(sqlite3_db_config(raw.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, &unused),
              SQLITE_OK);
    raw.Exec("PRAGMA user_version = " + std::to_string(kSchemaVersion + 1));
  }
  ASSERT_TRUE(Exists(DatabasePath() + "-wal"));
  ASSERT_EQ(BigEndianAt(ReadBytes(DatabasePath()), kUserVersionOffset), kSchemaVersion);
  ExpectRefusedAndUntouched(DatabasePath(), "written by a newer Hippo");
}

TEST_F(StoreRefusal, DirectoryIsRefused) {
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(directory_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("not a regular file"));
}

}  // namespace
}  // namespace hippo::store
