#include "hippo/scheduler.h"

namespace hippo::coordinator {
namespace {

int64_t Key(int64_t family_id, stage_tree::NodeId node) {
  return (family_id << 32) | static_cast<int64_t>(node);
}

}  // namespace

void ReadyQueue::Push(QueuedStage stage, double priority) {
  const int64_t key = Key(stage.family_id, stage.node);
  auto [it, inserted] = queued_priority_.try_emplace(key, priority);
  if (!inserted) {
    entries_.erase(Entry{-it->second, stage.family_id, stage.node});
    it->second = priority;
  }
  entries_.insert(Entry{-priority, stage.family_id, stage.node});
}

void ReadyQueue::Clear() {
  entries_.clear();
  queued_priority_.clear();
}

void ReadyQueue::Erase(absl::btree_set<Entry>::iterator it) {
  queued_priority_.erase(Key(std::get<1>(*it), std::get<2>(*it)));
  entries_.erase(it);
}

std::optional<QueuedStage> ReadyQueue::Pop(
    const std::function<bool(const QueuedStage&)>& still_ready,
    const std::function<bool(const QueuedStage&)>& is_local) {
  while (!entries_.empty()) {
    auto best = entries_.begin();
    const QueuedStage top{std::get<1>(*best), std::get<2>(*best)};
    if (!still_ready(top)) {
      Erase(best);
      continue;
    }
    auto chosen = best;
    int looked = 0;
    for (auto it = best;
         it != entries_.end() && std::get<0>(*it) == std::get<0>(*best) && looked < kLocalityWindow;
         ++it, ++looked) {
      const QueuedStage candidate{std::get<1>(*it), std::get<2>(*it)};
      if (is_local(candidate) && still_ready(candidate)) {
        chosen = it;
        break;
      }
    }
    const QueuedStage result{std::get<1>(*chosen), std::get<2>(*chosen)};
    Erase(chosen);
    return result;
  }
  return std::nullopt;
}

}  // namespace hippo::coordinator
