// Test-only fault injection for the fault suite (tests/e2e/checkpoint_kill_test.cc,
// tests/e2e/full_disk_test.cc, docs/durability.md "Tests"): a worker process that SIGKILLs
// itself at a chosen checkpoint write, so that a test can crash a real worker exactly around
// the rename that publishes a checkpoint, or whose disk fills up. Never set in production;
// without the variables nothing changes. At most one of them may be set.
//
//   HIPPO_TEST_SIGKILL_AT_CHECKPOINT=<when>:<n>
//     when: before-rename (the temporary file is written and synced, not yet renamed) or
//           after-rename (the checkpoint is published, not yet reported to the coordinator)
//     n:    which checkpoint write of this process, counted from 1
//
//   HIPPO_TEST_DISK_FULL_AT_CHECKPOINT=<n>
//     the disk is full from this process's n-th checkpoint write on (counted from 1): that
//     write and every later one fail with ENOSPC ("No space left on device") as a write to a
//     full file system does, and leave no file behind (the store removes its temporary file).
#ifndef HIPPO_WORKERS_FAULT_INJECTION_H_
#define HIPPO_WORKERS_FAULT_INJECTION_H_

#include "absl/status/status.h"
#include "workers/checkpoint_store.h"

namespace hippo::workers {

inline constexpr char kSigkillAtCheckpointEnv[] = "HIPPO_TEST_SIGKILL_AT_CHECKPOINT";
inline constexpr char kDiskFullAtCheckpointEnv[] = "HIPPO_TEST_DISK_FULL_AT_CHECKPOINT";

// Installs the hook that HIPPO_TEST_SIGKILL_AT_CHECKPOINT or HIPPO_TEST_DISK_FULL_AT_CHECKPOINT
// asks for on `store`; nothing when both are unset or empty. InvalidArgument naming the
// variable when its value is malformed, or when both are set.
absl::Status InjectCheckpointFaultsFromEnv(CheckpointStore& store);

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_FAULT_INJECTION_H_
