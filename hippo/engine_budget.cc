// Checkpoint directory budgets (docs/durability.md, "Checkpoint garbage collection"): a stage is
// given to a worker only when its directory has room for the state it will write, beside what is
// on disk there (kept states, released files not yet deleted) and what the attempts running there
// will write. Room is made by releasing states (engine_gc.cc) before the write, not after it.
#include <algorithm>
#include <chrono>
#include <climits>

#include "absl/strings/str_cat.h"
#include "hippo/engine_impl.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;

namespace {

// How long a stage waits for the deletion of released files before it is given anyway (over the
// budget, said in the status): a worker that cannot delete a file keeps it on disk for good.
constexpr std::chrono::seconds kDeletionWait(10);

}  // namespace

int64_t EngineImpl::InFlightBytes(const std::string& directory) const {
  int64_t writes = 0;
  for (const auto& [id, attempt] : attempts_) {
    auto worker = workers_.find(attempt.worker_id);
    if (worker == workers_.end() || worker->second.hello.checkpoint_dir() != directory) continue;
    writes += std::max<int64_t>(1, static_cast<int64_t>(attempt.chain.size()));
  }
  return writes * ledger_.largest(directory);
}

int64_t EngineImpl::KeptLimit(const std::string& directory) const {
  const int64_t budget = ledger_.Budget(directory);
  if (budget <= 0) return INT64_MAX;
  return budget - InFlightBytes(directory) - ledger_.largest(directory);
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

bool EngineImpl::RoomToWrite(const Worker& worker, store::WriteBatch& batch, Outbox& outbox) {
  const std::string& directory = worker.hello.checkpoint_dir();
  const int64_t budget = ledger_.Budget(directory);
  if (!options_.collect_checkpoints || directory.empty() || budget <= 0) return true;
  auto fits = [&] {
    return ledger_.kept_bytes(directory) + ledger_.pending_bytes(directory) +
               InFlightBytes(directory) + ledger_.largest(directory) <=
           budget;
  };
  if (fits()) {
    over_budget_.erase(directory);
    deletion_waits_.erase(directory);
    return true;
  }
  // Release toward the limit, unless a collection at these kept bytes already found everything
  // there needed.
  auto futile = futile_collections_.find(directory);
  if (OverLimit(directory) &&
      (futile == futile_collections_.end() || ledger_.kept_bytes(directory) > futile->second)) {
    Collect(/*unneeded=*/false, batch, outbox);
    if (OverLimit(directory)) futile_collections_[directory] = ledger_.kept_bytes(directory);
  }
  if (fits()) {
    over_budget_.erase(directory);
    deletion_waits_.erase(directory);
    return true;
  }
  // Running attempts end and released files are deleted by the workers: room comes then. A file
  // its workers cannot delete (they log why) is waited for only kDeletionWait.
  if (InFlightBytes(directory) > 0) return false;
  if (ledger_.pending(directory) > 0) {
    SendGarbage(outbox);
    const Clock::time_point now = Clock::now();
    auto since = deletion_waits_.try_emplace(directory, now).first;
    if (now - since->second < kDeletionWait) return false;
  }
  // Nothing is in flight and every kept state is needed: waiting would wait forever.
  auto [it, inserted] = over_budget_.try_emplace(directory, ledger_.kept_bytes(directory));
  if (inserted) {
    batch.events.push_back(
        Event("", "checkpoint_budget_exceeded",
              absl::StrCat("{\"kept_bytes\": ", it->second, ", \"budget_bytes\": ", budget, "}")));
  }
  it->second = ledger_.kept_bytes(directory);
  return true;
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
