// The checks of what reaches the coordinator as results: the metrics a worker reports
// (Progress) and an ask/tell client tells (TellRequest). They are checked with the same bounds
// and wording as a study spec's own names (spec_validator.h), so that a metric a spec can name
// is one a trainer can report, and nothing stored is empty, unbounded, or not a number.
#ifndef HIPPO_PROTO_REPORT_CHECKS_H_
#define HIPPO_PROTO_REPORT_CHECKS_H_

#include <string>

#include "google/protobuf/map.h"
#include "proto/spec_issues.h"

namespace hippo::proto {

// The most metrics one report may carry (docs/security.md).
inline constexpr int kMaxMetricsPerReport = 256;

// The first problem of `metrics`, a report's metric name → value at `path` ("progress.metrics",
// "values"): more than kMaxMetricsPerReport entries; a name empty, longer than kMaxNameLength
// or holding a control character (at `path`: the name is not quoted, it may be what is wrong);
// a value that is NaN or infinite (at path["name"]). Names are checked in sorted order, so the
// problem reported does not depend on the map's order.
Issue CheckMetrics(const google::protobuf::Map<std::string, double>& metrics,
                   const std::string& path);

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_REPORT_CHECKS_H_
