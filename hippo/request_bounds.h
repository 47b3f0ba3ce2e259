// Bounds on the fields of StudyService requests besides a study's spec (proto/spec_validator.h
// bounds that) and a tell's values (proto/report_checks.h): the ids that name a study, page
// tokens, a stop's reason, metric-name filters, trial ids to retry (docs/security.md, "Bounded
// inputs"). Checked by the server before the engine sees a request, and by the dashboard on the
// ids in its URLs: a refusal changes nothing, and no message ever echoes a field of megabytes.
// report_bounds.h bounds what workers send.
#ifndef HIPPO_HIPPO_REQUEST_BOUNDS_H_
#define HIPPO_HIPPO_REQUEST_BOUNDS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "proto/spec_validator.h"

namespace hippo::coordinator {

// A study id (and any other id a request names): as long as a name may be.
inline constexpr size_t kMaxIdLength = proto::kMaxNameLength;  // 256
// A page token holds the list it belongs to, a study's or a worker's id among them, and a
// position, base64-encoded (study_pages.h): a few hundred bytes at most.
inline constexpr size_t kMaxPageTokenLength = 1024;
// StopStudy.reason: kept with the study and shown by every view, as a failure's error is.
inline constexpr size_t kMaxStopReasonBytes = 4096;
// ListTrials.metric_names: each a metric name (at most kMaxNameLength characters).
inline constexpr int kMaxMetricNamesListed = 1024;
// RetryTrials.trial_ids: more are retried by leaving the list empty (every failed trial).
inline constexpr int kMaxRetriedTrialIds = 10'000;

// INVALID_ARGUMENT naming the first field of `request`, a StudyService request, that is out of
// bounds: a string field at most kMaxIdLength characters with no control character (page_token:
// kMaxPageTokenLength; reason: kMaxStopReasonBytes, any characters), metric_names and trial_ids at
// most as many as above. Fields of message type (the spec, a tell's values) are left to their
// own checks. Every string field is bounded, so a field added to a request later is too.
absl::Status CheckRequestBounds(const google::protobuf::Message& request);

// The same bound for one id given outside a request (the dashboard's URLs), naming `field`.
absl::Status CheckId(const std::string& id, const std::string& field);
// A stop's reason, naming `field`.
absl::Status CheckStopReason(const std::string& reason, const std::string& field);

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_REQUEST_BOUNDS_H_
