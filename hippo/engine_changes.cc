// The versions of the engine's read views. Every batch that reaches CommitAndSend says what it
// changes (trial rows, tree operations on stages, metric rows): NoteChanges keeps that much
// (a few appends) and signals the listeners; the next reader stamps the trials concerned with
// a new version (ResolveChanges), so the write path never walks trials and a reader pays for
// the changes only.
#include <algorithm>
#include <tuple>

#include "hippo/engine_impl.h"

namespace hippo::coordinator {

namespace {

// Noted changes are stamped once this many gathered, so that memory stays bounded while
// nobody reads the views.
constexpr size_t kMaxNoted = 1 << 16;

}  // namespace

void EngineImpl::AddChangeListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(mutex_);
  listeners_.push_back(std::move(listener));
}

void EngineImpl::NoteChanges(const store::WriteBatch& batch) {
  // A worker's connection (batch.workers) changes the workers' view, which readers follow too.
  bool changed = !batch.studies.empty() || !batch.workers.empty();
  for (const store::TrialRecord& trial : batch.trials) {
    auto it = study_index_.find(trial.study_id);
    if (it == study_index_.end()) continue;  // recorded before its study: not a view yet
    noted_trials_.emplace_back(it->second, trial.trial_id);
    changed = true;
  }
  for (const store::TreeOp& op : batch.tree_ops) {
    switch (op.kind) {
      case store::TreeOpKind::kExtend:  // a new target (and maybe splits on its path)
        noted_extends_.emplace_back(op.family_id, op.a);
        changed = true;
        break;
      case store::TreeOpKind::kRunning:  // a cut changes the paths through the stage
        if (op.b == 0) break;
        [[fallthrough]];
      case store::TreeOpKind::kDone:  // reached steps of the trials through it
      case store::TreeOpKind::kFailed:
      case store::TreeOpKind::kRequeue:
      case store::TreeOpKind::kStateLost:  // its stage is trained again
      case store::TreeOpKind::kDropState:  // its stage keeps its checkpoint_uri no more
        noted_nodes_.emplace_back(op.family_id, op.a);
        changed = true;
        break;
      case store::TreeOpKind::kCheckpoint:  // no trial's view changes; a worker's fork cache does
        changed = true;
        break;
      case store::TreeOpKind::kInsert:  // the new trial's row is in the batch
        break;
    }
  }
  // A metric row is named by its stage's lineage and step; the stage is found when stamped.
  for (const store::MetricRecord& metric : batch.metrics) {
    const std::tuple<int64_t, int64_t, int64_t> at(metric.family_id, metric.lineage, metric.step);
    if (noted_metrics_.empty() || noted_metrics_.back() != at) noted_metrics_.push_back(at);
    changed = true;
  }
  if (!changed) return;
  if (noted_trials_.size() + noted_nodes_.size() + noted_extends_.size() + noted_metrics_.size() >
      kMaxNoted) {
    ResolveChanges();
  }
  for (const std::function<void()>& listener : listeners_) listener();
}

void EngineImpl::StampTrial(StudyState& study, int64_t number, int64_t version) {
  if (number < 0 || number >= static_cast<int64_t>(study.trials.size())) return;
  TrialState& trial = study.trials[number];
  if (trial.view_version == version) return;
  if (trial.view_version > 0) study.changed_trials.erase({trial.view_version, number});
  trial.view_version = version;
  study.changed_trials.insert({version, number});
}

void EngineImpl::ResolveChanges() {
  if (noted_trials_.empty() && noted_nodes_.empty() && noted_extends_.empty() &&
      noted_metrics_.empty()) {
    return;
  }
  const int64_t version = ++view_version_;
  for (const auto& [study_index, number] : noted_trials_) {
    StampTrial(*studies_[study_index], number, version);
  }
  auto stamp_owner = [&](const FamilyState& family, stage_tree::TrialId tree_trial) {
    if (tree_trial >= family.owned_trials()) return;
    const FamilyState::Owner& owner = family.OwnerOf(tree_trial);
    if (owner.deleted()) return;  // of a deleted study: no view shows it
    StampTrial(*studies_[owner.study_index], owner.trial, version);
  };
  // A metric's stage: the node of its lineage that holds its step. A lineage starts at the node
  // of its id; when that node is split, its lower part (a child) continues the lineage.
  std::sort(noted_metrics_.begin(), noted_metrics_.end());
  noted_metrics_.erase(std::unique(noted_metrics_.begin(), noted_metrics_.end()),
                       noted_metrics_.end());
  for (const auto& [family_id, lineage, step] : noted_metrics_) {
    if (family_id < 1 || family_id > static_cast<int64_t>(families_.size())) continue;
    const FamilyState& family = FamilyById(family_id);
    if (lineage < 1 || lineage >= static_cast<int64_t>(family.tree().node_count())) continue;
    auto node = static_cast<stage_tree::NodeId>(lineage);
    while (step >= family.tree().node(node).end) {
      stage_tree::NodeId next = node;
      for (stage_tree::NodeId child : family.tree().Children(node)) {
        if (family.lineage(child) == lineage) next = child;
      }
      if (next == node) break;
      node = next;
    }
    if (noted_nodes_.empty() || noted_nodes_.back() != std::make_pair(family_id, int64_t{node})) {
      noted_nodes_.emplace_back(family_id, node);
    }
  }
  std::sort(noted_nodes_.begin(), noted_nodes_.end());
  noted_nodes_.erase(std::unique(noted_nodes_.begin(), noted_nodes_.end()), noted_nodes_.end());
  for (const auto& [family_id, node] : noted_nodes_) {
    if (family_id < 1 || family_id > static_cast<int64_t>(families_.size())) continue;
    const FamilyState& family = FamilyById(family_id);
    if (node < 1 || node >= static_cast<int64_t>(family.tree().node_count())) continue;
    for (stage_tree::TrialId trial :
         family.tree().TrialsThrough(static_cast<stage_tree::NodeId>(node))) {
      stamp_owner(family, trial);
    }
  }
  for (const auto& [family_id, tree_trial] : noted_extends_) {
    if (family_id < 1 || family_id > static_cast<int64_t>(families_.size())) continue;
    stamp_owner(FamilyById(family_id), static_cast<stage_tree::TrialId>(tree_trial));
  }
  noted_trials_.clear();
  noted_nodes_.clear();
  noted_extends_.clear();
  noted_metrics_.clear();
}

}  // namespace hippo::coordinator
