#include "proto/report_checks.h"

#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "proto/spec_validator.h"

namespace hippo::proto {

Issue CheckMetrics(const google::protobuf::Map<std::string, double>& metrics,
                   const std::string& path) {
  if (metrics.size() > static_cast<size_t>(kMaxMetricsPerReport)) {
    return Problem(path, absl::StrCat("has ", metrics.size(), " metrics, at most ",
                                      kMaxMetricsPerReport, "; report fewer per step"));
  }
  const std::map<std::string, double> sorted(metrics.begin(), metrics.end());
  for (const auto& [name, value] : sorted) {
    if (name.empty()) {
      return Problem(path, "a metric name is empty; name every metric, e.g. val_accuracy");
    }
    if (Issue issue = CheckText(name, path, kMaxNameLength)) {
      return Problem(path, absl::StrCat("a metric name ", issue->message));
    }
    if (!std::isfinite(value)) {
      return Problem(absl::StrCat(path, "[", QuoteJson(name), "]"), NotFiniteMessage(value));
    }
  }
  return std::nullopt;
}

}  // namespace hippo::proto
