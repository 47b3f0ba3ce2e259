// ChunkedVector (stage_tree/chunked_vector.h): every index reads back what was pushed across the
// blocks of growing size and the full blocks after them; elements never move as it grows; a
// small array takes little memory; resize_down keeps what is below the new size.
#include "stage_tree/chunked_vector.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace hippo::stage_tree {
namespace {

// Small full blocks (64 elements) so that the test crosses several of them quickly.
using Small = ChunkedVector<int64_t, /*kBlockBits=*/6>;

TEST(ChunkedVectorTest, EveryIndexReadsWhatWasPushedAcrossGrowingAndFullBlocks) {
  Small values;
  std::vector<const int64_t*> addresses;
  for (int64_t i = 0; i < 1000; ++i) {
    values.push_back(i * 7 + 1);
    addresses.push_back(&values.back());
    ASSERT_EQ(values.size(), static_cast<size_t>(i + 1));
  }
  for (int64_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(values[i], i * 7 + 1) << "index " << i;
    // Pushing never moved an element: a reference taken when it was pushed still reads it.
    EXPECT_EQ(addresses[i], &values[i]) << "index " << i;
  }
  // Distinct indexes are distinct elements.
  values[15] = -1;
  values[16] = -2;
  values[63] = -3;
  values[64] = -4;
  EXPECT_EQ(values[14], 14 * 7 + 1);
  EXPECT_EQ(values[15], -1);
  EXPECT_EQ(values[16], -2);
  EXPECT_EQ(values[17], 17 * 7 + 1);
  EXPECT_EQ(values[63], -3);
  EXPECT_EQ(values[64], -4);
  EXPECT_EQ(values[65], 65 * 7 + 1);
}

TEST(ChunkedVectorTest, ASmallArrayTakesSmallBlocksAndALargeOneFullBlocks) {
  struct Record {
    char bytes[64];
  };
  ChunkedVector<Record> tiny;  // the stage tree's blocks: 16 384 records
  for (int i = 0; i < 3; ++i) tiny.push_back(Record{});
  EXPECT_LT(tiny.MemoryBytes(), 2048u) << "three records took a block of thousands";

  ChunkedVector<Record> large;
  constexpr size_t kRecords = 3 * ChunkedVector<Record>::kBlockSize + 5;
  for (size_t i = 0; i < kRecords; ++i) large.push_back(Record{});
  // Growing blocks fill the first kBlockSize records; then whole blocks, the last one partly.
  EXPECT_EQ(large.MemoryBytes() / sizeof(Record) / ChunkedVector<Record>::kBlockSize, 4u);
}

TEST(ChunkedVectorTest, ResizeDownKeepsTheElementsBelowAndPushesAfterThem) {
  Small values;
  for (int64_t i = 0; i < 200; ++i) values.push_back(i);
  const size_t memory = values.MemoryBytes();
  values.resize_down(20);
  EXPECT_EQ(values.size(), 20u);
  EXPECT_EQ(values.back(), 19);
  values.push_back(1000);
  EXPECT_EQ(values[20], 1000);
  EXPECT_EQ(values[19], 19);
  EXPECT_EQ(values.MemoryBytes(), memory) << "blocks are kept for reuse";
  values.resize_down(500);  // never grows
  EXPECT_EQ(values.size(), 21u);
}

}  // namespace
}  // namespace hippo::stage_tree
