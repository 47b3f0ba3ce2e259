// Whole-tree views of a StageTree: the scheduler's critical-path lengths (one pass over the
// tree's links) and Graphviz export (through Boost.Graph).
#ifndef HIPPO_STAGE_TREE_GRAPH_VIEW_H_
#define HIPPO_STAGE_TREE_GRAPH_VIEW_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "stage_tree/stage_tree.h"

namespace hippo::stage_tree {

// The steps a node still has to train: none when it is done (or the root), its rerun when it
// is a recompute stage, else all of them.
double OwnRemainingSteps(const NodeView& node);

// For every node (indexed by NodeId), the cost of the longest chain of work still to do from
// that node down to a leaf: its own remaining cost plus the largest value among its children.
// A node's own remaining cost is (end - start) * seconds_per_step unless it is done (0); a
// recompute stage costs its rerun. The root's value is the whole tree's critical path.
std::vector<double> RemainingCriticalPath(const StageTree& tree, double seconds_per_step);

// The same, where work may still be added below a node: `continuation[node]` (seconds; nodes
// past the vector's end have none) is the longest chain that may yet follow the node's end, as
// when a trial ending there may later be extended. A node's value is its own remaining cost
// plus the larger of its longest child's value and its continuation.
std::vector<double> RemainingCriticalPath(const StageTree& tree, double seconds_per_step,
                                          const std::vector<double>& continuation);

// The value RemainingCriticalPath(tree, seconds_per_step) has at `node`, from a walk of the
// node's subtree only. `memo` keeps every value computed (by node) for the next calls: a reader
// that lists a tree a page of nodes at a time asks for each page's nodes and walks each subtree
// once in all, where the whole computation would cost the whole tree per page.
double RemainingCriticalPathBelow(const StageTree& tree, double seconds_per_step, NodeId node,
                                  absl::flat_hash_map<NodeId, double>& memo);

// Graphviz DOT text of the tree: one box per stage with its steps, state and the values of
// every hyper-parameter at its first step; edges from parent to child.
std::string ToDot(const StageTree& tree);

}  // namespace hippo::stage_tree

#endif  // HIPPO_STAGE_TREE_GRAPH_VIEW_H_
