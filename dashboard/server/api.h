// The JSON API's reads: each turns a request's query into one dashboard.api message, made from
// the Mirror (never from a whole study at once: pages, bins and samples).
//
// Query parameters (all optional):
//   page_size (default 100, at most 1000), page_token (from the previous page), since (a
//   version: only what changed after it), sort (id, state, objective, reached_step,
//   target_step, param:NAME), desc (true/false), filter (COLUMN:EXPR joined by ';', EXPR
//   being >x, >=x, <x, <=x, =x, a..b for numbers, a substring for state and string
//   parameters), trials (1,2,3: curves to send in full), root/depth/max_children/trial (the
//   stage-tree window).
// Errors are InvalidArgument naming the parameter and the fix, or NotFound for a study.
#ifndef HIPPO_DASHBOARD_SERVER_API_H_
#define HIPPO_DASHBOARD_SERVER_API_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "dashboard/api/dashboard.pb.h"
#include "dashboard/server/mirror.h"

namespace hippo::dashboard {

using Query = std::map<std::string, std::string>;

absl::StatusOr<api::StudiesPage> StudiesPage(const Mirror& mirror, const Query& query);
absl::StatusOr<api::StudyRow> StudyRowOf(const Mirror& mirror, const std::string& study_id);
absl::StatusOr<api::TrialsPage> TrialsPage(const Mirror& mirror, const std::string& study_id,
                                           const Query& query);
// The numbers of the study's trials changed after version `since` (every trial for 0), as
// ranges of consecutive numbers (first, last), ascending: a running study's changes are mostly
// its newest trials, so a few ranges name them all.
absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ChangedTrialRanges(
    const Mirror& mirror, const std::string& study_id, int64_t since);
absl::StatusOr<api::CurvesOverview> Curves(const Mirror& mirror, const std::string& study_id,
                                           const Query& query);
absl::StatusOr<api::History> HistoryOf(const Mirror& mirror, const std::string& study_id);
absl::StatusOr<api::ParameterSample> ParametersOf(const Mirror& mirror,
                                                  const std::string& study_id);
absl::StatusOr<api::Savings> SavingsOf(const Mirror& mirror, const std::string& study_id);
api::Workers WorkersOf(const Mirror& mirror);

// The study's version (its last change), for caching responses; NotFound for an unknown study.
absl::StatusOr<int64_t> StudyVersion(const Mirror& mirror, const std::string& study_id);

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_API_H_
