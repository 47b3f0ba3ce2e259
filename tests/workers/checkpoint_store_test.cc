// CheckpointStore: round trips, atomic replacement, corruption detection, path confinement.
#include "workers/checkpoint_store.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "workers/crc32c.h"

namespace hippo::workers {
namespace {

namespace fs = std::filesystem;

class CheckpointStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = CheckpointStore::Open((root_ / "checkpoints").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_.emplace(*std::move(store));
  }

  std::string PathOf(const std::string& uri) { return uri.substr(std::string("file://").size()); }

  std::string ReadRaw(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  void WriteRaw(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }

  const test_support::TempDir scratch_{"hippo-ckpt-test"};
  const fs::path root_ = scratch_.path();
  std::optional<CheckpointStore> store_;
};

TEST(Crc32cTest, MatchesTheStandardCheckValues) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32cExtend(Crc32c("1234"), "56789"), Crc32c("123456789"));
}

TEST_F(CheckpointStoreTest, RoundTripReturnsTheBytesWritten) {
  std::string payload;
  for (int i = 0; i < 100000; ++i) payload.push_back(static_cast<char>(i * 131 % 256));
  absl::StatusOr<CheckpointInfo> info = store_->Write(42, 17, payload);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->uri, store_->UriFor(42, 17));
  EXPECT_TRUE(absl::StartsWith(info->uri, "file:///"));
  EXPECT_TRUE(absl::EndsWith(info->uri, "/stage-42-step-17.ckpt"));
  EXPECT_EQ(info->size_bytes, static_cast<int64_t>(payload.size()) + CheckpointStore::kHeaderBytes);
  EXPECT_EQ(info->size_bytes, static_cast<int64_t>(fs::file_size(PathOf(info->uri))));
  EXPECT_EQ(info->checksum, FormatChecksum(Crc32c(payload)));

  absl::StatusOr<CheckpointContents> contents = store_->ReadCheckpoint(info->uri);
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(contents->stage_id, 42);
  EXPECT_EQ(contents->step, 17);
  EXPECT_EQ(contents->payload, payload);
}

TEST_F(CheckpointStoreTest, EmptyPayloadRoundTrips) {
  absl::StatusOr<CheckpointInfo> info = store_->Write(1, 0, "");
  ASSERT_TRUE(info.ok());
  absl::StatusOr<std::string> payload = store_->Read(info->uri);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(*payload, "");
}

TEST_F(CheckpointStoreTest, TempFileNeverHasTheFinalNameAndLivesInTheSameDirectory) {
  const std::string final_path = PathOf(store_->UriFor(7, 3));
  bool hook_ran = false;
  store_->SetBeforeRenameHookForTesting([&](const std::string& temp_path) {
    hook_ran = true;
    EXPECT_NE(temp_path, final_path);
    EXPECT_EQ(fs::path(temp_path).parent_path(), fs::path(final_path).parent_path());
    EXPECT_TRUE(fs::exists(temp_path));
    EXPECT_EQ(fs::file_size(temp_path), CheckpointStore::kHeaderBytes + 5u)
        << "the temporary file is complete before the rename";
    EXPECT_FALSE(fs::exists(final_path)) << "nothing under the final name before the rename";
    return absl::OkStatus();
  });
  ASSERT_TRUE(store_->Write(7, 3, "hello").ok());
  EXPECT_TRUE(hook_ran);
  EXPECT_TRUE(fs::exists(final_path));
}

TEST_F(CheckpointStoreTest, FailedWriteLeavesNothingBehind) {
  std::string temp;
  store_->SetBeforeRenameHookForTesting([&](const std::string& temp_path) {
    temp = temp_path;
    return absl::InternalError("disk unplugged");
  });
  absl::StatusOr<CheckpointInfo> info = store_->Write(7, 3, "hello");
  EXPECT_FALSE(info.ok());
  EXPECT_FALSE(fs::exists(PathOf(store_->UriFor(7, 3))));
  EXPECT_FALSE(temp.empty());
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_TRUE(fs::is_empty(store_->directory()));
}

TEST_F(CheckpointStoreTest, ConcurrentReaderSeesOnlyAbsentOrCompleteFiles) {
  const std::string uri = store_->UriFor(5, 5);
  std::atomic<bool> done{false};
  std::atomic<int> complete{0};
  std::thread reader([&] {
    while (!done.load()) {
      absl::StatusOr<std::string> payload = store_->Read(uri);
      if (payload.ok()) {
        ASSERT_EQ(payload->size(), 20000u);
        ASSERT_EQ(payload->find_first_not_of(payload->front()), std::string::npos);
        ++complete;
      } else {
        ASSERT_TRUE(absl::IsNotFound(payload.status())) << payload.status();
      }
    }
  });
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(store_->Write(5, 5, std::string(20000, static_cast<char>('a' + i % 26))).ok());
  }
  done = true;
  reader.join();
  EXPECT_GT(complete.load(), 0);
}

TEST_F(CheckpointStoreTest, FlippedPayloadByteIsDataLoss) {
  absl::StatusOr<CheckpointInfo> info = store_->Write(1, 2, std::string(1000, 'x'));
  ASSERT_TRUE(info.ok());
  std::string bytes = ReadRaw(PathOf(info->uri));
  bytes[CheckpointStore::kHeaderBytes + 500] ^= 0x01;
  WriteRaw(PathOf(info->uri), bytes);
  absl::StatusOr<std::string> payload = store_->Read(info->uri);
  EXPECT_TRUE(absl::IsDataLoss(payload.status())) << payload.status();
  EXPECT_TRUE(absl::StrContains(payload.status().message(), "checksum"));
}

TEST_F(CheckpointStoreTest, EveryFlippedByteIsDetected) {
  absl::StatusOr<CheckpointInfo> info = store_->Write(1, 2, "a small training state");
  ASSERT_TRUE(info.ok());
  const std::string original = ReadRaw(PathOf(info->uri));
  for (size_t i = 0; i < original.size(); ++i) {
    std::string bytes = original;
    bytes[i] ^= 0x40;
    WriteRaw(PathOf(info->uri), bytes);
    EXPECT_TRUE(absl::IsDataLoss(store_->Read(info->uri).status())) << "byte " << i;
  }
}

TEST_F(CheckpointStoreTest, TruncatedFileIsDataLoss) {
  absl::StatusOr<CheckpointInfo> info = store_->Write(1, 2, std::string(1000, 'x'));
  ASSERT_TRUE(info.ok());
  const std::string path = PathOf(info->uri);
  for (uintmax_t size : {uintmax_t{1047}, uintmax_t{500}, uintmax_t{47}, uintmax_t{0}}) {
    fs::resize_file(path, size);
    absl::StatusOr<std::string> payload = store_->Read(info->uri);
    EXPECT_TRUE(absl::IsDataLoss(payload.status())) << size << ": " << payload.status();
    EXPECT_TRUE(absl::StrContains(payload.status().message(), "truncated")) << payload.status();
  }
}

TEST_F(CheckpointStoreTest, ForeignFileIsDataLoss) {
  const std::string path = PathOf(store_->UriFor(9, 9));
  WriteRaw(path, std::string(200, 'z'));
  EXPECT_TRUE(absl::IsDataLoss(store_->Read(store_->UriFor(9, 9)).status()));
}

TEST_F(CheckpointStoreTest, MissingFileIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(store_->Read(store_->UriFor(123, 4)).status()));
}

TEST_F(CheckpointStoreTest, UriOutsideTheDirectoryIsPermissionDenied) {
  WriteRaw((root_ / "secret.ckpt").string(), "outside");
  const std::string dir = store_->directory();
  for (const std::string& uri :
       {"file://" + (root_ / "secret.ckpt").string(), "file://" + dir + "/../secret.ckpt",
        "file://" + dir + "/sub/../../secret.ckpt", std::string("file:///etc/passwd"),
        "file://" + dir, "file://" + dir + "/.."}) {
    absl::StatusOr<std::string> payload = store_->Read(uri);
    EXPECT_TRUE(absl::IsPermissionDenied(payload.status())) << uri << ": " << payload.status();
  }
}

TEST_F(CheckpointStoreTest, SymbolicLinkLeadingOutsideIsPermissionDenied) {
  WriteRaw((root_ / "secret.ckpt").string(), "outside");
  fs::create_symlink(root_ / "secret.ckpt", fs::path(store_->directory()) / "link.ckpt");
  fs::create_directory_symlink(root_, fs::path(store_->directory()) / "up");
  EXPECT_TRUE(absl::IsPermissionDenied(
      store_->Read("file://" + store_->directory() + "/link.ckpt").status()));
  EXPECT_TRUE(absl::IsPermissionDenied(
      store_->Read("file://" + store_->directory() + "/up/secret.ckpt").status()));
}

TEST_F(CheckpointStoreTest, MalformedUriIsInvalidArgument) {
  for (const std::string& uri : {std::string("/abs/path.ckpt"), std::string("s3://bucket/x"),
                                 std::string("file://relative/x.ckpt"), std::string("")}) {
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Read(uri).status())) << uri;
  }
}

TEST_F(CheckpointStoreTest, OpenResolvesRelativeAndSymlinkedDirectories) {
  fs::create_directory_symlink(root_ / "checkpoints", root_ / "alias");
  auto aliased = CheckpointStore::Open((root_ / "alias").string());
  ASSERT_TRUE(aliased.ok());
  EXPECT_EQ(aliased->directory(), store_->directory());
  absl::StatusOr<CheckpointInfo> info = store_->Write(3, 4, "shared");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(*aliased->Read(info->uri), "shared");
}

}  // namespace
}  // namespace hippo::workers
