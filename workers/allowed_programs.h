// AllowedPrograms: which programs the `command` trainer may start on this worker.
//
// A worker's operator names directories (`hippo worker --allow-dir DIR`, repeatable); a study's
// trainer.command[0] is run only when it resolves to a regular, executable file inside one of
// them. Resolution follows every symbolic link and `..` (realpath) before the check, so neither
// can lead outside. A relative program ("train.sh", "bin/train.sh") is looked up in the allowed
// directories in the order given, never on PATH or against the working directory; the first
// directory holding it is used. With no directory allowed, every program is refused.
//
// The check is made on the path handed to execve (the resolved one), so a later change of a
// link in the path cannot redirect the start; what the directories hold is the operator's
// responsibility (a directory holding an interpreter such as /usr/bin lets a study run anything
// that interpreter runs; docs/security.md).
#ifndef HIPPO_WORKERS_ALLOWED_PROGRAMS_H_
#define HIPPO_WORKERS_ALLOWED_PROGRAMS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace hippo::workers {

class AllowedPrograms {
 public:
  // Allows nothing.
  AllowedPrograms() = default;

  // Each directory made absolute and resolved through symbolic links. InvalidArgument naming
  // --allow-dir for one that does not exist or is not a directory.
  static absl::StatusOr<AllowedPrograms> Create(const std::vector<std::string>& directories);

  // The resolved path of `program` (trainer.command[0]) to execve. PermissionDenied when no
  // directory is allowed or the program resolves outside them; NotFound when no allowed
  // directory holds a relative program, or an absolute one does not exist; FailedPrecondition
  // for a file that is not a regular executable.
  absl::StatusOr<std::string> Resolve(const std::string& program) const;

  // Canonical, in the order given.
  const std::vector<std::string>& directories() const { return directories_; }

 private:
  explicit AllowedPrograms(std::vector<std::string> directories)
      : directories_(std::move(directories)) {}

  std::vector<std::string> directories_;
};

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_ALLOWED_PROGRAMS_H_
