#include "dashboard/server/mirror.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <utility>

namespace hippo::dashboard {
namespace {

namespace v1 = ::hippo::v1;
using SteadyClock = std::chrono::steady_clock;

// Map fields serialize in an unspecified order unless asked: deterministic bytes make two
// equal views compare equal.
std::string DeterministicBytes(const google::protobuf::Message& message) {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeToCodedStream(&coded);
  coded.Trim();
  return bytes;
}

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

// A segment's function at its first step.
double SegmentStart(const v1::Segment& segment) {
  const double s = static_cast<double>(segment.start());
  switch (segment.function_case()) {
    case v1::Segment::kConstant:
      return segment.constant();
    case v1::Segment::kLinear: {
      const v1::LinearFunction& f = segment.linear();
      if (f.span() == 0) return f.from();
      return f.from() + (f.to() - f.from()) * (s - f.origin()) / f.span();
    }
    case v1::Segment::kExponential:
      return segment.exponential().initial() *
             std::pow(segment.exponential().rate(), s - segment.exponential().origin());
    case v1::Segment::kCosine: {
      const v1::CosineFunction& f = segment.cosine();
      if (f.period() == 0) return f.max();
      return f.min() +
             (f.max() - f.min()) * (1 + std::cos(M_PI * (s - f.origin()) / f.period())) / 2;
    }
    default:
      return std::numeric_limits<double>::quiet_NaN();
  }
}

// The study's parameter columns from its spec (fixed parameters are left out: one value).
std::vector<ParameterColumn> ColumnsOf(const v1::StudySpec& spec) {
  std::vector<ParameterColumn> columns;
  for (const v1::Parameter& parameter : spec.search_space().parameters()) {
    if (parameter.has_fixed()) continue;
    ParameterColumn column;
    column.name = parameter.name();
    if (parameter.has_categorical()) {
      for (const google::protobuf::Value& value : parameter.categorical().values()) {
        if (value.has_string_value()) column.categorical = true;
      }
      if (column.categorical) {
        for (const google::protobuf::Value& value : parameter.categorical().values()) {
          column.categories.push_back(value.has_string_value()
                                          ? value.string_value()
                                          : std::to_string(value.number_value()));
        }
      }
    } else if (parameter.has_float_()) {
      column.log = parameter.float_().log();
    } else if (parameter.has_int_()) {
      column.log = parameter.int_().log();
    } else if (parameter.has_sequence()) {
      const v1::SequenceParameter& sequence = parameter.sequence();
      const v1::NumberDomain* initial = nullptr;
      if (sequence.has_constant()) initial = &sequence.constant();
      if (sequence.has_step_decay()) initial = &sequence.step_decay().initial();
      if (sequence.has_exponential()) initial = &sequence.exponential().initial();
      if (sequence.has_cosine()) initial = &sequence.cosine().max();
      if (initial != nullptr && initial->has_range()) column.log = initial->range().log();
    }
    columns.push_back(std::move(column));
  }
  return columns;
}

double ColumnValue(const ParameterColumn& column, const v1::Trial& trial) {
  auto it = trial.parameters().find(column.name);
  if (it == trial.parameters().end()) return std::numeric_limits<double>::quiet_NaN();
  const v1::ParameterValue& value = it->second;
  if (value.has_scalar()) {
    if (value.scalar().has_number_value()) return value.scalar().number_value();
    if (value.scalar().has_string_value()) {
      for (size_t i = 0; i < column.categories.size(); ++i) {
        if (column.categories[i] == value.scalar().string_value()) return static_cast<double>(i);
      }
    }
    if (value.scalar().has_bool_value()) return value.scalar().bool_value() ? 1 : 0;
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (value.segments_size() > 0) return SegmentStart(value.segments(0));
  return std::numeric_limits<double>::quiet_NaN();
}

TrialEntry RowOf(const v1::Trial& trial, const std::vector<ParameterColumn>& columns,
                 const v1::TrialMetrics* metrics, const std::string& metric) {
  TrialEntry row;
  row.bytes = DeterministicBytes(trial);
  row.state = trial.state();
  row.has_objective = trial.has_objective_value();
  row.objective = trial.objective_value();
  row.reached_step = trial.reached_step();
  row.target_step = trial.target_step();
  row.parameters.reserve(columns.size());
  for (const ParameterColumn& column : columns)
    row.parameters.push_back(ColumnValue(column, trial));
  if (metrics != nullptr) {
    for (const v1::Metric& point : metrics->metrics()) {
      auto it = point.values().find(metric);
      if (it == point.values().end()) continue;
      row.curve_steps.push_back(static_cast<int32_t>(point.step()));
      row.curve_values.push_back(static_cast<float>(it->second));
    }
  }
  return row;
}

bool SameRow(const TrialEntry& a, const TrialEntry& b) {
  return a.bytes == b.bytes && a.curve_steps == b.curve_steps && a.curve_values == b.curve_values;
}

}  // namespace

Mirror::Mirror(coordinator::Engine* engine, Options options) : engine_(engine), options_(options) {}

Mirror::~Mirror() { Stop(); }

void Mirror::Start() {
  // Only a signal: the listener runs under the engine's lock. The first change after a refresh
  // wakes the thread; later ones find the flag set and cost an atomic exchange.
  engine_->AddChangeListener([signal = signal_] {
    if (signal->changed.exchange(true)) return;
    { std::lock_guard<std::mutex> lock(signal->mutex); }
    signal->wake.notify_all();
  });
  thread_ = std::thread([this] {
    // Only a name for tools (the dashboard's share of the CPU): a failure changes nothing.
    (void)pthread_setname_np(pthread_self(), "hippo-mirror");
    Refresh(/*all=*/true);
    while (!stopping_.load()) {
      std::unique_lock<std::mutex> lock(signal_->mutex);
      // Asleep until a change while watched, a request after an idle spell, or a stop.
      signal_->wake.wait(lock, [this] {
        return stopping_.load() || urgent_.load() || (signal_->changed.load() && Watched());
      });
      // Coalesce: the changes until the next tick are read together (a stop or a first request
      // does not wait).
      signal_->wake.wait_until(lock, NextTick(SteadyClock::now()),
                               [this] { return stopping_.load() || urgent_.load(); });
      if (stopping_.load()) break;
      lock.unlock();
      Refresh(urgent_.exchange(false));
      lock.lock();
      ++refreshes_;
      lock.unlock();
      refreshed_.notify_all();
    }
  });
}

void Mirror::Stop() {
  {
    std::lock_guard<std::mutex> lock(signal_->mutex);
    stopping_.store(true);
  }
  signal_->wake.notify_all();
  refreshed_.notify_all();
  { std::lock_guard<std::mutex> lock(change_mutex_); }
  changed_.notify_all();
  stopped_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Mirror::Watched() const {
  const int64_t idle_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.idle_after).count();
  return streams_.load() > 0 || NowMs() - last_touch_ms_.load() < idle_ms;
}

void Mirror::Touch() {
  const bool watched = Watched();
  last_touch_ms_.store(NowMs());
  if (watched) return;
  // After an idle spell the copy may be stale: wait for one refresh.
  std::unique_lock<std::mutex> lock(signal_->mutex);
  const int64_t seen = refreshes_;
  urgent_.store(true);
  signal_->wake.notify_all();
  refreshed_.wait_for(lock, std::chrono::seconds(10),
                      [&] { return refreshes_ > seen || stopping_.load(); });
}

void Mirror::Watch() {
  Touch();
  streams_.fetch_add(1);
}

void Mirror::Unwatch() {
  streams_.fetch_sub(1);
  // The idle spell starts now, not at the stream's opening.
  last_touch_ms_.store(NowMs());
}

int64_t Mirror::Bump() { return version_.fetch_add(1) + 1; }

void Mirror::Notify(const std::string& study_id, bool workers) {
  const int64_t version = version_.load();
  if (!study_id.empty()) pending_.emplace_back(version, study_id);
  if (workers) pending_.emplace_back(version, "");
}

void Mirror::Publish() {
  if (pending_.empty()) return;
  {
    std::lock_guard<std::mutex> lock(change_mutex_);
    published_.store(version_.load());
    for (auto& change : pending_) changes_.push_back(std::move(change));
    while (changes_.size() > 10000) changes_.pop_front();
  }
  pending_.clear();
  changed_.notify_all();
}

SteadyClock::time_point Mirror::NextTick(SteadyClock::time_point after) const {
  const SteadyClock::duration period = options_.period;
  return SteadyClock::time_point((after.time_since_epoch() / period + 1) * period);
}

api::Change Mirror::WaitForChange(int64_t version, std::chrono::milliseconds timeout) {
  // A version from before a restart of the coordinator (larger than any here): the client's
  // copy is stale, so everything counts as changed.
  if (version > published_.load()) version = 0;
  std::unique_lock<std::mutex> lock(change_mutex_);
  changed_.wait_for(lock, timeout, [&] { return stopping_.load() || published_.load() > version; });
  api::Change change;
  change.set_version(published_.load());
  if (change.version() <= version) return change;
  std::set<std::string> studies;
  const bool complete = !changes_.empty() && changes_.front().first <= version + 1;
  for (const auto& [at, id] : changes_) {
    if (at <= version) continue;
    if (id.empty()) {
      change.set_workers(true);
    } else {
      studies.insert(id);
    }
  }
  if (!complete) {
    // Older changes were dropped: name every study and the workers.
    change.set_workers(true);
    std::shared_lock read(mutex_);
    for (const std::string& id : order_) studies.insert(id);
  }
  for (const std::string& id : studies) change.add_studies(id);
  return change;
}

void Mirror::PauseUntil(SteadyClock::time_point until) {
  std::unique_lock<std::mutex> lock(change_mutex_);
  stopped_.wait_until(lock, until, [this] { return stopping_.load(); });
}

void Mirror::Refresh(bool all) {
  const SteadyClock::time_point now = SteadyClock::now();
  // Studies whose trials were not read for their throttle set the flag again.
  if (!signal_->changed.exchange(false) && !all) return;
  bool deferred = false;
  size_t spec_bytes = 0;  // new studies' specs read by this refresh
  constexpr size_t kViewsPage = 1000;
  size_t offset = 0, total = 0;
  do {
    // The views without their specs: small, and the engine's lock is held for a page of them.
    const std::vector<v1::Study> views = engine_->ListStudySummaries(offset, kViewsPage, &total);
    if (views.empty()) break;
    offset += views.size();
    for (const v1::Study& view : views) {
      std::string bytes = DeterministicBytes(view);
      std::shared_ptr<const v1::StudySpec> spec;
      {
        std::shared_lock lock(mutex_);
        auto it = studies_.find(view.id());
        if (it != studies_.end()) {
          if (it->second->view_bytes == bytes) continue;
          spec = it->second->spec;
        }
      }
      Throttle& throttle = throttles_[view.id()];
      if (!all && now < throttle.next) {
        deferred = true;  // caught on a later refresh: the bytes still differ
        continue;
      }
      if (spec == nullptr) {
        // A study seen for the first time: its spec, once (up to 1 MiB each, so a refresh
        // reads a bounded amount of them; the rest wait for the next one).
        if (spec_bytes >= options_.max_spec_bytes) {
          deferred = true;
          continue;
        }
        absl::StatusOr<v1::Study> full = engine_->GetStudy(view.id());
        if (!full.ok()) continue;  // deleted since the listing: nothing to show
        spec = std::make_shared<const v1::StudySpec>(std::move(*full->mutable_spec()));
        spec_bytes += spec->ByteSizeLong();
      }
      if (!RefreshTrials(view, std::move(bytes), spec, now)) deferred = true;
    }
  } while (offset < total);
  if (deferred) signal_->changed.store(true);
  RefreshWorkers();
  Publish();
}

bool Mirror::RefreshTrials(const v1::Study& view, std::string bytes,
                           const std::shared_ptr<const v1::StudySpec>& spec,
                           SteadyClock::time_point now) {
  const SteadyClock::time_point started = SteadyClock::now();
  const std::vector<ParameterColumn> columns = ColumnsOf(*spec);
  const std::string& metric = spec->objective().metric();
  Throttle& throttle = throttles_[view.id()];
  // Only the trials changed since the last read, a page at a time (the engine's lock is held
  // for one page): a study's first read costs its size, every later one its changes. A listing
  // cut short by the last refresh goes on where it stopped.
  coordinator::TrialQuery query;
  query.changed_since = throttle.since;
  query.after_version = throttle.after_version;
  query.after_trial = throttle.after_trial;
  query.limit = 1000;
  query.with_metrics = true;
  query.metric_names = {metric};
  int64_t& listing_version = throttle.listing_version;
  for (size_t pages = 0;; ++pages) {
    if (pages > 0 && pages >= options_.max_trial_pages) {
      // Bounded: the rest at the next refresh, the view with it (its bytes are not kept, so
      // the next refresh reads the study again). The rows merged so far are announced.
      throttle.after_version = query.after_version;
      throttle.after_trial = query.after_trial;
      {
        std::unique_lock lock(mutex_);
        StudyData& study = *studies_.at(view.id());
        study.view = view;
        study.spec = spec;
      }
      Notify(view.id(), false);
      return false;
    }
    absl::StatusOr<coordinator::TrialPage> page = engine_->ListTrialsPage(view.id(), query);
    if (!page.ok()) {
      // Not found: the study vanished between the two reads. Another failure (the store): try
      // again later, not at every refresh, from the listing's start.
      throttle.next = now + options_.period * 4;
      throttle.listing_version = 0;
      throttle.after_version = 0;
      throttle.after_trial = -1;
      return true;
    }
    if (listing_version == 0) listing_version = page->response.version();
    MergeTrials(view, spec, columns, page->response);
    if (!page->more) break;
    query.after_version = page->last_version;
    query.after_trial = page->last_trial;
  }
  throttle.since = listing_version;
  throttle.listing_version = 0;
  throttle.after_version = 0;
  throttle.after_trial = -1;
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - started).count();
  // At least half a period: read again at the next tick, whenever in its tick this one began.
  throttle.next = now + std::max<SteadyClock::duration>(
                            options_.period / 2,
                            std::chrono::duration_cast<SteadyClock::duration>(
                                std::chrono::duration<double>(elapsed * options_.backoff)));

  {
    std::unique_lock lock(mutex_);
    StudyData& study = *studies_.at(view.id());
    study.view = view;
    study.spec = spec;
    study.view_bytes = std::move(bytes);
    study.version = Bump();
    const double created =
        static_cast<double>(view.created().seconds()) + view.created().nanos() / 1e9;
    const double at = view.finished().seconds() > 0
                          ? static_cast<double>(view.finished().seconds()) - created
                          : NowSeconds() - created;
    // Like for like: the trial-by-trial steps of the work done so far (each trial up to the
    // step it reached), not every trial's full target.
    study.savings.push_back({at, view.steps().reached_trial_steps(), view.steps().executed_steps(),
                             view.trials_completed()});
    if (study.savings.size() > options_.savings_points) {
      // Thin to every other point, keeping the last.
      std::vector<SavingsSample> thinned;
      for (size_t i = 0; i < study.savings.size(); i += 2) thinned.push_back(study.savings[i]);
      if (thinned.back().time_seconds != study.savings.back().time_seconds) {
        thinned.push_back(study.savings.back());
      }
      study.savings = std::move(thinned);
    }
  }
  Notify(view.id(), false);
  return true;
}

void Mirror::MergeTrials(const v1::Study& view, const std::shared_ptr<const v1::StudySpec>& spec,
                         const std::vector<ParameterColumn>& columns,
                         const v1::ListTrialsResponse& page) {
  const std::string& metric = spec->objective().metric();
  std::vector<const v1::TrialMetrics*> metrics_of(page.trials_size(), nullptr);
  for (int i = 0, m = 0; i < page.trials_size() && m < page.metrics_size(); ++i) {
    // Metrics come in the order of the trials, one entry per trial.
    if (page.metrics(m).trial_id() == page.trials(i).id()) metrics_of[i] = &page.metrics(m++);
  }
  std::vector<TrialEntry> rows;
  rows.reserve(page.trials_size());
  for (int i = 0; i < page.trials_size(); ++i) {
    rows.push_back(RowOf(page.trials(i), columns, metrics_of[i], metric));
  }
  std::unique_lock lock(mutex_);
  std::unique_ptr<StudyData>& slot = studies_[view.id()];
  if (slot == nullptr) {
    slot = std::make_unique<StudyData>();
    slot->view = view;  // shown while its first listing goes on
    slot->aggregates.SetDirection(spec->objective().direction() == v1::MAXIMIZE);
    order_.push_back(view.id());
  }
  StudyData& study = *slot;
  study.spec = spec;
  study.maximize = spec->objective().direction() == v1::MAXIMIZE;
  study.metric = metric;
  study.parameters = columns;
  for (int i = 0; i < page.trials_size(); ++i) {
    const v1::Trial& trial = page.trials(i);
    const size_t number = static_cast<size_t>(trial.id());
    if (trial.path_size() > 0) {
      const int64_t family = trial.path(0) >> 32;
      study.family_ids.insert(family);
    }
    // A trial not listed yet (a later one of this listing changed first) waits as a running
    // placeholder; the listing fills it before it ends.
    while (study.trials.size() <= number) study.trials.emplace_back().state = v1::TRIAL_RUNNING;
    TrialEntry& row = study.trials[number];
    if (SameRow(row, rows[i])) continue;
    study.ended_trials += (rows[i].state != v1::TRIAL_RUNNING) - (row.state != v1::TRIAL_RUNNING);
    rows[i].version = Bump();
    study.trials_version = rows[i].version;
    if (row.version > 0) study.by_version.erase(row.version);
    study.by_version.emplace(rows[i].version, static_cast<int32_t>(number));
    const TrialEntry before = std::exchange(row, std::move(rows[i]));
    study.aggregates.TrialChanged(study.trials, number, before);
  }
  study.aggregates.Settle(study.trials, spec->budget().max_steps());
  // Listed as changed while a long first read goes on, not only once it ends.
  study.version = std::max(study.version, study.trials_version);
}

void Mirror::RefreshWorkers() {
  const std::vector<v1::WorkerInfo> infos = engine_->ListWorkers();
  const double now = NowSeconds();
  bool changed = false;
  {
    std::unique_lock lock(mutex_);
    // The study of a stage (a worker-facing stage id: its family in the upper 32 bits), looked
    // up only for the workers that changed.
    auto study_of_stage = [this](int64_t stage_id) -> std::string {
      for (const std::string& id : order_) {
        if (studies_.at(id)->family_ids.contains(stage_id >> 32)) return id;
      }
      return "";
    };
    for (const v1::WorkerInfo& info : infos) {
      WorkerData& worker = workers_[info.worker_id()];
      std::string bytes = DeterministicBytes(info);
      if (bytes != worker.bytes) {
        worker.info = info;
        worker.bytes = std::move(bytes);
        worker.version = Bump();
        worker.running_study =
            info.running_stage_id() != 0 ? study_of_stage(info.running_stage_id()) : "";
        worker.fork_cache_studies.clear();
        for (const v1::CachedState& state : info.fork_cache()) {
          worker.fork_cache_studies.push_back(study_of_stage(state.stage_id()));
        }
        changed = true;
      }
      const bool busy = info.connected() && info.running_stage_id() != 0;
      if (worker.transitions.empty() || worker.transitions.back().second != busy) {
        worker.transitions.emplace_back(now, busy);
      }
      const double horizon = now - std::chrono::duration<double>(options_.worker_history).count();
      // The first one kept is the state at the horizon.
      while (worker.transitions.size() > 1 && worker.transitions[1].first <= horizon) {
        worker.transitions.pop_front();
      }
    }
  }
  if (changed) Notify("", true);
}

absl::StatusOr<v1::Study> Mirror::StopStudy(const std::string& study_id,
                                            const std::string& reason) {
  absl::StatusOr<v1::Study> study = engine_->StopStudy(study_id, reason);
  if (study.ok()) {
    {
      std::lock_guard<std::mutex> lock(signal_->mutex);
      urgent_.store(true);
    }
    signal_->wake.notify_all();
  }
  return study;
}

}  // namespace hippo::dashboard
