// TreeWindows: windows of a study's stage tree for the dashboard (api.h's query parameters
// root, depth, max_children, trial), from the engine's GetStageTreePage (1000 stages a read),
// cached per study and rebuilt while the study changes as remake_policy.h allows.
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
#include "hippo/engine.h"

namespace hippo::dashboard {

class TreeWindows {
 public:
  explicit TreeWindows(coordinator::Engine* engine) : engine_(engine) {}

  // A window of the study's tree: from `root` (a stage id; 0 or absent: the tree's root) down
  // `depth` levels, at most `max_children` children per stage (those with the most stages
  // below first), at most 5 000 stages; the path of `trial` is always included and listed as
  // `highlighted`. `version` is the study's current version (a newer one rebuilds the tree).
  absl::StatusOr<api::TreeWindow> Window(const std::string& study_id, int64_t version,
                                         const Query& query);

 private:
  struct Built {
    int64_t version = 0;
    std::chrono::steady_clock::time_point at;
    std::chrono::duration<double> build_time{0};  // reading the tree and indexing it
    std::vector<hippo::v1::Stage> stages;         // index + 1 is the node (0: the root)
    std::vector<std::vector<int32_t>> children;   // by node, most stages below first
    std::vector<int32_t> parent;                  // by node
    std::vector<int64_t> descendants;             // by node
    std::vector<int64_t> trial_counts;            // by node
    std::map<int64_t, int32_t> node_of_stage;
    std::vector<int32_t> deepest_of_trial;  // by trial number: its last stage (node)
    hippo::v1::StepCounts steps;
  };
  absl::StatusOr<std::shared_ptr<const Built>> Get(const std::string& study_id, int64_t version);
  static std::shared_ptr<Built> Build(hippo::v1::StageTree tree, int64_t version);

  coordinator::Engine* engine_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const Built>> built_;
};

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_TREE_WINDOW_H_
