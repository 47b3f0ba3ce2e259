#include "workers/command_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hippo::workers::command_internal {

void OutputTail::Add(std::string_view line) {
  if (line.size() > kTailLineBytes) {
    lines_.push_back(std::string(line.substr(0, kTailLineBytes)) + "...");
  } else {
    lines_.emplace_back(line);
  }
  if (lines_.size() > kTailLines) lines_.pop_front();
}

std::string OutputTail::Describe() const {
  if (lines_.empty()) return "; it printed nothing on stderr and no other text on stdout";
  return absl::StrCat(
      "; its last ",
      lines_.size() == 1 ? std::string("line") : absl::StrCat(lines_.size(), " lines"),
      " of output:\n  ", absl::StrJoin(lines_, "\n  "));
}

void Fd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

absl::Status ErrnoError(std::string_view what, int error) {
  return absl::InternalError(
      absl::StrCat("command trainer: ", std::string(what), ": ", std::strerror(error)));
}

RemoveOnExit::~RemoveOnExit() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

Child::~Child() {
  if (pid_ > 0 && !reaped_) {
    ::kill(-pid_, SIGKILL);
    Reap();
  }
}

absl::Status Child::Start(const std::string& program, const std::vector<std::string>& argv,
                          const std::vector<std::string>& envp, const std::string& working_dir) {
  // Everything the child touches is prepared here: after fork it may only make
  // async-signal-safe calls.
  std::vector<char*> argv_pointers;
  for (const std::string& arg : argv) argv_pointers.push_back(const_cast<char*>(arg.c_str()));
  argv_pointers.push_back(nullptr);
  std::vector<char*> envp_pointers;
  for (const std::string& entry : envp) {
    envp_pointers.push_back(const_cast<char*>(entry.c_str()));
  }
  envp_pointers.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  int exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe");
  Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe");
  Fd err_read(err_pipe[0]), err_write(err_pipe[1]);
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe");
  Fd exec_read(exec_pipe[0]), exec_write(exec_pipe[1]);
  Fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_in.get() < 0) return ErrnoError("open /dev/null");

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork");
  if (pid == 0) {
    ::setpgid(0, 0);
    // The program dies with the worker's training thread, even when the worker is SIGKILLed.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    int error = 0;
    if (::dup2(null_in.get(), STDIN_FILENO) < 0 || ::dup2(out_write.get(), STDOUT_FILENO) < 0 ||
        ::dup2(err_write.get(), STDERR_FILENO) < 0) {
      error = errno;
    } else if (!working_dir.empty() && ::chdir(working_dir.c_str()) != 0) {
      error = errno;
    } else {
      // Whatever else the worker has open (sockets, files) is not the program's business.
#ifdef SYS_close_range
      ::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
#endif
      ::execve(program.c_str(), argv_pointers.data(), envp_pointers.data());
      error = errno;
    }
    [[maybe_unused]] ssize_t written = ::write(exec_write.get(), &error, sizeof(error));
    ::_exit(127);
  }
  pid_ = pid;
  ::setpgid(pid, pid);  // Also here, so that a kill right after fork reaches the group.
  out_write.Reset();
  err_write.Reset();
  exec_write.Reset();
  // The exec pipe closes (empty) on a successful exec, or carries the child's errno.
  int error = 0;
  ssize_t got;
  do {
    got = ::read(exec_read.get(), &error, sizeof(error));
  } while (got < 0 && errno == EINTR);
  if (got == sizeof(error)) {
    Reap();
    return absl::FailedPreconditionError(
        absl::StrCat("command trainer: cannot start '", program,
                     working_dir.empty() ? "" : absl::StrCat("' in '", working_dir),
                     "': ", std::strerror(error)));
  }
  stdout_ = std::move(out_read);
  stderr_ = std::move(err_read);
  return absl::OkStatus();
}

bool Child::Exited() {
  if (reaped_) return true;
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    // ECHILD: someone set SIGCHLD to SIG_IGN and the kernel reaped the child; its status is
    // lost, and the checks on its output decide.
    if (errno == ECHILD) reaped_ = true;
    return reaped_;
  }
  return info.si_pid == pid_;
}

int Child::KillGroupAndReap() {
  if (!reaped_) ::kill(-pid_, SIGKILL);
  Reap();
  return status_;
}

void Child::SignalGroup(int signal) {
  if (!reaped_) ::kill(-pid_, signal);
}

void Child::Reap() {
  if (reaped_) return;
  pid_t got;
  do {
    got = ::waitpid(pid_, &status_, 0);
  } while (got < 0 && errno == EINTR);
  reaped_ = true;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    const char* name = ::sigabbrev_np(signal);
    return absl::StrCat("was killed by signal ", signal,
                        name != nullptr ? absl::StrCat(" (SIG", name, ")") : "");
  }
  return absl::StrCat("ended with wait status ", status);
}

ProgramLog::ProgramLog(const std::string& path) {
  if (!path.empty())
    fd_ = Fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
}

void ProgramLog::Write(std::string_view prefix, std::string_view line) {
  if (!open()) return;
  std::string text(prefix);
  text.append(line);
  text.push_back('\n');
  [[maybe_unused]] ssize_t written = ::write(fd_.get(), text.data(), text.size());
}

}  // namespace hippo::workers::command_internal
