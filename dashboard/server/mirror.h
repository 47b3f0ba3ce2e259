// Mirror: the dashboard's copy of the coordinator's read views, with a version per change.
//
// A refresh thread reads the engine's views (ListStudySummaries, ListTrialsPage, ListWorkers) and
// keeps, per study, its trials as compact rows (serialized Trial, sortable columns, the objective
// curve) stamped with the version of their last change. Every dashboard reads this copy, so ten
// dashboards cost the engine what one does. The thread is event-driven: it sleeps until the
// engine signals a change (Engine::AddChangeListener) and reads nothing while nobody watches
// (no open event stream and no request in the last Options::idle_after), so an idle dashboard,
// or one watching a coordinator where nothing happens, costs nothing. Changes are coalesced on a
// clock: a change is read at the next tick (multiples of Options::period), one refresh a tick at
// most whatever the number of changes and of watchers, and what a refresh read is published
// when it ends, so that the event streams, which send just after a tick (NextTick), carry a
// whole refresh and show a change within one period and a refresh. A refresh reads only the
// studies whose view changed, and their
// trials a page at a time, after a study's first read only those the engine says changed since
// (TrialQuery::changed_since): it costs the changes, not the study's size. A study's trials are
// not read again sooner than its last read took times Options::backoff.
//
// What one refresh copies is bounded: the studies' views come without their specs (a spec is
// read once, when the study is first seen, at most Options::max_spec_bytes of new specs a
// refresh), and a study's trials at most Options::max_trial_pages pages of 1000 a refresh (a
// longer listing, a large study's first, goes on at the next refresh).
#ifndef HIPPO_DASHBOARD_SERVER_MIRROR_H_
#define HIPPO_DASHBOARD_SERVER_MIRROR_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "dashboard/api/dashboard.pb.h"
#include "dashboard/server/study_aggregates.h"
#include "dashboard/server/trial_entry.h"
#include "hippo/engine.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::dashboard {

// A parameter column of a study.
struct ParameterColumn {
  std::string name;
  bool categorical = false;             // string values
  std::vector<std::string> categories;  // category index -> value
  bool log = false;                     // declared on a log scale
};

// One sample of a study's step counts, for the savings-over-time chart.
struct SavingsSample {
  double time_seconds = 0;
  int64_t trial_steps = 0;
  int64_t executed_steps = 0;
  int64_t trials_completed = 0;
};

struct StudyData {
  hippo::v1::Study view;  // without its spec (below)
  std::string view_bytes;
  // The study's spec, read once (it never changes once the study is created).
  std::shared_ptr<const hippo::v1::StudySpec> spec;
  const hippo::v1::StudySpec& Spec() const {
    return spec != nullptr ? *spec : hippo::v1::StudySpec::default_instance();
  }
  int64_t version = 0;         // the last change of the view or of a trial
  int64_t trials_version = 0;  // the last change of a trial
  bool maximize = false;
  std::string metric;
  std::vector<ParameterColumn> parameters;
  std::vector<TrialEntry> trials;         // by trial number
  std::map<int64_t, int32_t> by_version;  // each trial's version -> its number
  int64_t ended_trials = 0;               // trials not running
  std::vector<SavingsSample> savings;
  std::set<int64_t> family_ids;  // families its trials are in
  // What the charts are made from, kept up to date as each trial changes (study_aggregates.h).
  StudyAggregates aggregates;
};

struct WorkerData {
  hippo::v1::WorkerInfo info;
  std::string bytes;
  int64_t version = 0;
  std::string running_study;
  std::vector<std::string> fork_cache_studies;  // the study of each info.fork_cache entry
  // (unix seconds, busy from then on): the refresh thread records one when the busy state it
  // reads changes; a worker is taken as busy or idle from one transition to the next.
  std::deque<std::pair<double, bool>> transitions;
};

class Mirror {
 public:
  struct Options {
    // The clock of refreshes and events. With 1.5 s a page shows a change within about 1.6 s,
    // and each of ten pages on the coordinator's cores parses and draws two events in three
    // seconds (with 0.5 s refreshes and an event a second it was within 1.5 s, three in three).
    std::chrono::milliseconds period{1500};
    double backoff = 4;                   // a study's trials at most every fetch time × this
    std::chrono::seconds idle_after{20};  // no stream and no request for this long: stop reading
    std::chrono::seconds worker_history{360};  // utilisation kept per worker
    size_t savings_points = 500;               // savings points kept per study (thinned)
    size_t max_spec_bytes = 8 << 20;           // new studies' specs read a refresh, at most
    size_t max_trial_pages = 20;               // pages of a study's trials a refresh, at most
  };

  Mirror(coordinator::Engine* engine, Options options);
  ~Mirror();
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;

  // Starts the refresh thread, which reads every study once, then follows the engine's changes
  // while watched.
  void Start();
  void Stop();
  bool stopping() const { return stopping_.load(); }

  // Marks the mirror as watched (the refresh thread follows the engine's changes for the next
  // idle_after). After an idle spell, waits for one refresh first, so that a first request sees
  // the current state.
  void Touch();
  // An open event stream watches until its Unwatch(): the mirror follows the engine meanwhile,
  // requests or not.
  void Watch();
  void Unwatch();

  // The current version; WaitForChange blocks until it exceeds `version` or `timeout` passes
  // or Stop() was called, and returns the studies that changed after `version` and whether
  // the workers did.
  int64_t version() const { return published_.load(); }
  api::Change WaitForChange(int64_t version, std::chrono::milliseconds timeout);
  // Blocks until `until` or until Stop() was called (an event stream's pause between events).
  void PauseUntil(std::chrono::steady_clock::time_point until);
  // The first tick of the refresh clock after `after`: a refresh starts there when something
  // changed, and an event stream that sent at `after` sends again when it has published.
  std::chrono::steady_clock::time_point NextTick(std::chrono::steady_clock::time_point after) const;

  // Runs `reader` with the study's data under a shared lock; NotFound for an unknown study.
  template <typename Reader>
  absl::Status ReadStudy(const std::string& study_id, Reader&& reader) const {
    std::shared_lock lock(mutex_);
    auto it = studies_.find(study_id);
    if (it == studies_.end()) {
      return absl::NotFoundError("study '" + study_id + "' is not known to this coordinator");
    }
    reader(*it->second);
    return absl::OkStatus();
  }
  // Runs `reader` with every study (in creation order) and the workers, under a shared lock.
  template <typename Reader>
  void ReadAll(Reader&& reader) const {
    std::shared_lock lock(mutex_);
    std::vector<const StudyData*> studies;
    for (const std::string& id : order_) studies.push_back(studies_.at(id).get());
    reader(studies, workers_);
  }

  // How far back WorkerData::transitions go.
  std::chrono::seconds worker_history() const { return options_.worker_history; }

  // Asks the engine to stop the study, then refreshes it at once.
  absl::StatusOr<hippo::v1::Study> StopStudy(const std::string& study_id,
                                             const std::string& reason);

  // One refresh pass (the refresh thread's body); `all` reads every study's trials whatever
  // their throttle. Public for tests and for the first load.
  void Refresh(bool all);

 private:
  struct Throttle {
    std::chrono::steady_clock::time_point next;
    int64_t since = 0;  // the engine's version of the trials last read (0: none read)
    // A listing cut short by Options::max_trial_pages, continued by the next refresh: where it
    // stopped (TrialQuery::after_*) and the version its first page was read at (0: none).
    int64_t after_version = 0;
    int64_t after_trial = -1;
    int64_t listing_version = 0;
  };
  // Reads the study's trials changed since the last read (with the objective's metric) from
  // the engine and merges them; false when the listing was cut short (to go on at the next
  // refresh). `bytes` is the view's, compared at the next refresh.
  bool RefreshTrials(const hippo::v1::Study& view, std::string bytes,
                     const std::shared_ptr<const hippo::v1::StudySpec>& spec,
                     std::chrono::steady_clock::time_point now);
  // Merges one page of trials into the study's rows (creating the study), bumping the version
  // of each row that changed.
  void MergeTrials(const hippo::v1::Study& view,
                   const std::shared_ptr<const hippo::v1::StudySpec>& spec,
                   const std::vector<ParameterColumn>& columns,
                   const hippo::v1::ListTrialsResponse& page);
  void RefreshWorkers();
  int64_t Bump();  // under mutex_: the next version, remembered as the last change
  void Notify(const std::string& study_id, bool workers);

  coordinator::Engine* engine_;
  Options options_;

  mutable std::shared_mutex mutex_;
  std::map<std::string, std::unique_ptr<StudyData>> studies_;
  std::vector<std::string> order_;
  std::map<std::string, WorkerData> workers_;
  std::map<std::string, Throttle> throttles_;  // refresh thread only
  std::atomic<int64_t> version_{0};
  // The version of the last change published to WaitForChange (at the end of a refresh pass),
  // so that an event never stops halfway through one.
  std::atomic<int64_t> published_{0};
  // What the refresh pass under way changed, published when it ends (refresh thread only).
  std::vector<std::pair<int64_t, std::string>> pending_;
  void Publish();

  // Changes for WaitForChange: (version, study id or "" for workers).
  std::mutex change_mutex_;
  std::condition_variable changed_;
  std::deque<std::pair<int64_t, std::string>> changes_;
  std::condition_variable stopped_;  // PauseUntil's: woken by Stop() only, not by changes

  // Set by the engine's change listener, which wakes the refresh thread (shared with the
  // listener, so that it stays valid whichever of the engine and the mirror goes first). The
  // listener runs under the engine's lock: `mutex` is never held while calling the engine.
  struct Signal {
    std::atomic<bool> changed{true};
    std::mutex mutex;
    std::condition_variable wake;
  };
  bool Watched() const;
  const std::shared_ptr<Signal> signal_ = std::make_shared<Signal>();
  std::atomic<int64_t> last_touch_ms_{0};
  std::atomic<int> streams_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> urgent_{false};  // refresh every study now (a first request, a stop)
  int64_t refreshes_ = 0;            // under signal_->mutex: refresh passes done
  std::condition_variable refreshed_;
  std::thread thread_;
};

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_MIRROR_H_
