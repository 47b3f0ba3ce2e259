// The store's schema: its migrations, and the markers that identify a Hippo database file.
//
// PRAGMA application_id holds kApplicationId (so `file` and other tools can tell a Hippo
// database from any other SQLite file) and PRAGMA user_version holds the schema version, the
// version of the last migration applied. Both live in the file's 100-byte header.
#ifndef HIPPO_STORE_SCHEMA_H_
#define HIPPO_STORE_SCHEMA_H_

#include <cstdint>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "store/sqlite.h"

namespace hippo::store::internal {

// "HPP0" in ASCII.
inline constexpr int32_t kApplicationId = 0x48505030;

// One step of the schema. Migration N takes a database at version N-1 to version N; it runs in
// its own transaction together with the update of user_version, so a crash leaves the file at
// N-1 or N, never in between.
struct Migration {
  int version;
  absl::string_view description;
  absl::string_view sql;
};

// Every migration, in order; the last one's version is kSchemaVersion.
std::span<const Migration> Migrations();

// Brings a Hippo database (or an empty one, user_version 0) up to kSchemaVersion, applying
// each missing migration in its own transaction. Refuses a version newer than this build's.
absl::Status Migrate(Connection& connection);

// FailedPrecondition for a database at schema `version` > kSchemaVersion.
absl::Status NewerSchemaError(const std::string& path, int64_t version);

}  // namespace hippo::store::internal

#endif  // HIPPO_STORE_SCHEMA_H_
