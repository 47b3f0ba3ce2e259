// Every study spec under examples/ parses and validates, and every built-in algorithm has one,
// so the examples the documentation points to stay runnable.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search_algos/search_algorithm.h"
#include "search_algos/spec_checks.h"

namespace hippo::search_algos {
namespace {

const std::filesystem::path& ExamplesDir() {
  static const auto* const dir =
      new std::filesystem::path(std::filesystem::path(HIPPO_SOURCE_DIR) / "examples");
  return *dir;
}

// The spec files under examples/, relative to it, sorted.
std::vector<std::string> ExampleSpecs() {
  std::vector<std::string> specs;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(ExamplesDir())) {
    const std::string extension = entry.path().extension().string();
    if (entry.is_regular_file() &&
        (extension == ".yaml" || extension == ".yml" || extension == ".json")) {
      specs.push_back(std::filesystem::relative(entry.path(), ExamplesDir()).string());
    }
  }
  std::sort(specs.begin(), specs.end());
  return specs;
}

class ExampleSpecTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExampleSpecTest, ParsesAndValidates) {
  const absl::StatusOr<hippo::v1::StudySpec> spec =
      LoadStudySpecFile((ExamplesDir() / GetParam()).string());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(ValidateStudySpec(*spec).ok()) << ValidateStudySpec(*spec);
}

INSTANTIATE_TEST_SUITE_P(Examples, ExampleSpecTest, ::testing::ValuesIn(ExampleSpecs()),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(ExampleSpecs, EveryBuiltInAlgorithmHasAnExample) {
  std::set<std::string> covered;
  for (const std::string& file : ExampleSpecs()) {
    const absl::StatusOr<hippo::v1::StudySpec> spec =
        LoadStudySpecFile((ExamplesDir() / file).string());
    if (spec.ok()) covered.insert(spec->algorithm().name());
  }
  for (const std::string& name : AlgorithmRegistry::Global().Names()) {
    EXPECT_TRUE(covered.contains(name)) << "no spec under examples/ uses algorithm " << name;
  }
}

}  // namespace
}  // namespace hippo::search_algos
