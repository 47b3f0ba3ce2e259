// Which programs the command trainer may start (AllowedPrograms): only regular executables that
// resolve, through every symbolic link and "..", inside a directory the worker allows; relative
// programs are looked up in those directories only.
#include "workers/allowed_programs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "tests/support/temp_dir.h"

namespace hippo::workers {
namespace {

namespace fs = std::filesystem;

// <scratch>/allowed/{train.sh, bin/run.sh, data.txt} and <scratch>/outside/evil.sh.
class AllowedProgramsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(allowed_ / "bin");
    fs::create_directories(outside_);
    Executable(allowed_ / "train.sh");
    Executable(allowed_ / "bin" / "run.sh");
    Executable(outside_ / "evil.sh");
    std::ofstream(allowed_ / "data.txt") << "not a program\n";
  }

  static void Executable(const fs::path& path) {
    std::ofstream(path) << "#!/bin/sh\nexit 0\n";
    fs::permissions(path, fs::perms::owner_all);
  }

  AllowedPrograms Allowing(const std::vector<std::string>& directories) {
    absl::StatusOr<AllowedPrograms> allowed = AllowedPrograms::Create(directories);
    EXPECT_TRUE(allowed.ok()) << allowed.status();
    return allowed.ok() ? *std::move(allowed) : AllowedPrograms();
  }

  const test_support::TempDir scratch_{"hippo-allowed-test"};
  // Canonical, as Resolve answers (the temporary directory may itself be behind a link).
  const fs::path root_ = fs::canonical(scratch_.path());
  const fs::path allowed_ = root_ / "allowed";
  const fs::path outside_ = root_ / "outside";
};

TEST_F(AllowedProgramsTest, NoDirectoryAllowedRefusesEveryProgram) {
  const AllowedPrograms nothing;
  for (const std::string& program :
       {std::string("/bin/sh"), std::string("sh"), (allowed_ / "train.sh").string()}) {
    absl::StatusOr<std::string> resolved = nothing.Resolve(program);
    EXPECT_EQ(resolved.status().code(), absl::StatusCode::kPermissionDenied) << program;
    EXPECT_TRUE(absl::StrContains(resolved.status().message(), "--allow-dir"));
  }
}

TEST_F(AllowedProgramsTest, ProgramsInsideResolveAbsoluteOrRelativeToTheAllowedDirectory) {
  const AllowedPrograms allowed = Allowing({outside_.string() + "/../allowed"});
  EXPECT_EQ(allowed.directories(), std::vector<std::string>{allowed_.string()});
  EXPECT_EQ(*allowed.Resolve((allowed_ / "train.sh").string()), (allowed_ / "train.sh").string());
  EXPECT_EQ(*allowed.Resolve("train.sh"), (allowed_ / "train.sh").string());
  EXPECT_EQ(*allowed.Resolve("bin/run.sh"), (allowed_ / "bin" / "run.sh").string());
  EXPECT_EQ(*allowed.Resolve("./bin/../train.sh"), (allowed_ / "train.sh").string());
}

TEST_F(AllowedProgramsTest, DotDotCannotLeaveTheAllowedDirectory) {
  const AllowedPrograms allowed = Allowing({allowed_.string()});
  for (const std::string& program :
       {(allowed_ / ".." / "outside" / "evil.sh").string(), std::string("../outside/evil.sh"),
        std::string("bin/../../outside/evil.sh")}) {
    absl::StatusOr<std::string> resolved = allowed.Resolve(program);
    EXPECT_EQ(resolved.status().code(), absl::StatusCode::kPermissionDenied) << program;
    EXPECT_TRUE(absl::StrContains(resolved.status().message(), (outside_ / "evil.sh").string()))
        << resolved.status();
  }
}

TEST_F(AllowedProgramsTest, SymbolicLinksCannotLeaveTheAllowedDirectory) {
  fs::create_symlink(outside_ / "evil.sh", allowed_ / "innocent.sh");
  fs::create_symlink("/bin/sh", allowed_ / "shell");
  fs::create_directory_symlink(outside_, allowed_ / "linked-dir");
  const AllowedPrograms allowed = Allowing({allowed_.string()});
  for (const std::string& program : {std::string("innocent.sh"), (allowed_ / "shell").string(),
                                    std::string("linked-dir/evil.sh")}) {
    EXPECT_EQ(allowed.Resolve(program).status().code(), absl::StatusCode::kPermissionDenied)
        << program;
  }
  // A link that stays inside is followed.
  fs::create_symlink(allowed_ / "train.sh", allowed_ / "alias.sh");
  EXPECT_EQ(*allowed.Resolve("alias.sh"), (allowed_ / "train.sh").string());
}

TEST_F(AllowedProgramsTest, RelativeProgramsAreNeverLookedUpOnPath) {
  const AllowedPrograms allowed = Allowing({allowed_.string()});
  absl::StatusOr<std::string> shell = allowed.Resolve("sh");  // on PATH, not allowed
  EXPECT_EQ(shell.status().code(), absl::StatusCode::kNotFound) << shell.status();
  EXPECT_TRUE(absl::StrContains(shell.status().message(), allowed_.string())) << shell.status();
}

TEST_F(AllowedProgramsTest, MissingAndNonExecutableFilesAndBadDirectoriesAreExplained) {
  const AllowedPrograms allowed = Allowing({allowed_.string(), outside_.string()});
  EXPECT_EQ(allowed.Resolve((allowed_ / "gone.sh").string()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(allowed.Resolve("data.txt").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(allowed.Resolve("bin").status().code(), absl::StatusCode::kFailedPrecondition);
  // The second directory is searched too.
  EXPECT_EQ(*allowed.Resolve("evil.sh"), (outside_ / "evil.sh").string());

  absl::StatusOr<AllowedPrograms> missing = AllowedPrograms::Create({(root_ / "nope").string()});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "--allow-dir")) << missing.status();
  EXPECT_EQ(AllowedPrograms::Create({(allowed_ / "train.sh").string()}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AllowedPrograms::Create({""}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hippo::workers
