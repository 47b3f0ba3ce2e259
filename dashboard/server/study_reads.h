// The reads of a study that the routes answer and the event streams push, by name, as JSON
// through protobuf's JSON mapping (field names as in the .proto), and the cache key of a read.
#ifndef HIPPO_DASHBOARD_SERVER_STUDY_READS_H_
#define HIPPO_DASHBOARD_SERVER_STUDY_READS_H_

#include <google/protobuf/message.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "dashboard/server/api.h"
#include "dashboard/server/mirror.h"
#include "dashboard/server/tree_window.h"

namespace hippo::dashboard {

enum class StudyRead { kRow, kTrials, kCurves, kHistory, kParameters, kSavings, kTree };

// The JSON of a dashboard message (field names as in the .proto, int64 as strings).
std::string ToJson(const google::protobuf::Message& message);

// The read `read` of the study at `version` (its current one) for `query`; the errors of api.h.
absl::StatusOr<std::string> MakeStudyRead(const Mirror& mirror, TreeWindows& trees, StudyRead read,
                                          const std::string& study_id, const Query& query,
                                          int64_t version);

// The cache key of a read: its path and its query (the token left out), so that a read the page
// asks for and the same read pushed by an event stream share one cache entry.
std::string ReadKey(const std::string& path, const Query& query);

// The path of a study's read, as the routes serve it ("/api/v1/studies/ID/curves").
std::string ReadPath(StudyRead read, const std::string& study_id);

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_STUDY_READS_H_
