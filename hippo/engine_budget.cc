// Checkpoint directory budgets (docs/durability.md, "Checkpoint garbage collection"): a stage is
// given to a worker only when its directory has room for the states it will write, beside what
// is on disk there (kept states, released files not yet deleted) and what the attempts running
// there will write. Room is made by releasing states (engine_gc.cc) before the writes, not after
// them, and, near the budget, by choosing stages that let kept states go.
#include <algorithm>
#include <chrono>
#include <climits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "hippo/engine_impl.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using stage_tree::NodeId;
using stage_tree::StageState;
using stage_tree::Step;

namespace {

// How long a stage waits for the deletion of released files before it is given anyway (over the
// budget, said in the status): a worker that cannot delete a file keeps it on disk for good.
constexpr std::chrono::seconds kDeletionWait(10);

// How many of each share group's best ready stages a choice under budget pressure looks at.
constexpr size_t kBudgetCandidates = 1024;

}  // namespace

int64_t EngineImpl::InFlightBytes(const std::string& directory) const {
  int64_t writes = 0;
  for (const auto& [id, attempt] : attempts_) {
    auto worker = workers_.find(attempt.worker_id);
    if (worker == workers_.end() || worker->second.hello.checkpoint_dir() != directory) continue;
    writes += std::max<int64_t>(0, attempt.writes_left);
  }
  return writes * ledger_.largest(directory);
}

int64_t EngineImpl::ReserveBytes(const std::string& directory) const {
  int64_t workers = 0;
  for (const auto& [id, worker] : workers_) {
    if (worker.connected && worker.hello.checkpoint_dir() == directory) ++workers;
  }
  // A stage writes its end and the breakpoints inside it: at most all of its family's
  // breakpoints and one more (or, with checkpoint_every_steps, the most a stage given here was
  // asked for). Counted before such a stage is ready, so that branch points are not opened
  // while the room for it is taken.
  auto most = most_writes_.find(directory);
  int64_t writes = most == most_writes_.end() ? 1 : most->second;
  for (const auto& family : families_) {
    if (ledger_.KeptOf(family->id()) == nullptr) continue;
    writes =
        std::max(writes, 1 + static_cast<int64_t>(family->BreakpointsBetween(0, INT64_MAX).size()));
  }
  return std::max<int64_t>(1, workers) * writes * ledger_.largest(directory);
}

int64_t EngineImpl::KeptLimit(const std::string& directory) const {
  const int64_t budget = ledger_.Budget(directory);
  if (budget <= 0) return INT64_MAX;
  return budget - InFlightBytes(directory) - ReserveBytes(directory);
}

bool EngineImpl::OverLimit(const std::string& directory) const {
  return ledger_.kept_bytes(directory) > KeptLimit(directory);
}

std::vector<std::string> EngineImpl::OverLimitDirectories() const {
  std::vector<std::string> over;
  for (const std::string& directory : ledger_.Directories()) {
    if (OverLimit(directory)) over.push_back(directory);
  }
  return over;
}

int EngineImpl::KeptStatesChange(const FamilyState& family, NodeId node) const {
  const stage_tree::StageTree& tree = family.tree();
  auto pending = [&](NodeId child) {
    return tree.node(child).state != StageState::kDone && Needed(family, child);
  };
  int change = 0;
  for (NodeId child : tree.Children(node)) {
    if (pending(child)) {
      change = 1;
      break;
    }
  }
  const NodeId parent = tree.node(node).parent;
  if (parent == stage_tree::kRootNode) return change;
  for (NodeId sibling : tree.Children(parent)) {
    if (sibling != node && pending(sibling)) return change;
  }
  return change - 1;
}

std::optional<QueuedStage> EngineImpl::ChooseWithinBudget(
    const Worker& worker, const std::function<std::optional<QueuedStage>()>& pop,
    const std::function<bool(const QueuedStage&)>& still_ready,
    const std::function<bool(int64_t group)>& serves_group, store::WriteBatch& batch,
    Outbox& outbox) {
  const std::string& directory = worker.hello.checkpoint_dir();
  const int64_t budget = ledger_.Budget(directory);
  if (!options_.collect_checkpoints || directory.empty() || budget <= 0) return pop();
  // Release toward the limit, unless a collection at these kept bytes already found everything
  // there needed.
  auto futile = futile_collections_.find(directory);
  if (OverLimit(directory) &&
      (futile == futile_collections_.end() || ledger_.kept_bytes(directory) > futile->second)) {
    Collect(/*unneeded=*/false, batch, outbox);
    if (OverLimit(directory)) futile_collections_[directory] = ledger_.kept_bytes(directory);
  }
  const int64_t largest = ledger_.largest(directory);
  const int64_t in_flight = InFlightBytes(directory);
  const int64_t pending = ledger_.pending_bytes(directory);
  const int64_t used = ledger_.kept_bytes(directory) + pending + in_flight;
  auto writes = [&](const QueuedStage& stage) {
    const FamilyState& family = FamilyById(stage.family_id);
    const auto steps = CheckpointStepsOf(family, stage.node,
                                         *studies_[StageOwner(family, stage.node).study_index]);
    return static_cast<int64_t>(steps.size()) * largest;
  };
  auto given = [&](const QueuedStage& stage) {
    over_budget_.erase(directory);
    deletion_waits_.erase(directory);
    return std::optional<QueuedStage>(stage);
  };

  if (used + ReserveBytes(directory) <= budget) {
    // Room for a stage on every worker of the directory: the scheduler's order.
    std::optional<QueuedStage> stage = pop();
    if (!stage) return stage;
    if (used + writes(*stage) <= budget) return given(*stage);
    ready_.Push(*stage, FamilyById(stage->family_id).Priority(stage->node));
  }

  // Under pressure: the stages that let states go first (ChooseWithinBudget's contract).
  struct Candidate {
    QueuedStage stage;
    int change = 0;
    bool continuation = false;
    Step start = 0;
    double priority = 0;
    int64_t bytes = 0;
  };
  const Preference continuations = ContinuationsOf(worker);
  std::vector<Candidate> candidates;
  ready_.ForEach(serves_group, kBudgetCandidates, [&](const QueuedStage& stage, double priority) {
    if (!still_ready(stage)) return;
    const FamilyState& family = FamilyById(stage.family_id);
    candidates.push_back({stage, KeptStatesChange(family, stage.node),
                          std::find(continuations.stages.begin(), continuations.stages.end(),
                                    stage) != continuations.stages.end(),
                          family.tree().node(stage.node).start, priority, writes(stage)});
  });
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::make_tuple(a.change, !a.continuation, -a.start, -a.priority) <
           std::make_tuple(b.change, !b.continuation, -b.start, -b.priority);
  });
  for (const Candidate& candidate : candidates) {
    if (used + candidate.bytes > budget) continue;
    // A new branch point keeps its state for its whole subtree: opened under pressure only when
    // no running attempt or deletion there will make room.
    if (candidate.change > 0 && (in_flight > 0 || pending > 0)) continue;
    ready_.Remove(candidate.stage);
    return given(candidate.stage);
  }
  if (candidates.empty()) return std::nullopt;
  // Running attempts end and released files are deleted by the workers: room comes then. A file
  // its workers cannot delete (they log why) is waited for only kDeletionWait.
  if (in_flight > 0) return std::nullopt;
  if (ledger_.pending(directory) > 0) {
    SendGarbage(outbox);
    const Clock::time_point now = Clock::now();
    auto since = deletion_waits_.try_emplace(directory, now).first;
    if (now - since->second < kDeletionWait) return std::nullopt;
  }
  // Nothing is in flight and every kept state is needed: waiting would wait forever. The stage
  // that lets states go soonest goes over the budget.
  auto [it, inserted] = over_budget_.try_emplace(directory, ledger_.kept_bytes(directory));
  if (inserted) {
    batch.events.push_back(
        Event("", "checkpoint_budget_exceeded",
              absl::StrCat("{\"kept_bytes\": ", it->second, ", \"budget_bytes\": ", budget, "}")));
  }
  it->second = ledger_.kept_bytes(directory);
  ready_.Remove(candidates.front().stage);
  return candidates.front().stage;
}

std::string EngineImpl::OverBudgetMessage(const std::string& directory) const {
  auto it = over_budget_.find(directory);
  if (it == over_budget_.end()) return "";
  const int64_t undeleted = ledger_.pending_bytes(directory);
  return absl::StrCat(
      "checkpoint directory ", directory, " is over its budget of ", ledger_.Budget(directory),
      " bytes: unfinished work needs the ", it->second, " bytes of states kept there",
      undeleted > 0 ? absl::StrCat(" and its workers have not deleted ", undeleted,
                                   " bytes of released files (see their logs)")
                    : "",
      ", so each new state goes over it; raise hippo worker --checkpoint-budget, or run fewer "
      "studies at once");
}

std::string EngineImpl::StudyOverBudget(const StudyState& study) const {
  if (over_budget_.empty() || study.record.state != v1::STUDY_RUNNING) return "";
  for (int64_t family_id : study.family_ids) {
    const auto* kept = ledger_.KeptOf(family_id);
    if (kept == nullptr) continue;
    for (const auto& [key, checkpoint] : *kept) {
      if (over_budget_.contains(checkpoint.directory)) {
        return OverBudgetMessage(checkpoint.directory);
      }
    }
  }
  return "";
}

}  // namespace hippo::coordinator
