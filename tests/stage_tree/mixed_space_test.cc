// A realistic mixed space (lr: step decay or cosine, with or without warm-up; momentum:
// constant, a linear ramp, or the same ramp written as one-step pieces; dropout structural)
// compiled and inserted into stage trees: the trees hold exactly the unique steps, counted here
// value by value, and the steps where the compiled schedules change course (what the
// coordinator keeps states at) do not cut the ramp into one-step stages.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "google/protobuf/text_format.h"
#include "stage_tree/search_space.h"
#include "stage_tree/stage_tree.h"

namespace hippo::stage_tree {
namespace {

namespace v1 = ::hippo::v1;

constexpr Step kSteps = 60;
constexpr Step kRamp = 30;

v1::SearchSpace MixedSpace() {
  std::string ramp_pieces = "piecewise { boundaries: [";
  for (Step s = 1; s <= kRamp; ++s) ramp_pieces += std::to_string(s) + (s < kRamp ? ", " : "");
  ramp_pieces += "] values: [";
  const SegmentFunction line = SegmentFunction::Linear(0.85, 0.95, 0, kRamp);
  for (Step s = 0; s < kRamp; ++s) {
    char value[40];
    std::snprintf(value, sizeof(value), "%.17g, ", line.Evaluate(s));
    ramp_pieces += value;
  }
  ramp_pieces += "0.95] }";
  const std::string text = R"pb(
                             parameters {
                               name: "lr"
                               sequence {
                                 one_of {
                                   step_decay {
                                     initial { choices { values: [ 0.1, 0.05 ] } }
                                     gamma { value: 0.1 }
                                     milestones {
                                       choices { steps: 30 }
                                       choices { steps: 45 }
                                     }
                                   }
                                 }
                                 one_of {
                                   cosine {
                                     max { choices { values: [ 0.1, 0.05 ] } }
                                     min { value: 0 }
                                   }
                                 }
                                 warmup_steps { choices { values: [ 0, 5 ] } }
                               }
                             }
                             parameters { name: "momentum"
                                          sequence { one_of { constant { value: 0.9 } }
                                                     one_of {
                                                       linear {
                                                         from { value: 0.85 }
                                                         to { value: 0.95 }
                                                         end { value: 30 }
                                                       }
                                                     }
                                                     one_of {)pb" +
                           ramp_pieces + R"pb(}
                                              }
    }
    parameters {
      name: "dropout"
      structural: true
      categorical {
        values { number_value: 0.1 }
        values { number_value: 0.3 }
      }
    }
  )pb";
  v1::SearchSpace space;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &space));
  return space;
}

struct CompiledTrial {
  std::string family;
  TrialSequences sequences;
};

std::vector<CompiledTrial> CompileGrid() {
  absl::StatusOr<SearchSpace> space = SearchSpaceFromProto(MixedSpace());
  EXPECT_TRUE(space.ok()) << space.status();
  absl::StatusOr<std::vector<Point>> points = GridPoints(*space);
  EXPECT_TRUE(points.ok()) << points.status();
  std::vector<CompiledTrial> trials;
  for (const Point& point : *points) {
    absl::StatusOr<TrialPlan> plan = BuildTrial(*space, point, kSteps);
    EXPECT_TRUE(plan.ok()) << plan.status();
    trials.push_back({FamilyKey("sim", plan->structural), plan->sequences});
  }
  return trials;
}

uint64_t ValueBits(double value) { return value == 0.0 ? 0 : std::bit_cast<uint64_t>(value); }

// Unique steps counted from values alone: trials share step s when they are of one family and
// every hyper-parameter has the same value at every step up to s.
int64_t ValueBasedUniqueSteps(const std::vector<CompiledTrial>& trials) {
  std::map<std::string, int> family_ids;
  std::vector<int64_t> prefix(trials.size());
  for (size_t t = 0; t < trials.size(); ++t) {
    prefix[t] = family_ids.try_emplace(trials[t].family, family_ids.size()).first->second;
  }
  int64_t unique = 0;
  for (Step s = 0; s < kSteps; ++s) {
    std::map<std::pair<int64_t, std::vector<uint64_t>>, int64_t> next_ids;
    for (size_t t = 0; t < trials.size(); ++t) {
      std::vector<uint64_t> values;
      for (const auto& [name, sequence] : trials[t].sequences) {
        values.push_back(ValueBits(sequence.Evaluate(s)));
      }
      const auto key = std::make_pair(prefix[t], std::move(values));
      prefix[t] = next_ids.try_emplace(key, next_ids.size()).first->second;
    }
    unique += static_cast<int64_t>(next_ids.size());
  }
  return unique;
}

TEST(MixedSpaceTest, TreesTrainExactlyTheValueBasedUniqueSteps) {
  const std::vector<CompiledTrial> trials = CompileGrid();
  ASSERT_EQ(trials.size(), 72u);  // lr (4 + 2) * 2 warm-ups, momentum 3, dropout 2
  std::map<std::string, std::unique_ptr<StageTree>> trees;
  for (const CompiledTrial& trial : trials) {
    auto& tree = trees[trial.family];
    if (!tree)
      tree = std::make_unique<StageTree>(trial.family, std::vector<std::string>{"lr", "momentum"});
    ASSERT_TRUE(tree->Insert(trial.sequences, kSteps).ok());
  }
  int64_t executed = 0;
  int64_t unique = 0;
  for (auto& [family, tree] : trees) {
    // Train every stage as the scheduler would: whatever is ready, until nothing is.
    for (std::vector<NodeId> ready = tree->ReadyNodes(); !ready.empty();
         ready = tree->ReadyNodes()) {
      for (NodeId node : ready) {
        ASSERT_TRUE(tree->MarkRunning(node).ok());
        ASSERT_TRUE(tree->MarkDone(node).ok());
      }
    }
    executed += tree->counts().executed_steps;
    unique += tree->counts().unique_steps;
    EXPECT_EQ(tree->counts().recomputed_steps, 0);
  }
  const int64_t expected = ValueBasedUniqueSteps(trials);
  EXPECT_EQ(unique, expected);
  EXPECT_EQ(executed, expected);
  EXPECT_LT(expected, static_cast<int64_t>(trials.size()) * kSteps);
}

TEST(MixedSpaceTest, ScheduleChangesAreWhereValuesChangeCourseNotEveryRampStep) {
  std::set<Step> changes;
  for (const CompiledTrial& trial : CompileGrid()) {
    for (const auto& [name, sequence] : trial.sequences) {
      for (const Segment& segment : sequence.segments()) {
        if (segment.start > 0) changes.insert(segment.start);
      }
    }
  }
  // Warm-up end, the milestones, the ramp's end; the one-step pieces add nothing.
  EXPECT_EQ(changes, (std::set<Step>{5, 30, 45}));
}

}  // namespace
}  // namespace hippo::stage_tree
