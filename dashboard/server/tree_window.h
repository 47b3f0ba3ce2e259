// TreeWindows: windows of a study's stage tree for the dashboard (api.h's query parameters
// root, depth, max_children, trial), from an index of the study's stages (stage_index.h) read
// from the engine's GetStageTreePage (1000 stages a read at most, so that the engine's lock is
// held briefly) and kept up to date as the study changes.
//
// The index is read whole once, then brought up to date with the stages that can have changed
// since: those on the paths of the trials the mirror saw change (the engine marks a trial
// changed when a stage on its path does: a split, a stage ending, failing, losing its state)
// and those not settled yet (a stage starts running without any trial changing). A running
// study's update costs its changes, so a window shows a change at the next event however large
// the tree; an update that took more than 10 ms (a deep tree whose shared stages carry
// thousands of trials) is made again as remake_policy.h allows. What changes without any of
// this (the critical-path estimate of settled stages, stages of a family another study shares)
// is caught up by reading the index whole again, at most once per 200 times what that read
// cost and at least 20 s apart.
#ifndef HIPPO_DASHBOARD_SERVER_TREE_WINDOW_H_
#define HIPPO_DASHBOARD_SERVER_TREE_WINDOW_H_

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dashboard/api/dashboard.pb.h"
#include "dashboard/server/api.h"
#include "dashboard/server/mirror.h"
#include "dashboard/server/stage_index.h"
#include "hippo/engine.h"

namespace hippo::dashboard {

class TreeWindows {
 public:
  TreeWindows(coordinator::Engine* engine, const Mirror* mirror)
      : engine_(engine), mirror_(mirror) {}

  // A window of the study's tree: from `root` (a stage id; 0 or absent: the tree's root) down
  // `depth` levels, at most `max_children` children per stage (those with the most stages
  // below first), at most 5 000 stages; the path of `trial` is always included and listed as
  // `highlighted`. `version` is the study's current version (the index follows it).
  absl::StatusOr<api::TreeWindow> Window(const std::string& study_id, int64_t version,
                                         const Query& query);

 private:
  using Clock = std::chrono::steady_clock;
  struct Tree {
    std::mutex mutex;  // held while it is brought up to date and while a window is made
    StageIndex index;
    hippo::v1::StepCounts steps;
    int64_t version = 0;  // the study's version it follows (0: never read)
    Clock::time_point read_at;         // read whole last
    Clock::duration read_cost{0};      // what that took
    Clock::time_point updated_at;      // brought up to date last
    Clock::duration update_cost{0};    // what that took
  };
  // Brings `tree` to the study's `version` as the policy above allows.
  absl::Status Follow(const std::string& study_id, int64_t version, Tree& tree);
  absl::Status ReadWhole(const std::string& study_id, Tree& tree);
  absl::Status ReadChanged(const std::string& study_id, Tree& tree);
  // The stages of `ids` (ascending), a run of consecutive ids a read; the study's step counts
  // into `steps`.
  absl::StatusOr<std::vector<hippo::v1::Stage>> ReadStages(const std::string& study_id,
                                                           const std::vector<int64_t>& ids,
                                                           hippo::v1::StepCounts& steps);

  coordinator::Engine* engine_;
  const Mirror* mirror_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Tree>> trees_;
};

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_TREE_WINDOW_H_
