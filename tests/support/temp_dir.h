// A scratch directory for a test: created fresh under $TMPDIR, removed with everything in it at
// destruction.
#ifndef HIPPO_TESTS_SUPPORT_TEMP_DIR_H_
#define HIPPO_TESTS_SUPPORT_TEMP_DIR_H_

#include <filesystem>
#include <string>

namespace hippo::test_support {

class TempDir {
 public:
  // `prefix` names the directory ("<prefix>-XXXXXX"), so that a leftover one tells its test.
  explicit TempDir(const std::string& prefix = "hippo-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace hippo::test_support

#endif  // HIPPO_TESTS_SUPPORT_TEMP_DIR_H_
