// Bad input through the command line: every spec of the corpus gets exit code 2 and a message
// naming its field, and the coordinator's database is unchanged.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/proto/bad_spec_corpus.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

std::string Bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

TEST(BadInputTest, EveryBrokenSpecIsRefusedWithItsFieldAndChangesNothingStored) {
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const std::string db = dir.File("hippo.db");
  Process server({"server", "--listen", address, "--db", db}, dir.File("server.log"));
  ASSERT_TRUE(WaitForServer(address, std::chrono::seconds(20)));
  const std::string before = Bytes(db) + Bytes(db + "-wal");
  for (const auto& bad : proto::testing_corpus::Corpus()) {
    const std::string path = proto::testing_corpus::CorpusDirectory() + bad.file;
    const CommandResult result = RunHippo({"submit", path, "--coordinator", address});
    EXPECT_EQ(result.exit_code, 2) << bad.file << ": " << result.output;
    EXPECT_NE(result.output.find(bad.expected), std::string::npos)
        << bad.file << ": " << result.output;
  }
  const CommandResult missing =
      RunHippo({"submit", dir.File("does-not-exist.yaml"), "--coordinator", address});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.output.find("does-not-exist.yaml"), std::string::npos);
  EXPECT_EQ(Bytes(db) + Bytes(db + "-wal"), before);
  const CommandResult studies = RunHippo({"studies", "--coordinator", address, "--json"});
  EXPECT_EQ(studies.exit_code, 0);
  EXPECT_EQ(studies.output.find("\"id\""), std::string::npos) << studies.output;
}

TEST(BadInputTest, RunRefusesABrokenSpecWithExitCode2) {
  const std::string path = proto::testing_corpus::CorpusDirectory() + "unknown_field_nested.yaml";
  const CommandResult result = RunHippo({"run", path});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.output.find("algorithm.asha.reduction_factr"), std::string::npos)
      << result.output;
}

TEST(BadInputTest, ForeignDatabaseIsRefusedAndLeftUntouched) {
  TempDir dir;
  const std::string db = dir.File("notes.db");
  {
    std::ofstream file(db);
    file << "these are my notes, not a database\n";
  }
  const std::string before = Bytes(db);
  const CommandResult result =
      RunHippo({"server", "--listen", "127.0.0.1:" + std::to_string(FreePort()), "--db", db});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find(db), std::string::npos) << result.output;
  EXPECT_EQ(Bytes(db), before);
}

}  // namespace
}  // namespace hippo::e2e
