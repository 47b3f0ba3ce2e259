#include "dashboard/server/tree_window.h"

#include <algorithm>
#include <deque>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "dashboard/server/remake_policy.h"

namespace hippo::dashboard {
namespace {

namespace v1 = ::hippo::v1;

constexpr int kTrialIdsPerStage = 8;
constexpr size_t kMaxNodes = 5000;
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

std::shared_ptr<TreeWindows::Built> TreeWindows::Build(v1::StageTree tree, int64_t version) {
  auto built = std::make_shared<Built>();
  built->version = version;
  built->at = std::chrono::steady_clock::now();
  built->steps = tree.steps();
  const size_t nodes = static_cast<size_t>(tree.stages_size()) + 1;
  built->children.resize(nodes);
  built->parent.assign(nodes, -1);
  built->descendants.assign(nodes, 0);
  built->trial_counts.assign(nodes, 0);
  for (int i = 0; i < tree.stages_size(); ++i) built->node_of_stage[tree.stages(i).id()] = i + 1;
  std::vector<int64_t> deepest_end;
  for (int i = 0; i < tree.stages_size(); ++i) {
    v1::Stage& stage = *tree.mutable_stages(i);
    const int32_t node = i + 1;
    auto parent = built->node_of_stage.find(stage.parent_id());
    built->parent[node] = parent == built->node_of_stage.end() ? 0 : parent->second;
    built->trial_counts[node] = stage.trial_ids_size();
    for (int64_t trial : stage.trial_ids()) {
      if (trial < 0) continue;
      if (static_cast<size_t>(trial) >= built->deepest_of_trial.size()) {
        built->deepest_of_trial.resize(trial + 1, 0);
        deepest_end.resize(trial + 1, -1);
      }
      if (stage.end_step() > deepest_end[trial]) {
        deepest_end[trial] = stage.end_step();
        built->deepest_of_trial[trial] = node;
      }
    }
    if (stage.trial_ids_size() > kTrialIdsPerStage)
      stage.mutable_trial_ids()->Truncate(kTrialIdsPerStage);
  }
  built->trial_counts[0] = static_cast<int64_t>(built->deepest_of_trial.size());
  for (size_t node = 1; node < nodes; ++node) built->children[built->parent[node]].push_back(node);
  // Descendant counts: children have larger indices than their parents only when the engine
  // lists parents first, which a split does not keep; count along a post-order instead.
  std::vector<int32_t> order;
  order.reserve(nodes);
  std::vector<int32_t> stack = {0};
  while (!stack.empty()) {
    const int32_t node = stack.back();
    stack.pop_back();
    order.push_back(node);
    for (int32_t child : built->children[node]) stack.push_back(child);
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    if (*it != 0) built->descendants[built->parent[*it]] += built->descendants[*it] + 1;
  }
  for (std::vector<int32_t>& children : built->children) {
    std::sort(children.begin(), children.end(), [&](int32_t a, int32_t b) {
      if (built->descendants[a] != built->descendants[b]) {
        return built->descendants[a] > built->descendants[b];
      }
      return a < b;
    });
  }
  built->stages.assign(std::make_move_iterator(tree.mutable_stages()->begin()),
                       std::make_move_iterator(tree.mutable_stages()->end()));
  return built;
}

absl::StatusOr<std::shared_ptr<const TreeWindows::Built>> TreeWindows::Get(
    const std::string& study_id, int64_t version) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = built_.find(study_id);
    if (it != built_.end()) {
      // A running study's tree of tens of thousands of stages takes a good part of a second
      // to read and index: it is rebuilt as remake_policy.h allows.
      const Built& built = *it->second;
      const auto wait = RemakeAfter(
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(built.build_time));
      if (built.version == version || std::chrono::steady_clock::now() - built.at < wait) {
        return it->second;
      }
    }
  }
  const auto started = std::chrono::steady_clock::now();
  v1::StageTree tree;
  coordinator::StageQuery query;
  query.limit = kStagesPerRead;
  while (true) {
    absl::StatusOr<coordinator::StagePage> page = engine_->GetStageTreePage(study_id, query);
    if (!page.ok()) return page.status();
    *tree.mutable_steps() = page->tree.steps();
    for (v1::Stage& stage : *page->tree.mutable_stages()) *tree.add_stages() = std::move(stage);
    if (!page->more) break;
    query.after_stage = page->last_stage;
  }
  std::shared_ptr<Built> built = Build(std::move(tree), version);
  built->build_time = std::chrono::steady_clock::now() - started;
  std::lock_guard<std::mutex> lock(mutex_);
  built_[study_id] = built;
  return built;
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
  absl::StatusOr<std::shared_ptr<const Built>> got = Get(study_id, version);
  if (!got.ok()) return got.status();
  const Built& built = **got;
  int32_t root = 0;
  if (*root_id != 0) {
    auto it = built.node_of_stage.find(*root_id);
    if (it == built.node_of_stage.end()) {
      return absl::NotFoundError(
          absl::StrCat("root: stage ", *root_id, " is not in study '", study_id, "''s tree"));
    }
    root = it->second;
  }
  // The trial's path: always shown, so a search can reveal a trial deep in the tree.
  std::set<int32_t> on_path;
  api::TreeWindow window;
  if (*trial >= 0) {
    if (static_cast<size_t>(*trial) >= built.deepest_of_trial.size() ||
        built.deepest_of_trial[*trial] == 0) {
      return absl::NotFoundError(
          absl::StrCat("trial: study '", study_id, "' has no trial ", *trial, " in its tree"));
    }
    std::vector<int64_t> path;
    for (int32_t node = built.deepest_of_trial[*trial]; node > 0; node = built.parent[node]) {
      on_path.insert(node);
      path.push_back(built.stages[node - 1].id());
    }
    window.mutable_highlighted()->Assign(path.rbegin(), path.rend());
  }
  window.set_version(built.version);
  window.set_total_nodes(static_cast<int64_t>(built.stages.size()));
  *window.mutable_steps() = built.steps;
  auto add = [&](int32_t node, bool expanded) {
    api::TreeNode* out = window.add_nodes();
    if (node > 0) {
      *out->mutable_stage() = built.stages[node - 1];
    }
    out->set_trial_count(built.trial_counts[node]);
    out->set_child_count(static_cast<int64_t>(built.children[node].size()));
    out->set_descendant_count(built.descendants[node]);
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
    for (int32_t child : built.children[node]) {
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
