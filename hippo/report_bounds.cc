#include "hippo/report_bounds.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "proto/report_checks.h"
#include "proto/spec_validator.h"

namespace hippo::coordinator {
namespace {

namespace v1 = ::hippo::v1;

absl::Status Refuse(const proto::Issue& issue) {
  return absl::InvalidArgumentError(proto::FormatIssue(*issue));
}

std::string TooLong(size_t length, size_t limit) {
  return absl::StrCat("too long: ", length, " bytes, at most ", limit);
}

}  // namespace

absl::Status CheckHello(const v1::WorkerHello& hello) {
  if (hello.worker_id().empty()) {
    return absl::InvalidArgumentError("hello.worker_id: a worker must name itself");
  }
  if (proto::Issue issue =
          proto::CheckText(hello.worker_id(), "hello.worker_id", proto::kMaxNameLength)) {
    return Refuse(issue);
  }
  if (proto::Issue issue = proto::CheckText(hello.host(), "hello.host", proto::kMaxNameLength)) {
    return Refuse(issue);
  }
  if (hello.devices_size() > kMaxHelloDevices) {
    return absl::InvalidArgumentError(absl::StrCat("hello.devices: ", hello.devices_size(),
                                                   " devices, at most ", kMaxHelloDevices));
  }
  for (int i = 0; i < hello.devices_size(); ++i) {
    if (proto::Issue issue =
            proto::CheckText(hello.devices(i).name(), absl::StrCat("hello.devices[", i, "].name"),
                             proto::kMaxNameLength)) {
      return Refuse(issue);
    }
  }
  if (hello.trainers_size() > kMaxHelloTrainers) {
    return absl::InvalidArgumentError(absl::StrCat("hello.trainers: ", hello.trainers_size(),
                                                   " trainer kinds, at most ", kMaxHelloTrainers));
  }
  for (int i = 0; i < hello.trainers_size(); ++i) {
    if (proto::Issue issue = proto::CheckText(
            hello.trainers(i), absl::StrCat("hello.trainers[", i, "]"), proto::kMaxNameLength)) {
      return Refuse(issue);
    }
  }
  if (hello.cached_states_size() > kMaxCachedStatesInHello) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello.cached_states: ", hello.cached_states_size(), " states, at most ",
                     kMaxCachedStatesInHello, "; announce the most recent ones only"));
  }
  return absl::OkStatus();
}

std::optional<std::string> ReportProblem(const v1::WorkerMessage& report) {
  switch (report.message_case()) {
    case v1::WorkerMessage::kProgress:
      if (proto::Issue issue =
              proto::CheckMetrics(report.progress().metrics(), "progress.metrics")) {
        return proto::FormatIssue(*issue);
      }
      return std::nullopt;
    case v1::WorkerMessage::kCheckpoint: {
      const v1::CheckpointWritten& checkpoint = report.checkpoint();
      if (checkpoint.uri().size() > kMaxUriLength) {
        return absl::StrCat("checkpoint.uri: ", TooLong(checkpoint.uri().size(), kMaxUriLength));
      }
      if (checkpoint.checksum().size() > kMaxChecksumLength) {
        return absl::StrCat("checkpoint.checksum: ",
                            TooLong(checkpoint.checksum().size(), kMaxChecksumLength));
      }
      return std::nullopt;
    }
    case v1::WorkerMessage::kFinished:
      if (!std::isfinite(report.finished().seconds())) {
        return absl::StrCat("finished.seconds: ",
                            proto::NotFiniteMessage(report.finished().seconds()));
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

bool ReportsDivergence(const v1::WorkerMessage& report) {
  if (!report.has_progress()) return false;
  bool any_not_finite = false;
  // The same metrics with finite values: if they pass, a value was the only problem.
  google::protobuf::Map<std::string, double> finite;
  for (const auto& [name, value] : report.progress().metrics()) {
    any_not_finite = any_not_finite || !std::isfinite(value);
    finite[name] = 0.0;
  }
  return any_not_finite && !proto::CheckMetrics(finite, "progress.metrics");
}

int64_t AttemptOfReport(const v1::WorkerMessage& report) {
  switch (report.message_case()) {
    case v1::WorkerMessage::kProgress:
      return report.progress().attempt_id();
    case v1::WorkerMessage::kCheckpoint:
      return report.checkpoint().attempt_id();
    case v1::WorkerMessage::kFinished:
      return report.finished().attempt_id();
    default:
      return 0;
  }
}

std::string BoundedError(const std::string& error) {
  if (error.size() <= kMaxErrorLength) return error;
  size_t start = error.size() - kMaxErrorLength;
  // A UTF-8 continuation byte (10xxxxxx) is not where a character starts.
  while (start < error.size() && (static_cast<unsigned char>(error[start]) & 0xC0) == 0x80) {
    ++start;
  }
  return absl::StrCat("...", error.substr(start));
}

}  // namespace hippo::coordinator
