#include "workers/checkpoint_store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "workers/crc32c.h"
#include "workers/little_endian.h"

namespace hippo::workers {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'H', 'I', 'P', 'P', 'O', 'C', 'K', 'P'};
constexpr uint32_t kFormatVersion = 1;
constexpr char kScheme[] = "file://";
constexpr size_t kSchemeLength = sizeof(kScheme) - 1;

absl::Status ErrnoError(int error, std::string_view what, std::string_view path) {
  return absl::ErrnoToStatus(error, absl::StrCat(std::string(what), " ", std::string(path)));
}

// Writes all of `data`, retrying short writes and EINTR.
absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "cannot write checkpoint", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Temporary files are "<final name>.tmp-<host>-<pid>-<counter>", hidden by a leading dot.
constexpr char kTempMarker[] = ".ckpt.tmp-";
constexpr size_t kTempMarkerLength = sizeof(kTempMarker) - 1;

std::string LocalHost() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// The writer of a temporary file, from its name: (host, pid). The host is empty in names from
// before it was recorded ("...ckpt.tmp-<pid>-<counter>"). Nullopt for any other name.
std::optional<std::pair<std::string, pid_t>> TempWriter(std::string_view name) {
  const size_t marker = name.find(kTempMarker);
  if (!name.starts_with(".stage-") || marker == std::string_view::npos) return std::nullopt;
  const std::string_view rest = name.substr(marker + kTempMarkerLength);
  const size_t counter_dash = rest.rfind('-');
  if (counter_dash == std::string_view::npos || counter_dash == 0) return std::nullopt;
  const size_t pid_dash = rest.rfind('-', counter_dash - 1);
  const std::string_view pid_text = pid_dash == std::string_view::npos
                                        ? rest.substr(0, counter_dash)
                                        : rest.substr(pid_dash + 1, counter_dash - pid_dash - 1);
  uint64_t counter = 0;
  int pid = 0;
  const std::string_view counter_text = rest.substr(counter_dash + 1);
  if (!absl::SimpleAtoi(absl::string_view(counter_text.data(), counter_text.size()), &counter) ||
      !absl::SimpleAtoi(absl::string_view(pid_text.data(), pid_text.size()), &pid) || pid <= 0) {
    return std::nullopt;
  }
  const std::string host(pid_dash == std::string_view::npos ? std::string_view()
                                                            : rest.substr(0, pid_dash));
  return std::make_pair(host, static_cast<pid_t>(pid));
}

absl::Status SyncDirectory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open checkpoint directory", directory);
  const int synced = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (synced != 0) return ErrnoError(error, "cannot fsync checkpoint directory", directory);
  return absl::OkStatus();
}

// Distinguishes the temporary files of concurrent writers within a process.
std::atomic<uint64_t> temp_counter{0};

}  // namespace

std::string FormatChecksum(uint32_t crc32c) { return absl::StrFormat("crc32c:%08x", crc32c); }

absl::StatusOr<CheckpointStore> CheckpointStore::Open(std::string_view directory) {
  if (directory.empty()) return absl::InvalidArgumentError("checkpoint directory is empty");
  std::error_code error;
  fs::path path = fs::absolute(fs::path(directory), error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint directory ", std::string(directory), ": ", error.message()));
  }
  fs::create_directories(path, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create checkpoint directory ", path.string(), ": ", error.message()));
  }
  fs::path canonical = fs::canonical(path, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resolve checkpoint directory ", path.string(), ": ", error.message()));
  }
  if (!fs::is_directory(canonical, error)) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint directory ", canonical.string(), " is not a directory"));
  }
  return CheckpointStore(canonical.string(), LocalHost());
}

absl::StatusOr<std::vector<std::string>> CheckpointStore::RemoveOrphanTemporaries() const {
  std::vector<std::string> removed;
  std::error_code error;
  for (fs::directory_iterator it(directory_, error), end; !error && it != end;
       it.increment(error)) {
    const std::string name = it->path().filename().string();
    const std::optional<std::pair<std::string, pid_t>> writer = TempWriter(name);
    if (!writer.has_value()) continue;
    const auto& [host, pid] = *writer;
    // Another host's writer may be alive: only this host's processes can be checked.
    if (!host.empty() && host != host_) continue;
    // This process has written nothing yet, so a file of its pid is a dead namesake's.
    const bool writer_alive = pid != ::getpid() && (::kill(pid, 0) == 0 || errno == EPERM);
    if (writer_alive) continue;
    if (::unlink(it->path().c_str()) != 0 && errno != ENOENT) {
      return ErrnoError(errno, "cannot remove an orphan temporary checkpoint", it->path().string());
    }
    removed.push_back(it->path().string());
  }
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list checkpoint directory ", directory_, ": ", error.message()));
  }
  return removed;
}

std::string CheckpointStore::UriFor(int64_t stage_id, int64_t step) const {
  return absl::StrCat(kScheme, directory_, "/stage-", stage_id, "-step-", step, ".ckpt");
}

absl::StatusOr<std::string> CheckpointStore::PathOf(std::string_view uri) const {
  if (!uri.starts_with(kScheme)) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint uri '", std::string(uri), "' does not start with ", kScheme));
  }
  const std::string_view raw = uri.substr(kSchemeLength);
  if (raw.empty() || raw.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint uri '", std::string(uri), "' does not hold an absolute path"));
  }
  if (raw.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("checkpoint uri holds a NUL character");
  }
  const fs::path lexical = fs::path(raw).lexically_normal();
  // Resolves symbolic links in the part that exists, so a link cannot lead outside.
  std::error_code error;
  fs::path resolved = fs::weakly_canonical(lexical, error);
  if (error) resolved = lexical;
  const fs::path relative = resolved.lexically_relative(fs::path(directory_));
  if (relative.empty() || relative == "." || *relative.begin() == "..") {
    return absl::PermissionDeniedError(absl::StrCat("checkpoint uri '", std::string(uri),
                                                    "' lies outside the checkpoint directory ",
                                                    directory_));
  }
  return resolved.string();
}

absl::Status CheckpointStore::Delete(std::string_view uri) const {
  absl::StatusOr<std::string> path = PathOf(uri);
  if (!path.ok()) return path.status();
  if (::unlink(path->c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "cannot delete checkpoint", *path);
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointInfo> CheckpointStore::Write(int64_t stage_id, int64_t step,
                                                      std::string_view payload) const {
  const std::string uri = UriFor(stage_id, step);
  const std::string final_path = uri.substr(kSchemeLength);
  const std::string temp_path =
      absl::StrCat(directory_, "/.stage-", stage_id, "-step-", step, kTempMarker, host_, "-",
                   ::getpid(), "-", temp_counter.fetch_add(1));

  char header[kHeaderBytes] = {};
  std::memcpy(header, kMagic, sizeof(kMagic));
  StoreLittleEndian(kFormatVersion, header + 8);
  StoreLittleEndian(static_cast<uint32_t>(kHeaderBytes), header + 12);
  StoreLittleEndian(static_cast<uint64_t>(stage_id), header + 16);
  StoreLittleEndian(static_cast<uint64_t>(step), header + 24);
  StoreLittleEndian(static_cast<uint64_t>(payload.size()), header + 32);
  const uint32_t payload_crc = Crc32c(payload);
  StoreLittleEndian(payload_crc, header + 40);
  StoreLittleEndian(Crc32c(std::string_view(header, 44)), header + 44);

  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "cannot create checkpoint", temp_path);
  absl::Status status = WriteAll(fd, std::string_view(header, kHeaderBytes), temp_path);
  if (status.ok()) status = WriteAll(fd, payload, temp_path);
  if (status.ok() && ::fsync(fd) != 0) {
    status = ErrnoError(errno, "cannot fsync checkpoint", temp_path);
  }
  if (::close(fd) != 0 && status.ok()) {
    status = ErrnoError(errno, "cannot close checkpoint", temp_path);
  }
  if (status.ok() && before_rename_) status = before_rename_(temp_path);
  if (status.ok() && ::rename(temp_path.c_str(), final_path.c_str()) != 0) {
    status = ErrnoError(errno, "cannot rename checkpoint to", final_path);
  }
  if (!status.ok()) {
    ::unlink(temp_path.c_str());
    return status;
  }
  if (after_rename_) {
    if (absl::Status hooked = after_rename_(final_path); !hooked.ok()) return hooked;
  }
  if (absl::Status synced = SyncDirectory(directory_); !synced.ok()) return synced;

  CheckpointInfo info;
  info.uri = uri;
  info.size_bytes = kHeaderBytes + static_cast<int64_t>(payload.size());
  info.checksum = FormatChecksum(payload_crc);
  return info;
}

absl::StatusOr<CheckpointContents> CheckpointStore::ReadCheckpoint(std::string_view uri) const {
  absl::StatusOr<std::string> path = PathOf(uri);
  if (!path.ok()) return path.status();

  const int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open checkpoint", *path);
  std::string bytes;
  struct stat info {};
  if (::fstat(fd, &info) == 0 && info.st_size > 0) bytes.reserve(static_cast<size_t>(info.st_size));
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      return ErrnoError(error, "cannot read checkpoint", *path);
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);

  auto corrupt = [&](std::string_view why) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", *path, " is corrupt: ", std::string(why)));
  };
  if (bytes.size() < static_cast<size_t>(kHeaderBytes)) {
    return corrupt(absl::StrCat("truncated (", bytes.size(), " bytes, shorter than the header)"));
  }
  const char* header = bytes.data();
  if (std::memcmp(header, kMagic, sizeof(kMagic)) != 0) return corrupt("not a Hippo checkpoint");
  if (LoadLittleEndian<uint32_t>(header + 44) != Crc32c(std::string_view(header, 44))) {
    return corrupt("header checksum mismatch");
  }
  const auto version = LoadLittleEndian<uint32_t>(header + 8);
  if (version != kFormatVersion || LoadLittleEndian<uint32_t>(header + 12) != kHeaderBytes) {
    return corrupt(absl::StrCat("format version ", version, ", this build reads ", kFormatVersion));
  }
  const uint64_t payload_size = LoadLittleEndian<uint64_t>(header + 32);
  const uint64_t actual = bytes.size() - static_cast<size_t>(kHeaderBytes);
  if (payload_size != actual) {
    return corrupt(absl::StrCat(actual < payload_size ? "truncated" : "trailing bytes",
                                ": the header says ", payload_size, " payload bytes, the file has ",
                                actual));
  }
  const uint32_t crc = Crc32c(std::string_view(bytes.data() + kHeaderBytes, actual));
  if (const auto stored = LoadLittleEndian<uint32_t>(header + 40); crc != stored) {
    return corrupt(absl::StrCat("payload checksum mismatch (stored ", FormatChecksum(stored),
                                ", computed ", FormatChecksum(crc), ")"));
  }
  CheckpointContents contents;
  contents.stage_id = static_cast<int64_t>(LoadLittleEndian<uint64_t>(header + 16));
  contents.step = static_cast<int64_t>(LoadLittleEndian<uint64_t>(header + 24));
  bytes.erase(0, static_cast<size_t>(kHeaderBytes));
  contents.payload = std::move(bytes);
  return contents;
}

absl::StatusOr<std::string> CheckpointStore::Read(std::string_view uri) const {
  absl::StatusOr<CheckpointContents> contents = ReadCheckpoint(uri);
  if (!contents.ok()) return contents.status();
  return std::move(contents->payload);
}

}  // namespace hippo::workers
