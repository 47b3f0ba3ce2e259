#include "dashboard/server/tree_window.h"

#include <algorithm>
#include <deque>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "dashboard/server/remake_policy.h"

namespace hippo::dashboard {
namespace {

namespace v1 = ::hippo::v1;

constexpr size_t kMaxNodes = 5000;
// Stages this close by id are read in one run (the ones between come along).
constexpr int64_t kStageGap = 16;
// The stages read from the engine at a time: its lock is held for one page, so that the
// dispatch path waits for this little at most.
constexpr size_t kStagesPerRead = 1000;

absl::StatusOr<int64_t> Param(const Query& query, const std::string& key, int64_t fallback,
                              int64_t low, int64_t high) {
  auto it = query.find(key);
  if (it == query.end() || it->second.empty()) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(it->second, &value) || value < low || value > high) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": expected an integer in [", low, ", ",
                                                   high, "], got '", it->second, "'"));
  }
  return value;
}

}  // namespace

absl::StatusOr<std::vector<v1::Stage>> TreeWindows::ReadStages(const std::string& study_id,
                                                               const std::vector<int64_t>& ids,
                                                               v1::StepCounts& steps) {
  std::vector<v1::Stage> stages;
  coordinator::StageQuery query;
  if (ids.empty()) {
    // No stage, only the step counts (every family's, summed before the first stage).
    query.limit = 0;
    absl::StatusOr<coordinator::StagePage> page = engine_->GetStageTreePage(study_id, query);
    if (!page.ok()) return page.status();
    steps = page->tree.steps();
    return stages;
  }
  for (size_t i = 0; i < ids.size();) {
    // A run of ids of one family close together, read at once (the stages between come along:
    // fresher, and cheaper than another read).
    size_t j = i + 1;
    while (j < ids.size() && ids[j] - ids[j - 1] <= kStageGap &&
           (ids[j] >> 32) == (ids[i] >> 32) &&
           static_cast<size_t>(ids[j] - ids[i]) < kStagesPerRead) {
      ++j;
    }
    query.after_stage = ids[i] - 1;
    query.limit = static_cast<size_t>(ids[j - 1] - ids[i] + 1);
    absl::StatusOr<coordinator::StagePage> page = engine_->GetStageTreePage(study_id, query);
    if (!page.ok()) return page.status();
    steps = page->tree.steps();
    for (v1::Stage& stage : *page->tree.mutable_stages()) stages.push_back(std::move(stage));
    i = j;
  }
  return stages;
}

absl::Status TreeWindows::ReadWhole(const std::string& study_id, Tree& tree) {
  const Clock::time_point started = Clock::now();
  std::vector<v1::Stage> stages;
  coordinator::StageQuery query;
  query.limit = kStagesPerRead;
  v1::StepCounts steps;
  while (true) {
    absl::StatusOr<coordinator::StagePage> page = engine_->GetStageTreePage(study_id, query);
    if (!page.ok()) return page.status();
    steps = page->tree.steps();
    for (v1::Stage& stage : *page->tree.mutable_stages()) stages.push_back(std::move(stage));
    if (!page->more) break;
    query.after_stage = page->last_stage;
  }
  tree.index.Build(std::move(stages));
  tree.steps = std::move(steps);
  tree.read_at = Clock::now();
  tree.read_cost = tree.read_at - started;
  return absl::OkStatus();
}

absl::Status TreeWindows::ReadChanged(const std::string& study_id, Tree& tree) {
  // The stages on the paths of the trials changed since the tree's version, as the mirror has
  // them, and the stages not settled yet.
  std::set<int64_t> wanted;
  size_t changed_trials = 0;
  const absl::Status known = mirror_->ReadStudy(study_id, [&](const StudyData& study) {
    v1::Trial trial;
    for (auto it = study.by_version.upper_bound(tree.version); it != study.by_version.end();
         ++it) {
      ++changed_trials;
      if (!trial.ParseFromString(study.trials[it->second].bytes)) continue;
      wanted.insert(trial.path().begin(), trial.path().end());
    }
  });
  if (!known.ok()) return known;
  for (int64_t id : tree.index.UnsettledStageIds()) wanted.insert(id);
  if (changed_trials > tree.index.stage_count() / 4 + kStagesPerRead) {
    // Most of the tree (a tree followed again after a long idle spell): read it whole.
    return ReadWhole(study_id, tree);
  }
  std::vector<v1::Stage> stages;
  std::vector<int64_t> ids(wanted.begin(), wanted.end());
  // Parents not known yet (a split's new stage above stages read before) come too.
  for (int round = 0; round < 64; ++round) {
    absl::StatusOr<std::vector<v1::Stage>> read = ReadStages(study_id, ids, tree.steps);
    if (!read.ok()) return read.status();
    ids.clear();
    for (v1::Stage& stage : *read) {
      wanted.insert(stage.id());
      stages.push_back(std::move(stage));
    }
    for (const v1::Stage& stage : stages) {
      const int64_t parent = stage.parent_id();
      if (parent != 0 && tree.index.NodeOf(parent) < 0 && !wanted.contains(parent)) {
        ids.push_back(parent);
      }
    }
    if (ids.empty()) break;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  tree.index.Apply(std::move(stages));
  return absl::OkStatus();
}

absl::Status TreeWindows::Follow(const std::string& study_id, int64_t version, Tree& tree) {
  if (tree.version == version) return absl::OkStatus();
  const Clock::time_point now = Clock::now();
  const Clock::duration whole_every = std::max<Clock::duration>(
      kMaxStale, std::chrono::duration_cast<Clock::duration>(tree.read_cost * kRemakeBackoff));
  absl::Status status;
  if (tree.version == 0 || now - tree.read_at >= whole_every) {
    status = ReadWhole(study_id, tree);
  } else if (now - tree.updated_at < RemakeAfter(tree.update_cost)) {
    return absl::OkStatus();  // an expensive update: answered as it is for now
  } else {
    status = ReadChanged(study_id, tree);
  }
  if (!status.ok()) {
    tree.version = 0;  // read whole next time
    return status;
  }
  tree.version = version;
  tree.updated_at = Clock::now();
  tree.update_cost = tree.updated_at - now;
  return absl::OkStatus();
}

absl::StatusOr<api::TreeWindow> TreeWindows::Window(const std::string& study_id, int64_t version,
                                                    const Query& query) {
  absl::StatusOr<int64_t> root_id = Param(query, "root", 0, 0, INT64_MAX);
  absl::StatusOr<int64_t> depth = Param(query, "depth", 4, 1, 64);
  absl::StatusOr<int64_t> max_children = Param(query, "max_children", 30, 1, 1000);
  absl::StatusOr<int64_t> trial = Param(query, "trial", -1, -1, INT64_MAX);
  for (const absl::StatusOr<int64_t>* param : {&root_id, &depth, &max_children, &trial}) {
    if (!param->ok()) return param->status();
  }
  std::shared_ptr<Tree> tree;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::shared_ptr<Tree>& slot = trees_[study_id];
    if (slot == nullptr) slot = std::make_shared<Tree>();
    tree = slot;
  }
  std::lock_guard<std::mutex> lock(tree->mutex);
  if (absl::Status followed = Follow(study_id, version, *tree); !followed.ok()) return followed;
  const StageIndex& index = tree->index;
  int32_t root = 0;
  if (*root_id != 0) {
    root = index.NodeOf(*root_id);
    if (root < 0) {
      return absl::NotFoundError(
          absl::StrCat("root: stage ", *root_id, " is not in study '", study_id, "''s tree"));
    }
  }
  // The trial's path: always shown, so a search can reveal a trial deep in the tree.
  std::set<int32_t> on_path;
  api::TreeWindow window;
  if (*trial >= 0) {
    if (index.DeepestOf(*trial) == 0) {
      return absl::NotFoundError(
          absl::StrCat("trial: study '", study_id, "' has no trial ", *trial, " in its tree"));
    }
    std::vector<int64_t> path;
    for (int32_t node = index.DeepestOf(*trial); node > 0; node = index.parent(node)) {
      on_path.insert(node);
      path.push_back(index.StageId(node));
    }
    window.mutable_highlighted()->Assign(path.rbegin(), path.rend());
  }
  window.set_version(tree->version);
  window.set_total_nodes(static_cast<int64_t>(index.stage_count()));
  *window.mutable_steps() = tree->steps;
  auto add = [&](int32_t node, bool expanded) {
    api::TreeNode* out = window.add_nodes();
    if (node > 0) {
      *out->mutable_stage() = index.stage(node);
    }
    out->set_trial_count(index.trial_count(node));
    out->set_child_count(static_cast<int64_t>(index.children(node).size()));
    out->set_descendant_count(index.descendants(node));
    out->set_children_included(expanded);
  };
  // Breadth first from the root, so parents come before children and a cut by kMaxNodes keeps
  // the upper levels.
  std::deque<std::pair<int32_t, int64_t>> queue = {{root, 0}};
  size_t emitted = 0;
  while (!queue.empty()) {
    const auto [node, level] = queue.front();
    queue.pop_front();
    std::vector<int32_t> shown;
    const bool room = emitted + queue.size() < kMaxNodes;
    for (int32_t child : index.children(node)) {
      const bool wanted =
          level + 1 <= *depth && room && static_cast<int64_t>(shown.size()) < *max_children;
      if (wanted || on_path.count(child) > 0) shown.push_back(child);
    }
    add(node, !shown.empty());
    ++emitted;
    for (int32_t child : shown) queue.emplace_back(child, level + 1);
  }
  return window;
}

}  // namespace hippo::dashboard
