#include "store/schema.h"

#include <iterator>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "store/store.h"

namespace hippo::store::internal {
namespace {

// Version 1: every table. Notes on the choices:
//  - STRICT tables, so a value of the wrong type is an error instead of a silent conversion.
//  - Primary keys are the upsert keys of WriteBatch; upserts are INSERT ... ON CONFLICT DO
//    UPDATE (never INSERT OR REPLACE, which deletes the old row first).
//  - WITHOUT ROWID for tables of small rows looked up by a composite key; rowid tables where
//    rows carry large JSON or blobs (SQLite's advice: WITHOUT ROWID suits rows well under a
//    twentieth of a page).
//  - metrics.value is nullable: SQLite has no NaN and stores a bound NaN as NULL, and a
//    diverging run does report NaN losses. NULL reads back as NaN.
//  - No foreign keys: the coordinator owns referential integrity (a tree op names a family the
//    coordinator already holds), and checks here would make the order in which independent
//    batches reach the writer part of the contract.
//  - events.sequence is AUTOINCREMENT so a sequence number is never reused, even after old
//    events are pruned: a dashboard resuming "after N" never misses or repeats an event.
constexpr absl::string_view kVersion1 = R"sql(
CREATE TABLE families (
  id               INTEGER PRIMARY KEY,
  key              TEXT NOT NULL,
  parameter_names  TEXT NOT NULL  -- JSON array of strings
) STRICT;

CREATE TABLE studies (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  spec_json    TEXT NOT NULL,
  state        INTEGER NOT NULL,
  created_ms   INTEGER NOT NULL,
  finished_ms  INTEGER NOT NULL,
  no_merge     INTEGER NOT NULL,
  message      TEXT NOT NULL
) STRICT;
CREATE INDEX studies_by_creation ON studies (created_ms, id);

CREATE TABLE trials (
  study_id        TEXT NOT NULL,
  trial_id        INTEGER NOT NULL,
  family_id       INTEGER NOT NULL,
  tree_trial      INTEGER NOT NULL,
  point_json      TEXT NOT NULL,
  target_step     INTEGER NOT NULL,
  state           INTEGER NOT NULL,
  forked_from     INTEGER NOT NULL,
  forked_at_step  INTEGER NOT NULL,
  PRIMARY KEY (study_id, trial_id)
) STRICT;

CREATE TABLE tree_ops (
  family_id  INTEGER NOT NULL,
  sequence   INTEGER NOT NULL,
  kind       INTEGER NOT NULL,
  a          INTEGER NOT NULL,
  b          INTEGER NOT NULL,
  payload    BLOB NOT NULL,
  PRIMARY KEY (family_id, sequence)
) STRICT;

CREATE TABLE stages (
  family_id       INTEGER NOT NULL,
  node_id         INTEGER NOT NULL,
  parent_id       INTEGER NOT NULL,
  lineage         INTEGER NOT NULL,
  start_step      INTEGER NOT NULL,
  end_step        INTEGER NOT NULL,
  state           INTEGER NOT NULL,
  attempts        INTEGER NOT NULL,
  checkpoint_uri  TEXT NOT NULL,
  worker_id       TEXT NOT NULL,
  PRIMARY KEY (family_id, node_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE metrics (
  family_id  INTEGER NOT NULL,
  lineage    INTEGER NOT NULL,
  step       INTEGER NOT NULL,
  name       TEXT NOT NULL,
  value      REAL,  -- NULL stands for NaN
  PRIMARY KEY (family_id, lineage, step, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE attempts (
  attempt_id        INTEGER PRIMARY KEY,
  family_id         INTEGER NOT NULL,
  node_id           INTEGER NOT NULL,
  worker_id         TEXT NOT NULL,
  lease_expires_ms  INTEGER NOT NULL,
  state             INTEGER NOT NULL
) STRICT;
CREATE INDEX attempts_running ON attempts (attempt_id) WHERE state = 0;

CREATE TABLE checkpoints (
  family_id   INTEGER NOT NULL,
  node_id     INTEGER NOT NULL,
  step        INTEGER NOT NULL,
  uri         TEXT NOT NULL,
  size_bytes  INTEGER NOT NULL,
  checksum    TEXT NOT NULL,
  PRIMARY KEY (family_id, node_id, step)
) STRICT, WITHOUT ROWID;

CREATE TABLE workers (
  worker_id     TEXT PRIMARY KEY,
  host          TEXT NOT NULL,
  hello_json    TEXT NOT NULL,
  last_seen_ms  INTEGER NOT NULL,
  connected     INTEGER NOT NULL
) STRICT;

CREATE TABLE algorithm_states (
  study_id  TEXT PRIMARY KEY,
  state     BLOB NOT NULL
) STRICT;

CREATE TABLE events (
  sequence      INTEGER PRIMARY KEY AUTOINCREMENT,
  study_id      TEXT NOT NULL,
  kind          TEXT NOT NULL,
  payload_json  TEXT NOT NULL,
  time_ms       INTEGER NOT NULL
) STRICT;

CREATE TABLE settings (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
) STRICT, WITHOUT ROWID;
)sql";

// The algorithm journal (store.h, AlgorithmDelta): a study's state is its algorithm_states row
// followed by its entries here in sequence order.
constexpr absl::string_view kVersion2 = R"sql(
CREATE TABLE algorithm_journal (
  study_id  TEXT NOT NULL,
  sequence  INTEGER NOT NULL,
  delta     BLOB NOT NULL,
  PRIMARY KEY (study_id, sequence)
) STRICT, WITHOUT ROWID;
)sql";

// Checkpoint garbage collection (store.h, GarbageRecord): released files until a worker of their
// directory deleted them; checkpoint rows are removed by uri when their state is released.
constexpr absl::string_view kVersion3 = R"sql(
CREATE TABLE checkpoint_garbage (
  uri         TEXT PRIMARY KEY,
  directory   TEXT NOT NULL,
  size_bytes  INTEGER NOT NULL,
  stage_id    INTEGER NOT NULL,
  step        INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX checkpoints_by_uri ON checkpoints (family_id, uri);
CREATE INDEX events_by_study ON events (study_id);
)sql";

// Worker health (store.h, WorkerHealthRecord): a drained worker stays drained across a restart.
constexpr absl::string_view kVersion4 = R"sql(
CREATE TABLE worker_health (
  worker_id             TEXT PRIMARY KEY,
  consecutive_failures  INTEGER NOT NULL,
  drains                INTEGER NOT NULL,
  drained_until_ms      INTEGER NOT NULL,
  last_error            TEXT NOT NULL
) STRICT, WITHOUT ROWID;
)sql";

// A family may inherit another family's trained state (FamilyRecord::inherits_*); older
// families inherit nothing (0).
constexpr absl::string_view kVersion5 = R"sql(
ALTER TABLE families ADD COLUMN inherits_family INTEGER NOT NULL DEFAULT 0;
ALTER TABLE families ADD COLUMN inherits_lineage INTEGER NOT NULL DEFAULT 0;
ALTER TABLE families ADD COLUMN inherits_step INTEGER NOT NULL DEFAULT 0;
)sql";

// Tree snapshots (store.h, TreeSnapshotRecord): a family's tree snapshot replaces its
// operations up to through_sequence.
constexpr absl::string_view kVersion6 = R"sql(
CREATE TABLE tree_snapshots (
  family_id         INTEGER PRIMARY KEY,
  through_sequence  INTEGER NOT NULL,
  snapshot          BLOB NOT NULL
) STRICT;
)sql";

// Append new migrations here; never edit one that has shipped. Raise kSchemaVersion in
// store.h to the new last version.
constexpr Migration kMigrations[] = {
    {1, "create every table", kVersion1},
    {2, "add the algorithm journal", kVersion2},
    {3, "add checkpoint garbage", kVersion3},
    {4, "add worker health", kVersion4},
    {5, "record the state a family inherits", kVersion5},
    {6, "add tree snapshots", kVersion6},
};

constexpr bool MigrationsAreConsecutive() {
  for (size_t i = 0; i < std::size(kMigrations); ++i) {
    if (kMigrations[i].version != static_cast<int>(i) + 1) return false;
  }
  return true;
}
static_assert(MigrationsAreConsecutive(), "migrations must be numbered 1, 2, 3, ...");
static_assert(std::size(kMigrations) == kSchemaVersion,
              "the last migration's version must be kSchemaVersion");

absl::Status Apply(Connection& connection, const Migration& migration) {
  if (absl::Status begun = connection.Exec("BEGIN IMMEDIATE"); !begun.ok()) return begun;
  // Re-read inside the transaction: another process may have migrated since we looked.
  absl::StatusOr<int64_t> version = connection.QueryInt("PRAGMA user_version");
  absl::Status status = version.status();
  if (status.ok() && *version < migration.version) {
    status = connection.Exec(migration.sql);
    // Both pragmas write the file header inside this transaction, so they commit with it.
    if (status.ok()) {
      status = connection.Exec(absl::StrCat("PRAGMA application_id = ", kApplicationId));
    }
    if (status.ok()) {
      status = connection.Exec(absl::StrCat("PRAGMA user_version = ", migration.version));
    }
  }
  if (status.ok()) status = connection.Exec("COMMIT");
  if (!status.ok()) {
    if (connection.InTransaction()) connection.Exec("ROLLBACK").IgnoreError();
    return absl::Status(status.code(),
                        absl::StrCat("migration to schema ", migration.version, " (",
                                     migration.description, ") failed: ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

absl::Status NewerSchemaError(const std::string& path, int64_t version) {
  return absl::FailedPreconditionError(
      absl::StrCat("store ", path, ": written by a newer Hippo (schema ", version,
                   ", this build reads up to ", kSchemaVersion, "); upgrade hippo"));
}

absl::Status Migrate(Connection& connection) {
  absl::StatusOr<int64_t> version = connection.QueryInt("PRAGMA user_version");
  if (!version.ok()) return version.status();
  if (*version > kSchemaVersion) return NewerSchemaError(connection.label(), *version);
  for (const Migration& migration : kMigrations) {
    if (migration.version <= *version) continue;
    if (absl::Status applied = Apply(connection, migration); !applied.ok()) return applied;
  }
  return absl::OkStatus();
}

}  // namespace hippo::store::internal
