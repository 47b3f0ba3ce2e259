#include "hippo/engine.h"

#include "absl/strings/str_cat.h"
#include "hippo/engine_impl.h"

namespace hippo::coordinator {

using engine_internal::NowMs;

// ----------------------------------------------------------------------------------------------
// Engine: the API, forwarded to its implementation.

Engine::Engine(store::Store* store, EngineOptions options)
    : impl_(std::make_unique<EngineImpl>(store, std::move(options))) {}

Engine::~Engine() = default;

absl::Status Engine::Recover() { return impl_->Recover(); }

absl::StatusOr<hippo::v1::Study> Engine::CreateStudy(const hippo::v1::StudySpec& spec,
                                                     bool no_merge) {
  return impl_->CreateStudy(spec, no_merge);
}

absl::StatusOr<hippo::v1::Study> Engine::GetStudy(const std::string& study_id) {
  return impl_->GetStudy(study_id);
}

absl::StatusOr<int64_t> Engine::DistinctStepsOf(const std::vector<std::string>& study_ids) {
  return impl_->DistinctStepsOf(study_ids);
}

std::vector<hippo::v1::Study> Engine::ListStudies() { return impl_->ListStudies(); }
std::vector<hippo::v1::Study> Engine::ListStudies(size_t offset, size_t limit, size_t* total) {
  return impl_->ListStudies(offset, limit, total);
}
std::vector<hippo::v1::Study> Engine::ListStudySummaries(size_t offset, size_t limit,
                                                         size_t* total) {
  return impl_->ListStudySummaries(offset, limit, total);
}

absl::StatusOr<hippo::v1::Study> Engine::StopStudy(const std::string& study_id,
                                                   const std::string& reason) {
  return impl_->StopStudy(study_id, reason);
}

absl::StatusOr<hippo::v1::ListTrialsResponse> Engine::ListTrials(const std::string& study_id,
                                                                 bool with_metrics) {
  return impl_->ListTrials(study_id, with_metrics);
}

absl::StatusOr<hippo::v1::Trial> Engine::GetBestTrial(const std::string& study_id) {
  return impl_->GetBestTrial(study_id);
}

absl::StatusOr<hippo::v1::StageTree> Engine::GetStageTree(const std::string& study_id, bool dot) {
  return impl_->GetStageTree(study_id, dot);
}

absl::StatusOr<TrialPage> Engine::ListTrialsPage(const std::string& study_id,
                                                 const TrialQuery& query) {
  return impl_->ListTrialsPage(study_id, query);
}

absl::StatusOr<StagePage> Engine::GetStageTreePage(const std::string& study_id,
                                                   const StageQuery& query) {
  return impl_->GetStageTreePage(study_id, query);
}

void Engine::AddChangeListener(std::function<void()> listener) {
  impl_->AddChangeListener(std::move(listener));
}

std::vector<hippo::v1::WorkerInfo> Engine::ListWorkers() { return impl_->ListWorkers(); }

hippo::v1::CollectGarbageResponse Engine::CollectGarbage() { return impl_->CollectGarbage(); }

absl::StatusOr<hippo::v1::DeleteStudyResponse> Engine::DeleteStudy(const std::string& study_id) {
  return impl_->DeleteStudy(study_id);
}

absl::StatusOr<hippo::v1::RetryTrialsResponse> Engine::RetryTrials(
    const hippo::v1::RetryTrialsRequest& request) {
  return impl_->RetryTrials(request);
}

absl::StatusOr<hippo::v1::AskResponse> Engine::Ask(const std::string& study_id, int64_t count) {
  return impl_->Ask(study_id, count);
}

absl::Status Engine::Tell(const hippo::v1::TellRequest& request) { return impl_->Tell(request); }

absl::StatusOr<int64_t> Engine::Connect(const hippo::v1::WorkerHello& hello,
                                        std::shared_ptr<WorkerChannel> channel) {
  return impl_->Connect(hello, std::move(channel));
}

void Engine::Disconnect(const std::string& worker_id, int64_t session) {
  impl_->Disconnect(worker_id, session);
}

absl::Status Engine::OnWorkerMessage(const std::string& worker_id,
                                     const hippo::v1::WorkerMessage& message) {
  return impl_->OnWorkerMessage(worker_id, message);
}

void Engine::ExpireLeases(Clock::time_point now) { impl_->ExpireLeases(now); }

Engine::Stats Engine::stats() { return impl_->stats(); }

// ----------------------------------------------------------------------------------------------
// EngineImpl: construction and the commit protocol

EngineImpl::EngineImpl(store::Store* store, EngineOptions options)
    : store_(store), options_(std::move(options)), committer_(store) {}

void EngineImpl::CommitAndSend(std::unique_lock<std::mutex>& lock, store::WriteBatch batch,
                               Outbox outbox, bool wait_for_commit) {
  NoteChanges(batch);
  CompactTreeLogs(batch);
  if (options_.send_from_committer && options_.durable_acknowledgements && !outbox.sends.empty()) {
    // Sent in commit order by the committer thread, right after the commit.
    std::future<absl::Status> committed =
        committer_.Enqueue(std::move(batch), [sends = std::move(outbox.sends)]() mutable {
          for (auto& [channel, message] : sends) channel->Send(std::move(message));
        });
    lock.unlock();
    if (wait_for_commit) committed.wait();
    return;
  }
  std::future<absl::Status> committed;
  if (!batch.empty()) committed = committer_.Enqueue(std::move(batch));
  lock.unlock();
  // Only what is sent must wait for the disk: a batch that acknowledges nothing (a metric, a
  // heartbeat) is durable as soon as any later batch is, since batches commit in order.
  if (committed.valid() && options_.durable_acknowledgements &&
      (!outbox.sends.empty() || wait_for_commit)) {
    committed.wait();
  }
  for (auto& [channel, message] : outbox.sends) channel->Send(std::move(message));
}

absl::StatusOr<size_t> EngineImpl::StudyIndex(const std::string& study_id) const {
  auto it = study_index_.find(study_id);
  if (it == study_index_.end()) {
    return absl::NotFoundError(absl::StrCat("no study '", study_id, "'"));
  }
  return it->second;
}

store::EventRecord EngineImpl::Event(const std::string& study_id, const std::string& kind,
                                     const std::string& payload) const {
  store::EventRecord event;
  event.study_id = study_id;
  event.kind = kind;
  event.payload_json = payload;
  event.time_ms = NowMs();
  return event;
}

Engine::Stats EngineImpl::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace hippo::coordinator
