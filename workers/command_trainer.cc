#include "workers/command_trainer.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "workers/command_process.h"
#include "workers/config_json.h"
#include "workers/state_header.h"

extern char** environ;

namespace hippo::workers {
namespace {

using command_internal::Child;
using command_internal::DescribeWaitStatus;
using command_internal::ErrnoError;
using command_internal::kTailLineBytes;
using command_internal::LineBuffer;
using command_internal::OutputTail;
using command_internal::ProgramLog;
using command_internal::RemoveOnExit;

constexpr StateFormat kFormat = {.magic = "HCMD", .version = 1, .what = "command trainer state"};
// The header and the has-checkpoint flag.
constexpr size_t kHeaderBytes = kStateHeaderBytes + 1;

// How often the output loop wakes to check for cancellation and the timeout.
constexpr int kPollMilliseconds = 50;
// After the program exits, how long descendants holding its pipes open may delay the end.
constexpr absl::Duration kDrainAfterExit = absl::Seconds(1);

// The variables the trainer sets; the config's env may not name them.
const std::set<std::string, std::less<>>& ReservedVariables() {
  static const auto* const names = new std::set<std::string, std::less<>>{
      "HIPPO_CONFIG", "HIPPO_START_STEP",    "HIPPO_END_STEP",
      "HIPPO_SEED",   "HIPPO_CHECKPOINT_IN", "HIPPO_CHECKPOINT_OUT",
  };
  return *names;
}

// ---- The stage file -----------------------------------------------------------------------

// The stage file's description of `segment` clipped to [start, end).
Json SegmentJson(const stage_tree::Segment& segment, Step start, Step end) {
  const stage_tree::SegmentFunction& f = segment.function;
  Json out = {{"start", std::max(segment.start, start)}, {"end", std::min(segment.end, end)}};
  switch (f.kind) {
    case stage_tree::FunctionKind::kConstant:
      out["function"] = "constant";
      out["value"] = f.first;
      break;
    case stage_tree::FunctionKind::kLinear:
      out["function"] = "linear";
      out["from"] = f.first;
      out["to"] = f.second;
      out["origin"] = f.origin;
      out["span"] = f.span;
      break;
    case stage_tree::FunctionKind::kExponential:
      out["function"] = "exponential";
      out["initial"] = f.first;
      out["rate"] = f.second;
      out["origin"] = f.origin;
      break;
    case stage_tree::FunctionKind::kCosine:
      out["function"] = "cosine";
      out["max"] = f.first;
      out["min"] = f.second;
      out["origin"] = f.origin;
      out["period"] = f.span;
      break;
  }
  return out;
}

// ---- Config ------------------------------------------------------------------------------

struct CommandConfig {
  std::vector<std::string> argv;
  std::string working_dir;  // empty: the worker's
  std::vector<std::pair<std::string, std::string>> env;
  double kill_grace_seconds = 5;
  std::string log_file;     // empty: none
  std::string scratch_dir;  // empty: the system's temporary directory
  // The config object as given, handed to the program.
  Json json = Json::object();
};

absl::StatusOr<std::string> StringOr(const Json& object, std::string_view key) {
  const Json* member = Member(object, key);
  if (member == nullptr) return std::string();
  if (!member->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("command trainer: config.", std::string(key), " must be a string (a path)"));
  }
  return member->get<std::string>();
}

absl::StatusOr<CommandConfig> ParseConfig(const StageTask& task) {
  CommandConfig config;
  if (task.command.empty() || task.command.front().empty()) {
    return absl::InvalidArgumentError(
        "command trainer: trainer.command is empty; give the program and its arguments, e.g. "
        "command: [python3, train.py]");
  }
  config.argv = task.command;
  absl::StatusOr<Json> json = ParseJson(task.trainer_config_json);
  if (!json.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("command trainer: config: ", json.status().message()));
  }
  if (!json->is_object()) {
    return absl::InvalidArgumentError("command trainer: config must be a JSON object");
  }

  absl::StatusOr<std::string> working_dir = StringOr(*json, "working_dir");
  if (!working_dir.ok()) return working_dir.status();
  config.working_dir = *working_dir;
  if (!config.working_dir.empty() && !std::filesystem::is_directory(config.working_dir)) {
    return absl::InvalidArgumentError(absl::StrCat("command trainer: config.working_dir '",
                                                   config.working_dir,
                                                   "' is not a directory on this worker"));
  }
  absl::StatusOr<std::string> log_file = StringOr(*json, "log_file");
  if (!log_file.ok()) return log_file.status();
  config.log_file = *log_file;
  absl::StatusOr<std::string> scratch_dir = StringOr(*json, "scratch_dir");
  if (!scratch_dir.ok()) return scratch_dir.status();
  config.scratch_dir = *scratch_dir;

  absl::StatusOr<double> grace = NumberOr(*json, "kill_grace_seconds", 5.0);
  if (!grace.ok()) return grace.status();
  if (!(*grace >= 0) || *grace > 3600) {
    return absl::InvalidArgumentError(absl::StrCat(
        "command trainer: config.kill_grace_seconds must be in [0, 3600], got ", *grace));
  }
  config.kill_grace_seconds = *grace;

  if (const Json* env = Member(*json, "env"); env != nullptr) {
    if (!env->is_object()) {
      return absl::InvalidArgumentError(
          "command trainer: config.env must be an object of NAME: value, e.g. "
          "env: {OMP_NUM_THREADS: 1}");
    }
    for (const auto& [name, value] : env->items()) {
      if (name.empty() || name.find('=') != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("command trainer: config.env: '", name, "' is not a variable name"));
      }
      if (name.starts_with("LD_")) {
        // The dynamic loader's variables would load any code into an allowed program.
        return absl::InvalidArgumentError(absl::StrCat(
            "command trainer: config.env.", name,
            ": the dynamic loader's variables (LD_*) are refused; a worker runs only the "
            "programs it allows"));
      }
      if (ReservedVariables().contains(name)) {
        return absl::InvalidArgumentError(absl::StrCat("command trainer: config.env.", name,
                                                       " is set by the trainer; remove it"));
      }
      if (value.is_string()) {
        config.env.emplace_back(name, value.get<std::string>());
      } else if (value.is_number()) {
        config.env.emplace_back(name, value.dump());
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("command trainer: config.env.", name, " must be a string or a number"));
      }
    }
  }
  config.json = *std::move(json);
  return config;
}

std::string CommandLine(const std::vector<std::string>& argv) {
  std::string line = absl::StrJoin(argv, " ");
  if (line.size() > 200) line = line.substr(0, 197) + "...";
  return line;
}

// ---- One run of the program --------------------------------------------------------------

struct RunRange {
  Step start = 0;
  Step end = 0;
  std::string config_path;
  std::optional<std::string> checkpoint_in;
  std::string checkpoint_out;
};

// What a run needs besides its range.
struct RunContext {
  const StageTask& task;
  const CommandConfig& config;
  StageControl& control;
  const TrainCallbacks& callbacks;
  absl::Time deadline;
  ProgramLog& log;
  std::string program;                // resolved for execve
  std::vector<std::string> base_env;  // the worker's environment plus config.env
};

absl::Status StopStatus(const RunContext& context) {
  if (context.control.ShouldStop()) return context.control.StopStatus();
  return absl::DeadlineExceededError(
      absl::StrCat("command trainer: the stage ran past trainer.timeout_seconds (",
                   context.task.timeout_seconds, " s)"));
}

bool MustStop(const RunContext& context) {
  return context.control.ShouldStop() || absl::Now() >= context.deadline;
}

// The stage file the program reads at $HIPPO_CONFIG (its format: workers/README.md, "command").
std::string StageJson(const RunContext& context, const RunRange& range) {
  const StageTask& task = context.task;
  Json values = Json::object();
  Json segments = Json::object();
  for (const auto& [name, parameter_segments] : task.parameters) {
    Json& per_step = values[name] = Json::array();
    for (Step step = range.start; step < range.end; ++step) {
      const std::optional<double> value = task.ValueAt(name, step);
      per_step.push_back(value.has_value() ? Json(*value) : Json());
    }
    Json& clipped = segments[name] = Json::array();
    for (const stage_tree::Segment& segment : parameter_segments) {
      if (segment.end <= range.start || segment.start >= range.end) continue;
      clipped.push_back(SegmentJson(segment, range.start, range.end));
    }
  }
  Json statics = Json::object();
  for (const auto& [name, value] : task.static_parameters) {
    std::visit([&statics, &name](const auto& v) { statics[name] = v; }, value);
  }
  const Json stage = {
      {"format", 1},
      {"seed", task.seed},
      {"start_step", range.start},
      {"end_step", range.end},
      {"checkpoint_in", range.checkpoint_in.has_value() ? Json(*range.checkpoint_in) : Json()},
      {"checkpoint_out", range.checkpoint_out},
      {"parameters", std::move(values)},
      {"segments", std::move(segments)},
      {"static_parameters", std::move(statics)},
      {"config", context.config.json},
  };
  // Bytes that are not UTF-8 (a path, a name) become U+FFFD rather than failing the stage.
  return stage.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

absl::Status WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  if (!file) return absl::InternalError(absl::StrCat("command trainer: cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream bytes;
  bytes << file.rdbuf();
  if (file.bad()) return absl::InternalError(absl::StrCat("cannot read ", path));
  return std::move(bytes).str();
}

// Runs the program once over `range`, reporting each step's metrics as it arrives.
absl::Status RunProgram(RunContext& context, const RunRange& range) {
  const std::string where = absl::StrCat("command trainer: `", CommandLine(context.config.argv),
                                         "` (steps [", range.start, ", ", range.end, "))");
  if (absl::Status written = WriteFile(range.config_path, StageJson(context, range));
      !written.ok()) {
    return written;
  }
  std::vector<std::string> env = context.base_env;
  env.push_back(absl::StrCat("HIPPO_CONFIG=", range.config_path));
  env.push_back(absl::StrCat("HIPPO_START_STEP=", range.start));
  env.push_back(absl::StrCat("HIPPO_END_STEP=", range.end));
  env.push_back(absl::StrCat("HIPPO_SEED=", context.task.seed));
  if (range.checkpoint_in.has_value()) {
    env.push_back(absl::StrCat("HIPPO_CHECKPOINT_IN=", *range.checkpoint_in));
  }
  env.push_back(absl::StrCat("HIPPO_CHECKPOINT_OUT=", range.checkpoint_out));
  std::error_code ignored;
  std::filesystem::remove(range.checkpoint_out, ignored);

  Child child;
  if (absl::Status started =
          child.Start(context.program, context.config.argv, env, context.config.working_dir);
      !started.ok()) {
    return started;
  }

  OutputTail tail;
  const std::string log_prefix = absl::StrCat("[steps ", range.start, "-", range.end, "] ");
  Step next_step = range.start;
  int64_t line_number = 0;
  auto on_stdout_line = [&](std::string_view line) -> absl::Status {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos) return absl::OkStatus();
    if (line[first] != '{') {
      tail.Add(line);
      context.log.Write(log_prefix, line);
      return absl::OkStatus();
    }
    const std::string quoted(line.substr(0, std::min<size_t>(line.size(), kTailLineBytes)));
    absl::StatusOr<Json> parsed = ParseJson(line);
    if (!parsed.ok() || !parsed->is_object()) {
      return absl::InternalError(absl::StrCat(
          where, " printed stdout line ", line_number,
          " that starts with '{' but is not a JSON object",
          parsed.ok() ? "" : absl::StrCat(" (", parsed.status().message(), ")"), ": ", quoted));
    }
    const Json* step = Member(*parsed, "step");
    if (step == nullptr || !step->is_number() ||
        step->get<double>() != std::floor(step->get<double>())) {
      return absl::InternalError(absl::StrCat(where, ": stdout line ", line_number,
                                              " has no whole-number \"step\": ", quoted));
    }
    if (step->get<double>() != static_cast<double>(next_step)) {
      return absl::InternalError(absl::StrCat(
          where, ": stdout line ", line_number, " reports step ", step->get<double>(),
          next_step < range.end ? absl::StrCat(" where step ", next_step, " was expected")
                                : absl::StrCat(" after the last step ", range.end - 1),
          " (one metrics line per step, in order): ", quoted));
    }
    Metrics metrics;
    for (const auto& [name, value] : parsed->items()) {
      if (name == "step") continue;
      if (!value.is_number()) {
        return absl::InternalError(absl::StrCat(where, ": stdout line ", line_number, ": metric \"",
                                                name, "\" is not a number: ", quoted));
      }
      metrics[name] = value.get<double>();
    }
    if (context.callbacks.progress) context.callbacks.progress(next_step, metrics);
    ++next_step;
    return absl::OkStatus();
  };
  auto on_stderr_line = [&](std::string_view line) -> absl::Status {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    tail.Add(line);
    context.log.Write(log_prefix, line);
    return absl::OkStatus();
  };

  // Stops the program: SIGTERM to its group, SIGKILL after the grace period.
  auto stop_child = [&]() {
    child.SignalGroup(SIGTERM);
    const absl::Time kill_at = absl::Now() + absl::Seconds(context.config.kill_grace_seconds);
    while (absl::Now() < kill_at && !child.Exited()) {
      // Keep reading so that a program writing while it shuts down does not block on a full pipe.
      pollfd fds[2] = {{child.stdout_fd().get(), POLLIN, 0}, {child.stderr_fd().get(), POLLIN, 0}};
      if (::poll(fds, 2, 10) > 0) {
        char discard[4096];
        for (pollfd& fd : fds) {
          if (fd.fd >= 0 && (fd.revents & (POLLIN | POLLHUP)) != 0 &&
              ::read(fd.fd, discard, sizeof(discard)) <= 0) {
            (fd.fd == child.stdout_fd().get() ? child.stdout_fd() : child.stderr_fd()).Reset();
          }
        }
      }
    }
    child.KillGroupAndReap();
  };

  LineBuffer stdout_lines;
  LineBuffer stderr_lines;
  std::optional<absl::Time> exited_at;
  absl::Status protocol = absl::OkStatus();
  while (child.stdout_fd().get() >= 0 || child.stderr_fd().get() >= 0) {
    if (MustStop(context)) {
      stop_child();
      return StopStatus(context);
    }
    if (!exited_at.has_value() && child.Exited()) exited_at = absl::Now();
    // Descendants that inherited the pipes may keep them open after the program exits.
    if (exited_at.has_value() && absl::Now() - *exited_at > kDrainAfterExit) break;
    pollfd fds[2] = {{child.stdout_fd().get(), POLLIN, 0}, {child.stderr_fd().get(), POLLIN, 0}};
    const int ready = ::poll(fds, 2, kPollMilliseconds);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("poll");
    }
    for (int i = 0; i < 2 && protocol.ok(); ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buffer[65536];
      const ssize_t got = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        if (i == 0) {
          protocol = stdout_lines.Finish(on_stdout_line);
          child.stdout_fd().Reset();
        } else {
          protocol = stderr_lines.Finish(on_stderr_line);
          child.stderr_fd().Reset();
        }
        continue;
      }
      const std::string_view data(buffer, static_cast<size_t>(got));
      protocol = i == 0 ? stdout_lines.Feed(data, on_stdout_line)
                        : stderr_lines.Feed(data, on_stderr_line);
    }
    if (!protocol.ok()) {
      stop_child();
      return absl::Status(protocol.code(), absl::StrCat(protocol.message(), tail.Describe()));
    }
  }
  if (absl::Status last = stdout_lines.Finish(on_stdout_line); !last.ok()) {
    stop_child();
    return absl::Status(last.code(), absl::StrCat(last.message(), tail.Describe()));
  }
  // stderr is only logged and kept as the failure's tail: an unfinished last line there does not
  // change the stage's outcome.
  (void)stderr_lines.Finish(on_stderr_line);

  // Both pipes are closed (or held only by descendants); wait for the program itself.
  while (!child.Exited()) {
    if (MustStop(context)) {
      stop_child();
      return StopStatus(context);
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  // Whatever the program left running in its group goes with it.
  const int status = child.KillGroupAndReap();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat(where, " ", DescribeWaitStatus(status), tail.Describe()));
  }
  if (next_step != range.end) {
    return absl::InternalError(absl::StrCat(
        where, " exited with status 0 after reporting ",
        next_step == range.start ? std::string("no step")
                                 : absl::StrCat("steps up to ", next_step - 1),
        "; it must print one JSON metrics line for every step in [", range.start, ", ", range.end,
        "), e.g. {\"step\": ", next_step, ", \"loss\": 0.5}", tail.Describe()));
  }
  if (!std::filesystem::is_regular_file(range.checkpoint_out)) {
    return absl::InternalError(
        absl::StrCat(where,
                     " exited with status 0 without writing its output checkpoint (the file at "
                     "HIPPO_CHECKPOINT_OUT, ",
                     range.checkpoint_out, ")", tail.Describe()));
  }
  return absl::OkStatus();
}

// Whether an inherited variable carries the coordinator's token (HIPPO_TOKEN, HIPPO_TOKEN_FILE,
// ...): a study's program must not be able to act as a client or a worker with it.
bool IsTokenVariable(std::string_view name) { return name.starts_with("HIPPO_TOKEN"); }

// The worker's environment without the token and the variables the trainer or the config set,
// then config.env.
std::vector<std::string> BaseEnvironment(const CommandConfig& config) {
  std::set<std::string, std::less<>> replaced(ReservedVariables().begin(),
                                              ReservedVariables().end());
  for (const auto& [name, value] : config.env) replaced.insert(name);
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::string_view name = text.substr(0, text.find('='));
    if (!replaced.contains(name) && !IsTokenVariable(name)) env.emplace_back(text);
  }
  for (const auto& [name, value] : config.env) env.push_back(absl::StrCat(name, "=", value));
  return env;
}

}  // namespace

absl::StatusOr<std::string> CommandState::Serialize() const {
  std::string out;
  out.reserve(kHeaderBytes + (checkpoint_.has_value() ? checkpoint_->size() : 0));
  AppendStateHeader(kFormat, step_, out);
  out.push_back(checkpoint_.has_value() ? 1 : 0);
  if (checkpoint_.has_value()) out.append(*checkpoint_);
  return out;
}

absl::StatusOr<std::unique_ptr<CommandState>> CommandState::Parse(std::string_view bytes) {
  absl::StatusOr<Step> step = ParseStateHeader(kFormat, bytes, kHeaderBytes);
  if (!step.ok()) return step.status();
  auto state = std::make_unique<CommandState>();
  state->step_ = *step;
  const char flag = bytes[kStateHeaderBytes];
  if (flag == 1) {
    state->checkpoint_ = std::string(bytes.substr(kHeaderBytes));
  } else if (flag != 0 || bytes.size() != kHeaderBytes) {
    return absl::DataLossError("command trainer state has a malformed checkpoint flag");
  }
  return state;
}

std::unique_ptr<TrainingState> CommandState::Clone() const {
  return std::make_unique<CommandState>(*this);
}

int64_t CommandState::SizeBytes() const {
  return static_cast<int64_t>(sizeof(CommandState) +
                              (checkpoint_.has_value() ? checkpoint_->capacity() : 0));
}

absl::StatusOr<std::unique_ptr<TrainingState>> CommandTrainer::NewState(const StageTask& task) {
  absl::StatusOr<CommandConfig> config = ParseConfig(task);
  if (!config.ok()) return config.status();
  return std::make_unique<CommandState>();
}

absl::StatusOr<std::unique_ptr<TrainingState>> CommandTrainer::Deserialize(const StageTask& task,
                                                                           std::string_view bytes) {
  (void)task;  // The checkpoint's meaning is the program's business.
  absl::StatusOr<std::unique_ptr<CommandState>> state = CommandState::Parse(bytes);
  if (!state.ok()) return state.status();
  return std::unique_ptr<TrainingState>(*std::move(state));
}

absl::StatusOr<StageOutcome> CommandTrainer::Train(const StageTask& task, TrainingState& state,
                                                   StageControl& control,
                                                   const TrainCallbacks& callbacks) {
  absl::StatusOr<CommandState*> own = StateToTrain<CommandState>("command", task, state);
  if (!own.ok()) return own.status();
  CommandState* command_state = *own;
  absl::StatusOr<CommandConfig> config = ParseConfig(task);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::string> program = allowed_.Resolve(config->argv.front());
  if (!program.ok()) return program.status();

  // A private scratch directory for the stage's files, removed whatever happens.
  std::error_code error;
  const std::filesystem::path scratch_parent = config->scratch_dir.empty()
                                                   ? std::filesystem::temp_directory_path(error)
                                                   : std::filesystem::path(config->scratch_dir);
  std::string pattern = (scratch_parent / "hippo-command-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    const int mkdtemp_error = errno;
    return ErrnoError(absl::StrCat("cannot make a scratch directory in ", scratch_parent.string()),
                      mkdtemp_error);
  }
  const std::filesystem::path scratch = std::filesystem::absolute(pattern);
  const RemoveOnExit remove_scratch(scratch);

  ProgramLog log(config->log_file);
  if (!config->log_file.empty() && !log.open()) {
    const int open_error = errno;
    return ErrnoError(absl::StrCat("cannot open config.log_file ", config->log_file), open_error);
  }
  RunContext context{.task = task,
                     .config = *config,
                     .control = control,
                     .callbacks = callbacks,
                     .deadline = task.timeout_seconds > 0
                                     ? absl::Now() + absl::Seconds(task.timeout_seconds)
                                     : absl::InfiniteFuture(),
                     .log = log,
                     .program = *program,
                     .base_env = BaseEnvironment(*config)};

  std::optional<std::string> checkpoint_in;
  if (command_state->checkpoint().has_value()) {
    checkpoint_in = (scratch / absl::StrCat("checkpoint-", task.start_step)).string();
    if (absl::Status written = WriteFile(*checkpoint_in, *command_state->checkpoint());
        !written.ok()) {
      return written;
    }
  }
  std::set<Step> boundaries(task.checkpoint_steps.begin(), task.checkpoint_steps.end());
  boundaries.insert(task.end_step);

  Step start = task.start_step;
  while (start < task.end_step) {
    if (MustStop(context)) return StopStatus(context);
    Step end = *boundaries.upper_bound(start);
    // Commit to the steps this run passes: a checkpoint requested for one of them before now is
    // honoured by ending the run there; one requested later is refused.
    for (Step step = start + 1; step < end; ++step) {
      if (control.ReachedStep(step)) {
        end = step;
        break;
      }
    }
    RunRange range{
        .start = start,
        .end = end,
        .config_path = (scratch / absl::StrCat("steps-", start, "-", end, ".json")).string(),
        .checkpoint_in = checkpoint_in,
        .checkpoint_out = (scratch / absl::StrCat("checkpoint-", end)).string()};
    if (absl::Status ran = RunProgram(context, range); !ran.ok()) return ran;
    absl::StatusOr<std::string> bytes = ReadFile(range.checkpoint_out);
    if (!bytes.ok()) {
      return absl::InternalError(absl::StrCat("command trainer: reading the output checkpoint: ",
                                              bytes.status().message()));
    }
    command_state->checkpoint_ = *std::move(bytes);
    command_state->step_ = end;
    if (checkpoint_in.has_value()) std::filesystem::remove(*checkpoint_in, error);
    checkpoint_in = range.checkpoint_out;
    std::filesystem::remove(range.config_path, error);
    if (control.ReachedStep(end) && callbacks.checkpoint) {
      if (absl::Status written = callbacks.checkpoint(end, *command_state); !written.ok()) {
        return written;
      }
    }
    start = end;
  }
  return StageOutcome{};
}

}  // namespace hippo::workers
