#include "stage_tree/graph_view.h"

#include <algorithm>
#include <iterator>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/graph/adjacency_list.hpp"
#include "boost/graph/graphviz.hpp"

namespace hippo::stage_tree {
namespace {

// Vertex i is node i of the tree; edges go from parent to child.
using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;

Graph BuildGraph(const StageTree& tree) {
  Graph graph(tree.node_count());
  for (NodeId node = 1; node < tree.node_count(); ++node) {
    boost::add_edge(tree.node(node).parent, node, graph);
  }
  return graph;
}

// Every node after all of its descendants, the root last. Node ids do not give that order (a
// split's lower part takes a new id and the upper part's children), so the children are grouped
// by parent (a counting sort of the parent links) and visited breadth first, then reversed.
std::vector<NodeId> BottomUpOrder(const std::vector<NodeView>& views) {
  std::vector<size_t> first(views.size() + 1, 0);  // children of p: [first[p], first[p + 1])
  for (NodeId node = 1; node < views.size(); ++node) ++first[views[node].parent + 1];
  for (size_t i = 1; i < first.size(); ++i) first[i] += first[i - 1];
  std::vector<NodeId> children(views.empty() ? 0 : views.size() - 1);
  std::vector<size_t> next(first.begin(), first.end() - 1);
  for (NodeId node = 1; node < views.size(); ++node) children[next[views[node].parent]++] = node;
  std::vector<NodeId> order;
  order.reserve(views.size());
  order.push_back(kRootNode);
  for (size_t i = 0; i < order.size(); ++i) {
    const NodeId node = order[i];
    order.insert(order.end(), children.begin() + first[node], children.begin() + first[node + 1]);
  }
  std::reverse(order.begin(), order.end());
  return order;
}

}  // namespace

double OwnRemainingSteps(const NodeView& node) {
  if (node.id == kRootNode) return 0;
  if (node.recompute) return static_cast<double>(node.end - node.recompute_from);
  if (node.state == StageState::kDone) return 0;
  return static_cast<double>(node.end - node.start);
}

std::vector<double> RemainingCriticalPath(const StageTree& tree, double seconds_per_step) {
  return RemainingCriticalPath(tree, seconds_per_step, {});
}

std::vector<double> RemainingCriticalPath(const StageTree& tree, double seconds_per_step,
                                          const std::vector<double>& continuation) {
  // Linear, with a few allocations in all: the coordinator calls this as trials are added, and
  // a Boost graph built for it (an allocation per edge) dominated dispatch on large trees.
  std::vector<NodeView> views;
  views.reserve(tree.node_count());
  for (NodeId node = 0; node < tree.node_count(); ++node) views.push_back(tree.node(node));
  std::vector<double> remaining(views.size(), 0.0);
  std::vector<double> below(views.size(), 0.0);  // the longest value among a node's children
  for (NodeId node : BottomUpOrder(views)) {
    const double after =
        std::max(below[node], node < continuation.size() ? continuation[node] : 0.0);
    remaining[node] = OwnRemainingSteps(views[node]) * seconds_per_step + after;
    if (node != kRootNode) {
      const NodeId parent = views[node].parent;
      below[parent] = std::max(below[parent], remaining[node]);
    }
  }
  return remaining;
}

double RemainingCriticalPathBelow(const StageTree& tree, double seconds_per_step, NodeId node,
                                  absl::flat_hash_map<NodeId, double>& memo) {
  if (auto known = memo.find(node); known != memo.end()) return known->second;
  // Post-order without recursion (a tree may be as deep as it has splits): a node is taken off
  // the stack once its children's values are known.
  std::vector<std::pair<NodeId, bool>> stack = {{node, false}};
  while (!stack.empty()) {
    auto& [at, expanded] = stack.back();
    if (memo.contains(at)) {
      stack.pop_back();
      continue;
    }
    const NodeId current = at;
    if (!expanded) {
      expanded = true;
      for (NodeId child : tree.Children(current)) {
        if (!memo.contains(child)) stack.emplace_back(child, false);
      }
      continue;
    }
    stack.pop_back();
    double below = 0;
    for (NodeId child : tree.Children(current)) below = std::max(below, memo.at(child));
    memo[current] = OwnRemainingSteps(tree.node(current)) * seconds_per_step + below;
  }
  return memo.at(node);
}

std::string ToDot(const StageTree& tree) {
  const Graph graph = BuildGraph(tree);
  const std::vector<std::string>& names = tree.parameter_names();
  auto write_vertex = [&](std::ostream& out, Graph::vertex_descriptor vertex) {
    const auto id = static_cast<NodeId>(vertex);
    if (id == kRootNode) {
      out << "[shape=ellipse,label=\"" << tree.family_key() << "\"]";
      return;
    }
    const NodeView node = tree.node(id);
    std::string label =
        absl::StrCat("#", id, " [", node.start, ", ", node.end, ") ", StageStateName(node.state));
    const std::vector<double> values = tree.ValuesAt(id, node.start);
    for (size_t i = 0; i < names.size(); ++i) {
      absl::StrAppend(&label, "\\n", names[i], "=", values[i]);
    }
    out << "[shape=box,label=\"" << label << "\"]";
  };
  std::ostringstream out;
  boost::write_graphviz(out, graph, write_vertex);
  return out.str();
}

}  // namespace hippo::stage_tree
