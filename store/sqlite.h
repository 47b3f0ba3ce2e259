// Thin RAII wrappers over the SQLite C API, used only inside store/.
//
// A Connection owns one sqlite3 handle and the statements prepared on it (prepared once, kept
// for the connection's life). A Query binds and steps one of those statements and resets it
// when it goes out of scope, so a cached statement is always clean for its next user.
// Neither type is thread-safe: the store gives each connection to one thread at a time.
#ifndef HIPPO_STORE_SQLITE_H_
#define HIPPO_STORE_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hippo::store::internal {

// Maps an SQLite result code to an absl status: constraint violations of keys become
// AlreadyExists, other constraints InvalidArgument, busy/locked Unavailable, corruption
// DataLoss, anything else Internal. `context` leads the message.
absl::Status SqliteStatus(int code, absl::string_view context, absl::string_view detail);

class Connection {
 public:
  // Opens `filename` with sqlite3_open_v2 `flags` (SQLITE_OPEN_NOMUTEX is added: the store
  // serialises access itself) through the VFS named `vfs` (the default when null). `label`
  // names the database in error messages (the path the user gave, even when `filename` is a
  // URI).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& filename, int flags,
                                                          std::string label,
                                                          const char* vfs = nullptr);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();  // finalizes the cached statements, then closes the handle

  // Runs SQL that returns no rows (may hold several statements), preparing it each time.
  absl::Status Exec(absl::string_view sql);
  // Runs one statement that returns no rows through the statement cache (BEGIN, COMMIT, ...).
  absl::Status Run(absl::string_view sql);

  // Runs a one-row, one-column query and returns its integer (e.g. a PRAGMA).
  absl::StatusOr<int64_t> QueryInt(absl::string_view sql);
  absl::StatusOr<std::string> QueryText(absl::string_view sql);

  // The cached prepared statement for `sql`, preparing it on first use.
  absl::StatusOr<sqlite3_stmt*> Prepare(absl::string_view sql);

  // A status for `code` with this connection's last error message.
  absl::Status Error(int code, absl::string_view what) const;

  // True while a transaction is open (false after SQLite rolled one back on its own).
  bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

  sqlite3* handle() const { return db_; }
  const std::string& label() const { return label_; }

 private:
  Connection(sqlite3* db, std::string label) : db_(db), label_(std::move(label)) {}

  sqlite3* db_;
  std::string label_;
  // By SQL text; looked up by string_view, so a cached statement costs no copy of its text.
  absl::flat_hash_map<std::string, sqlite3_stmt*> statements_;
};

// One execution of a cached statement. Bind() fills parameters left to right.
class Query {
 public:
  Query(Connection& connection, sqlite3_stmt* statement)
      : connection_(connection), statement_(statement) {}
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query();

  Query& Bind(int64_t value);
  Query& Bind(int value) { return Bind(static_cast<int64_t>(value)); }
  Query& Bind(bool value) { return Bind(static_cast<int64_t>(value ? 1 : 0)); }
  Query& Bind(double value);  // NaN is stored as NULL (SQLite has no NaN)
  // Text is bound without a copy: `text` must stay unchanged until the query is done (its
  // destructor), as a row of a write batch or a caller's variable does. A temporary is copied.
  Query& Bind(const std::string& text);
  Query& Bind(std::string&& text);
  Query& BindBlob(const std::string& bytes);  // not copied either, as Bind(text)
  Query& Bind(const char*) = delete;          // would silently pick Bind(bool)

  // Steps once: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps until done, for statements that return no rows.
  absl::Status Run();

  int64_t Int(int column) const;
  double Double(int column) const;  // NULL reads as NaN
  bool Bool(int column) const { return Int(column) != 0; }
  std::string Text(int column) const;
  std::string Blob(int column) const;

 private:
  absl::Status Check(int code) const;

  Connection& connection_;
  sqlite3_stmt* statement_;
  int next_parameter_ = 1;
  int bind_error_ = SQLITE_OK;  // first failed bind, reported by Step()
};

}  // namespace hippo::store::internal

#endif  // HIPPO_STORE_SQLITE_H_
