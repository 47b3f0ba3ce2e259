// StageIndex: a study's stage tree as the dashboard's tree windows read it (tree_window.h):
// each stage with its parent, its children (those with the most stages below first, ties by
// stage id), the count of stages below it and of trials through it, and each trial's deepest
// stage. Made from every stage, or brought up to date with only the stages that changed
// (Apply), in time proportional to them and to their depth: a running study's tree grows by
// hundreds of stages a second, and indexing all of them again at each change took the
// dashboard's threads more CPU than everything else they did.
//
// Apply takes stages in any order, new or already known. A stage's parent is linked when known
// (a stage whose parent is not known hangs from the root until its parent comes); the engine
// keeps a stage's id for good (a split keeps the upper part and gives the lower part a new
// stage, the split stage's children moving under it), and never removes one.
#ifndef HIPPO_DASHBOARD_SERVER_STAGE_INDEX_H_
#define HIPPO_DASHBOARD_SERVER_STAGE_INDEX_H_

#include <cstdint>
#include <map>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::dashboard {

class StageIndex {
 public:
  // Trial ids kept per stage (a window shows a few; trial_count has them all).
  static constexpr int kTrialIdsPerStage = 8;

  StageIndex();

  // Made from every stage of the study, at once (a first read, or one read whole again).
  void Build(std::vector<hippo::v1::Stage> stages);
  // Takes in new and changed stages (their trial_ids cut to kTrialIdsPerStage once counted).
  void Apply(std::vector<hippo::v1::Stage> stages);

  // Nodes: 0 is the root (no stage); n > 0 holds stage(n).
  size_t stage_count() const { return stages_.size(); }
  const hippo::v1::Stage& stage(int32_t node) const { return stages_[node - 1]; }
  int64_t StageId(int32_t node) const { return node == 0 ? 0 : stages_[node - 1].id(); }
  int32_t NodeOf(int64_t stage_id) const;  // -1 when not known
  int32_t parent(int32_t node) const { return parent_[node]; }
  const std::vector<int32_t>& children(int32_t node) const { return children_[node]; }
  int64_t descendants(int32_t node) const { return descendants_[node]; }
  // Trials through the stage; for the root, the trial numbers seen (the largest + 1).
  int64_t trial_count(int32_t node) const {
    return node == 0 ? static_cast<int64_t>(deepest_of_trial_.size()) : trial_counts_[node];
  }
  // The stage with the largest end step among those the trial goes through (ties: the lowest
  // stage id); 0 when none.
  int32_t DeepestOf(int64_t trial) const;

  // What an update reads again besides the stages on changed trials' paths: each family's last
  // known stage id (new stages of a family come after it), and the stages not settled yet
  // (pending, ready, running: their state changes without a trial's view changing).
  const std::map<int64_t, int64_t>& family_last_stage() const { return family_last_; }
  std::vector<int64_t> UnsettledStageIds() const;

 private:
  // A node for each new stage (appended), the node of each known one.
  std::vector<int32_t> NodesOf(const std::vector<hippo::v1::Stage>& stages);
  // Takes in the stages' own fields (trial counts, state, trial ids cut) at their nodes, and
  // each of their trials' deepest stage.
  void TakeFields(std::vector<hippo::v1::Stage>& stages, const std::vector<int32_t>& nodes);
  // Whether `node` goes deeper than `than` for a trial through both: a larger end step, ties to
  // the smaller stage id.
  bool Deeper(int32_t node, int32_t than) const;
  // Whether `a` comes before `b` among siblings: more stages below first, then by stage id.
  bool Before(int32_t a, int32_t b) const;
  // Moves `node` among its siblings to its place by Before.
  void Reorder(int32_t node);
  // Whether `node` is `ancestor` or below it.
  bool Below(int32_t node, int32_t ancestor) const;
  void Link(int32_t node, int32_t parent);
  void Unlink(int32_t node);
  // Adds `delta` stages below every ancestor of `from` (`from` included), keeping each in its
  // place among its siblings.
  void AddBelow(int32_t from, int64_t delta);

  std::vector<hippo::v1::Stage> stages_;  // node - 1
  absl::flat_hash_map<int64_t, int32_t> node_of_stage_;
  std::vector<int32_t> parent_;                // by node; -1: not linked (the root's)
  std::vector<std::vector<int32_t>> children_;  // by node, in order (Before)
  std::vector<int32_t> position_;              // by node: its index among its parent's children
  std::vector<int64_t> descendants_;           // by node
  std::vector<int64_t> trial_counts_;          // by node
  std::vector<int32_t> deepest_of_trial_;      // by trial number (0: none)
  std::map<int64_t, int64_t> family_last_;     // family id -> its largest stage id known
  absl::btree_set<int32_t> unsettled_;         // nodes neither done nor failed
};

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_STAGE_INDEX_H_
