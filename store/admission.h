// Deciding whether a file may be opened as the store, without changing it.
//
// The rule (docs/durability.md): a corrupt or foreign database file is refused with a clear
// message, never overwritten. Opening a file read-write is already a change (switching it to WAL
// rewrites its header, and closing the last connection may checkpoint), so every check here runs
// before the store opens the file for writing, on a connection that cannot write: an immutable one
// when no write-ahead log exists (then SQLite creates no -wal or -shm file either), a
// read-only one when a log exists (its committed transactions may hold the newest header).
#ifndef HIPPO_STORE_ADMISSION_H_
#define HIPPO_STORE_ADMISSION_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/sqlite.h"

namespace hippo::store::internal {

enum class Admission {
  kCreate,  // no file, or an empty one: create a new database
  kOpen,    // a Hippo database of this or an older schema, or an SQLite file with no tables
};

// Looks at `path` and returns what Open should do, or FailedPrecondition naming the path when
// the file is not SQLite, not a Hippo database, or written by a newer Hippo.
absl::StatusOr<Admission> AdmitDatabaseFile(const std::string& path);

// The check on the markers of an open database (application_id, user_version, whether it has
// tables). Open runs it again on its read-write connection before writing, in case the file
// changed after AdmitDatabaseFile looked.
absl::Status CheckHippoMarkers(Connection& connection);

}  // namespace hippo::store::internal

#endif  // HIPPO_STORE_ADMISSION_H_
