// CheckpointLedger: the coordinator's account of checkpoint files, for garbage collection
// (docs/durability.md, "Checkpoint garbage collection").
//
// It knows every kept state's file (its family, lineage and step, its uri, its directory and
// size as the worker reported them), the bytes kept per directory, each directory's budget (the
// smallest --checkpoint-budget of the workers writing there), and the garbage: files released
// but not yet confirmed deleted by a worker of their directory. Directories are the canonical
// paths workers report; a uri's directory is its parent path. Not thread-safe: the engine calls
// it under its lock.
#ifndef HIPPO_HIPPO_CHECKPOINT_LEDGER_H_
#define HIPPO_HIPPO_CHECKPOINT_LEDGER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"

namespace hippo::coordinator {

struct KeptCheckpoint {
  int64_t family_id = 0;
  int64_t lineage = 0;
  int64_t step = 0;
  std::string uri;
  std::string directory;
  int64_t size_bytes = 0;
};

class CheckpointLedger {
 public:
  // The directory of a "file://" uri (its parent path), "" for any other uri.
  static std::string DirectoryOf(const std::string& uri);

  // A state's file: replaces what was kept for the same (family, lineage, step) and returns
  // that entry when it was another file (now unreferenced: the caller releases it).
  std::optional<KeptCheckpoint> Keep(KeptCheckpoint checkpoint);
  // Removes and returns the entry of a state, if any.
  std::optional<KeptCheckpoint> Release(int64_t family_id, int64_t lineage, int64_t step);
  // The kept states of a family, by (lineage, step).
  const std::map<std::pair<int64_t, int64_t>, KeptCheckpoint>* KeptOf(int64_t family_id) const;
  std::vector<int64_t> Families() const;

  // Bytes and files kept in a directory.
  int64_t kept_bytes(const std::string& directory) const;
  int64_t kept_files(const std::string& directory) const;
  // The largest checkpoint ever kept in a directory (0 before the first): what the next write
  // there is expected to take.
  int64_t largest(const std::string& directory) const;
  // Every directory with kept files, garbage or a budget.
  std::vector<std::string> Directories() const;

  // Budgets: the smallest positive budget any worker reported for the directory, 0 for none.
  void SetBudget(const std::string& worker_id, const std::string& directory, int64_t bytes);
  int64_t Budget(const std::string& directory) const;

  // Garbage: released files until a worker confirms their deletion.
  void AddGarbage(store::GarbageRecord record);
  // True if `uri` was garbage (and is no longer).
  bool RemoveGarbage(const std::string& uri);
  // Every uri of the directory's garbage not yet sent for deletion (all of them when
  // `resend`), marking them sent.
  std::vector<std::string> TakeUnsent(const std::string& directory, bool resend);
  int64_t pending(const std::string& directory) const;
  // The bytes of those files (still on disk until the worker deletes them).
  int64_t pending_bytes(const std::string& directory) const;
  // Whether a file of (stage_id, step) for some step in [from_step, to_step] in `directory`
  // waits for deletion: a stage that writes these states there must wait, or the late delete
  // would remove the new file.
  bool Blocks(const std::string& directory, int64_t stage_id, int64_t from_step,
              int64_t to_step) const;

 private:
  struct Garbage {
    store::GarbageRecord record;
    bool sent = false;
  };
  std::map<int64_t, std::map<std::pair<int64_t, int64_t>, KeptCheckpoint>> kept_;
  std::map<std::string, std::pair<int64_t, int64_t>> usage_;       // directory -> (bytes, files)
  std::map<std::string, int64_t> largest_;                         // directory -> bytes
  std::map<std::string, std::map<std::string, int64_t>> budgets_;  // directory -> worker -> bytes
  std::map<std::string, std::map<std::string, Garbage>> garbage_;  // directory -> uri -> entry
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_CHECKPOINT_LEDGER_H_
