// The corpus tests/proto/bad_specs: each file is refused with InvalidArgument, and the message
// begins with the file and names the field path that is wrong. The files are read as `hippo
// validate` reads them (search_algos/spec_checks.h), so the corpus covers the algorithms' own
// checks too (grid_over_*, asha_min_above_max).
#include <chrono>
#include <filesystem>
#include <ostream>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search_algos/spec_checks.h"
#include "tests/proto/bad_spec_corpus.h"

namespace hippo::proto {
namespace {

using search_algos::LoadStudySpecFile;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing_corpus::BadSpec;
using testing_corpus::Corpus;
using testing_corpus::CorpusDirectory;

class BadSpecTest : public ::testing::TestWithParam<BadSpec> {};

TEST_P(BadSpecTest, IsInvalidArgumentNamingTheFieldPath) {
  const std::string path = CorpusDirectory() + GetParam().file;
  const absl::StatusOr<hippo::v1::StudySpec> spec = LoadStudySpecFile(path);
  ASSERT_FALSE(spec.ok()) << GetParam().file << " parsed";
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << spec.status();
  EXPECT_THAT(std::string(spec.status().message()), StartsWith(path));
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadSpecTest, ::testing::ValuesIn(Corpus()), [](const auto& info) {
  return info.param.file.substr(0, info.param.file.find('.'));
});

// A document whose aliases expand to 10^9 nodes is refused after a bounded amount of work, not
// expanded (unbounded, it ran for minutes and took gigabytes).
TEST(BadSpecCorpus, AliasBombFailsFast) {
  const auto start = std::chrono::steady_clock::now();
  const absl::StatusOr<hippo::v1::StudySpec> spec =
      LoadStudySpecFile(CorpusDirectory() + "yaml_alias_bomb.yaml");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("expands to more than 100000"));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

// A file added to the corpus without an expected message would never be checked.
TEST(BadSpecCorpus, EveryFileHasAnExpectedMessage) {
  std::set<std::string> listed;
  for (const BadSpec& bad : Corpus()) {
    listed.insert(bad.file);
  }
  std::set<std::string> on_disk;
  for (const auto& entry : std::filesystem::directory_iterator(CorpusDirectory())) {
    on_disk.insert(entry.path().filename().string());
  }
  EXPECT_EQ(listed, on_disk);
}

}  // namespace
}  // namespace hippo::proto
