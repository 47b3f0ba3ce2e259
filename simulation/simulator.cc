#include "simulation/simulator.h"

#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <queue>

#include "absl/strings/str_cat.h"
#include "hippo/engine.h"
#include "store/store.h"
#include "workers/assignment.h"
#include "workers/trainer.h"

namespace hippo::simulation {
namespace {

namespace v1 = ::hippo::v1;
using coordinator::Engine;
using coordinator::EngineOptions;
using coordinator::WorkerChannel;
using workers::Step;

// Collects what the engine sends to one simulated worker.
class QueueChannel : public WorkerChannel {
 public:
  bool Send(v1::CoordinatorMessage message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    messages_.push_back(std::move(message));
    return true;
  }
  std::deque<v1::CoordinatorMessage> Take() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(messages_, {});
  }

 private:
  std::mutex mutex_;
  std::deque<v1::CoordinatorMessage> messages_;
};

struct Running {
  int64_t attempt = 0;
  workers::StageTask task;
  std::unique_ptr<workers::TrainingState> state;
  Step trained_to = 0;
  double started = 0;  // virtual time
};

struct Event {
  double time;
  int64_t sequence;  // ties: in the order scheduled
  size_t worker;
  int64_t attempt;
  Step step;  // a checkpoint at this step, or the stage's end
  bool operator>(const Event& other) const {
    return std::tie(time, sequence) > std::tie(other.time, other.sequence);
  }
};

class Simulation {
 public:
  Simulation(Engine& engine, const SimulationOptions& options)
      : engine_(engine),
        options_(options),
        channels_(options.workers),
        running_(options.workers),
        finished_(options.workers) {}

  absl::Status Run(const std::vector<std::string>& study_ids) {
    absl::StatusOr<std::unique_ptr<workers::Trainer>> trainer = workers::MakeBuiltinTrainer("sim");
    if (!trainer.ok()) return trainer.status();
    trainer_ = *std::move(trainer);
    for (auto& channel : channels_) channel = std::make_shared<QueueChannel>();
    for (size_t i = 0; i < channels_.size(); ++i) {
      v1::WorkerHello hello;
      hello.set_worker_id(WorkerId(i));
      hello.add_trainers("sim");
      if (absl::StatusOr<int64_t> session = engine_.Connect(hello, channels_[i]); !session.ok()) {
        return session.status();
      }
      if (absl::Status status = Drain(); !status.ok()) return status;
    }
    while (!events_.empty()) {
      const Event event = events_.top();
      events_.pop();
      Running& running = running_[event.worker];
      if (running.attempt != event.attempt) continue;  // cancelled since
      now_ = event.time;
      if (absl::Status status = Reach(event.worker, event.step); !status.ok()) return status;
      if (event.step == running.task.end_step) {
        v1::WorkerMessage finished;
        finished.mutable_finished()->set_attempt_id(running.attempt);
        finished.mutable_finished()->set_ok(true);
        finished.mutable_finished()->set_seconds(
            static_cast<double>(running.task.end_step - running.task.start_step) *
            options_.seconds_per_step);
        finished_[event.worker] = {running.task.stage_id, running.task.end_step};
        running = Running();
        makespan_ = now_;
        if (absl::Status status = Report(event.worker, finished); !status.ok()) return status;
      }
      bool all_ended = true;
      for (const std::string& study_id : study_ids) {
        absl::StatusOr<v1::Study> study = engine_.GetStudy(study_id);
        all_ended &= study.ok() && study->state() != v1::STUDY_RUNNING;
      }
      if (all_ended) break;
    }
    return absl::OkStatus();
  }

  double makespan() const { return makespan_; }
  int64_t continued() const { return continued_; }
  int64_t assigned() const { return assigned_; }

 private:
  static std::string WorkerId(size_t index) { return absl::StrCat("simulated-", index); }

  absl::Status Report(size_t worker, const v1::WorkerMessage& message) {
    if (absl::Status status = engine_.OnWorkerMessage(WorkerId(worker), message); !status.ok()) {
      return status;
    }
    return Drain();
  }

  // Handles everything the engine sent since the last call.
  absl::Status Drain() {
    for (size_t worker = 0; worker < channels_.size(); ++worker) {
      for (const v1::CoordinatorMessage& message : channels_[worker]->Take()) {
        if (message.has_assign()) {
          if (absl::Status status = Start(worker, message.assign()); !status.ok()) return status;
        } else if (message.has_checkpoint_at()) {
          Running& running = running_[worker];
          const Step step = message.checkpoint_at().step();
          const double at = running.started + static_cast<double>(step - running.task.start_step) *
                                                  options_.seconds_per_step;
          if (running.attempt == message.checkpoint_at().attempt_id() && at > now_ &&
              step > running.trained_to && step < running.task.end_step) {
            events_.push(Event{at, sequence_++, worker, running.attempt, step});
          }
        } else if (message.has_cancel() &&
                   running_[worker].attempt == message.cancel().attempt_id()) {
          running_[worker] = Running();
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status Start(size_t worker, const v1::Assign& assign) {
    absl::StatusOr<workers::Assignment> assignment = workers::AssignmentFromProto(assign);
    if (!assignment.ok()) return assignment.status();
    Running running;
    running.attempt = assign.attempt_id();
    running.task = assignment->task;
    running.trained_to = assign.start_step();
    running.started = now_;
    ++assigned_;
    if (finished_[worker] == std::optional<std::pair<int64_t, Step>>(
                                 {assign.parent_stage_id(), assign.parent_state_step()})) {
      ++continued_;
    }
    finished_[worker].reset();  // the new stage replaces the model it held
    if (assign.parent_stage_id() == 0 && assign.start_step() == 0) {
      absl::StatusOr<std::unique_ptr<workers::TrainingState>> state =
          trainer_->NewState(running.task);
      if (!state.ok()) return state.status();
      running.state = *std::move(state);
    } else {
      auto it = states_.find({assign.parent_stage_id(), assign.parent_state_step()});
      if (it == states_.end()) {
        return absl::InternalError(absl::StrCat("simulated worker has no state for stage ",
                                                assign.parent_stage_id(), " at step ",
                                                assign.parent_state_step()));
      }
      running.state = it->second->Clone();
    }
    // States the stage must keep on its way (where later trials are likely to branch).
    for (Step step : assign.checkpoint_steps()) {
      if (step <= assign.start_step() || step >= assign.end_step()) continue;
      events_.push(
          Event{now_ + static_cast<double>(step - assign.start_step()) * options_.seconds_per_step,
                sequence_++, worker, running.attempt, step});
    }
    const double end = now_ + static_cast<double>(assign.end_step() - assign.start_step()) *
                                  options_.seconds_per_step;
    events_.push(Event{end, sequence_++, worker, running.attempt, assign.end_step()});
    running_[worker] = std::move(running);
    return absl::OkStatus();
  }

  // Trains the worker's stage up to `step`, reports the last step's metrics and the state at
  // `step` (kept for the children, as a shared checkpoint store would).
  absl::Status Reach(size_t worker, Step step) {
    Running& running = running_[worker];
    // A step asked for twice (a checkpoint step of the Assign and a CheckpointAt): once is enough.
    if (step <= running.trained_to) return absl::OkStatus();
    workers::StageTask task = running.task;
    task.start_step = running.trained_to;
    task.end_step = step;
    task.checkpoint_steps.clear();
    workers::Metrics last;
    workers::StageControl control;
    workers::TrainCallbacks callbacks;
    callbacks.progress = [&last](Step, const workers::Metrics& metrics) { last = metrics; };
    callbacks.checkpoint = [](Step, const workers::TrainingState&) { return absl::OkStatus(); };
    absl::StatusOr<workers::StageOutcome> outcome =
        trainer_->Train(task, *running.state, control, callbacks);
    if (!outcome.ok()) return outcome.status();
    running.trained_to = step;
    states_[{running.task.stage_id, step}] = running.state->Clone();
    v1::WorkerMessage progress;
    progress.mutable_progress()->set_attempt_id(running.attempt);
    progress.mutable_progress()->set_step(step - 1);
    for (const auto& [name, value] : last)
      (*progress.mutable_progress()->mutable_metrics())[name] = value;
    v1::WorkerMessage checkpoint;
    checkpoint.mutable_checkpoint()->set_attempt_id(running.attempt);
    checkpoint.mutable_checkpoint()->set_stage_id(running.task.stage_id);
    checkpoint.mutable_checkpoint()->set_step(step);
    checkpoint.mutable_checkpoint()->set_uri(
        absl::StrCat("sim://stage-", running.task.stage_id, "-step-", step));
    const int64_t attempt = running.attempt;
    if (absl::Status status = Report(worker, progress); !status.ok()) return status;
    if (running_[worker].attempt != attempt) return absl::OkStatus();
    return Report(worker, checkpoint);
  }

  Engine& engine_;
  SimulationOptions options_;
  std::unique_ptr<workers::Trainer> trainer_;
  std::vector<std::shared_ptr<QueueChannel>> channels_;
  std::vector<Running> running_;
  // Per worker, (stage id, end step) of the stage it finished last, while it holds its model.
  std::vector<std::optional<std::pair<int64_t, Step>>> finished_;
  int64_t continued_ = 0;
  int64_t assigned_ = 0;
  std::map<std::pair<int64_t, Step>, std::unique_ptr<workers::TrainingState>> states_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  int64_t sequence_ = 0;
  double now_ = 0;
  double makespan_ = 0;
};

double CriticalPath(const v1::StageTree& tree, double seconds_per_step) {
  std::map<int64_t, const v1::Stage*> by_id;
  for (const v1::Stage& stage : tree.stages()) by_id[stage.id()] = &stage;
  std::map<int64_t, double> depth;
  double longest = 0;
  // Parents start before their children: visit by start step.
  std::vector<const v1::Stage*> ordered;
  for (const v1::Stage& stage : tree.stages()) ordered.push_back(&stage);
  std::sort(ordered.begin(), ordered.end(), [](const v1::Stage* a, const v1::Stage* b) {
    return a->start_step() < b->start_step();
  });
  for (const v1::Stage* stage : ordered) {
    const double above = stage->parent_id() == 0 ? 0 : depth[stage->parent_id()];
    depth[stage->id()] =
        above + static_cast<double>(stage->end_step() - stage->start_step()) * seconds_per_step;
    longest = std::max(longest, depth[stage->id()]);
  }
  return longest;
}

}  // namespace

absl::StatusOr<SimulationResult> Simulate(const v1::StudySpec& spec,
                                          const SimulationOptions& options) {
  absl::StatusOr<std::vector<SimulationResult>> results =
      SimulateTogether(std::vector<v1::StudySpec>{spec}, options);
  if (!results.ok()) return results.status();
  return results->front();
}

absl::StatusOr<std::vector<SimulationResult>> SimulateTogether(
    const std::vector<v1::StudySpec>& originals, const SimulationOptions& options) {
  if (options.workers < 1) return absl::InvalidArgumentError("workers must be at least 1");
  std::vector<v1::StudySpec> specs;
  for (const v1::StudySpec& original : originals) {
    if (original.trainer().kind() != "sim") {
      return absl::InvalidArgumentError(absl::StrCat(
          "trainer.kind: the simulator trains with 'sim'; got '", original.trainer().kind(), "'"));
    }
    if (original.budget().max_wall_seconds() > 0) {
      return absl::InvalidArgumentError(
          "budget.max_wall_seconds: a simulation runs in virtual time, where a wall-clock "
          "budget has no meaning; remove it to simulate this study");
    }
    // Virtual time: the trainer must not sleep.
    v1::StudySpec spec = original;
    (*spec.mutable_trainer()->mutable_config()->mutable_fields())["virtual_time"].set_bool_value(
        true);
    specs.push_back(std::move(spec));
  }
  const auto wall_start = std::chrono::steady_clock::now();
  std::string db = options.db_path;
  if (db.empty()) {
    db = (std::filesystem::temp_directory_path() /
          absl::StrCat("hippo-simulation-", getpid(), "-", wall_start.time_since_epoch().count(),
                       ".db"))
             .string();
  }
  std::vector<SimulationResult> results;
  {
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(db);
    if (!store.ok()) return store.status();
    EngineOptions engine_options;
    engine_options.durable_acknowledgements = false;
    Engine engine(store->get(), engine_options);
    if (absl::Status status = engine.Recover(); !status.ok()) return status;
    std::vector<std::string> study_ids;
    for (const v1::StudySpec& spec : specs) {
      absl::StatusOr<v1::Study> study = engine.CreateStudy(spec, options.no_merge);
      if (!study.ok()) return study.status();
      study_ids.push_back(study->id());
    }
    Simulation simulation(engine, options);
    if (absl::Status status = simulation.Run(study_ids); !status.ok()) return status;
    absl::StatusOr<int64_t> distinct_together = engine.DistinctStepsOf(study_ids);
    if (!distinct_together.ok()) return distinct_together.status();
    for (const std::string& study_id : study_ids) {
      SimulationResult result;
      absl::StatusOr<v1::Study> final_view = engine.GetStudy(study_id);
      if (!final_view.ok()) return final_view.status();
      result.study = *final_view;
      result.makespan = simulation.makespan();
      absl::StatusOr<v1::StageTree> tree = engine.GetStageTree(study_id, false);
      if (!tree.ok()) return tree.status();
      result.critical_path = CriticalPath(*tree, options.seconds_per_step);
      result.makespan_bound =
          std::max(result.critical_path, static_cast<double>(result.study.steps().unique_steps()) *
                                             options.seconds_per_step / options.workers);
      result.dispatches = engine.stats().dispatches;
      result.continued = simulation.continued();
      result.assigned = simulation.assigned();
      result.distinct_steps_together = *distinct_together;
      results.push_back(std::move(result));
    }
  }
  if (options.db_path.empty()) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db + suffix);
  }
  const double wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  for (SimulationResult& result : results) result.wall_seconds = wall_seconds;
  return results;
}

}  // namespace hippo::simulation
