#include "workers/fault_injection.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hippo::workers {
namespace {

const char* EnvValue(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr || *value == '\0' ? nullptr : value;
}

absl::Status InjectSigkill(const char* value, CheckpointStore& store) {
  const std::pair<std::string, std::string> parts = absl::StrSplit(value, absl::MaxSplits(':', 1));
  int64_t nth = 0;
  const bool before = parts.first == "before-rename";
  if ((!before && parts.first != "after-rename") || !absl::SimpleAtoi(parts.second, &nth) ||
      nth < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(kSigkillAtCheckpointEnv, "='", value,
                     "': expected before-rename:N or after-rename:N with N >= 1 (test only)"));
  }
  auto writes = std::make_shared<std::atomic<int64_t>>(0);
  auto hook = [writes, nth](const std::string&) {
    if (writes->fetch_add(1) + 1 == nth) ::kill(::getpid(), SIGKILL);
    return absl::OkStatus();
  };
  if (before) {
    store.SetBeforeRenameHookForTesting(hook);
  } else {
    store.SetAfterRenameHookForTesting(hook);
  }
  return absl::OkStatus();
}

absl::Status InjectDiskFull(const char* value, CheckpointStore& store) {
  int64_t nth = 0;
  if (!absl::SimpleAtoi(value, &nth) || nth < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(kDiskFullAtCheckpointEnv, "='", value, "': expected N >= 1 (test only)"));
  }
  // Before the rename, so that the store fails the write and removes its temporary file, as
  // after a write(2) that returned ENOSPC.
  auto writes = std::make_shared<std::atomic<int64_t>>(0);
  store.SetBeforeRenameHookForTesting([writes, nth](const std::string& temp_path) {
    if (writes->fetch_add(1) + 1 < nth) return absl::OkStatus();
    return absl::ErrnoToStatus(ENOSPC, absl::StrCat("cannot write checkpoint ", temp_path));
  });
  return absl::OkStatus();
}

}  // namespace

absl::Status InjectCheckpointFaultsFromEnv(CheckpointStore& store) {
  const char* sigkill = EnvValue(kSigkillAtCheckpointEnv);
  const char* disk_full = EnvValue(kDiskFullAtCheckpointEnv);
  if (sigkill != nullptr && disk_full != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(kSigkillAtCheckpointEnv, " and ",
                                                   kDiskFullAtCheckpointEnv,
                                                   ": set one of them (test only)"));
  }
  if (sigkill != nullptr) return InjectSigkill(sigkill, store);
  if (disk_full != nullptr) return InjectDiskFull(disk_full, store);
  return absl::OkStatus();
}

}  // namespace hippo::workers
