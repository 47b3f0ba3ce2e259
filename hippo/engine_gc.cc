// Checkpoint garbage collection (docs/durability.md, "Checkpoint garbage collection").
//
// A kept state is released in one of three tiers, in this order:
//   1. unneeded: no trial of an unfinished study passes through its stage — released as studies
//      end, by `hippo gc`, and first when a directory is over its limit (engine_budget.cc: the
//      budget less the writes in flight there and one more state);
//   2. ended branch: only ended trials of unfinished studies pass through it (a later trial may
//      branch there) — released only over a limit;
//   3. live interior: a live trial passes through it but does not continue from it (a fork or a
//      later trial may) — released only over a limit, after tier 2.
// Never released: a state a stage that is not done starts from (pending work, and the states a
// running attempt restarts from), the end state of a live trial (it may be extended), the
// states of stages not done, the final states of each study's keep_best_states best trials, and
// a state another family inherits while a first stage of that family that is not done starts
// from it (one a trial of an unfinished study in that family may still start from is tier 2).
// A released state is forgotten by the tree first (a kDropState operation, committed before any
// file is deleted), so if a later stage needs it, it is recomputed from the nearest kept state.
#include <algorithm>
#include <set>
#include <tuple>

#include "hippo/engine_impl.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using stage_tree::NodeId;
using stage_tree::StageState;

namespace {

bool Unfinished(v1::StudyState state) {
  return state == v1::STUDY_RUNNING || state == v1::STUDY_PENDING;
}

struct Candidate {
  int tier = 0;
  int64_t family_id = 0;
  NodeId node = 0;
  int64_t step = 0;
  std::string directory;
};

}  // namespace

void EngineImpl::LedgerKeep(const FamilyState& family, NodeId node, int64_t step,
                            const std::string& uri, int64_t size_bytes, store::WriteBatch& batch) {
  const int64_t lineage = family.lineage(node);
  std::optional<KeptCheckpoint> replaced = ledger_.Keep(
      {family.id(), lineage, step, uri, CheckpointLedger::DirectoryOf(uri), size_bytes});
  if (!replaced) return;
  // The same state written again into another file: the older file holds nothing kept.
  batch.checkpoint_removals.emplace_back(family.id(), replaced->uri);
  if (replaced->directory.empty()) return;
  store::GarbageRecord garbage{replaced->uri, replaced->directory, replaced->size_bytes,
                               GlobalStageId(family.id(), static_cast<NodeId>(lineage)), step};
  batch.garbage.push_back(garbage);
  ledger_.AddGarbage(std::move(garbage));
}

NodeId EngineImpl::NodeOfState(
    const std::map<std::pair<int64_t, int64_t>, NodeId>& by_lineage_start,
    const FamilyState& family, int64_t lineage, int64_t step) {
  // The part of the lineage that starts last before `step`: the state after `step` is its end
  // or lies inside it.
  auto it = by_lineage_start.lower_bound({lineage, step});
  if (it == by_lineage_start.begin()) return stage_tree::kNoNode;
  --it;
  if (it->first.first != lineage || step > family.tree().node(it->second).end) {
    return stage_tree::kNoNode;
  }
  return it->second;
}

void EngineImpl::ReleaseState(FamilyState& family, NodeId node, int64_t step, Freed& freed,
                              store::WriteBatch& batch) {
  const int64_t lineage = family.lineage(node);
  if (family.tree().DropState(node, step).ok()) {
    family.AppendOp(store::TreeOpKind::kDropState, node, step, "", batch);
    if (step == family.tree().node(node).end) batch.stages.push_back(StageRecordOf(family, node));
    family.InvalidatePriorities();
  }
  family.ForgetStateUri(lineage, step);
  std::optional<KeptCheckpoint> released = ledger_.Release(family.id(), lineage, step);
  if (!released) return;
  batch.checkpoint_removals.emplace_back(family.id(), released->uri);
  auto& [bytes, files] = freed[released->directory];
  bytes += released->size_bytes;
  ++files;
  if (released->directory.empty()) return;  // not a file: nothing to delete
  store::GarbageRecord garbage{released->uri, released->directory, released->size_bytes,
                               GlobalStageId(family.id(), static_cast<NodeId>(lineage)), step};
  batch.garbage.push_back(garbage);
  ledger_.AddGarbage(std::move(garbage));
}

EngineImpl::Freed EngineImpl::Collect(bool unneeded, store::WriteBatch& batch, Outbox& outbox) {
  if (unneeded) collection_due_ = false;
  Freed freed;
  const std::vector<std::string> over = OverLimitDirectories();
  if (!unneeded && over.empty()) return freed;

  // The final states kept as the best trials' (family, lineage, step).
  std::set<std::tuple<int64_t, int64_t, int64_t>> best_states;
  if (options_.keep_best_states > 0) {
    for (const auto& study : studies_) {
      if (study->deleted) continue;
      std::vector<int64_t> completed;
      for (int64_t number = 0; number < static_cast<int64_t>(study->trials.size()); ++number) {
        if (Beats(*study, number, std::nullopt)) completed.push_back(number);
      }
      const size_t keep =
          std::min(completed.size(), static_cast<size_t>(options_.keep_best_states));
      std::partial_sort(completed.begin(), completed.begin() + keep, completed.end(),
                        [&](int64_t a, int64_t b) { return Beats(*study, a, b); });
      for (size_t i = 0; i < keep; ++i) {
        const TrialState& trial = study->trials[completed[i]];
        const FamilyState& family = FamilyById(trial.family_id);
        best_states.emplace(family.id(), family.lineage(family.tree().Leaf(trial.tree_trial)),
                            trial.target);
      }
    }
  }

  // The states inheriting families start from (engine_inherit.cc), by (family, lineage, step):
  // never released while a first stage of the inheriting family that is not done starts from
  // it (a live trial needs that stage, or an attempt trains it and may start again from the
  // state after a crash); else, while a trial of an unfinished study is in the inheriting family
  // (a later trial may start there), an ended branch (tier 2). Should one be lost or released
  // all the same, its own family recomputes it when it is needed again (engine_repair.cc).
  std::set<std::tuple<int64_t, int64_t, int64_t>> inherited_needed;
  std::set<std::tuple<int64_t, int64_t, int64_t>> inherited_branch;
  for (const auto& family : families_) {
    const Inheritance& from = family->inheritance();
    if (!from.inherits()) continue;
    const stage_tree::StageTree& tree = family->tree();
    bool unfinished = false;
    bool starts_work = false;
    for (NodeId child : tree.Children(stage_tree::kRootNode)) {
      if (tree.node(child).state == StageState::kRunning) starts_work = true;
    }
    for (stage_tree::TrialId trial = 0; trial < family->owned_trials() && !starts_work; ++trial) {
      const FamilyState::Owner& owner = family->OwnerOf(trial);
      if (owner.deleted()) continue;
      const StudyState& study = *studies_[owner.study_index];
      if (!Unfinished(static_cast<v1::StudyState>(study.record.state))) continue;
      unfinished = true;
      const v1::TrialState state = study.trials[owner.trial].state;
      if (state != v1::TRIAL_RUNNING && state != v1::TRIAL_PAUSED) continue;
      const std::vector<NodeId> path = tree.Path(trial);
      if (!path.empty() && tree.node(path.front()).state != StageState::kDone) starts_work = true;
    }
    if (starts_work) {
      inherited_needed.emplace(from.family_id, from.lineage, from.step);
    } else if (unfinished) {
      inherited_branch.emplace(from.family_id, from.lineage, from.step);
    }
  }

  std::vector<Candidate> candidates;
  for (int64_t family_id : ledger_.Families()) {
    FamilyState& family = FamilyById(family_id);
    const stage_tree::StageTree& tree = family.tree();
    const size_t nodes = tree.node_count();
    // Per node: an unfinished study's trial passes through it; a live one does; a live trial
    // ends there.
    std::vector<uint8_t> unfinished(nodes), live(nodes), live_leaf(nodes);
    for (stage_tree::TrialId trial = 0; trial < family.owned_trials(); ++trial) {
      const FamilyState::Owner& owner = family.OwnerOf(trial);
      if (owner.deleted()) continue;
      const StudyState& study = *studies_[owner.study_index];
      if (!Unfinished(static_cast<v1::StudyState>(study.record.state))) continue;
      const v1::TrialState state = study.trials[owner.trial].state;
      const bool is_live = state == v1::TRIAL_RUNNING || state == v1::TRIAL_PAUSED;
      for (NodeId node : tree.Path(trial)) {
        unfinished[node] = 1;
        if (is_live) live[node] = 1;
      }
      if (is_live) live_leaf[tree.Leaf(trial)] = 1;
    }
    std::map<std::pair<int64_t, int64_t>, NodeId> by_lineage_start;
    for (NodeId node = 1; node < nodes; ++node) {
      by_lineage_start[{family.lineage(node), tree.node(node).start}] = node;
    }
    for (const auto& [key, kept] : *ledger_.KeptOf(family_id)) {
      const auto& [lineage, step] = key;
      const NodeId node = NodeOfState(by_lineage_start, family, lineage, step);
      if (node == stage_tree::kNoNode) continue;
      const stage_tree::NodeView view = tree.node(node);
      if (view.state != StageState::kDone || view.recompute) continue;
      if (step == view.end) {
        // Pending work starts from it: a child that is not done and that a live trial needs or
        // an attempt trains.
        bool starts_work = false;
        for (NodeId child : tree.Children(node)) {
          const StageState state = tree.node(child).state;
          if (state != StageState::kDone && (live[child] || state == StageState::kRunning)) {
            starts_work = true;
          }
        }
        if (starts_work) continue;
      }
      if (best_states.contains({family_id, lineage, step})) continue;
      if (inherited_needed.contains({family_id, lineage, step})) continue;
      int tier = 3;
      if (!unfinished[node]) {
        tier = 1;
      } else if (!live[node]) {
        tier = 2;
      } else if (step == view.end && live_leaf[node]) {
        continue;
      }
      if (inherited_branch.contains({family_id, lineage, step})) tier = std::max(tier, 2);
      candidates.push_back({tier, family_id, node, step, kept.directory});
    }
  }
  // Unneeded first; then the deepest states, which fewer later trials would share.
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.tier, b.step, a.family_id, a.node) <
           std::tie(b.tier, a.step, b.family_id, b.node);
  });
  for (const Candidate& candidate : candidates) {
    const bool released_anyway = unneeded && candidate.tier == 1;
    if (!released_anyway && !OverLimit(candidate.directory)) continue;
    ReleaseState(FamilyById(candidate.family_id), candidate.node, candidate.step, freed, batch);
  }
  SendGarbage(outbox);
  // A directory whose needed states fit again is no longer over its budget.
  std::erase_if(over_budget_, [this](const auto& entry) {
    return ledger_.kept_bytes(entry.first) + ledger_.largest(entry.first) <=
           ledger_.Budget(entry.first);
  });
  return freed;
}

void EngineImpl::CollectIfDue(store::WriteBatch& batch, Outbox& outbox) {
  if (!options_.collect_checkpoints) return;
  if (!collection_due_ && OverLimitDirectories().empty()) return;
  // A directory that stays over its budget after a collection is collected again only once
  // more has been kept there (or a study ended): everything else in it is needed.
  bool budget_due = false;
  for (const std::string& directory : OverLimitDirectories()) {
    auto it = futile_collections_.find(directory);
    if (it == futile_collections_.end() || ledger_.kept_bytes(directory) > it->second) {
      budget_due = true;
    }
  }
  if (!collection_due_ && !budget_due) return;
  if (collection_due_) futile_collections_.clear();
  Collect(/*unneeded=*/true, batch, outbox);
  for (const std::string& directory : OverLimitDirectories()) {
    futile_collections_[directory] = ledger_.kept_bytes(directory);
  }
}

void EngineImpl::SendGarbage(Outbox& outbox, const Worker* fresh, bool resend) {
  for (const std::string& directory : ledger_.Directories()) {
    if (ledger_.pending(directory) == 0) continue;
    const Worker* target = nullptr;
    if (fresh != nullptr) {
      if (fresh->hello.checkpoint_dir() == directory) target = fresh;
    } else {
      for (const auto& [id, worker] : workers_) {
        if (worker.connected && worker.hello.checkpoint_dir() == directory) {
          target = &worker;
          break;
        }
      }
    }
    if (target == nullptr) continue;
    std::vector<std::string> uris = ledger_.TakeUnsent(directory, resend || fresh != nullptr);
    if (uris.empty()) continue;
    v1::CoordinatorMessage message;
    for (std::string& uri : uris) message.mutable_delete_checkpoints()->add_uris(std::move(uri));
    outbox.sends.emplace_back(target->channel, std::move(message));
  }
}

bool EngineImpl::BlockedByGarbage(const Worker& worker, const FamilyState& family,
                                  NodeId node) const {
  const std::string& directory = worker.hello.checkpoint_dir();
  if (directory.empty()) return false;
  const stage_tree::NodeView view = family.tree().node(node);
  return ledger_.Blocks(directory, family.WorkerStageId(node),
                        view.recompute ? view.recompute_from : view.start, view.end);
}

void EngineImpl::GarbageDeleted(const v1::CheckpointsDeleted& deleted, store::WriteBatch& batch) {
  bool any = false;
  for (const std::string& uri : deleted.uris()) {
    if (!ledger_.RemoveGarbage(uri)) continue;
    batch.garbage_deleted.push_back(uri);
    any = true;
  }
  if (!any) return;
  // The stages held back for these files may go now (Dispatch rebuilds the queue).
  for (int64_t family_id : blocked_by_garbage_) FamilyById(family_id).InvalidatePriorities();
  blocked_by_garbage_.clear();
}

v1::CollectGarbageResponse EngineImpl::CollectGarbage() {
  std::unique_lock<std::mutex> lock(mutex_);
  store::WriteBatch batch;
  Outbox outbox;
  const Freed freed = Collect(/*unneeded=*/true, batch, outbox);
  v1::CollectGarbageResponse response;
  for (const std::string& directory : ledger_.Directories()) {
    v1::CheckpointDirectoryUsage* usage = response.add_directories();
    usage->set_directory(directory);
    usage->set_kept_bytes(ledger_.kept_bytes(directory));
    usage->set_kept_checkpoints(ledger_.kept_files(directory));
    if (auto it = freed.find(directory); it != freed.end()) {
      usage->set_freed_bytes(it->second.first);
      usage->set_freed_checkpoints(it->second.second);
    }
    usage->set_pending_deletions(ledger_.pending(directory));
    usage->set_budget_bytes(ledger_.Budget(directory));
    usage->set_over_budget(OverBudgetMessage(directory));
  }
  for (const auto& [directory, counts] : freed) {
    response.set_freed_bytes(response.freed_bytes() + counts.first);
    response.set_freed_checkpoints(response.freed_checkpoints() + counts.second);
  }
  Dispatch(batch, outbox);
  CommitAndSend(lock, std::move(batch), std::move(outbox));
  return response;
}

}  // namespace hippo::coordinator
