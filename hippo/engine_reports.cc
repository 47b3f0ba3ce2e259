#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "hippo/engine_impl.h"
#include "hippo/report_bounds.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;
using engine_internal::NowMs;
using stage_tree::NodeId;
using stage_tree::StageState;
using stage_tree::Step;

absl::StatusOr<int64_t> EngineImpl::Connect(const v1::WorkerHello& hello,
                                            std::shared_ptr<WorkerChannel> channel) {
  if (absl::Status status = CheckHello(hello); !status.ok()) return status;
  std::unique_lock<std::mutex> lock(mutex_);
  Worker& worker = workers_[hello.worker_id()];
  worker.hello = hello;
  worker.channel = std::move(channel);
  worker.session = next_session_++;
  worker.connected = false;  // until its attempts are settled: Abandon sends it nothing
  worker.cached_states.clear();
  worker.last_trained.reset();  // a new connection may be a new process, without the model
  for (const v1::CachedState& state : hello.cached_states()) {
    worker.cached_states.insert({state.stage_id(), state.step()});
  }
  store::WriteBatch batch;
  Outbox outbox;
  // The attempts given to this worker. A hello that lists what the worker holds settles them at
  // once: one listed stays its own (with a fresh lease), one not listed never reached it or was
  // lost with a restarted worker and goes back to the queue now. A hello that does not say
  // leaves each to its lease.
  worker.attempt.reset();
  std::vector<int64_t> not_held;
  const auto lease = engine_internal::LeaseOf(options_);
  const absl::flat_hash_set<int64_t> held(hello.held().attempt_ids().begin(),
                                          hello.held().attempt_ids().end());
  for (auto& [id, attempt] : attempts_) {
    if (attempt.worker_id != hello.worker_id()) continue;
    if (!hello.has_held() || held.contains(id)) {
      worker.attempt = id;
      if (hello.has_held()) attempt.lease_expires = Clock::now() + lease;
    } else {
      not_held.push_back(id);
    }
  }
  for (int64_t id : not_held) {
    Abandon(id, store::kAttemptExpired, batch, outbox);
    batch.events.push_back(Event("", "attempt_not_held", absl::StrCat("{\"attempt\": ", id, "}")));
    ++stats_.attempts_not_held;
  }
  worker.connected = true;
  // A listed attempt that is not (or no longer) this worker's, e.g. one whose lease expired
  // while the worker was away: it is trained for nothing, so the worker is told to stop it.
  for (int64_t id : held) {
    if (auto it = attempts_.find(id);
        it != attempts_.end() && it->second.worker_id == hello.worker_id()) {
      continue;
    }
    v1::CoordinatorMessage cancel;
    cancel.mutable_cancel()->set_attempt_id(id);
    outbox.sends.emplace_back(worker.channel, std::move(cancel));
  }
  store::WorkerRecord record;
  record.worker_id = hello.worker_id();
  record.host = hello.host();
  // The hello's JSON is for people reading the store; one that does not convert is left out.
  (void)google::protobuf::util::MessageToJsonString(hello, &record.hello_json);
  record.last_seen_ms = NowMs();
  record.connected = true;
  batch.workers.push_back(record);
  ledger_.SetBudget(hello.worker_id(), hello.checkpoint_dir(), hello.checkpoint_budget_bytes());
  SendGarbage(outbox, &worker);  // before any Assign: the files go before a stage rewrites them
  CollectIfDue(batch, outbox);
  Dispatch(batch, outbox);
  const int64_t session = worker.session;
  CommitAndSend(lock, std::move(batch), std::move(outbox));
  return session;
}

void EngineImpl::Disconnect(const std::string& worker_id, int64_t session) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.session != session) return;
  it->second.connected = false;
  it->second.channel.reset();
  store::WriteBatch batch;
  store::WorkerRecord record;
  record.worker_id = worker_id;
  record.host = it->second.hello.host();
  // As in Connect: the JSON is informational.
  (void)google::protobuf::util::MessageToJsonString(it->second.hello, &record.hello_json);
  record.last_seen_ms = NowMs();
  record.connected = false;
  batch.workers.push_back(record);
  CommitAndSend(lock, std::move(batch), Outbox{});
}

absl::Status EngineImpl::OnWorkerMessage(const std::string& worker_id,
                                         const v1::WorkerMessage& message) {
  // Checked before any is handled, so that a refused message changes nothing; the checks that
  // need no state run before the lock (report_bounds.h).
  if (message.reports().messages_size() > kMaxReportsPerMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat("reports.messages: ", message.reports().messages_size(),
                     " reports in one message, at most ", kMaxReportsPerMessage));
  }
  std::vector<const v1::WorkerMessage*> reports;
  if (message.has_reports()) {
    for (const v1::WorkerMessage& report : message.reports().messages()) {
      if (report.has_reports() || report.has_hello()) {
        return absl::InvalidArgumentError("reports: hello and nested reports are not allowed");
      }
      reports.push_back(&report);
    }
  } else {
    reports.push_back(&message);
  }
  std::optional<std::pair<int64_t, std::string>> refused;
  bool diverged = false;
  for (const v1::WorkerMessage* report : reports) {
    if (std::optional<std::string> problem = ReportProblem(*report)) {
      refused.emplace(AttemptOfReport(*report), *std::move(problem));
      diverged = ReportsDivergence(*report);
      break;
    }
  }
  std::unique_lock<std::mutex> lock(mutex_);
  auto worker_it = workers_.find(worker_id);
  if (worker_it == workers_.end()) {
    return absl::FailedPreconditionError("a worker must say hello first");
  }
  if (!refused) refused = StateProblem(worker_it->second, reports);
  store::WriteBatch batch;
  Outbox outbox;
  if (refused) {
    RefuseReport(worker_it->second, refused->first, refused->second, diverged, batch, outbox);
  } else {
    for (const v1::WorkerMessage* report : reports) {
      HandleReport(worker_it->second, *report, batch, outbox);
    }
  }
  CollectIfDue(batch, outbox);
  CancelUnneeded(batch, outbox);
  Dispatch(batch, outbox);
  CommitAndSend(lock, std::move(batch), std::move(outbox), /*wait_for_commit=*/false);
  return absl::OkStatus();
}

std::optional<std::pair<int64_t, std::string>> EngineImpl::StateProblem(
    const Worker& worker, const std::vector<const v1::WorkerMessage*>& reports) const {
  for (const v1::WorkerMessage* report : reports) {
    if (!report->has_checkpoint()) continue;
    const v1::CheckpointWritten& checkpoint = report->checkpoint();
    auto it = attempts_.find(checkpoint.attempt_id());
    if (it == attempts_.end() || it->second.worker_id != worker.hello.worker_id()) continue;
    const int64_t stage_id = FamilyById(it->second.family_id).WorkerStageId(it->second.assigned);
    if (checkpoint.stage_id() != stage_id) {
      return std::pair{checkpoint.attempt_id(),
                       absl::StrCat("checkpoint.stage_id: ", checkpoint.stage_id(),
                                    " is not the stage of attempt ", checkpoint.attempt_id(), " (",
                                    stage_id, ")")};
    }
  }
  return std::nullopt;
}

void EngineImpl::RefuseReport(Worker& worker, int64_t attempt_id, const std::string& problem,
                              bool diverged, store::WriteBatch& batch, Outbox& outbox) {
  const std::string& worker_id = worker.hello.worker_id();
  auto it = attempts_.find(attempt_id);
  if (it == attempts_.end() || it->second.worker_id != worker_id) {
    ++stats_.stale_reports_ignored;
    std::fprintf(stderr, "hippo: worker %s: report ignored: %s\n", worker_id.c_str(),
                 problem.c_str());
    return;
  }
  std::fprintf(stderr, "hippo: worker %s: report refused, attempt %lld fails: %s\n",
               worker_id.c_str(), static_cast<long long>(attempt_id), problem.c_str());
  EndAttempt(attempt_id, /*failed=*/true, problem, /*state_lost=*/false, batch, outbox);
  // A worker whose reports break the protocol's bounds counts as failing, like any failure; a
  // trial that diverged is the hyper-parameters' doing, not the worker's.
  if (!diverged) NoteWorkerOutcome(worker, /*failed=*/true, problem, batch);
  if (worker.attempt == attempt_id) worker.attempt.reset();
  if (worker.connected) {
    v1::CoordinatorMessage cancel;
    cancel.mutable_cancel()->set_attempt_id(attempt_id);
    outbox.sends.emplace_back(worker.channel, std::move(cancel));
  }
}

void EngineImpl::HandleReport(Worker& worker, const v1::WorkerMessage& message,
                              store::WriteBatch& batch, Outbox& outbox) {
  const std::string& worker_id = worker.hello.worker_id();
  const auto lease = engine_internal::LeaseOf(options_);

  // Reports of an attempt that is not (or no longer) this worker's are ignored.
  auto current = [&](int64_t attempt_id) -> Attempt* {
    auto it = attempts_.find(attempt_id);
    if (it == attempts_.end() || it->second.worker_id != worker_id) {
      ++stats_.stale_reports_ignored;
      return nullptr;
    }
    it->second.lease_expires = Clock::now() + lease;
    return &it->second;
  };

  switch (message.message_case()) {
    case v1::WorkerMessage::kHeartbeat:
      for (int64_t attempt_id : message.heartbeat().attempt_ids()) {
        if (auto it = attempts_.find(attempt_id);
            it != attempts_.end() && it->second.worker_id == worker_id) {
          it->second.lease_expires = Clock::now() + lease;
        }
      }
      break;
    case v1::WorkerMessage::kProgress: {
      Attempt* attempt = current(message.progress().attempt_id());
      if (attempt == nullptr) break;
      FamilyState& family = FamilyById(attempt->family_id);
      const Step step = message.progress().step();
      for (NodeId node : attempt->chain) {
        const stage_tree::NodeView view = family.tree().node(node);
        if (step < view.start || step >= view.end) continue;
        // A stage may come to end after this step later, by a split: where the state after it
        // is kept (a breakpoint), or where a split right after this report asks for it.
        const bool may_end_here = step == view.end - 1 || family.IsBreakpoint(step + 1);
        for (const auto& [name, value] : message.progress().metrics()) {
          store::MetricRecord metric;
          metric.family_id = family.id();
          metric.lineage = family.lineage(node);
          metric.step = step;
          metric.name = name;
          metric.value = value;
          batch.metrics.push_back(std::move(metric));
          if (may_end_here) family.KeepMetric(name, family.lineage(node), step, value);
        }
      }
      attempt->last_reported_step = step;
      attempt->last_reported_metrics.clear();
      for (const auto& [name, value] : message.progress().metrics()) {
        attempt->last_reported_metrics[name] = value;
      }
      break;
    }
    case v1::WorkerMessage::kCheckpoint: {
      const v1::CheckpointWritten& checkpoint = message.checkpoint();
      Attempt* attempt = current(checkpoint.attempt_id());
      if (attempt == nullptr) break;
      FamilyState& family = FamilyById(attempt->family_id);
      --attempt->writes_left;  // one of the states it was asked for is on disk now
      std::set<size_t> touched;
      std::vector<NodeId> done;
      for (NodeId node : attempt->chain) {
        const stage_tree::NodeView view = family.tree().node(node);
        store::CheckpointRecord record;
        record.family_id = family.id();
        record.node_id = node;
        record.step = checkpoint.step();
        record.uri = checkpoint.uri();
        record.size_bytes = checkpoint.size_bytes();
        record.checksum = checkpoint.checksum();
        if (checkpoint.step() == view.end && view.state == StageState::kRunning) {
          family.SetStateUri(node, checkpoint.step(), checkpoint.uri());
          LedgerKeep(family, node, checkpoint.step(), checkpoint.uri(), checkpoint.size_bytes(),
                     batch);
          worker.cached_states.insert({family.WorkerStageId(node), checkpoint.step()});
          batch.checkpoints.push_back(record);
          (void)family.tree().MarkDone(node);  // it is running, which MarkDone accepts
          family.AppendOp(store::TreeOpKind::kDone, node, 0, "", batch);
          ForgetFailure(family, node);
          batch.stages.push_back(StageRecordOf(family, node));
          StageDone(family, node, batch, touched);
          InheritedStateDone(family, node);
          done.push_back(node);
        } else if (checkpoint.step() > view.start && checkpoint.step() < view.end) {
          // The step lies inside the stage, the only condition of AddCheckpoint.
          (void)family.tree().AddCheckpoint(node, checkpoint.step());
          family.SetStateUri(node, checkpoint.step(), checkpoint.uri());
          LedgerKeep(family, node, checkpoint.step(), checkpoint.uri(), checkpoint.size_bytes(),
                     batch);
          // A split at this step makes the step before it a stage's last (see kUpperDone).
          if (attempt->last_reported_step == checkpoint.step() - 1) {
            for (const auto& [name, value] : attempt->last_reported_metrics) {
              family.KeepMetric(name, family.lineage(node), checkpoint.step() - 1, value);
            }
          }
          worker.cached_states.insert({family.WorkerStageId(node), checkpoint.step()});
          family.AppendOp(store::TreeOpKind::kCheckpoint, node, checkpoint.step(), "", batch);
          batch.checkpoints.push_back(record);
        }
      }
      std::erase_if(attempt->chain, [&done](NodeId node) {
        return std::find(done.begin(), done.end(), node) != done.end();
      });
      for (size_t study_index : touched) RunPlanAfterReport(study_index, batch, outbox);
      break;
    }
    case v1::WorkerMessage::kFinished: {
      const v1::StageFinished& finished = message.finished();
      Attempt* attempt = current(finished.attempt_id());
      if (attempt == nullptr) break;
      FamilyState& family = FamilyById(attempt->family_id);
      if (finished.ok() && finished.seconds() > 0) {
        family.MeasureStepTime(finished.seconds(), attempt->steps);
      }
      if (finished.ok()) {
        worker.last_trained.emplace(attempt->family_id, attempt->last_part);
      } else {
        worker.last_trained.reset();
      }
      const bool state_lost = !finished.ok() && finished.parent_state_lost();
      EndAttempt(finished.attempt_id(), !finished.ok(), BoundedError(finished.error()), state_lost,
                 batch, outbox);
      // A state that could not be read is no fault of the worker that tried.
      if (!state_lost)
        NoteWorkerOutcome(worker, !finished.ok(), BoundedError(finished.error()), batch);
      worker.attempt.reset();
      break;
    }
    case v1::WorkerMessage::kDeleted:
      GarbageDeleted(message.deleted(), batch);
      break;
    case v1::WorkerMessage::kEvicted:
      for (const v1::CachedState& state : message.evicted().states()) {
        worker.cached_states.erase({state.stage_id(), state.step()});
      }
      break;
    case v1::WorkerMessage::kHello:
    case v1::WorkerMessage::kReports:  // OnWorkerMessage unpacks them
    case v1::WorkerMessage::MESSAGE_NOT_SET:
      break;
  }
}

void EngineImpl::RunPlanAfterReport(size_t study_index, store::WriteBatch& batch, Outbox& outbox) {
  // An error here is the study's plan (an algorithm's request that cannot be carried out), not
  // the worker's report, which stands: the requests before it were carried out, and the study
  // asks again at its next event. The error is logged for the operator.
  if (absl::Status status = RunPlan(study_index, batch, outbox); !status.ok()) {
    std::fprintf(stderr, "hippo: study %s: %s\n", studies_[study_index]->record.id.c_str(),
                 std::string(status.message()).c_str());
  }
}

void EngineImpl::StageDone(FamilyState& family, NodeId node, store::WriteBatch& batch,
                           std::set<size_t>& touched_studies) {
  // Trials that end at this node reached their target.
  for (stage_tree::TrialId trial : family.tree().TrialsThrough(node)) {
    if (family.tree().Leaf(trial) != node) continue;
    const auto& [study_index, number] = family.OwnerOf(trial);
    if (study_index == FamilyState::kNoStudy) continue;  // of a deleted study
    StudyState& study = *studies_[study_index];
    if (study.trials[number].state != v1::TRIAL_RUNNING) continue;
    TrialReachedTarget(study_index, number, batch);
    touched_studies.insert(study_index);
  }
}

void EngineImpl::EndAttempt(int64_t attempt_id, bool failed, const std::string& error,
                            bool state_lost, store::WriteBatch& batch, Outbox& outbox) {
  auto it = attempts_.find(attempt_id);
  if (it == attempts_.end()) return;
  Attempt attempt = std::move(it->second);
  attempts_.erase(it);
  SettleCharge(attempt);
  FamilyState& family = FamilyById(attempt.family_id);
  std::set<size_t> touched;
  // A lost starting state is recomputed: the attempt's stages wait for it, and this attempt
  // does not count against the stage's budget.
  const bool repaired = failed && state_lost && RepairLostState(attempt, batch);
  if (failed) ++stats_.attempts_failed;
  for (NodeId node : attempt.chain) {
    if (family.tree().node(node).state != StageState::kRunning) continue;
    if (repaired) {
      const bool assigned = node == attempt.assigned;
      if (assigned) family.ForgiveAttempt(node);
      (void)family.tree().Requeue(node);  // it is running, which Requeue accepts
      family.AppendOp(store::TreeOpKind::kRequeue, node, 0, assigned ? "state-lost" : "", batch);
    } else if (failed) {
      StageFailed(family, node, attempt.worker_id, error, batch, touched);
    } else {
      // It finished without the state at this part's end (the checkpoint request came too
      // late): the steps were trained, the state must be recomputed.
      (void)family.tree().MarkDoneWithoutState(node);  // running, as MarkDoneWithoutState needs
      family.AppendOp(store::TreeOpKind::kDone, node, 1, "", batch);
    }
    batch.stages.push_back(StageRecordOf(family, node));
  }
  store::AttemptRecord record;
  record.attempt_id = attempt.id;
  record.family_id = attempt.family_id;
  record.node_id = attempt.assigned;
  record.worker_id = attempt.worker_id;
  record.state = failed ? store::kAttemptFailed : store::kAttemptDone;
  batch.attempts.push_back(record);
  // What the plans ask of running attempts (a CheckpointAt where a new trial splits a running
  // stage) goes out with this report's answer.
  for (size_t study_index : touched) RunPlanAfterReport(study_index, batch, outbox);
}

void EngineImpl::ExpireLeases(Clock::time_point now) {
  std::unique_lock<std::mutex> lock(mutex_);
  store::WriteBatch batch;
  Outbox outbox;
  std::vector<int64_t> expired;
  for (const auto& [id, attempt] : attempts_) {
    if (attempt.lease_expires < now) expired.push_back(id);
  }
  for (int64_t id : expired) {
    Abandon(id, store::kAttemptExpired, batch, outbox);
    batch.events.push_back(Event("", "lease_expired", absl::StrCat("{\"attempt\": ", id, "}")));
    ++stats_.leases_expired;
  }
  const bool stopped = EnforceWallBudgets(NowMs(), batch);
  if (stopped) CancelUnneeded(batch, outbox);
  CollectIfDue(batch, outbox);
  SendGarbage(outbox, nullptr, /*resend=*/true);  // what a worker that left did not confirm
  const bool due = RetryWhatIsDue(now, batch);
  if (!expired.empty() || stopped || due) Dispatch(batch, outbox);
  CommitAndSend(lock, std::move(batch), std::move(outbox));
}

}  // namespace hippo::coordinator
