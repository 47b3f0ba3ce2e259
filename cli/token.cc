#include "cli/token.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hippo::cli {
namespace {

// A token travels as gRPC metadata and in an HTTP cookie: printable ASCII without spaces.
constexpr size_t kMaxTokenBytes = 4096;

absl::StatusOr<std::string> CheckToken(absl::string_view text, const std::string& where) {
  const absl::string_view token = absl::StripAsciiWhitespace(text);
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": holds no token"));
  }
  if (token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": the token is longer than ", kMaxTokenBytes, " bytes"));
  }
  for (const char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": the token may hold only printable ASCII characters without spaces"));
    }
  }
  return std::string(token);
}

std::string Errno(int error) { return std::strerror(error); }

}  // namespace

absl::StatusOr<std::string> NewToken() {
  unsigned char bytes[32];
  size_t filled = 0;
  while (filled < sizeof(bytes)) {
    const ssize_t got = getrandom(bytes + filled, sizeof(bytes) - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("cannot draw a random token: ", Errno(errno)));
    }
    filled += static_cast<size_t>(got);
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path, const std::string& flag) {
  const std::string where = absl::StrCat(flag, " ", path);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", Errno(errno)));
  }
  struct stat info {};
  std::string text;
  absl::Status status;
  if (fstat(fd, &info) != 0) {
    status = absl::InvalidArgumentError(absl::StrCat(where, ": ", Errno(errno)));
  } else if (!S_ISREG(info.st_mode)) {
    status = absl::InvalidArgumentError(absl::StrCat(where, ": not a regular file"));
  } else if ((info.st_mode & 077) != 0) {
    status = absl::InvalidArgumentError(
        absl::StrFormat("%s: its mode is %04o, so other users may read the token: run chmod 600 %s",
                        where, info.st_mode & 07777, path));
  } else {
    char buffer[kMaxTokenBytes + 64];
    ssize_t got = 0;
    while (text.size() <= kMaxTokenBytes && (got = read(fd, buffer, sizeof(buffer))) != 0) {
      if (got < 0) {
        if (errno == EINTR) continue;
        status = absl::InvalidArgumentError(absl::StrCat(where, ": ", Errno(errno)));
        break;
      }
      text.append(buffer, static_cast<size_t>(got));
    }
  }
  close(fd);
  if (!status.ok()) return status;
  return CheckToken(text, where);
}

absl::StatusOr<std::string> ClientToken(const std::string& token_file) {
  if (!token_file.empty()) return ReadTokenFile(token_file);
  if (const char* env = std::getenv("HIPPO_TOKEN"); env != nullptr && *env != '\0') {
    return CheckToken(env, "$HIPPO_TOKEN");
  }
  if (const char* env = std::getenv("HIPPO_TOKEN_FILE"); env != nullptr && *env != '\0') {
    return ReadTokenFile(env, "$HIPPO_TOKEN_FILE");
  }
  if (access(kDefaultTokenFile, F_OK) == 0) return ReadTokenFile(kDefaultTokenFile, "the file");
  return std::string();
}

absl::StatusOr<ServerToken> LoadOrCreateServerToken(const std::string& token_file,
                                                    const std::string& db) {
  ServerToken server_token;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(token_file);
    if (!token.ok()) return token.status();
    server_token.token = *std::move(token);
    server_token.file = token_file;
    return server_token;
  }
  if (const char* env = std::getenv("HIPPO_TOKEN"); env != nullptr && *env != '\0') {
    absl::StatusOr<std::string> token = CheckToken(env, "$HIPPO_TOKEN");
    if (!token.ok()) return token.status();
    server_token.token = *std::move(token);
    return server_token;
  }
  const std::string path = db + ".token";
  server_token.file = path;
  absl::StatusOr<std::string> made = NewToken();
  if (!made.ok()) return made.status();
  // O_EXCL: of two servers starting on one database, one creates the file, the other reads it.
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno != EEXIST) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot create the token file ", path, " beside the database: ", Errno(errno),
          "; pass --token-file FILE, or --insecure to run without a token"));
    }
    absl::StatusOr<std::string> token = ReadTokenFile(path, "the token file");
    if (!token.ok()) return token.status();
    server_token.token = *std::move(token);
    return server_token;
  }
  const std::string line = *made + "\n";
  const bool written =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fsync(fd) == 0;
  const int write_error = errno;
  close(fd);
  if (!written) {
    unlink(path.c_str());  // a partial token file would be read as another token next time
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write the token file ", path, ": ", Errno(write_error)));
  }
  server_token.token = *std::move(made);
  server_token.created = true;
  return server_token;
}

absl::StatusOr<std::string> ReadTlsCa(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  if (!file || text.str().find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-ca ", path, ": cannot read a PEM certificate there"));
  }
  return text.str();
}

}  // namespace hippo::cli
