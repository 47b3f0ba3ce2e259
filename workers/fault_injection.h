// Test-only fault injection for the fault suite (tests/e2e/checkpoint_kill_test.cc,
// docs/durability.md "Tests"): a worker process that SIGKILLs itself at a chosen checkpoint
// write, so that a test can crash a real worker exactly around the rename that publishes a
// checkpoint. Never set in production; without the variable nothing changes.
//
//   HIPPO_TEST_SIGKILL_AT_CHECKPOINT=<when>:<n>
//     when: before-rename (the temporary file is written and synced, not yet renamed) or
//           after-rename (the checkpoint is published, not yet reported to the coordinator)
//     n:    which checkpoint write of this process, counted from 1
#ifndef HIPPO_WORKERS_FAULT_INJECTION_H_
#define HIPPO_WORKERS_FAULT_INJECTION_H_

#include "absl/status/status.h"
#include "workers/checkpoint_store.h"

namespace hippo::workers {

inline constexpr char kSigkillAtCheckpointEnv[] = "HIPPO_TEST_SIGKILL_AT_CHECKPOINT";

// Installs the hook that HIPPO_TEST_SIGKILL_AT_CHECKPOINT asks for on `store`; nothing when the
// variable is unset or empty. InvalidArgument naming the variable when its value is malformed.
absl::Status InjectCheckpointFaultsFromEnv(CheckpointStore& store);

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_FAULT_INJECTION_H_
