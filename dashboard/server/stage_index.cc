#include "dashboard/server/stage_index.h"

#include <algorithm>
#include <utility>

namespace hippo::dashboard {
namespace {

namespace v1 = ::hippo::v1;

bool Settled(const v1::Stage& stage) {
  return stage.state() == v1::STAGE_DONE || stage.state() == v1::STAGE_FAILED;
}

}  // namespace

StageIndex::StageIndex()
    : parent_{-1}, children_(1), position_{0}, descendants_{0}, trial_counts_{0} {}

int32_t StageIndex::NodeOf(int64_t stage_id) const {
  auto it = node_of_stage_.find(stage_id);
  return it == node_of_stage_.end() ? -1 : it->second;
}

int32_t StageIndex::DeepestOf(int64_t trial) const {
  if (trial < 0 || static_cast<size_t>(trial) >= deepest_of_trial_.size()) return 0;
  return deepest_of_trial_[trial];
}

std::vector<int64_t> StageIndex::UnsettledStageIds() const {
  std::vector<int64_t> ids;
  ids.reserve(unsettled_.size());
  for (int32_t node : unsettled_) ids.push_back(StageId(node));
  return ids;
}

bool StageIndex::Before(int32_t a, int32_t b) const {
  if (descendants_[a] != descendants_[b]) return descendants_[a] > descendants_[b];
  return StageId(a) < StageId(b);
}

void StageIndex::Reorder(int32_t node) {
  const int32_t parent = parent_[node];
  if (parent < 0) return;
  std::vector<int32_t>& siblings = children_[parent];
  size_t at = static_cast<size_t>(position_[node]);
  while (at > 0 && Before(node, siblings[at - 1])) {
    siblings[at] = siblings[at - 1];
    position_[siblings[at]] = static_cast<int32_t>(at);
    --at;
  }
  while (at + 1 < siblings.size() && Before(siblings[at + 1], node)) {
    siblings[at] = siblings[at + 1];
    position_[siblings[at]] = static_cast<int32_t>(at);
    ++at;
  }
  siblings[at] = node;
  position_[node] = static_cast<int32_t>(at);
}

void StageIndex::AddBelow(int32_t from, int64_t delta) {
  for (int32_t node = from; node >= 0; node = parent_[node]) {
    descendants_[node] += delta;
    Reorder(node);
  }
}

bool StageIndex::Below(int32_t node, int32_t ancestor) const {
  for (int32_t at = node; at >= 0; at = parent_[at]) {
    if (at == ancestor) return true;
  }
  return false;
}

void StageIndex::Link(int32_t node, int32_t parent) {
  parent_[node] = parent;
  position_[node] = static_cast<int32_t>(children_[parent].size());
  children_[parent].push_back(node);
  Reorder(node);
  AddBelow(parent, descendants_[node] + 1);
}

void StageIndex::Unlink(int32_t node) {
  const int32_t parent = parent_[node];
  std::vector<int32_t>& siblings = children_[parent];
  siblings.erase(siblings.begin() + position_[node]);
  for (size_t at = static_cast<size_t>(position_[node]); at < siblings.size(); ++at) {
    position_[siblings[at]] = static_cast<int32_t>(at);
  }
  parent_[node] = -1;
  AddBelow(parent, -(descendants_[node] + 1));
}

std::vector<int32_t> StageIndex::NodesOf(const std::vector<v1::Stage>& stages) {
  std::vector<int32_t> nodes;
  nodes.reserve(stages.size());
  for (const v1::Stage& stage : stages) {
    const auto [it, added] =
        node_of_stage_.try_emplace(stage.id(), static_cast<int32_t>(stages_.size() + 1));
    if (added) {
      stages_.emplace_back();
      parent_.push_back(-1);
      children_.emplace_back();
      position_.push_back(0);
      descendants_.push_back(0);
      trial_counts_.push_back(0);
    }
    nodes.push_back(it->second);
  }
  return nodes;
}

bool StageIndex::Deeper(int32_t node, int32_t than) const {
  const int64_t end = stage(node).end_step(), than_end = stage(than).end_step();
  return end > than_end || (end == than_end && StageId(node) < StageId(than));
}

void StageIndex::TakeFields(std::vector<v1::Stage>& stages, const std::vector<int32_t>& nodes) {
  std::vector<std::pair<int64_t, int32_t>> through;  // (trial, node)
  for (size_t i = 0; i < stages.size(); ++i) {
    v1::Stage& stage = stages[i];
    const int32_t node = nodes[i];
    trial_counts_[node] = stage.trial_ids_size();
    for (int64_t trial : stage.trial_ids()) {
      if (trial >= 0) through.emplace_back(trial, node);
    }
    if (stage.trial_ids_size() > kTrialIdsPerStage) {
      stage.mutable_trial_ids()->Truncate(kTrialIdsPerStage);
    }
    if (Settled(stage)) {
      unsettled_.erase(node);
    } else {
      unsettled_.insert(node);
    }
    int64_t& last = family_last_[stage.id() >> 32];
    last = std::max(last, stage.id());
    stages_[node - 1] = std::move(stage);
  }
  // Each trial's deepest stage, among its current one and the stages that came (with their
  // new end steps).
  for (const auto& [trial, node] : through) {
    if (static_cast<size_t>(trial) >= deepest_of_trial_.size()) {
      deepest_of_trial_.resize(trial + 1, 0);
    }
    int32_t& deepest = deepest_of_trial_[trial];
    if (deepest == 0 || Deeper(node, deepest)) deepest = node;
  }
}

void StageIndex::Build(std::vector<v1::Stage> stages) {
  *this = StageIndex();
  node_of_stage_.reserve(stages.size());
  const std::vector<int32_t> nodes = NodesOf(stages);
  TakeFields(stages, nodes);
  const size_t count = stages_.size() + 1;
  for (size_t node = 1; node < count; ++node) {
    const int64_t parent_id = stages_[node - 1].parent_id();
    const int32_t parent = parent_id == 0 ? 0 : NodeOf(parent_id);
    parent_[node] = parent < 0 || parent == static_cast<int32_t>(node) ? 0 : parent;
    children_[parent_[node]].push_back(static_cast<int32_t>(node));
  }
  // Stages below each: along a post-order from the root (a parent may come after its child).
  std::vector<int32_t> order;
  order.reserve(count);
  std::vector<int32_t> stack = {0};
  while (!stack.empty()) {
    const int32_t node = stack.back();
    stack.pop_back();
    order.push_back(node);
    for (int32_t child : children_[node]) stack.push_back(child);
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    if (*it != 0) descendants_[parent_[*it]] += descendants_[*it] + 1;
  }
  for (std::vector<int32_t>& children : children_) {
    std::sort(children.begin(), children.end(),
              [this](int32_t a, int32_t b) { return Before(a, b); });
    for (size_t at = 0; at < children.size(); ++at) {
      position_[children[at]] = static_cast<int32_t>(at);
    }
  }
}

void StageIndex::Apply(std::vector<v1::Stage> stages) {
  // Nodes for the new stages first, so that a parent that comes after its child is found.
  const std::vector<int32_t> nodes = NodesOf(stages);
  TakeFields(stages, nodes);
  // Links: each stage under its parent (the root when its parent is not known).
  for (const int32_t node : nodes) {
    const int64_t parent_id = stage(node).parent_id();
    int32_t parent = parent_id == 0 ? 0 : NodeOf(parent_id);
    // Unknown, or (were the stages read at different times inconsistent) one of its own
    // descendants: the root, until its parent comes.
    if (parent < 0 || Below(parent, node)) parent = 0;
    if (parent_[node] == parent) continue;
    if (parent_[node] >= 0) Unlink(node);
    Link(node, parent);
  }
}

}  // namespace hippo::dashboard
