#include "hippo/worker_service.h"

#include <grpcpp/alarm.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "hippo/grpc_calls.h"
#include "hippo/v1/hippo.grpc.pb.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;

// One worker's outgoing messages. Send queues a message and starts a write only when none is in
// flight (a stream takes one write at a time); the session's OnWriteDone starts the next. The
// engine may hold this channel after the stream ended: Send then returns false.
class StreamChannel final : public WorkerChannel {
 public:
  explicit StreamChannel(
      grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* reactor)
      : reactor_(reactor) {}

  bool Send(v1::CoordinatorMessage message) override {
    const v1::CoordinatorMessage* next = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!open_) return false;
      outbox_.push_back(std::move(message));
      if (writing_) return true;
      writing_ = true;
      next = &outbox_.front();  // a deque keeps it in place while others are queued
    }
    // Outside the lock: gRPC may run OnWriteDone before StartWrite returns. The reactor cannot
    // finish meanwhile, since Close waits for the write in flight.
    reactor_->StartWrite(next);
    return true;
  }

  // The write in flight is done; starts the next, or finishes the stream if it was closed.
  void WriteDone(bool ok) {
    const v1::CoordinatorMessage* next = nullptr;
    std::optional<grpc::Status> finish;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      outbox_.pop_front();
      if (!ok) open_ = false;  // the stream broke: nothing more goes out
      if (open_ && !outbox_.empty()) {
        next = &outbox_.front();
      } else {
        writing_ = false;
        outbox_.clear();
        finish = TakeFinish();
      }
    }
    if (next != nullptr) {
      reactor_->StartWrite(next);
    } else if (finish) {
      reactor_->Finish(*std::move(finish));
    }
  }

  // Refuses further sends and finishes the stream with `status`, once the write in flight (if
  // any) is done. Call once.
  void Close(grpc::Status status) {
    std::optional<grpc::Status> finish;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      open_ = false;
      finish_ = std::move(status);
      if (!writing_) finish = TakeFinish();
    }
    if (finish) reactor_->Finish(*std::move(finish));
  }

 private:
  // With mutex_ held: the status to finish with, once.
  std::optional<grpc::Status> TakeFinish() {
    if (!finish_ || finished_) return std::nullopt;
    finished_ = true;
    return finish_;
  }

  grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* const reactor_;
  std::mutex mutex_;
  std::deque<v1::CoordinatorMessage> outbox_;  // front: the write in flight, if writing_
  bool open_ = true;
  bool writing_ = false;
  std::optional<grpc::Status> finish_;  // set by Close
  bool finished_ = false;
};

// One worker's stream, on gRPC's callback API: no thread waits on a stream. A read is re-armed
// only after the engine took the message, so a worker's messages reach it in order, one at a
// time. The engine answers through the channel from its committer thread, after the commit.
// Deletes itself when gRPC is done with the stream.
class WorkerSession final
    : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage> {
 public:
  WorkerSession(grpc::CallbackServerContext* context, Engine* engine, const std::string& token,
                ByteBudget* budget)
      : engine_(engine), budget_(budget), channel_(std::make_shared<StreamChannel>(this)) {
    if (grpc::Status status = Authorize(context, token); !status.ok()) {
      End(std::move(status));
      return;
    }
    ReadNext();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      End(grpc::Status::OK);  // the worker closed its side, or the call was cancelled
      return;
    }
    // Large messages of all streams together are taken at the budget's rate: this stream's
    // next read waits for its share (gRPC's flow control then holds its sender back).
    const int64_t bytes = static_cast<int64_t>(incoming_->ByteSizeLong());
    const std::optional<ByteBudget::Clock::duration> wait =
        budget_->Charge(bytes, ByteBudget::Clock::now());
    if (!wait) {
      End(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("a message of ", bytes, " bytes: the coordinator takes messages of ",
                       budget_->options().large_message_bytes, " bytes or more at ",
                       budget_->options().bytes_per_second / (1 << 20),
                       " MiB/s from all workers together, and more than ",
                       budget_->options().max_wait_seconds,
                       " s of them are queued: send fewer metrics per report and fewer reports "
                       "per Reports message")));
      return;
    }
    if (!session_) {
      if (!incoming_->has_hello()) {
        End(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                         "a worker's first message must be hello"));
        return;
      }
      absl::StatusOr<int64_t> session = engine_->Connect(incoming_->hello(), channel_);
      if (!session.ok()) {
        End(ToGrpc(session.status()));
        return;
      }
      worker_id_ = incoming_->hello().worker_id();
      session_ = *session;
    } else if (absl::Status status = engine_->OnWorkerMessage(worker_id_, *incoming_);
               !status.ok()) {
      End(ToGrpc(status));  // the worker learns why its stream ends
      return;
    }
    std::unique_lock<std::mutex> lock(alarm_mutex_);
    if (*wait <= ByteBudget::Clock::duration::zero() || cancelled_) {
      lock.unlock();
      ReadNext();  // after a cancel, the read fails at once and ends the session
      return;
    }
    // The alarm's callback runs once, also when the alarm is cancelled (OnCancel): the read it
    // starts then fails and ends the session, so this reactor lives until then. A fresh alarm
    // each time: gRPC keeps a fired one alive until its callback has returned.
    alarm_ = std::make_unique<grpc::Alarm>();
    alarm_->Set(std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(*wait),
                [this](bool) { ReadNext(); });
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(alarm_mutex_);
    cancelled_ = true;
    if (alarm_) alarm_->Cancel();
  }

  void OnWriteDone(bool ok) override {
    std::shared_ptr<StreamChannel> channel = channel_;  // may finish: OnDone deletes this
    channel->WriteDone(ok);
  }

  void OnDone() override { delete this; }

 private:
  // Each message is parsed into the arena, emptied before the next read (the engine copies what
  // it keeps): its fields cost a pointer bump each instead of a malloc and a free each.
  void ReadNext() {
    arena_.Reset();
    incoming_ = google::protobuf::Arena::CreateMessage<v1::WorkerMessage>(&arena_);
    StartRead(incoming_);
  }

  // Ends the session in the engine, then the stream: this may be deleted on return.
  void End(grpc::Status status) {
    if (session_) engine_->Disconnect(worker_id_, *session_);
    std::shared_ptr<StreamChannel> channel = channel_;
    channel->Close(std::move(status));
  }

  Engine* const engine_;
  ByteBudget* const budget_;
  const std::shared_ptr<StreamChannel> channel_;
  std::mutex alarm_mutex_;
  std::unique_ptr<grpc::Alarm> alarm_;  // set while a read waits for the budget
  bool cancelled_ = false;              // by OnCancel
  // A report fits in the first block, which Reset() keeps: no malloc per message at all.
  alignas(8) char first_block_[4096];
  google::protobuf::Arena arena_{first_block_, sizeof(first_block_)};
  v1::WorkerMessage* incoming_ = nullptr;  // on arena_
  std::string worker_id_;
  std::optional<int64_t> session_;  // set once the engine accepted the hello
};

class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  WorkerServiceImpl(Engine* engine, std::string token, ByteBudget* budget)
      : engine_(engine), token_(std::move(token)), budget_(budget) {}

  grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* Session(
      grpc::CallbackServerContext* context) override {
    return new WorkerSession(context, engine_, token_, budget_);
  }

 private:
  Engine* engine_;
  std::string token_;
  ByteBudget* budget_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeWorkerService(Engine* engine, std::string token,
                                                 ByteBudget* budget) {
  return std::make_unique<WorkerServiceImpl>(engine, std::move(token), budget);
}

}  // namespace hippo::coordinator
