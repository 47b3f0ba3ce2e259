// ForkCache: the byte budget holds, eviction is least recently used first, evictions are
// reported, and copies handed out are independent of the cached state.
#include "workers/fork_cache.h"

#include <random>

#include "gtest/gtest.h"

namespace hippo::workers {
namespace {

// A state of a chosen size whose contents can be checked.
class FakeState : public TrainingState {
 public:
  FakeState(Step step, int64_t bytes) : step_(step), bytes_(bytes) {}
  Step step() const override { return step_; }
  absl::StatusOr<std::string> Serialize() const override { return std::to_string(step_); }
  std::unique_ptr<TrainingState> Clone() const override {
    return std::make_unique<FakeState>(*this);
  }
  int64_t SizeBytes() const override { return bytes_; }
  void set_step(Step step) { step_ = step; }

 private:
  Step step_;
  int64_t bytes_;
};

std::unique_ptr<TrainingState> State(Step step, int64_t bytes) {
  return std::make_unique<FakeState>(step, bytes);
}

TEST(ForkCacheTest, NeverExceedsItsBudget) {
  std::mt19937_64 random(7);
  for (int64_t budget : {int64_t{1}, int64_t{100}, int64_t{1000}, int64_t{12345}}) {
    ForkCache cache(budget);
    std::set<StateKey> held;
    for (int i = 0; i < 2000; ++i) {
      const StateKey key{static_cast<int64_t>(random() % 50), static_cast<Step>(random() % 4)};
      const int64_t bytes = 1 + static_cast<int64_t>(random() % 400);
      ForkCache::PutResult result = cache.Put(key, State(key.step, bytes));
      EXPECT_LE(cache.used_bytes(), budget) << "budget " << budget << ", put " << i;
      EXPECT_EQ(result.kept, bytes <= budget);
      EXPECT_EQ(cache.Contains(key), result.kept);
      for (const StateKey& evicted : result.evicted) {
        EXPECT_FALSE(cache.Contains(evicted));
        held.erase(evicted);
      }
      if (result.kept) held.insert(key);
      if (random() % 5 == 0) {
        const StateKey other{static_cast<int64_t>(random() % 50), 0};
        EXPECT_EQ(cache.CloneOf(other) != nullptr, held.contains(other));
      }
      // Every key the caller was told about is exactly what the cache holds.
      std::vector<StateKey> keys = cache.Keys();
      EXPECT_EQ(std::set<StateKey>(keys.begin(), keys.end()), held);
    }
  }
}

TEST(ForkCacheTest, EvictsLeastRecentlyUsedFirstAndReportsIt) {
  ForkCache cache(300);
  EXPECT_TRUE(cache.Put({1, 10}, State(10, 100)).evicted.empty());
  EXPECT_TRUE(cache.Put({2, 20}, State(20, 100)).evicted.empty());
  EXPECT_TRUE(cache.Put({3, 30}, State(30, 100)).evicted.empty());
  ASSERT_NE(cache.CloneOf({1, 10}), nullptr);  // 1 becomes the most recently used

  ForkCache::PutResult result = cache.Put({4, 40}, State(40, 150));
  EXPECT_TRUE(result.kept);
  // Needs 150 bytes: evicts 2 (least recent), then 3; 1 was used after them.
  EXPECT_EQ(result.evicted, (std::vector<StateKey>{{2, 20}, {3, 30}}));
  EXPECT_EQ(cache.Keys(), (std::vector<StateKey>{{4, 40}, {1, 10}}));
  EXPECT_EQ(cache.used_bytes(), 250);
}

TEST(ForkCacheTest, ReplacingAKeyIsNotAnEviction) {
  ForkCache cache(200);
  cache.Put({1, 10}, State(10, 100));
  ForkCache::PutResult result = cache.Put({1, 10}, State(10, 150));
  EXPECT_TRUE(result.kept);
  EXPECT_TRUE(result.evicted.empty());
  EXPECT_EQ(cache.used_bytes(), 150);
}

TEST(ForkCacheTest, StateLargerThanTheBudgetIsNotKeptAndEvictsNothing) {
  ForkCache cache(200);
  cache.Put({1, 10}, State(10, 100));
  ForkCache::PutResult result = cache.Put({2, 20}, State(20, 201));
  EXPECT_FALSE(result.kept);
  EXPECT_TRUE(result.evicted.empty());
  EXPECT_TRUE(cache.Contains({1, 10}));
  EXPECT_FALSE(cache.Contains({2, 20}));
}

TEST(ForkCacheTest, ZeroBudgetKeepsNothing) {
  ForkCache cache(0);
  EXPECT_FALSE(cache.Put({1, 1}, State(1, 1)).kept);
  EXPECT_TRUE(cache.Keys().empty());
}

TEST(ForkCacheTest, ClonesAreIndependentOfTheCachedState) {
  ForkCache cache(1000);
  cache.Put({1, 10}, State(10, 100));
  std::unique_ptr<TrainingState> first = cache.CloneOf({1, 10});
  ASSERT_NE(first, nullptr);
  static_cast<FakeState*>(first.get())->set_step(99);
  std::unique_ptr<TrainingState> second = cache.CloneOf({1, 10});
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->step(), 10);
  EXPECT_EQ(cache.CloneOf({1, 11}), nullptr);
}

TEST(ForkCacheTest, EraseFreesTheBytes) {
  ForkCache cache(1000);
  cache.Put({1, 10}, State(10, 100));
  EXPECT_TRUE(cache.Erase({1, 10}));
  EXPECT_FALSE(cache.Erase({1, 10}));
  EXPECT_EQ(cache.used_bytes(), 0);
}

}  // namespace
}  // namespace hippo::workers
