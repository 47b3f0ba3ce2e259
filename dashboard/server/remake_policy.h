// How often the dashboard makes a changing study's expensive read again (an aggregate, a
// stage-tree index): the coordinator's CPU goes first to dispatching, so a read that took
// `cost` to make is answered as it was for RemakeAfter(cost) while its study changes, which
// bounds each such read to 1/kRemakeBackoff of a core however large the running study grows.
// Cheap reads (under kCheapRead) are made again at every change. A response carries the
// version it was made at, so a page that was told of a newer version asks again later.
#ifndef HIPPO_DASHBOARD_SERVER_REMAKE_POLICY_H_
#define HIPPO_DASHBOARD_SERVER_REMAKE_POLICY_H_

#include <algorithm>
#include <chrono>

namespace hippo::dashboard {

inline constexpr std::chrono::milliseconds kCheapRead{10};
// 200: an expensive read of a large running study is made again at most every 200 times what
// it cost (a 50 ms one every 10 s), each at most half a percent of a core; at 40, four of them
// could take a tenth of a core, as much as the rest of the coordinator's work for 80 trials a
// second. The charts and the tree's index are now kept up to date as trials change
// (study_aggregates.h, stage_index.h) and cost milliseconds at any size, so this holds back
// only what is still expensive: the tree's update of a deep tree whose shared stages carry
// thousands of trials, and the tree read whole again (tree_window.h).
inline constexpr double kRemakeBackoff = 200;
inline constexpr std::chrono::seconds kMaxStale{20};

inline std::chrono::steady_clock::duration RemakeAfter(std::chrono::steady_clock::duration cost) {
  if (cost < kCheapRead) return std::chrono::steady_clock::duration::zero();
  return std::min<std::chrono::steady_clock::duration>(
      kMaxStale,
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(cost * kRemakeBackoff));
}

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_REMAKE_POLICY_H_
