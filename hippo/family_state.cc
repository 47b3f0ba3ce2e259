#include "hippo/family_state.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "stage_tree/graph_view.h"

namespace hippo::coordinator {

using stage_tree::NodeId;
using stage_tree::Step;

FamilyState::FamilyState(int64_t id, const std::string& key,
                         const std::vector<std::string>& parameter_names, Inheritance inheritance)
    : id_(id),
      inheritance_(inheritance),
      tree_(std::make_unique<stage_tree::StageTree>(key, parameter_names, inheritance.step)),
      client_trained_(key.starts_with(kClientTrainedPrefix)) {
  lineage_.push_back(0);  // the root
}

void FamilyState::AppendOp(store::TreeOpKind kind, int64_t a, int64_t b, std::string payload,
                           store::WriteBatch& batch) {
  store::TreeOp op;
  op.family_id = id_;
  op.sequence = next_op_++;
  op.kind = kind;
  op.a = a;
  op.b = b;
  op.payload = std::move(payload);
  batch.tree_ops.push_back(std::move(op));
}

absl::Status FamilyState::ExpectNextOp(int64_t sequence) {
  if (sequence != next_op_) {
    return absl::DataLossError(absl::StrCat("family ", id_, ": operation ", sequence,
                                            " found where ", next_op_, " was expected"));
  }
  ++next_op_;
  return absl::OkStatus();
}

void FamilyState::FollowSplits(const std::vector<stage_tree::SplitResult>& splits) {
  for (auto node = static_cast<NodeId>(lineage_.size()); node < tree_->node_count(); ++node) {
    lineage_.push_back(node);
  }
  for (const stage_tree::SplitResult& split : splits) {
    lineage_[split.lower] = lineage_[split.upper];
  }
  priorities_dirty_ = true;
}

void FamilyState::KeepMetric(const std::string& name, int64_t lineage, int64_t step, double value) {
  step_metrics_[name].try_emplace({lineage, step}, value);
}

const double* FamilyState::EndMetric(NodeId node, const std::string& name) const {
  auto values = step_metrics_.find(name);
  if (values == step_metrics_.end()) return nullptr;
  auto it = values->second.find({lineage_[node], tree_->node(node).end - 1});
  return it == values->second.end() ? nullptr : &it->second;
}

void FamilyState::ForgetMetrics(int64_t lineage) {
  for (auto& [name, values] : step_metrics_) {
    absl::erase_if(values, [lineage](const auto& entry) { return entry.first.first == lineage; });
  }
}

void FamilyState::SetStateUri(NodeId node, int64_t step, std::string uri) {
  state_uri_[{lineage_[node], step}] = std::move(uri);
}

const std::string* FamilyState::StateUri(NodeId node, int64_t step) const {
  auto it = state_uri_.find({lineage_[node], step});
  return it == state_uri_.end() ? nullptr : &it->second;
}

void FamilyState::AddBreakpoints(const stage_tree::TrialSequences& sequences, int64_t target) {
  breakpoints_.insert(target);
  for (const auto& [name, sequence] : sequences) {
    for (const stage_tree::Segment& segment : sequence.segments()) {
      if (segment.start > 0) breakpoints_.insert(segment.start);
    }
  }
}

std::vector<int64_t> FamilyState::BreakpointsBetween(int64_t after, int64_t before) const {
  std::vector<int64_t> steps;
  for (auto step = breakpoints_.upper_bound(after); step != breakpoints_.end() && *step < before;
       ++step) {
    steps.push_back(*step);
  }
  return steps;
}

Step FamilyState::CutStep(NodeId node) const {
  const stage_tree::NodeView view = tree_->node(node);
  if (view.recompute || trial_by_trial_) return 0;
  const auto next = breakpoints_.upper_bound(view.start);
  return next != breakpoints_.end() && *next < view.end ? *next : 0;
}

absl::Status FamilyState::Cut(NodeId node, Step step) {
  const double before = node < priorities_.size() ? priorities_[node] : 0;
  const bool priorities_current = !priorities_dirty_;
  absl::StatusOr<stage_tree::SplitResult> split = tree_->Split(node, step);
  if (!split.ok()) return split.status();
  // A ready stage is cut without further action (SplitAction::kNone): only lineages follow.
  FollowSplits({*split});
  if (priorities_current) {
    // The chains through the node are as long as before: only the new part needs a priority,
    // and the tree need not be walked again.
    const stage_tree::NodeView upper = tree_->node(node);
    priorities_.resize(tree_->node_count(), 0.0);
    priorities_[split->lower] = before - static_cast<double>(upper.end - upper.start);
    priorities_dirty_ = false;
  }
  return absl::OkStatus();
}

int64_t FamilyState::AttemptsOf(NodeId node) const {
  auto it = attempts_of_node_.find(node);
  return it == attempts_of_node_.end() ? 0 : it->second;
}

int64_t FamilyState::BudgetedAttemptsOf(NodeId node) const {
  auto base = budget_base_.find(node);
  return AttemptsOf(node) - (base == budget_base_.end() ? 0 : base->second);
}

void FamilyState::MeasureStepTime(double seconds, int64_t steps) {
  if (steps <= 0) return;
  const double measured = seconds / static_cast<double>(steps);
  seconds_per_step_ = 0.8 * seconds_per_step_ + 0.2 * measured;
}

void FamilyState::SetPriorities(std::vector<double> steps) {
  priorities_ = std::move(steps);
  priorities_dirty_ = false;
}

std::vector<NodeId> FamilyState::AddTrialPriorities(
    stage_tree::TrialId trial, const std::vector<stage_tree::SplitResult>& splits,
    double continuation_steps) {
  std::vector<NodeId> changed;
  constexpr double kNone = -1;  // a node added by the insertion has no value yet
  const size_t known = priorities_.size();
  priorities_.resize(tree_->node_count(), kNone);
  for (const stage_tree::SplitResult& split : splits) {
    const stage_tree::NodeView upper = tree_->node(split.upper);
    if (split.action == stage_tree::SplitAction::kRecomputeScheduled || upper.recompute ||
        tree_->node(split.lower).recompute) {
      priorities_dirty_ = true;
      return {};
    }
    // The node's own steps above the split counted in its value unless it was done; the
    // lower part has the rest of the node and everything that followed it.
    const bool counted = split.action != stage_tree::SplitAction::kNone ||
                         upper.state != stage_tree::StageState::kDone;
    priorities_[split.lower] =
        priorities_[split.upper] - (counted ? static_cast<double>(upper.end - upper.start) : 0);
    changed.push_back(split.lower);
  }
  // From the trial's leaf up: each value is the larger of what it was and the node's own steps
  // plus the value below it on the path; where it does not grow, nothing above it does.
  double below = continuation_steps;
  const std::vector<NodeId> path = tree_->Path(trial);
  bool grew_to_root = true;
  for (auto node = path.rbegin(); node != path.rend(); ++node) {
    const double value = stage_tree::OwnRemainingSteps(tree_->node(*node)) + below;
    if (priorities_[*node] != kNone && priorities_[*node] >= value) {
      grew_to_root = false;
      break;
    }
    priorities_[*node] = value;
    changed.push_back(*node);
    below = value;
  }
  if (grew_to_root) {
    priorities_[stage_tree::kRootNode] = std::max(priorities_[stage_tree::kRootNode], below);
  }
  // Every node the insertion added is a split's lower part or on the path; should the tree
  // ever add another, the whole computation gives it its value.
  for (size_t node = known; node < priorities_.size(); ++node) {
    if (priorities_[node] == kNone) {
      priorities_dirty_ = true;
      return {};
    }
  }
  priorities_dirty_ = false;
  return changed;
}

double FamilyState::Priority(NodeId node) const {
  return node < priorities_.size() ? priorities_[node] * seconds_per_step_ : seconds_per_step_;
}

void FamilyState::SetOwner(stage_tree::TrialId tree_trial, Owner owner) {
  if (owners_.size() <= tree_trial) owners_.resize(tree_trial + 1);
  owners_[tree_trial] = owner;
}

}  // namespace hippo::coordinator
