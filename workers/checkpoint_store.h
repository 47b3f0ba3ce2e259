// CheckpointStore: training states as files in one directory (local, or a shared filesystem
// that every worker mounts at the same path), addressed by stage id and step.
//
// File format (little-endian), a 48-byte header then the payload (TrainingState::Serialize()):
//   offset  0  char[8]  magic "HIPPOCKP"
//           8  uint32   format version (1)
//          12  uint32   header size (48)
//          16  int64    stage id
//          24  int64    step
//          32  uint64   payload size
//          40  uint32   CRC-32C of the payload
//          44  uint32   CRC-32C of bytes [0, 44)
// A file is written under a temporary name in the same directory, fsynced, renamed to its
// final name and the directory fsynced, so a reader sees either no file or a complete one. The
// temporary name (".stage-<id>-step-<step>.ckpt.tmp-<host>-<pid>-<n>") names its writer, so
// that the file of a writer that died mid-write can be told from one being written
// (RemoveOrphanTemporaries).
// Paths are confined to the directory: a uri that resolves outside it (through "..", or a
// symbolic link) is refused with PermissionDenied.
//
// Thread-safe: methods are const and share no mutable state, except the test hook.
#ifndef HIPPO_WORKERS_CHECKPOINT_STORE_H_
#define HIPPO_WORKERS_CHECKPOINT_STORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hippo::workers {

// What CheckpointWritten reports.
struct CheckpointInfo {
  std::string uri;         // "file://" + absolute path (not percent-encoded)
  int64_t size_bytes = 0;  // of the whole file, header included
  std::string checksum;    // "crc32c:" + 8 lowercase hex digits, of the payload
};

struct CheckpointContents {
  int64_t stage_id = 0;
  int64_t step = 0;
  std::string payload;
};

class CheckpointStore {
 public:
  static constexpr int64_t kHeaderBytes = 48;

  // Opens (creating it and its parents if needed) the directory `directory`, which is made
  // absolute and resolved through symbolic links. InvalidArgument for an empty path,
  // the filesystem's error otherwise.
  static absl::StatusOr<CheckpointStore> Open(std::string_view directory);

  // The uri of the checkpoint of (stage_id, step): <dir>/stage-<id>-step-<step>.ckpt.
  std::string UriFor(int64_t stage_id, int64_t step) const;

  // Writes `payload` as the checkpoint of (stage_id, step), atomically, replacing an existing
  // one. Returns its uri, size and checksum; on error nothing is left behind.
  absl::StatusOr<CheckpointInfo> Write(int64_t stage_id, int64_t step,
                                       std::string_view payload) const;

  // Reads and verifies a checkpoint. InvalidArgument for a malformed uri, PermissionDenied for
  // one outside the directory, NotFound for a missing file, DataLoss for a file that is not a
  // checkpoint, is truncated, or fails its checksum.
  absl::StatusOr<CheckpointContents> ReadCheckpoint(std::string_view uri) const;
  // ReadCheckpoint(uri)->payload.
  absl::StatusOr<std::string> Read(std::string_view uri) const;

  // Deletes the checkpoint file of `uri` (released by the coordinator). OK when it is gone,
  // also when it was missing already; the errors of PathOf, or the filesystem's.
  absl::Status Delete(std::string_view uri) const;

  // The local path of a uri, after the confinement check (see ReadCheckpoint for the errors).
  absl::StatusOr<std::string> PathOf(std::string_view uri) const;

  // Deletes the temporary files whose writer is dead: those of this host whose process no
  // longer exists (or has this process's pid, as nothing was written by it yet), and those
  // whose name records no host. Another host's are left alone (their writer may be alive).
  // Finished checkpoints are never touched. Returns the paths removed. Call before writing.
  absl::StatusOr<std::vector<std::string>> RemoveOrphanTemporaries() const;

  const std::string& directory() const { return directory_; }

  // Called between the temporary file's fsync and its rename, with the temporary path; an
  // error aborts the write. For tests of atomicity.
  void SetBeforeRenameHookForTesting(std::function<absl::Status(const std::string&)> hook) {
    before_rename_ = std::move(hook);
  }
  // Called right after the rename that publishes a checkpoint (before the directory's fsync),
  // with the final path; an error fails the write. For tests of crashes around the rename.
  void SetAfterRenameHookForTesting(std::function<absl::Status(const std::string&)> hook) {
    after_rename_ = std::move(hook);
  }

 private:
  CheckpointStore(std::string directory, std::string host)
      : directory_(std::move(directory)), host_(std::move(host)) {}

  std::string directory_;  // absolute, canonical, no trailing slash
  std::string host_;       // this machine's name, recorded in temporary file names
  std::function<absl::Status(const std::string&)> before_rename_;
  std::function<absl::Status(const std::string&)> after_rename_;
};

// Formats a checksum the way CheckpointInfo::checksum does.
std::string FormatChecksum(uint32_t crc32c);

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_CHECKPOINT_STORE_H_
