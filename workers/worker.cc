#include "workers/worker.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "hippo/v1/hippo.grpc.pb.h"
#include "workers/allowed_programs.h"
#include "workers/command_trainer.h"
#include "workers/fault_injection.h"

namespace hippo::workers {
namespace {

// Reports kept while disconnected, at most. A stage of a million steps is far beyond any study;
// past this the oldest reports are dropped and the running stage is cancelled, since its
// reports could no longer be complete.
constexpr size_t kMaxOutboxMessages = size_t{1} << 20;

// Attempts whose written reports are kept to be sent again after a reconnect.
constexpr size_t kReplayAttempts = 2;

std::string LocalHostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

int64_t PhysicalMemoryBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<int64_t>(pages) * static_cast<int64_t>(page_size);
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

bool IsPermanent(const absl::Status& status) {
  return absl::IsUnauthenticated(status) || absl::IsPermissionDenied(status) ||
         absl::IsUnimplemented(status);
}

WorkerOptions WithDefaults(WorkerOptions options) {
  if (options.host.empty()) options.host = LocalHostName();
  if (options.worker_id.empty()) options.worker_id = absl::StrCat(options.host, "-", ::getpid());
  if (options.memory_bytes <= 0) options.memory_bytes = PhysicalMemoryBytes();
  return options;
}

}  // namespace

// Exponential backoff with jitter between connection attempts.
class Worker::Backoff {
 public:
  Backoff(int initial_ms, int max_ms, double jitter)
      : initial_ms_(initial_ms),
        max_ms_(max_ms),
        jitter_(std::clamp(jitter, 0.0, 1.0)),
        next_ms_(initial_ms),
        random_(std::random_device{}()) {}

  absl::Duration Next() {
    std::uniform_real_distribution<double> factor(1.0 - jitter_, 1.0 + jitter_);
    const double wait_ms = static_cast<double>(next_ms_) * factor(random_);
    next_ms_ = std::min(next_ms_ * 2, max_ms_);
    return absl::Milliseconds(wait_ms);
  }

  void Reset() { next_ms_ = initial_ms_; }

 private:
  const int initial_ms_;
  const int max_ms_;
  const double jitter_;
  int next_ms_;
  std::mt19937_64 random_;
};

Worker::Worker(WorkerOptions options)
    : options_(WithDefaults(std::move(options))), cache_(options_.cache_bytes) {}

Worker::~Worker() {
  Stop();
  if (training_thread_.joinable()) training_thread_.join();
}

absl::Status Worker::AddTrainer(std::unique_ptr<Trainer> trainer) {
  if (trainer == nullptr) return absl::InvalidArgumentError("AddTrainer: null trainer");
  absl::MutexLock lock(&mu_);
  if (started_) return absl::FailedPreconditionError("AddTrainer must be called before Run");
  std::string kind(trainer->kind());
  trainers_[kind] = std::move(trainer);
  return absl::OkStatus();
}

void Worker::Log(std::string_view line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::cerr << "hippo worker " << options_.worker_id << ": " << line << std::endl;
  }
}

WorkerStats Worker::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::Status Worker::Run() {
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("Worker::Run may be called once");
    started_ = true;
  }
  if (options_.heartbeat_ms <= 0 || options_.backoff_initial_ms <= 0 ||
      options_.backoff_max_ms < options_.backoff_initial_ms) {
    return absl::InvalidArgumentError(
        "worker options: heartbeat_ms and backoff_initial_ms must be positive and "
        "backoff_max_ms at least backoff_initial_ms");
  }
  for (const std::string& kind : options_.trainers) {
    if (trainers_.contains(kind)) continue;
    if (kind == CommandTrainer::kKind) {
      if (options_.allow_dirs.empty()) {
        return absl::InvalidArgumentError(
            "worker options: the command trainer runs only programs under allowed directories; "
            "give at least one (hippo worker --allow-dir DIR) or leave command out of "
            "--trainers");
      }
      absl::StatusOr<AllowedPrograms> allowed = AllowedPrograms::Create(options_.allow_dirs);
      if (!allowed.ok()) return allowed.status();
      trainers_[kind] = std::make_unique<CommandTrainer>(*std::move(allowed));
      continue;
    }
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = MakeBuiltinTrainer(kind, options_.device);
    if (!trainer.ok()) return trainer.status();
    trainers_[kind] = *std::move(trainer);
  }
  if (trainers_.empty()) return absl::InvalidArgumentError("worker options: no trainers");
  absl::StatusOr<CheckpointStore> store = CheckpointStore::Open(options_.checkpoint_dir);
  if (!store.ok()) return store.status();
  store_.emplace(*std::move(store));
  if (absl::Status status = InjectCheckpointFaultsFromEnv(*store_); !status.ok()) return status;
  absl::StatusOr<std::vector<std::string>> orphans = store_->RemoveOrphanTemporaries();
  if (!orphans.ok()) return orphans.status();
  if (!orphans->empty()) {
    Log(absl::StrCat("removed ", orphans->size(),
                     " temporary checkpoint file(s) left by a writer that died mid-write, e.g. ",
                     orphans->front()));
  }

  training_thread_ = std::thread([this] { TrainingLoop(); });
  absl::Status status = SessionLoop();
  {
    absl::MutexLock lock(&mu_);
    stop_requested_ = true;
    if (current_control_ != nullptr) current_control_->Cancel();
  }
  training_thread_.join();
  return status;
}

void Worker::Stop() {
  absl::MutexLock lock(&mu_);
  stop_requested_ = true;
  queue_.clear();
  if (current_control_ != nullptr) current_control_->Cancel();
  if (context_ != nullptr) context_->TryCancel();
}

absl::Status Worker::SessionLoop() {
  Backoff backoff(options_.backoff_initial_ms, options_.backoff_max_ms, options_.backoff_jitter);
  // Done when stopped, or drained with every report delivered. The two mutexes are taken one
  // after the other, never nested (see send_mu_).
  auto finished = [this] {
    bool drained = false;
    {
      absl::MutexLock lock(&mu_);
      if (stop_requested_) return true;
      drained = drained_;
    }
    if (!drained) return false;
    absl::MutexLock send_lock(&send_mu_);
    return outbox_.empty();
  };
  while (!finished()) {
    absl::Status status = RunSession(backoff);
    if (IsPermanent(status)) {
      Log(absl::StrCat("the coordinator at ", options_.coordinator,
                       " refused this worker: ", status.ToString()));
      return status;
    }
    if (finished()) break;
    const absl::Duration wait = backoff.Next();
    Log(absl::StrCat("session with ", options_.coordinator, " ended (", status.ToString(),
                     "); reconnecting in ", absl::FormatDuration(wait)));
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stop_requested_), wait);
  }
  return absl::OkStatus();
}

absl::Status Worker::RunSession(Backoff& backoff) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options_.tls_root_certs.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options_.tls_root_certs;
    credentials = grpc::SslCredentials(ssl);
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(options_.coordinator, credentials);
  std::unique_ptr<hippo::v1::WorkerService::Stub> stub = hippo::v1::WorkerService::NewStub(channel);
  grpc::ClientContext context;
  if (!options_.token.empty()) context.AddMetadata("x-hippo-token", options_.token);
  {
    absl::MutexLock lock(&mu_);
    if (stop_requested_) return absl::OkStatus();
    context_ = &context;
    session_ended_ = false;
  }
  const absl::Time opened = absl::Now();
  std::unique_ptr<Stream> stream = stub->Session(&context);

  // Hello first, then what was reported while disconnected, in order; only then may other
  // threads write, so nothing overtakes the hello.
  bool connected = false;
  const std::vector<int64_t> holding = HeldAttempts();
  {
    absl::MutexLock send_lock(&send_mu_);
    connected = stream->Write(Hello(holding));
    // Reports the previous session may have lost in flight (a write that returned true only
    // reached the transport): those of the last two attempts, sent again.
    for (const auto& [attempt, reports] : replay_) {
      for (const hippo::v1::WorkerMessage& report : reports) {
        if (!connected) break;
        connected = stream->Write(report);
      }
    }
    while (connected && !outbox_.empty()) {
      if (!stream->Write(outbox_.front())) {
        connected = false;
        break;
      }
      RecordSent(outbox_.front());
      outbox_.pop_front();
    }
    if (connected) stream_ = stream.get();
  }
  if (connected) {
    {
      absl::MutexLock lock(&mu_);
      ++stats_.sessions_opened;
    }
    Log(absl::StrCat("connected to ", options_.coordinator));
    Send(Heartbeat(), /*keep_if_disconnected=*/false);
  }

  bool received_any = false;
  std::thread reader([this, &stream, &received_any] {
    hippo::v1::CoordinatorMessage message;
    while (stream->Read(&message)) {
      received_any = true;
      HandleMessage(message);
    }
    absl::MutexLock lock(&mu_);
    session_ended_ = true;
  });

  bool stopped = false;
  bool closing = false;  // drained: half-closed, waiting for the coordinator to close
  absl::Time close_deadline = absl::InfiniteFuture();
  while (true) {
    bool heartbeat = false;
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this, closing]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return session_ended_ || stop_requested_ || (drained_ && !closing);
      };
      const absl::Time deadline =
          std::min(close_deadline, absl::Now() + absl::Milliseconds(options_.heartbeat_ms));
      mu_.AwaitWithDeadline(absl::Condition(&wake), deadline);
      if (session_ended_) break;
      if (stop_requested_) {
        stopped = true;
        context.TryCancel();
        break;
      }
      if (closing && absl::Now() >= close_deadline) {
        context.TryCancel();
        break;
      }
      if (drained_ && !closing) {
        closing = true;
      } else {
        heartbeat = !closing;
      }
    }
    if (closing && close_deadline == absl::InfiniteFuture()) {
      // Every stage is reported: half-close, and let the coordinator end the call.
      bool flushed = false;
      {
        absl::MutexLock send_lock(&send_mu_);
        flushed = stream_ != nullptr && outbox_.empty();
        if (flushed) stream->WritesDone();
        stream_ = nullptr;
      }
      if (!flushed) {
        // The stream broke while draining: reconnect to deliver the outbox.
        context.TryCancel();
        break;
      }
      Log("drained: every stage reported, closing the session");
      close_deadline = absl::Now() + absl::Milliseconds(options_.drain_close_timeout_ms);
    }
    if (heartbeat) Send(Heartbeat(), /*keep_if_disconnected=*/false);
  }
  reader.join();
  {
    absl::MutexLock send_lock(&send_mu_);
    stream_ = nullptr;
  }
  {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
  }
  const absl::Status status = FromGrpc(stream->Finish());
  if (received_any || absl::Now() - opened >= absl::Milliseconds(options_.backoff_max_ms)) {
    backoff.Reset();
  }
  if (stopped || closing) return absl::OkStatus();
  if (status.ok()) return absl::UnavailableError("the coordinator closed the session");
  return status;
}

std::vector<int64_t> Worker::HeldAttempts() const {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> held;
  if (current_attempt_ != 0) held.push_back(current_attempt_);
  for (const Job& job : queue_) held.push_back(job.assignment.task.attempt_id);
  return held;
}

hippo::v1::WorkerMessage Worker::Hello(const std::vector<int64_t>& holding) const {
  hippo::v1::WorkerMessage message;
  hippo::v1::WorkerHello* hello = message.mutable_hello();
  hello->set_worker_id(options_.worker_id);
  hello->set_host(options_.host);
  hippo::v1::Device* device = hello->add_devices();
  device->set_name(options_.device);
  device->set_memory_bytes(options_.memory_bytes);
  hello->set_memory_bytes(options_.memory_bytes);
  for (const auto& [kind, trainer] : trainers_) hello->add_trainers(kind);
  if (store_.has_value()) hello->set_checkpoint_dir(store_->directory());
  hello->set_checkpoint_budget_bytes(options_.checkpoint_budget_bytes);
  for (const StateKey& key : cache_.Keys()) {
    hippo::v1::CachedState* cached = hello->add_cached_states();
    cached->set_stage_id(key.stage_id);
    cached->set_step(key.step);
  }
  // An attempt that finished while the stream was down is still held until its reports, sent
  // right after this hello, arrive; one whose reports are replayed may have lost them.
  std::vector<int64_t> held = holding;
  for (const hippo::v1::WorkerMessage& report : outbox_) held.push_back(AttemptOf(report));
  for (const auto& [attempt, reports] : replay_) held.push_back(attempt);
  std::sort(held.begin(), held.end());
  held.erase(std::unique(held.begin(), held.end()), held.end());
  hippo::v1::HeldAttempts* listed = hello->mutable_held();
  for (int64_t attempt : held) {
    if (attempt != 0) listed->add_attempt_ids(attempt);
  }
  return message;
}

hippo::v1::WorkerMessage Worker::Heartbeat() const {
  hippo::v1::WorkerMessage message;
  hippo::v1::Heartbeat* heartbeat = message.mutable_heartbeat();
  absl::MutexLock lock(&mu_);
  if (current_attempt_ != 0) heartbeat->add_attempt_ids(current_attempt_);
  for (const Job& job : queue_) heartbeat->add_attempt_ids(job.assignment.task.attempt_id);
  return message;
}

void Worker::Send(const hippo::v1::WorkerMessage& message, bool keep_if_disconnected) {
  bool overflowed = false;
  {
    absl::MutexLock send_lock(&send_mu_);
    if (stream_ != nullptr && outbox_.empty()) {
      if (stream_->Write(message)) {
        RecordSent(message);
        return;
      }
      // The call is broken; the reader sees its end and the session loop reconnects. The
      // failed message may or may not have arrived, so it is kept and sent again.
      stream_ = nullptr;
    }
    if (!keep_if_disconnected) return;
    if (outbox_.size() >= kMaxOutboxMessages) {
      outbox_.clear();
      overflowed = true;
    }
    outbox_.push_back(message);
  }
  if (overflowed) {
    Log("too many reports kept while disconnected: dropped them and cancelled the stage");
    absl::MutexLock lock(&mu_);
    if (current_control_ != nullptr) current_control_->Cancel();
  }
}

void Worker::RecordSent(const hippo::v1::WorkerMessage& message) {
  const int64_t attempt = AttemptOf(message);
  if (attempt == 0) return;  // hello, heartbeat, evictions: the next hello supersedes them
  auto it = std::find_if(replay_.begin(), replay_.end(),
                         [attempt](const auto& entry) { return entry.first == attempt; });
  if (it == replay_.end()) {
    replay_.emplace_back(attempt, std::vector<hippo::v1::WorkerMessage>());
    // Attempts run one after the other, so only the newest two can have reports in flight.
    while (replay_.size() > kReplayAttempts) replay_.pop_front();
    it = std::prev(replay_.end());
  }
  if (it->second.size() < kMaxOutboxMessages) it->second.push_back(message);
}

void Worker::SendFinished(int64_t attempt_id, bool ok, std::string_view error, double seconds,
                          std::vector<hippo::v1::WorkerMessage> before, bool parent_state_lost) {
  hippo::v1::WorkerMessage done;
  hippo::v1::StageFinished* finished = done.mutable_finished();
  finished->set_attempt_id(attempt_id);
  finished->set_ok(ok);
  finished->set_error(std::string(error));
  finished->set_seconds(seconds);
  finished->set_parent_state_lost(parent_state_lost);
  {
    absl::MutexLock lock(&mu_);
    ++(ok ? stats_.stages_succeeded : stats_.stages_failed);
  }
  if (before.empty()) {
    Send(done, /*keep_if_disconnected=*/true);
    return;
  }
  hippo::v1::WorkerMessage packed;
  hippo::v1::Reports* reports = packed.mutable_reports();
  for (hippo::v1::WorkerMessage& report : before) *reports->add_messages() = std::move(report);
  *reports->add_messages() = std::move(done);
  Send(packed, /*keep_if_disconnected=*/true);
}

void Worker::HandleMessage(const hippo::v1::CoordinatorMessage& message) {
  switch (message.message_case()) {
    case hippo::v1::CoordinatorMessage::kAssign:
      HandleAssign(message.assign());
      break;
    case hippo::v1::CoordinatorMessage::kCheckpointAt:
      HandleCheckpointAt(message.checkpoint_at());
      break;
    case hippo::v1::CoordinatorMessage::kCancel:
      HandleCancel(message.cancel().attempt_id());
      break;
    case hippo::v1::CoordinatorMessage::kDrain:
      HandleDrain();
      break;
    case hippo::v1::CoordinatorMessage::kDeleteCheckpoints:
      HandleDeleteCheckpoints(message.delete_checkpoints());
      break;
    case hippo::v1::CoordinatorMessage::MESSAGE_NOT_SET:
      break;
  }
}

void Worker::HandleAssign(const hippo::v1::Assign& assign) {
  absl::StatusOr<Assignment> assignment = AssignmentFromProto(assign);
  if (!assignment.ok()) {
    Log(absl::StrCat("rejected attempt ", assign.attempt_id(), ": ",
                     assignment.status().ToString()));
    SendFinished(assign.attempt_id(), false, assignment.status().ToString(), 0);
    return;
  }
  std::string refusal;
  {
    absl::MutexLock lock(&mu_);
    const int64_t attempt = assignment->task.attempt_id;
    const bool duplicate = current_attempt_ == attempt ||
                           std::any_of(queue_.begin(), queue_.end(), [attempt](const Job& job) {
                             return job.assignment.task.attempt_id == attempt;
                           });
    if (duplicate) return;  // re-sent after a reconnect: already held
    if (draining_ || stop_requested_) {
      refusal = "the worker is draining";
    } else if (!trainers_.contains(assignment->task.trainer_kind)) {
      refusal =
          absl::StrCat("this worker has no trainer of kind '", assignment->task.trainer_kind, "'");
    } else {
      Job job;
      job.control = std::make_shared<StageControl>();
      job.control->SetAssignedCheckpoints(assignment->task.checkpoint_steps);
      job.assignment = *std::move(assignment);
      queue_.push_back(std::move(job));
      return;
    }
  }
  Log(absl::StrCat("rejected attempt ", assign.attempt_id(), ": ", refusal));
  SendFinished(assign.attempt_id(), false, refusal, 0);
}

void Worker::HandleCheckpointAt(const hippo::v1::CheckpointAt& request) {
  std::shared_ptr<StageControl> control;
  {
    absl::MutexLock lock(&mu_);
    if (current_attempt_ == request.attempt_id()) {
      control = current_control_;
    } else {
      for (const Job& job : queue_) {
        if (job.assignment.task.attempt_id == request.attempt_id()) control = job.control;
      }
    }
  }
  if (control == nullptr) {
    Log(absl::StrCat("ignored CheckpointAt for attempt ", request.attempt_id(),
                     ", which this worker does not hold"));
  } else if (!control->RequestCheckpoint(request.step())) {
    Log(absl::StrCat("ignored CheckpointAt step ", request.step(), " for attempt ",
                     request.attempt_id(), ": the stage already passed it"));
  }
}

void Worker::HandleCancel(int64_t attempt_id) {
  bool was_queued = false;
  {
    absl::MutexLock lock(&mu_);
    if (current_attempt_ == attempt_id && current_control_ != nullptr) {
      current_control_->Cancel();
      return;  // the training thread reports it
    }
    auto it = std::find_if(queue_.begin(), queue_.end(), [attempt_id](const Job& job) {
      return job.assignment.task.attempt_id == attempt_id;
    });
    if (it != queue_.end()) {
      queue_.erase(it);
      was_queued = true;
    }
  }
  if (was_queued) SendFinished(attempt_id, false, "cancelled by the coordinator", 0);
}

void Worker::HandleDeleteCheckpoints(const hippo::v1::DeleteCheckpoints& request) {
  hippo::v1::WorkerMessage reply;
  int64_t deleted = 0;
  for (const std::string& uri : request.uris()) {
    // A uri outside the directory, or a file that cannot be deleted, is not confirmed: the
    // coordinator keeps it as garbage and asks again later.
    if (absl::Status status = store_->Delete(uri); !status.ok()) {
      Log(absl::StrCat("cannot delete released checkpoint: ", status.message()));
      continue;
    }
    reply.mutable_deleted()->add_uris(uri);
    ++deleted;
  }
  {
    absl::MutexLock lock(&mu_);
    stats_.checkpoints_deleted += deleted;
  }
  // Not kept while disconnected: the coordinator sends the deletions again after a hello.
  if (deleted > 0) Send(reply, /*keep_if_disconnected=*/false);
}

void Worker::HandleDrain() {
  Log("draining: finishing the assigned stages, accepting no more");
  absl::MutexLock lock(&mu_);
  draining_ = true;
  if (current_attempt_ == 0 && queue_.empty()) drained_ = true;
}

void Worker::TrainingLoop() {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_requested_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stop_requested_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      current_attempt_ = job.assignment.task.attempt_id;
      current_control_ = job.control;
    }
    RunJob(job);
    absl::MutexLock lock(&mu_);
    current_attempt_ = 0;
    current_control_.reset();
    if (draining_ && queue_.empty()) drained_ = true;
  }
}

absl::StatusOr<std::unique_ptr<TrainingState>> Worker::StartState(Trainer& trainer,
                                                                  const Assignment& assignment,
                                                                  bool& state_lost) {
  const StageTask& task = assignment.task;
  absl::StatusOr<std::unique_ptr<TrainingState>> state;
  if (assignment.parent_state_uri.empty() && assignment.parent_stage_id == 0) {
    if (task.start_step != 0) {
      return absl::FailedPreconditionError(absl::StrCat("stage ", task.stage_id, " starts at step ",
                                                        task.start_step,
                                                        " but names no parent state"));
    }
    state = trainer.NewState(task);
    if (state.ok()) {
      absl::MutexLock lock(&mu_);
      ++stats_.states_fresh;
    }
  } else if (std::unique_ptr<TrainingState> cached =
                 cache_.CloneOf({assignment.parent_stage_id, assignment.parent_state_step});
             cached != nullptr) {
    state = std::move(cached);
    absl::MutexLock lock(&mu_);
    ++stats_.states_from_memory;
  } else if (!assignment.parent_state_uri.empty()) {
    absl::StatusOr<std::string> bytes = store_->Read(assignment.parent_state_uri);
    if (!bytes.ok()) {
      // Outside this worker's directory (PermissionDenied) is as unreadable here as missing:
      // the coordinator recomputes the state where this worker can read it.
      state_lost = absl::IsNotFound(bytes.status()) || absl::IsDataLoss(bytes.status()) ||
                   absl::IsPermissionDenied(bytes.status());
      return bytes.status();
    }
    // An inherited state is the parent family's: it is read as that family trained it.
    state = trainer.Deserialize(assignment.inherited_from.value_or(task), *bytes);
    if (state.ok()) {
      absl::MutexLock lock(&mu_);
      ++stats_.states_from_checkpoint;
    }
  } else {
    state_lost = true;
    return absl::FailedPreconditionError(absl::StrCat(
        "the parent state of stage ", task.stage_id, " (stage ", assignment.parent_stage_id,
        " at step ", assignment.parent_state_step,
        ") is not in this worker's fork cache and the Assign names no checkpoint uri"));
  }
  if (!state.ok()) return state.status();
  if (assignment.inherited_from.has_value()) {
    state = trainer.Morph(*assignment.inherited_from, task, **state);
    if (!state.ok()) return state.status();
  }
  if ((*state)->step() != task.start_step) {
    return absl::FailedPreconditionError(
        absl::StrCat("stage ", task.stage_id, " starts at step ", task.start_step,
                     " but its parent state is at step ", (*state)->step()));
  }
  return state;
}

void Worker::KeepInCache(StateKey key, std::unique_ptr<TrainingState> state) {
  ForkCache::PutResult result = cache_.Put(key, std::move(state));
  if (result.evicted.empty()) return;
  hippo::v1::WorkerMessage message;
  for (const StateKey& evicted : result.evicted) {
    hippo::v1::CachedState* cached = message.mutable_evicted()->add_states();
    cached->set_stage_id(evicted.stage_id);
    cached->set_step(evicted.step);
  }
  Send(message, /*keep_if_disconnected=*/true);
}

void Worker::RunJob(Job& job) {
  const StageTask& task = job.assignment.task;
  StageControl& control = *job.control;
  const absl::Time started = absl::Now();
  if (task.timeout_seconds > 0) control.SetDeadline(started + absl::Seconds(task.timeout_seconds));
  Trainer& trainer = *trainers_.at(task.trainer_kind);

  bool state_lost = false;
  absl::StatusOr<std::unique_ptr<TrainingState>> state =
      StartState(trainer, job.assignment, state_lost);
  if (!state.ok()) {
    Log(absl::StrCat("attempt ", task.attempt_id, " failed: ", state.status().ToString()));
    SendFinished(task.attempt_id, false, state.status().ToString(),
                 absl::ToDoubleSeconds(absl::Now() - started), {}, state_lost);
    return;
  }

  // The last step's progress and the end checkpoint go out with stage done, as one message.
  std::vector<hippo::v1::WorkerMessage> stage_end;
  TrainCallbacks callbacks;
  callbacks.progress = [this, &task, &stage_end](Step step, const Metrics& metrics) {
    hippo::v1::WorkerMessage message = ProgressMessage(task.attempt_id, step, metrics);
    if (step == task.end_step - 1) {
      stage_end.push_back(std::move(message));
    } else {
      Send(message, /*keep_if_disconnected=*/true);
    }
  };
  callbacks.checkpoint = [this, &task, &control, &stage_end](
                             Step step, const TrainingState& at) -> absl::Status {
    absl::StatusOr<std::string> bytes = at.Serialize();
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<CheckpointInfo> info = store_->Write(task.stage_id, step, *bytes);
    if (!info.ok()) return info.status();
    hippo::v1::WorkerMessage message;
    hippo::v1::CheckpointWritten* written = message.mutable_checkpoint();
    written->set_attempt_id(task.attempt_id);
    written->set_stage_id(task.stage_id);
    written->set_step(step);
    written->set_uri(info->uri);
    written->set_size_bytes(info->size_bytes);
    written->set_checksum(info->checksum);
    if (step == task.end_step) {
      stage_end.push_back(std::move(message));
    } else {
      Send(message, /*keep_if_disconnected=*/true);
    }
    // A step the coordinator asked for mid-stage is a split point: siblings will fork there.
    if (step < task.end_step && control.RequestedMidStage(step)) {
      KeepInCache({task.stage_id, step}, at.Clone());
    }
    return absl::OkStatus();
  };

  absl::StatusOr<StageOutcome> outcome = trainer.Train(task, **state, control, callbacks);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - started);
  if (outcome.ok()) {
    // The end state is where children fork from, whether or not the stage was cancelled late.
    KeepInCache({task.stage_id, task.end_step}, *std::move(state));
  }
  if (control.cancelled()) {
    SendFinished(task.attempt_id, false, "cancelled by the coordinator", seconds,
                 std::move(stage_end));
    return;
  }
  if (!outcome.ok()) {
    Log(absl::StrCat("attempt ", task.attempt_id, " failed: ", outcome.status().ToString()));
    SendFinished(task.attempt_id, false, outcome.status().ToString(), seconds,
                 std::move(stage_end));
    return;
  }
  SendFinished(task.attempt_id, true, "", outcome->virtual_seconds.value_or(seconds),
               std::move(stage_end));
}

}  // namespace hippo::workers
