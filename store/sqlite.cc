#include "store/sqlite.h"

#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace hippo::store::internal {

absl::Status SqliteStatus(int code, absl::string_view context, absl::string_view detail) {
  std::string message =
      absl::StrCat(context, ": ", detail, " (", sqlite3_errstr(code), ", SQLite code ", code, ")");
  switch (code) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_ROWID:
      return absl::AlreadyExistsError(message);
    default:
      break;
  }
  switch (code & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
      return absl::InvalidArgumentError(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return absl::FailedPreconditionError(message);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& filename, int flags,
                                                             std::string label, const char* vfs) {
  sqlite3* db = nullptr;
  int code = sqlite3_open_v2(filename.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, vfs);
  if (code != SQLITE_OK) {
    std::string detail = db != nullptr ? sqlite3_errmsg(db) : "cannot open";
    sqlite3_close_v2(db);
    return SqliteStatus(code, absl::StrCat("store ", label), absl::StrCat("open: ", detail));
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<Connection>(new Connection(db, std::move(label)));
}

Connection::~Connection() {
  for (auto& [sql, statement] : statements_) sqlite3_finalize(statement);
  sqlite3_close_v2(db_);
}

absl::Status Connection::Error(int code, absl::string_view what) const {
  return SqliteStatus(code, absl::StrCat("store ", label_),
                      absl::StrCat(what, ": ", sqlite3_errmsg(db_)));
}

absl::Status Connection::Exec(absl::string_view sql) {
  std::string text(sql);
  int code = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (code != SQLITE_OK) {
    constexpr size_t kShown = 120;  // a migration's SQL is long; its start identifies it
    return Error(code, text.size() <= kShown ? text : absl::StrCat(text.substr(0, kShown), "..."));
  }
  return absl::OkStatus();
}

absl::StatusOr<sqlite3_stmt*> Connection::Prepare(absl::string_view sql) {
  if (auto it = statements_.find(sql); it != statements_.end()) return it->second;
  sqlite3_stmt* statement = nullptr;
  int code = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &statement, nullptr);
  if (code != SQLITE_OK) {
    sqlite3_finalize(statement);
    return Error(code, absl::StrCat("prepare ", sql));
  }
  statements_.emplace(std::string(sql), statement);
  return statement;
}

absl::Status Connection::Run(absl::string_view sql) {
  absl::StatusOr<sqlite3_stmt*> statement = Prepare(sql);
  if (!statement.ok()) return statement.status();
  return Query(*this, *statement).Run();
}

absl::StatusOr<int64_t> Connection::QueryInt(absl::string_view sql) {
  absl::StatusOr<sqlite3_stmt*> statement = Prepare(sql);
  if (!statement.ok()) return statement.status();
  Query query(*this, *statement);
  absl::StatusOr<bool> row = query.Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError(absl::StrCat("store ", label_, ": no row from ", sql));
  return query.Int(0);
}

absl::StatusOr<std::string> Connection::QueryText(absl::string_view sql) {
  absl::StatusOr<sqlite3_stmt*> statement = Prepare(sql);
  if (!statement.ok()) return statement.status();
  Query query(*this, *statement);
  absl::StatusOr<bool> row = query.Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError(absl::StrCat("store ", label_, ": no row from ", sql));
  return query.Text(0);
}

Query::~Query() {
  sqlite3_reset(statement_);
  sqlite3_clear_bindings(statement_);
}

Query& Query::Bind(int64_t value) {
  int code = sqlite3_bind_int64(statement_, next_parameter_++, value);
  if (bind_error_ == SQLITE_OK) bind_error_ = code;
  return *this;
}

Query& Query::Bind(double value) {
  int code = std::isnan(value) ? sqlite3_bind_null(statement_, next_parameter_++)
                               : sqlite3_bind_double(statement_, next_parameter_++, value);
  if (bind_error_ == SQLITE_OK) bind_error_ = code;
  return *this;
}

Query& Query::Bind(const std::string& text) {
  // SQLITE_STATIC: SQLite reads the caller's bytes when the statement steps (see the header).
  int code = sqlite3_bind_text64(statement_, next_parameter_++, text.data(), text.size(),
                                 SQLITE_STATIC, SQLITE_UTF8);
  if (bind_error_ == SQLITE_OK) bind_error_ = code;
  return *this;
}

Query& Query::Bind(std::string&& text) {
  // SQLITE_TRANSIENT: SQLite copies, as the temporary goes away before the statement steps.
  int code = sqlite3_bind_text64(statement_, next_parameter_++, text.data(), text.size(),
                                 SQLITE_TRANSIENT, SQLITE_UTF8);
  if (bind_error_ == SQLITE_OK) bind_error_ = code;
  return *this;
}

Query& Query::BindBlob(const std::string& bytes) {
  int code =
      sqlite3_bind_blob64(statement_, next_parameter_++, bytes.data(), bytes.size(), SQLITE_STATIC);
  if (bind_error_ == SQLITE_OK) bind_error_ = code;
  return *this;
}

absl::Status Query::Check(int code) const {
  return connection_.Error(code, sqlite3_sql(statement_));
}

absl::StatusOr<bool> Query::Step() {
  if (bind_error_ != SQLITE_OK) return Check(bind_error_);
  int code = sqlite3_step(statement_);
  if (code == SQLITE_ROW) return true;
  if (code == SQLITE_DONE) return false;
  return Check(code);
}

absl::Status Query::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t Query::Int(int column) const { return sqlite3_column_int64(statement_, column); }

double Query::Double(int column) const {
  if (sqlite3_column_type(statement_, column) == SQLITE_NULL) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return sqlite3_column_double(statement_, column);
}

std::string Query::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(statement_, column);
  int size = sqlite3_column_bytes(statement_, column);  // after _text, as SQLite asks
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

std::string Query::Blob(int column) const {
  const void* data = sqlite3_column_blob(statement_, column);
  int size = sqlite3_column_bytes(statement_, column);
  if (data == nullptr) return std::string();  // a zero-length blob reads as NULL
  return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
}

}  // namespace hippo::store::internal
