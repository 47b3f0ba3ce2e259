// Stage-tree benchmark: 1 000 000 trial insertions of 10 segments each, then 100 000
// extensions; reports time per operation and memory per node.
//
// Trials follow an ASHA-like pattern: one hyper-parameter with 10 constant segments of 10 steps
// each, every segment's value drawn from 8 values with geometric weights (so prefixes are
// shared heavily near the root and rarely near the leaves), targets at rungs 40, 70 or 100;
// extensions promote trials below 100 to the next rung.
//
// Usage: stage_tree_benchmark [--trials N] [--extensions N] [--out FILE]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include "stage_tree/stage_tree.h"

namespace {

using hippo::stage_tree::SegmentFunction;
using hippo::stage_tree::Sequence;
using hippo::stage_tree::Step;
using hippo::stage_tree::TrialSequences;

constexpr int kSegments = 10;
constexpr Step kStepsPerSegment = 10;
constexpr Step kHorizon = kSegments * kStepsPerSegment;

double PeakResidentBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0;
}

double CurrentResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

TrialSequences RandomTrial(std::mt19937_64& random) {
  std::vector<hippo::stage_tree::Segment> segments;
  for (int i = 0; i < kSegments; ++i) {
    // Geometric: value 0 half of the time, 1 a quarter, ... up to 7.
    const int value = std::min(7, std::countr_zero(random() | (1ULL << 7)));
    segments.push_back({i * kStepsPerSegment, (i + 1) * kStepsPerSegment,
                        SegmentFunction::Constant(0.1 / (1 + value + i * 8))});
  }
  return {{"lr", *Sequence::FromSegments(std::move(segments))}};
}

}  // namespace

int main(int argc, char** argv) {
  int64_t trials = 1'000'000;
  int64_t extensions = 100'000;
  std::string out = "stage_tree_benchmark.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--trials"))
      trials = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--extensions"))
      extensions = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--out"))
      out = argv[i + 1];
  }

  const double baseline_rss = CurrentResidentBytes();
  hippo::stage_tree::StageTree tree("benchmark", {"lr"});
  std::mt19937_64 random(42);
  using Clock = std::chrono::steady_clock;
  Clock::duration insert_time{};
  std::vector<hippo::stage_tree::TrialId> below_top;
  for (int64_t i = 0; i < trials; ++i) {
    const TrialSequences sequences = RandomTrial(random);
    const Step target = std::array<Step, 3>{40, 70, 100}[random() % 3];
    const auto start = Clock::now();
    auto id = tree.Insert(sequences, target);
    insert_time += Clock::now() - start;
    if (!id.ok()) {
      std::fprintf(stderr, "insert failed: %s\n", std::string(id.status().message()).c_str());
      return 1;
    }
    if (target < kHorizon) below_top.push_back(*id);
  }
  std::shuffle(below_top.begin(), below_top.end(), random);
  const auto extend_start = Clock::now();
  int64_t extended = 0;
  for (; extended < extensions && extended < static_cast<int64_t>(below_top.size()); ++extended) {
    const auto id = below_top[extended];
    const Step next = tree.Target(id) == 40 ? 70 : 100;
    if (!tree.Extend(id, next).ok()) return 1;
  }
  const Clock::duration extend_time = Clock::now() - extend_start;

  const double insert_seconds = std::chrono::duration<double>(insert_time).count();
  const double extend_seconds = std::chrono::duration<double>(extend_time).count();
  const double nodes = static_cast<double>(tree.node_count());
  const double structure_bytes_per_node = static_cast<double>(tree.MemoryBytes()) / nodes;
  const double rss_bytes_per_node = (PeakResidentBytes() - baseline_rss) / nodes;

  std::printf("%-38s %14lld\n", "trial insertions (10 segments each)", (long long)trials);
  std::printf("%-38s %14lld\n", "extensions", (long long)extended);
  std::printf("%-38s %14.0f\n", "stages (nodes)", nodes);
  std::printf("%-38s %14.3f\n", "insert time total (s)", insert_seconds);
  std::printf("%-38s %14.3f\n", "extend time total (s)", extend_seconds);
  std::printf("%-38s %14.3f\n", "total (s)", insert_seconds + extend_seconds);
  std::printf("%-38s %14.0f\n", "insert (ns/trial)", 1e9 * insert_seconds / trials);
  std::printf("%-38s %14.0f\n", "extend (ns/extension)", 1e9 * extend_seconds / extended);
  std::printf("%-38s %14.1f\n", "tree structures (bytes/node)", structure_bytes_per_node);
  std::printf("%-38s %14.1f\n", "peak RSS growth (bytes/node)", rss_bytes_per_node);
  std::printf("%-38s %14lld\n", "trial_steps", (long long)tree.counts().trial_steps);
  std::printf("%-38s %14lld\n", "unique_steps", (long long)tree.counts().unique_steps);

  std::ofstream file(out);
  file << "{\"trials\": " << trials << ", \"extensions\": " << extended << ", \"nodes\": " << nodes
       << ", \"insert_seconds\": " << insert_seconds << ", \"extend_seconds\": " << extend_seconds
       << ", \"total_seconds\": " << insert_seconds + extend_seconds
       << ", \"structure_bytes_per_node\": " << structure_bytes_per_node
       << ", \"peak_rss_bytes_per_node\": " << rss_bytes_per_node
       << ", \"trial_steps\": " << tree.counts().trial_steps
       << ", \"unique_steps\": " << tree.counts().unique_steps << "}\n";
  std::printf("wrote %s\n", out.c_str());
  return 0;
}
