// DeleteStudy: a study, its trials, metrics and events go; the checkpoints only it used are
// released. Its families' trees keep their stages (the operation log rebuilds them): a stage
// only the deleted study used loses its states and its metrics, and is recomputed if a later
// study needs it, so that the later study gets its metrics again.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "hippo/engine_impl.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using stage_tree::NodeId;
using stage_tree::StageState;

absl::StatusOr<v1::DeleteStudyResponse> EngineImpl::DeleteStudy(const std::string& study_id) {
  std::unique_lock<std::mutex> lock(mutex_);
  absl::StatusOr<size_t> found = StudyIndex(study_id);
  if (!found.ok()) return found.status();
  const size_t index = *found;
  StudyState& study = *studies_[index];
  store::WriteBatch batch;
  Outbox outbox;
  if (study.record.state == v1::STUDY_RUNNING) {
    StopRunningStudy(index, "deleted by a client", batch);
    CancelUnneeded(batch, outbox);
  }
  v1::DeleteStudyResponse response;
  response.set_study_id(study_id);
  response.set_trials_deleted(static_cast<int64_t>(study.trials.size()));

  // Its trials leave their trees' owners first, so that what follows sees only the others.
  for (const TrialState& trial : study.trials) {
    FamilyById(trial.family_id).SetOwner(trial.tree_trial, FamilyState::Owner{});
  }
  Freed freed;
  for (int64_t family_id : study.family_ids) {
    FamilyState& family = FamilyById(family_id);
    const stage_tree::StageTree& tree = family.tree();
    // The nodes another study's trial passes through, and the lineages that have one.
    std::vector<uint8_t> shared(tree.node_count());
    for (stage_tree::TrialId trial = 0; trial < family.owned_trials(); ++trial) {
      if (family.OwnerOf(trial).deleted()) continue;
      for (NodeId node : tree.Path(trial)) shared[node] = 1;
    }
    std::set<int64_t> shared_lineages;
    for (NodeId node = 1; node < tree.node_count(); ++node) {
      if (shared[node]) shared_lineages.insert(family.lineage(node));
    }
    // The lineages only the deleted study's trials pass through.
    std::set<int64_t> own_lineages;
    for (const TrialState& trial : study.trials) {
      if (trial.family_id != family_id) continue;
      for (NodeId node : tree.Path(trial.tree_trial)) {
        if (!shared_lineages.contains(family.lineage(node))) {
          own_lineages.insert(family.lineage(node));
        }
      }
    }
    if (own_lineages.empty()) continue;
    // Their kept states (inner ones first, so that a stage recomputed later starts from a
    // state that still exists), then the end states of their done stages, whose metrics go.
    std::map<std::pair<int64_t, int64_t>, NodeId> by_lineage_start;
    for (NodeId node = 1; node < tree.node_count(); ++node) {
      by_lineage_start[{family.lineage(node), tree.node(node).start}] = node;
    }
    std::vector<std::pair<NodeId, int64_t>> states;
    if (const auto* kept = ledger_.KeptOf(family_id)) {
      for (const auto& [key, checkpoint] : *kept) {
        if (!own_lineages.contains(key.first)) continue;
        const NodeId node = NodeOfState(by_lineage_start, family, key.first, key.second);
        if (node != stage_tree::kNoNode) states.emplace_back(node, key.second);
      }
    }
    std::stable_sort(states.begin(), states.end(), [&](const auto& a, const auto& b) {
      return (a.second == tree.node(a.first).end) < (b.second == tree.node(b.first).end);
    });
    for (const auto& [node, step] : states) ReleaseState(family, node, step, freed, batch);
    // A done stage of these lineages whose end state was not in the ledger still holds it in
    // the tree: it must be trained again too, as its metrics go.
    for (NodeId node = 1; node < tree.node_count(); ++node) {
      const stage_tree::NodeView view = tree.node(node);
      if (!own_lineages.contains(family.lineage(node)) || view.state != StageState::kDone ||
          view.recompute) {
        continue;
      }
      ReleaseState(family, node, view.end, freed, batch);
    }
    for (int64_t lineage : own_lineages) {
      family.ForgetMetrics(lineage);
      batch.metric_lineage_deletions.emplace_back(family_id, lineage);
    }
    family.InvalidatePriorities();
  }
  for (const auto& [directory, counts] : freed) {
    response.set_freed_bytes(response.freed_bytes() + counts.first);
    response.set_freed_checkpoints(response.freed_checkpoints() + counts.second);
  }

  std::erase_if(wall_deadlines_, [index](const auto& entry) { return entry.second == index; });
  study.deleted = true;
  study_index_.erase(study_id);
  batch.study_deletions.push_back(study_id);
  batch.settings.emplace_back(engine_internal::kLastStudyNumberSetting,
                              absl::StrCat(last_study_number_));
  batch.events.push_back(
      Event("", "study_deleted", absl::StrCat("{\"study\": \"", study_id, "\"}")));
  SendGarbage(outbox);
  Dispatch(batch, outbox);
  CommitAndSend(lock, std::move(batch), std::move(outbox));
  return response;
}

}  // namespace hippo::coordinator
