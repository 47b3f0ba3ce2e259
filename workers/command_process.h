// The command trainer's child-process machinery: starting a program in its own process group,
// reading its output pipes line by line, stopping and reaping it, and describing how it ended.
//
// Internal to the command trainer (workers/command_trainer.cc); not part of the workers API.
// Every error names the command trainer, so that a message reaching the user says where it
// came from.
#ifndef HIPPO_WORKERS_COMMAND_PROCESS_H_
#define HIPPO_WORKERS_COMMAND_PROCESS_H_

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hippo::workers::command_internal {

// Lines of the program's output quoted in an error, and the bytes kept of each.
inline constexpr size_t kTailLines = 20;
inline constexpr size_t kTailLineBytes = 400;
// A stdout line longer than this is cut there (a metrics line never is).
inline constexpr size_t kMaxLineBytes = size_t{1} << 20;

// The last lines of the program's output (stderr and non-metric stdout, in arrival order).
class OutputTail {
 public:
  void Add(std::string_view line);
  // "; its last N lines of output: ...", to append to an error message.
  std::string Describe() const;

 private:
  std::deque<std::string> lines_;
};

// Splits a pipe's bytes into lines.
class LineBuffer {
 public:
  // Appends `data` and calls `on_line` for every complete line; stops at the first error.
  template <typename OnLine>
  absl::Status Feed(std::string_view data, OnLine&& on_line) {
    pending_.append(data);
    size_t begin = 0;
    while (true) {
      const size_t newline = pending_.find('\n', begin);
      if (newline == std::string::npos) break;
      absl::Status status = on_line(std::string_view(pending_).substr(begin, newline - begin));
      begin = newline + 1;
      if (!status.ok()) {
        pending_.erase(0, begin);
        return status;
      }
    }
    pending_.erase(0, begin);
    if (pending_.size() > kMaxLineBytes) {
      std::string line = std::move(pending_);
      pending_.clear();
      return on_line(line);
    }
    return absl::OkStatus();
  }

  // The last line when it has no newline.
  template <typename OnLine>
  absl::Status Finish(OnLine&& on_line) {
    if (pending_.empty()) return absl::OkStatus();
    std::string line = std::move(pending_);
    pending_.clear();
    return on_line(line);
  }

 private:
  std::string pending_;
};

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    Reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset();

 private:
  int fd_ = -1;
};

// Call right after the failing call, before anything else can change errno.
absl::Status ErrnoError(std::string_view what, int error = errno);

// Removes a directory tree when it goes out of scope.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::filesystem::path path) : path_(std::move(path)) {}
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;
  ~RemoveOnExit();

 private:
  std::filesystem::path path_;
};

// A started program: its pid (also its process group id) and its output pipes.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  // Never leaves a process behind: an unreaped child is killed with its group and reaped.
  ~Child();

  // Forks and execs `program` with `argv` and `envp` in `working_dir` (empty: unchanged), in a
  // new process group, with stdin from /dev/null.
  absl::Status Start(const std::string& program, const std::vector<std::string>& argv,
                     const std::vector<std::string>& envp, const std::string& working_dir);

  pid_t pid() const { return pid_; }
  Fd& stdout_fd() { return stdout_; }
  Fd& stderr_fd() { return stderr_; }

  // Whether the child has exited; it stays a zombie (unreaped), so its pid and process group id
  // cannot be reused while we still signal the group.
  bool Exited();

  // Kills the whole process group (descendants included) and reaps the child; returns its wait
  // status.
  int KillGroupAndReap();

  void SignalGroup(int signal);

 private:
  void Reap();

  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  Fd stdout_;
  Fd stderr_;
};

// "exited with status 3", "was killed by signal 9 (SIGKILL)", ...
std::string DescribeWaitStatus(int status);

// Appends lines to the config's log_file, one write(2) each so that workers sharing the file
// do not tear each other's lines.
class ProgramLog {
 public:
  // An empty `path`: no log (Write does nothing).
  explicit ProgramLog(const std::string& path);
  bool open() const { return fd_.get() >= 0; }
  void Write(std::string_view prefix, std::string_view line);

 private:
  Fd fd_;
};

}  // namespace hippo::workers::command_internal

#endif  // HIPPO_WORKERS_COMMAND_PROCESS_H_
