// The dashboard's stage-tree index (dashboard/server/stage_index.h), brought up to date with
// only the changed stages (Apply), against an index made from every stage at once (Build), on random growing trees
// (new trials forking anywhere, splits that move a stage's children under its new lower part,
// state changes), the changed stages handed over in random order.
#include "dashboard/server/stage_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace hippo::dashboard {
namespace {

namespace v1 = ::hippo::v1;

// A study's stages as the engine would list them, by stage id.
class FakeTree {
 public:
  explicit FakeTree(uint32_t seed) : random_(seed) {}

  // One random change; the ids of the stages it changed go into `changed`.
  void Change(std::set<int64_t>& changed) {
    const int what = static_cast<int>(random_() % 10);
    if (stages_.empty() || what < 5) return NewTrial(changed);
    auto it = stages_.begin();
    std::advance(it, random_() % stages_.size());
    v1::Stage& stage = it->second;
    if (what < 8 && stage.end_step() - stage.start_step() >= 2) return Split(stage, changed);
    stage.set_state(static_cast<v1::StageState>(1 + random_() % 5));
    changed.insert(stage.id());
  }

  const std::map<int64_t, v1::Stage>& stages() const { return stages_; }
  int64_t trials() const { return next_trial_; }

 private:
  int64_t NewStage(int64_t family, int64_t parent_id, int64_t start) {
    const int64_t id = (family << 32) | ++nodes_[family];
    v1::Stage& stage = stages_[id];
    stage.set_id(id);
    stage.set_parent_id(parent_id);
    stage.set_start_step(start);
    stage.set_end_step(start + 1 + static_cast<int64_t>(random_() % 6));
    stage.set_state(v1::STAGE_PENDING);
    return id;
  }

  // A trial forking from the end of a random stage (or from the root of a family), through a
  // new stage: every stage on its path counts it.
  void NewTrial(std::set<int64_t>& changed) {
    const int64_t trial = next_trial_++;
    int64_t parent_id = 0, family = 1 + static_cast<int64_t>(random_() % 3), start = 0;
    if (!stages_.empty() && random_() % 4 != 0) {
      auto it = stages_.begin();
      std::advance(it, random_() % stages_.size());
      parent_id = it->first;
      family = parent_id >> 32;
      start = it->second.end_step();
    }
    const int64_t id = NewStage(family, parent_id, start);
    for (int64_t at = id; at != 0; at = stages_.at(at).parent_id()) {
      stages_.at(at).add_trial_ids(trial);
      changed.insert(at);
    }
  }

  // The stage keeps [start, cut); a new stage below it takes [cut, end), its trials and its
  // children.
  void Split(v1::Stage& stage, std::set<int64_t>& changed) {
    const int64_t cut =
        stage.start_step() + 1 + static_cast<int64_t>(random_() % (stage.end_step() - stage.start_step() - 1));
    const int64_t stage_id = stage.id(), end = stage.end_step();
    const int64_t lower = NewStage(stage_id >> 32, stage_id, cut);
    v1::Stage& split = stages_.at(stage_id);
    v1::Stage& part = stages_.at(lower);
    part.set_end_step(end);
    part.set_state(split.state());
    *part.mutable_trial_ids() = split.trial_ids();
    split.set_end_step(cut);
    for (auto& [id, other] : stages_) {
      if (other.parent_id() == stage_id && id != lower) {
        other.set_parent_id(lower);
        changed.insert(id);
      }
    }
    changed.insert(stage_id);
    changed.insert(lower);
  }

  std::mt19937 random_;
  std::map<int64_t, v1::Stage> stages_;
  std::map<int64_t, int64_t> nodes_;  // family -> its last node
  int64_t next_trial_ = 0;
};

// Both indexes describe the same tree: every stage's fields, parent, children in order,
// descendants and trial count, and every trial's deepest stage, compared by stage id.
void ExpectSameIndex(const StageIndex& got, const StageIndex& want, int64_t trials) {
  ASSERT_EQ(got.stage_count(), want.stage_count());
  auto ids = [](const StageIndex& index, const std::vector<int32_t>& nodes) {
    std::vector<int64_t> out;
    for (int32_t node : nodes) out.push_back(index.StageId(node));
    return out;
  };
  EXPECT_EQ(ids(got, got.children(0)), ids(want, want.children(0)));
  EXPECT_EQ(got.descendants(0), want.descendants(0));
  EXPECT_EQ(got.trial_count(0), want.trial_count(0));
  for (size_t n = 1; n <= want.stage_count(); ++n) {
    const int32_t w = static_cast<int32_t>(n);
    const int64_t id = want.StageId(w);
    SCOPED_TRACE(testing::Message() << "stage " << (id >> 32) << ":" << (id & 0xffffffff));
    const int32_t g = got.NodeOf(id);
    ASSERT_GT(g, 0);
    EXPECT_EQ(got.stage(g).SerializeAsString(), want.stage(w).SerializeAsString());
    EXPECT_EQ(got.StageId(got.parent(g)), want.StageId(want.parent(w)));
    EXPECT_EQ(ids(got, got.children(g)), ids(want, want.children(w)));
    EXPECT_EQ(got.descendants(g), want.descendants(w));
    EXPECT_EQ(got.trial_count(g), want.trial_count(w));
  }
  for (int64_t trial = 0; trial < trials; ++trial) {
    EXPECT_EQ(got.StageId(got.DeepestOf(trial)), want.StageId(want.DeepestOf(trial)))
        << "trial " << trial;
  }
}

void CheckRandomTree(uint32_t seed, int batches) {
  FakeTree tree(seed);
  std::mt19937 random(seed + 100);
  StageIndex incremental;
  for (int batch = 0; batch < batches; ++batch) {
    std::set<int64_t> changed;
    const int changes = 1 + static_cast<int>(random() % 20);
    for (int c = 0; c < changes; ++c) tree.Change(changed);
    std::vector<v1::Stage> update;
    for (int64_t id : changed) update.push_back(tree.stages().at(id));
    std::shuffle(update.begin(), update.end(), random);
    incremental.Apply(std::move(update));

    StageIndex scratch;
    std::vector<v1::Stage> all;
    for (const auto& [id, stage] : tree.stages()) all.push_back(stage);
    scratch.Build(std::move(all));
    SCOPED_TRACE(testing::Message() << "batch " << batch << ", " << tree.stages().size()
                                    << " stages");
    ExpectSameIndex(incremental, scratch, tree.trials());
    if (testing::Test::HasFailure()) return;
  }
}

TEST(StageIndexTest, UpdatedWithChangedStagesEqualsIndexOfEveryStage) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(seed);
    CheckRandomTree(seed, 150);
  }
}

// Children come most stages below first, then by stage id; a trial's deepest stage is the one
// with the largest end step on its path.
TEST(StageIndexTest, OrdersChildrenByStagesBelowAndFindsDeepestStage) {
  auto stage = [](int64_t id, int64_t parent, int64_t start, int64_t end,
                  std::vector<int64_t> trials) {
    v1::Stage out;
    out.set_id(id);
    out.set_parent_id(parent);
    out.set_start_step(start);
    out.set_end_step(end);
    out.set_state(v1::STAGE_DONE);
    for (int64_t trial : trials) out.add_trial_ids(trial);
    return out;
  };
  StageIndex index;
  index.Apply({stage(1, 0, 0, 5, {0}), stage(2, 0, 0, 5, {1, 2}), stage(3, 2, 5, 9, {1}),
               stage(4, 2, 5, 7, {2})});
  ASSERT_EQ(index.children(0).size(), 2u);
  EXPECT_EQ(index.StageId(index.children(0)[0]), 2);  // two stages below it
  EXPECT_EQ(index.StageId(index.children(0)[1]), 1);
  EXPECT_EQ(index.descendants(0), 4);
  EXPECT_EQ(index.trial_count(index.NodeOf(2)), 2);
  EXPECT_EQ(index.StageId(index.DeepestOf(1)), 3);
  EXPECT_EQ(index.StageId(index.DeepestOf(2)), 4);
  // Stage 1 grows two stages below it, ahead of stage 2 on ties by its smaller id.
  index.Apply({stage(5, 1, 5, 6, {3}), stage(6, 5, 6, 8, {3})});
  EXPECT_EQ(index.StageId(index.children(0)[0]), 1);
  EXPECT_EQ(index.descendants(index.NodeOf(1)), 2);
  EXPECT_EQ(index.UnsettledStageIds(), std::vector<int64_t>{});
}

}  // namespace
}  // namespace hippo::dashboard
