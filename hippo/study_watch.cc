#include "hippo/study_watch.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <deque>
#include <optional>

#include "absl/hash/hash.h"

namespace hippo::coordinator {

namespace v1 = ::hippo::v1;

namespace {

// Map fields (a trial's parameters) serialize in an unspecified order unless asked: equal
// views must give equal bytes.
std::string DeterministicBytes(const google::protobuf::Message& message) {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeToCodedStream(&coded);
  coded.Trim();
  return bytes;
}

}  // namespace

absl::StatusOr<std::vector<v1::StudyEvent>> StudyWatch::Next(size_t max_trials) {
  absl::StatusOr<v1::Study> study = engine_->GetStudy(study_id_);
  if (!study.ok()) return study.status();
  std::vector<v1::StudyEvent> events;
  auto event = [&]() -> v1::StudyEvent& {
    v1::StudyEvent& added = events.emplace_back();
    *added.mutable_study() = *study;
    return added;
  };
  std::string now = DeterministicBytes(*study);
  if (now != last_study_) {
    event();
    last_study_ = std::move(now);
  }
  // Trials are read after the study: every change the study view shows is in their versions.
  TrialQuery query;
  query.changed_since = since_;
  if (listing_) {
    query.after_version = after_version_;
    query.after_trial = after_trial_;
  }
  query.limit = std::max<size_t>(1, max_trials);
  query.with_metrics = true;
  absl::StatusOr<TrialPage> page = engine_->ListTrialsPage(study_id_, query);
  if (!page.ok()) return page.status();
  if (!listing_) listing_version_ = page->response.version();
  std::vector<const v1::TrialMetrics*> metrics_of(page->response.trials_size(), nullptr);
  for (const v1::TrialMetrics& metrics : page->response.metrics()) {
    for (int i = 0; i < page->response.trials_size(); ++i) {
      if (page->response.trials(i).id() == metrics.trial_id()) metrics_of[i] = &metrics;
    }
  }
  for (int i = 0; i < page->response.trials_size(); ++i) {
    const v1::Trial& trial = page->response.trials(i);
    const size_t id = static_cast<size_t>(trial.id());
    if (id >= trial_hash_.size()) {
      trial_hash_.resize(id + 1, 0);
      last_metric_step_.resize(id + 1, -1);
    }
    const uint64_t hash = absl::HashOf(DeterministicBytes(trial)) | 1;  // never 0 ("none")
    if (hash != trial_hash_[id]) {
      *event().mutable_trial() = trial;
      trial_hash_[id] = hash;
    }
    if (metrics_of[i] == nullptr) continue;
    for (const v1::Metric& metric : metrics_of[i]->metrics()) {
      if (metric.step() <= last_metric_step_[id]) continue;
      v1::StudyEvent& added = event();
      *added.mutable_trial() = trial;
      *added.mutable_metric() = metric;
      last_metric_step_[id] = metric.step();
    }
  }
  listing_ = page->more;
  if (listing_) {
    after_version_ = page->last_version;
    after_trial_ = page->last_trial;
  } else {
    since_ = listing_version_;
  }
  ended_ = !listing_ && study->state() != v1::STUDY_RUNNING && study->state() != v1::STUDY_PENDING;
  return events;
}

// One WatchStudy stream on gRPC's callback API. The streams' thread fills its queue (Round) and
// starts a write when none is in flight; OnWriteDone starts the next. The reactor keeps itself
// alive (self_) until gRPC is done with it (OnDone), and the streams' thread holds it until
// it sees that.
class WatchStream final : public grpc::ServerWriteReactor<v1::StudyEvent>,
                          public std::enable_shared_from_this<WatchStream> {
 public:
  WatchStream(Engine* engine, std::string study_id, WatchStreams* owner)
      : watch_(engine, std::move(study_id)), owner_(owner) {}

  void Attach(std::shared_ptr<WatchStream> self) { self_ = std::move(self); }

  // Ends the stream with `status` once the write in flight (if any) is done.
  void End(grpc::Status status) {
    std::optional<grpc::Status> finish;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.resize(writing_ ? 1 : 0);  // the write in flight stays until it is done
      if (!finish_) finish_ = std::move(status);
      if (!writing_) finish = TakeFinish();
    }
    if (finish) Finish(*std::move(finish));
  }

  // One round on the streams' thread: queues the next events if the queue is empty, and starts
  // writing them. Returns whether the watch is behind (more to send once the queue drains).
  bool Round(size_t max_trials) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (finish_ || !queue_.empty()) return false;
    }
    absl::StatusOr<std::vector<v1::StudyEvent>> events = watch_.Next(max_trials);
    if (!events.ok()) {
      End(grpc::Status(static_cast<grpc::StatusCode>(events.status().code()),
                       std::string(events.status().message())));
      return false;
    }
    const v1::StudyEvent* next = nullptr;
    std::optional<grpc::Status> finish;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (finish_) return false;
      for (v1::StudyEvent& event : *events) queue_.push_back(std::move(event));
      if (watch_.ended()) finish_ = grpc::Status::OK;
      if (writing_) return false;
      if (!queue_.empty()) {
        writing_ = true;
        next = &queue_.front();
      } else {
        finish = TakeFinish();
      }
    }
    if (next != nullptr) StartWrite(next);
    if (finish) Finish(*std::move(finish));
    return watch_.behind();
  }

  bool done() {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }

  void OnWriteDone(bool ok) override {
    const v1::StudyEvent* next = nullptr;
    std::optional<grpc::Status> finish;
    bool drained = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!queue_.empty()) queue_.pop_front();
      if (!ok) {
        queue_.clear();  // the client is gone: nothing more goes out
        if (!finish_) finish_ = grpc::Status::CANCELLED;
      }
      if (!queue_.empty()) {
        next = &queue_.front();  // a deque keeps it in place while the thread appends
      } else {
        writing_ = false;
        finish = TakeFinish();
        drained = !finish;
      }
    }
    if (next != nullptr) StartWrite(next);
    if (finish) Finish(*std::move(finish));
    if (drained) owner_->Wake();
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    std::shared_ptr<WatchStream> self;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
      self = std::move(self_);
    }
    owner_->Wake();  // the thread lets go of it
  }

 private:
  // With mutex_ held: the status to finish with, once.
  std::optional<grpc::Status> TakeFinish() {
    if (!finish_ || finished_) return std::nullopt;
    finished_ = true;
    return finish_;
  }

  StudyWatch watch_;  // the streams' thread only
  WatchStreams* const owner_;
  std::mutex mutex_;
  std::deque<v1::StudyEvent> queue_;  // front: the write in flight, if writing_
  bool writing_ = false;
  std::optional<grpc::Status> finish_;
  bool finished_ = false;
  bool done_ = false;
  std::shared_ptr<WatchStream> self_;
};

WatchStreams::WatchStreams(Engine* engine, Options options) : engine_(engine), options_(options) {
  engine_->AddChangeListener([signal = signal_] {
    {
      std::lock_guard<std::mutex> lock(signal->mutex);
      signal->pending = true;
    }
    signal->wake.notify_one();
  });
  thread_ = std::thread([this] { Run(); });
}

WatchStreams::~WatchStreams() { Stop(); }

void WatchStreams::Wake() {
  {
    std::lock_guard<std::mutex> lock(signal_->mutex);
    signal_->pending = true;
  }
  signal_->wake.notify_one();
}

grpc::ServerWriteReactor<v1::StudyEvent>* WatchStreams::Open(const std::string& study_id,
                                                             grpc::Status refusal) {
  auto stream = std::make_shared<WatchStream>(engine_, study_id, this);
  stream->Attach(stream);
  if (refusal.ok()) {
    if (absl::StatusOr<v1::Study> study = engine_->GetStudy(study_id); !study.ok()) {
      refusal = grpc::Status(static_cast<grpc::StatusCode>(study.status().code()),
                             std::string(study.status().message()));
    }
  }
  if (refusal.ok()) {
    std::lock_guard<std::mutex> lock(signal_->mutex);
    if (signal_->stopping) {
      refusal = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is shutting down");
    } else if (streams_.size() >= options_.max_streams) {
      refusal = grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          "WatchStudy: " + std::to_string(options_.max_streams) +
              " streams are open on this coordinator, the most it serves at once; close one "
              "or follow the study with ListTrials(changed_since)");
    } else {
      streams_.push_back(stream);
      signal_->pending = true;
    }
  }
  if (!refusal.ok()) {
    stream->End(std::move(refusal));
  } else {
    signal_->wake.notify_one();
  }
  return stream.get();
}

void WatchStreams::Run() {
  std::unique_lock<std::mutex> lock(signal_->mutex);
  while (true) {
    signal_->wake.wait(lock, [this] { return signal_->stopping || signal_->pending; });
    if (signal_->stopping) return;
    signal_->pending = false;
    // Streams gRPC is done with are let go of (and so deleted).
    std::erase_if(streams_, [](const std::shared_ptr<WatchStream>& s) { return s->done(); });
    std::vector<std::shared_ptr<WatchStream>> streams = streams_;
    lock.unlock();
    bool behind = false;
    for (const std::shared_ptr<WatchStream>& stream : streams) {
      behind = stream->Round(options_.round_trials) || behind;
    }
    streams.clear();
    lock.lock();
    if (behind) signal_->pending = true;
    // Changes that come meanwhile are taken together in the next round.
    signal_->wake.wait_for(lock, options_.min_round, [this] { return signal_->stopping; });
  }
}

void WatchStreams::Stop() {
  std::vector<std::shared_ptr<WatchStream>> streams;
  {
    std::lock_guard<std::mutex> lock(signal_->mutex);
    if (signal_->stopping) return;
    signal_->stopping = true;
    streams = streams_;
  }
  signal_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
  for (const std::shared_ptr<WatchStream>& stream : streams) {
    stream->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is shutting down"));
  }
}

}  // namespace hippo::coordinator
