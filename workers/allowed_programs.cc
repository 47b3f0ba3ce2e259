#include "workers/allowed_programs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hippo::workers {
namespace {

namespace fs = std::filesystem;

// Whether canonical `path` lies strictly inside canonical directory `directory`.
bool Inside(const fs::path& path, const std::string& directory) {
  const fs::path relative = path.lexically_relative(fs::path(directory));
  return !relative.empty() && relative != "." && *relative.begin() != "..";
}

std::string Quoted(const std::string& program) { return absl::StrCat("'", program, "'"); }

}  // namespace

absl::StatusOr<AllowedPrograms> AllowedPrograms::Create(
    const std::vector<std::string>& directories) {
  std::vector<std::string> canonical;
  for (const std::string& directory : directories) {
    std::error_code error;
    const fs::path resolved =
        directory.empty() ? fs::path() : fs::canonical(fs::absolute(directory, error), error);
    if (directory.empty() || error || !fs::is_directory(resolved, error)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--allow-dir ", Quoted(directory),
          ": not an existing directory; name the directory that holds the training programs"));
    }
    canonical.push_back(resolved.string());
  }
  return AllowedPrograms(std::move(canonical));
}

absl::StatusOr<std::string> AllowedPrograms::Resolve(const std::string& program) const {
  const std::string where = absl::StrCat("command trainer: trainer.command[0] ", Quoted(program));
  if (directories_.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        where,
        ": this worker runs no programs; start it with --allow-dir DIR naming the directory that "
        "holds the program (hippo worker --trainers ...,command --allow-dir DIR)"));
  }
  const std::string allowed = absl::StrJoin(directories_, ", ");
  if (program.empty() || program.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a program path"));
  }
  fs::path candidate;
  if (fs::path(program).is_absolute()) {
    candidate = program;
  } else {
    for (const std::string& directory : directories_) {
      std::error_code error;
      if (fs::exists(fs::path(directory) / program, error)) {
        candidate = fs::path(directory) / program;
        break;
      }
    }
    if (candidate.empty()) {
      return absl::NotFoundError(absl::StrCat(
          where, ": no allowed directory (", allowed,
          ") holds it; a relative program is looked up there only, give an absolute path or put "
          "it in an allowed directory"));
    }
  }
  std::error_code error;
  const fs::path resolved = fs::canonical(candidate, error);
  if (error) {
    return absl::NotFoundError(
        absl::StrCat(where, ": ", candidate.string(), " does not exist on this worker"));
  }
  // What runs is the resolved file: it must lie in an allowed directory, whichever found it.
  if (std::none_of(directories_.begin(), directories_.end(),
                   [&](const std::string& dir) { return Inside(resolved, dir); })) {
    return absl::PermissionDeniedError(absl::StrCat(
        where, " resolves (through links and '..') to ", resolved.string(),
        ", outside the directories this worker allows (", allowed,
        "); move the program into one of them or start the worker with --allow-dir naming its "
        "directory"));
  }
  struct stat info {};
  if (::stat(resolved.c_str(), &info) != 0 || !S_ISREG(info.st_mode) ||
      ::access(resolved.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": ", resolved.string(),
                     " is not an executable file; make it one (chmod +x, with a #! line) or name "
                     "its interpreter as the program"));
  }
  return resolved.string();
}

}  // namespace hippo::workers
