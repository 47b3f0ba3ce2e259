#include "stage_tree/graph_view.h"

#include <algorithm>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "boost/graph/adjacency_list.hpp"
#include "boost/graph/graphviz.hpp"
#include "boost/graph/topological_sort.hpp"

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

double OwnRemainingSteps(const NodeView& node) {
  if (node.id == kRootNode) return 0;
  if (node.recompute) return static_cast<double>(node.end - node.recompute_from);
  if (node.state == StageState::kDone) return 0;
  return static_cast<double>(node.end - node.start);
}

}  // namespace

std::vector<double> RemainingCriticalPath(const StageTree& tree, double seconds_per_step) {
  return RemainingCriticalPath(tree, seconds_per_step, {});
}

std::vector<double> RemainingCriticalPath(const StageTree& tree, double seconds_per_step,
                                          const std::vector<double>& continuation) {
  const Graph graph = BuildGraph(tree);
  // topological_sort writes vertices in reverse topological order: children before parents.
  std::vector<Graph::vertex_descriptor> order;
  order.reserve(tree.node_count());
  boost::topological_sort(graph, std::back_inserter(order));
  std::vector<double> remaining(tree.node_count(), 0.0);
  for (Graph::vertex_descriptor vertex : order) {
    const auto node = static_cast<NodeId>(vertex);
    double below = node < continuation.size() ? continuation[node] : 0;
    for (auto [edge, end] = boost::out_edges(vertex, graph); edge != end; ++edge) {
      below = std::max(below, remaining[boost::target(*edge, graph)]);
    }
    remaining[node] = OwnRemainingSteps(tree.node(node)) * seconds_per_step + below;
  }
  return remaining;
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
