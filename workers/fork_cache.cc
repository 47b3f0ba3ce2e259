#include "workers/fork_cache.h"

#include <utility>

namespace hippo::workers {

ForkCache::ForkCache(int64_t budget_bytes) : budget_bytes_(budget_bytes) {}

ForkCache::PutResult ForkCache::Put(StateKey key, std::unique_ptr<TrainingState> state) {
  PutResult result;
  if (state == nullptr) return result;
  const int64_t bytes = state->SizeBytes();
  // Freed outside the lock: a large state's destructor may take a while.
  std::vector<std::unique_ptr<TrainingState>> dropped;
  {
    absl::MutexLock lock(&mu_);
    bool replaced = false;
    if (auto it = index_.find(key); it != index_.end()) {
      replaced = true;
      used_bytes_ -= it->second->bytes;
      dropped.push_back(std::move(it->second->state));
      recency_.erase(it->second);
      index_.erase(it);
    }
    if (bytes > budget_bytes_) {
      // The key was cached and no longer is: the coordinator must hear of it.
      if (replaced) result.evicted.push_back(key);
      dropped.push_back(std::move(state));
      return result;
    }
    while (used_bytes_ + bytes > budget_bytes_) {
      Entry& oldest = recency_.back();
      used_bytes_ -= oldest.bytes;
      result.evicted.push_back(oldest.key);
      dropped.push_back(std::move(oldest.state));
      index_.erase(oldest.key);
      recency_.pop_back();
    }
    recency_.push_front(Entry{key, std::move(state), bytes});
    index_[key] = recency_.begin();
    used_bytes_ += bytes;
    result.kept = true;
  }
  return result;
}

std::unique_ptr<TrainingState> ForkCache::CloneOf(StateKey key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  recency_.splice(recency_.begin(), recency_, it->second);
  return it->second->state->Clone();
}

bool ForkCache::Contains(StateKey key) const {
  absl::MutexLock lock(&mu_);
  return index_.contains(key);
}

bool ForkCache::Erase(StateKey key) {
  std::unique_ptr<TrainingState> dropped;
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  used_bytes_ -= it->second->bytes;
  dropped = std::move(it->second->state);
  recency_.erase(it->second);
  index_.erase(it);
  return true;
}

std::vector<StateKey> ForkCache::Keys() const {
  absl::MutexLock lock(&mu_);
  std::vector<StateKey> keys;
  keys.reserve(recency_.size());
  for (const Entry& entry : recency_) keys.push_back(entry.key);
  return keys;
}

int64_t ForkCache::used_bytes() const {
  absl::MutexLock lock(&mu_);
  return used_bytes_;
}

}  // namespace hippo::workers
