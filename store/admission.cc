#include "store/admission.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "store/schema.h"
#include "store/store.h"

namespace hippo::store::internal {
namespace {

// Every SQLite 3 database starts with these 16 bytes, the terminating NUL included.
constexpr char kSqliteMagic[16] = {'S', 'Q', 'L', 'i', 't', 'e', ' ', 'f',
                                   'o', 'r', 'm', 'a', 't', ' ', '3', '\0'};

absl::Status Refuse(const std::string& path, absl::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat("store ", path, ": ", why, "; refusing to open it (the file is left as is)"));
}

// Reads the first bytes of the file with a plain read-only descriptor.
absl::StatusOr<bool> HasSqliteMagic(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("store ", path, ": cannot read: ", std::strerror(errno)));
  }
  char header[sizeof(kSqliteMagic)];
  size_t filled = 0;
  while (filled < sizeof(header)) {
    ssize_t got = ::read(fd, header + filled, sizeof(header) - filled);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    filled += static_cast<size_t>(got);
  }
  ::close(fd);
  return filled == sizeof(header) && std::memcmp(header, kSqliteMagic, sizeof(header)) == 0;
}

// A "file:" URI for `path` with every byte outside the unreserved set percent-encoded, so
// that '?', '#' and '%' in a path cannot be read as URI syntax.
std::string FileUri(const std::string& path, absl::string_view parameters) {
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(path, error);
  std::string text = error ? path : absolute.string();
  std::string uri = "file://";  // empty authority, then the absolute path
  for (unsigned char c : text) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '/' || c == '-' || c == '.' || c == '_' || c == '~';
    if (plain) {
      uri.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&uri, "%%%02X", c);
    }
  }
  return absl::StrCat(uri, "?", parameters);
}

}  // namespace

absl::Status CheckHippoMarkers(Connection& connection) {
  const std::string& path = connection.label();
  absl::StatusOr<int64_t> application_id = connection.QueryInt("PRAGMA application_id");
  absl::StatusOr<int64_t> version = connection.QueryInt("PRAGMA user_version");
  absl::StatusOr<int64_t> objects = connection.QueryInt("SELECT count(*) FROM sqlite_schema");
  if (!application_id.ok() || !version.ok() || !objects.ok()) {
    return Refuse(path, absl::StrCat("cannot be read as an SQLite database (",
                                     sqlite3_errmsg(connection.handle()), ")"));
  }
  if (*application_id == kApplicationId) {
    if (*version > kSchemaVersion) return NewerSchemaError(path, *version);
    return absl::OkStatus();
  }
  if (*application_id == 0 && *objects == 0 && *version == 0) {
    return absl::OkStatus();  // an SQLite file nobody has used yet: ours to initialise
  }
  if (*application_id == 0) {
    return Refuse(path, absl::StrCat("not a Hippo database (an SQLite database with ", *objects,
                                     " tables, indexes or views and no Hippo application_id)"));
  }
  return Refuse(path, absl::StrFormat("not a Hippo database (application_id 0x%08X, Hippo's is "
                                      "0x%08X)",
                                      static_cast<uint32_t>(*application_id),
                                      static_cast<uint32_t>(kApplicationId)));
}

absl::StatusOr<Admission> AdmitDatabaseFile(const std::string& path) {
  std::error_code error;
  std::filesystem::file_status status = std::filesystem::status(path, error);
  if (status.type() == std::filesystem::file_type::not_found) return Admission::kCreate;
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("store ", path, ": cannot inspect: ", error.message()));
  }
  if (status.type() != std::filesystem::file_type::regular) {
    return Refuse(path, "not a regular file");
  }
  uintmax_t size = std::filesystem::file_size(path, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("store ", path, ": cannot inspect: ", error.message()));
  }
  if (size == 0) return Admission::kCreate;

  absl::StatusOr<bool> magic = HasSqliteMagic(path);
  if (!magic.ok()) return magic.status();
  if (!*magic) return Refuse(path, "not an SQLite database (no \"SQLite format 3\" header)");

  // With no -wal file the main file is the whole database, and an immutable connection reads
  // it without locks and without creating any file. With one, the log may hold committed
  // transactions (a coordinator that crashed), so SQLite must read through it; a read-only
  // connection does that and never writes the main file.
  bool has_log = std::filesystem::exists(path + "-wal", error);
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      has_log ? Connection::Open(path, SQLITE_OPEN_READONLY, path)
              : Connection::Open(FileUri(path, "immutable=1"),
                                 SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, path);
  if (!connection.ok()) {
    return Refuse(path, absl::StrCat("cannot be read as an SQLite database (",
                                     connection.status().message(), ")"));
  }
  if (absl::Status markers = CheckHippoMarkers(**connection); !markers.ok()) return markers;
  return Admission::kOpen;
}

}  // namespace hippo::store::internal
