// StudyService.WatchStudy: the events of a watched study, and the streams that carry them.
//
// StudyWatch turns the engine's versioned views into StudyEvents, each carrying the study's
// current view:
//  - the study view changed (state, counts, steps, best trial): `study` only;
//  - a trial is new or its view changed (state, reached step, objective): `trial` set;
//  - a metric of a trial arrived (a step not sent before): `metric` set, with `trial` the trial
//    it belongs to. A stage shared by several trials reports its metrics once per trial.
// The first round sends the study, then every trial with its metrics so far, a page at a time;
// later rounds ask the engine only for the trials changed since (Engine::ListTrialsPage with
// changed_since), so a round costs the changes, not the study's size.
//
// WatchStreams serves every open stream from one thread, woken by the engine's change signal
// (Engine::AddChangeListener) and by streams that drained their queue: no thread or polling
// per watcher. Each stream queues at most one round of events (a bounded page of trials);
// a watcher that reads slower than changes come is simply asked again later, from where the
// engine's versions say it is, so what changed meanwhile reaches it coalesced (each trial
// once, as it is then, with its metrics not sent yet). Rounds are at most ten a second.
#ifndef HIPPO_HIPPO_STUDY_WATCH_H_
#define HIPPO_HIPPO_STUDY_WATCH_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "hippo/engine.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::coordinator {

class StudyWatch {
 public:
  StudyWatch(Engine* engine, std::string study_id)
      : engine_(engine), study_id_(std::move(study_id)) {}

  // The next events: the study's if its view changed, and those of at most `max_trials` of the
  // trials changed since the last call (none when nothing changed). NotFound for an unknown
  // study.
  absl::StatusOr<std::vector<hippo::v1::StudyEvent>> Next(size_t max_trials);

  // Whether the study has ended and every event up to its end was returned.
  bool ended() const { return ended_; }
  // Whether changes are known to wait (the last call stopped at max_trials).
  bool behind() const { return listing_; }

 private:
  Engine* const engine_;
  const std::string study_id_;
  std::string last_study_;  // serialized view last sent
  // Trials changed after this version are still to be sent; a listing of them is under way
  // from (after_version_, after_trial_) when listing_, begun at version listing_version_.
  int64_t since_ = 0;
  bool listing_ = false;
  int64_t listing_version_ = 0;
  int64_t after_version_ = 0;
  int64_t after_trial_ = -1;
  std::vector<uint64_t> trial_hash_;       // by trial id: hash of the view last sent (0: none)
  std::vector<int64_t> last_metric_step_;  // by trial id: the last step whose metrics were sent
  bool ended_ = false;
};

class WatchStream;

class WatchStreams {
 public:
  struct Options {
    size_t max_streams = 64;    // open streams at most; one more is RESOURCE_EXHAUSTED
    size_t round_trials = 100;  // trials one round queues for a stream at most
    std::chrono::milliseconds min_round{100};  // rounds at most this often
  };

  // Registers a change listener with `engine`, which must outlive this.
  WatchStreams(Engine* engine, Options options);
  ~WatchStreams();
  WatchStreams(const WatchStreams&) = delete;
  WatchStreams& operator=(const WatchStreams&) = delete;

  // The reactor of a new WatchStudy call. It ends at once with `refusal` when that is not OK
  // (the caller's authorization), NOT_FOUND for an unknown study, RESOURCE_EXHAUSTED when
  // max_streams are open.
  grpc::ServerWriteReactor<hippo::v1::StudyEvent>* Open(const std::string& study_id,
                                                        grpc::Status refusal);
  // Ends every open stream (UNAVAILABLE) and the thread; later Opens are refused. Idempotent.
  void Stop();

  // Wakes the thread for a round (a change, a drained queue, a new stream).
  void Wake();

 private:
  void Run();

  // What the engine's change listener touches: shared with it, so that it stays valid
  // whichever of the engine and this goes first.
  struct Signal {
    std::mutex mutex;
    std::condition_variable wake;
    bool pending = false;  // a round is due
    bool stopping = false;
  };

  Engine* const engine_;
  const Options options_;
  const std::shared_ptr<Signal> signal_ = std::make_shared<Signal>();
  std::vector<std::shared_ptr<WatchStream>> streams_;  // under signal_->mutex
  std::thread thread_;
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_STUDY_WATCH_H_
