#include "workers/fault_injection.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hippo::workers {

absl::Status InjectCheckpointFaultsFromEnv(CheckpointStore& store) {
  const char* value = std::getenv(kSigkillAtCheckpointEnv);
  if (value == nullptr || *value == '\0') return absl::OkStatus();
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

}  // namespace hippo::workers
