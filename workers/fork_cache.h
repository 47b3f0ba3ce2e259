// ForkCache: recent training states kept in memory, so that a child stage assigned to the same
// worker starts from its parent's state without reading a checkpoint (docs/concepts.md,
// "Checkpoint and fork"). Bounded by a byte budget (TrainingState::SizeBytes()); when full, the
// least recently used states are evicted, and the caller reports them to the coordinator
// (CacheEvicted) so the scheduler stops counting on them.
//
// Thread-safe.
#ifndef HIPPO_WORKERS_FORK_CACHE_H_
#define HIPPO_WORKERS_FORK_CACHE_H_

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "workers/trainer.h"

namespace hippo::workers {

// A state's address: the stage that produced it and the step it is at.
struct StateKey {
  int64_t stage_id = 0;
  Step step = 0;

  friend auto operator<=>(const StateKey&, const StateKey&) = default;
};

class ForkCache {
 public:
  // `budget_bytes` <= 0 disables the cache (nothing is ever kept).
  explicit ForkCache(int64_t budget_bytes);
  ForkCache(const ForkCache&) = delete;
  ForkCache& operator=(const ForkCache&) = delete;

  struct PutResult {
    bool kept = false;              // false when the state alone exceeds the budget
    std::vector<StateKey> evicted;  // least recently used first
  };

  // Takes `state` as the state of `key`, replacing any previous one (a replacement is not an
  // eviction), and makes it the most recently used. Evicts least recently used states until
  // the total fits the budget. A state larger than the whole budget is not kept and evicts
  // nothing (except the state it replaces, which is reported as evicted).
  PutResult Put(StateKey key, std::unique_ptr<TrainingState> state);

  // A deep copy of the state of `key`, which becomes the most recently used; nullptr if absent.
  // The cached original stays untouched, so several children can fork from it.
  std::unique_ptr<TrainingState> CloneOf(StateKey key);

  bool Contains(StateKey key) const;
  // Removes the state of `key`; returns whether it was there. Not reported as an eviction.
  bool Erase(StateKey key);

  // The cached keys, most recently used first (WorkerHello.cached_states).
  std::vector<StateKey> Keys() const;

  int64_t used_bytes() const;
  int64_t budget_bytes() const { return budget_bytes_; }

 private:
  struct Entry {
    StateKey key;
    std::unique_ptr<TrainingState> state;
    int64_t bytes = 0;
  };
  using Recency = std::list<Entry>;  // front: most recently used

  const int64_t budget_bytes_;
  mutable absl::Mutex mu_;
  Recency recency_ ABSL_GUARDED_BY(mu_);
  std::map<StateKey, Recency::iterator> index_ ABSL_GUARDED_BY(mu_);
  int64_t used_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_FORK_CACHE_H_
