// Bounds on what a worker sends the coordinator (docs/security.md, "Bounded inputs"): the
// checks that need nothing but the message, run before the engine takes its lock. What needs the
// engine's state (whose attempt a report is about, which stage) the engine checks itself
// (engine_reports.cc).
#ifndef HIPPO_HIPPO_REPORT_BOUNDS_H_
#define HIPPO_HIPPO_REPORT_BOUNDS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::coordinator {

// The largest message the server takes (its gRPC receive limit). gRPC reads a larger message in
// full before it refuses it, unpaced by the byte budgets (docs/security.md, "Rates"), so the
// limit is kept low: four times the largest study spec (proto/spec_validator.h,
// kMaxStudySpecBytes), so that a spec up to here is refused by the spec checks, naming the
// field that holds most of it, and far above what a worker sends (reports of a few metrics
// each; no message carries a state: checkpoints travel as files).
inline constexpr int kMaxReceiveMessageBytes = 4 << 20;

// The most trials one Ask makes (AskRequest.count): the engine proposes them under its lock, so
// an unbounded count would hold every other study up. It refuses a larger count before any work
// (engine_ask_tell.cc), so the clients' budget charges it no work either (server.cc).
inline constexpr int64_t kMaxAskCount = 1000;

inline constexpr int kMaxReportsPerMessage = 256;  // Reports.messages
inline constexpr int kMaxCachedStatesInHello = 10'000;
inline constexpr int kMaxHelloDevices = 64;
inline constexpr int kMaxHelloTrainers = 16;
inline constexpr size_t kMaxUriLength = 4096;      // CheckpointWritten.uri (PATH_MAX)
inline constexpr size_t kMaxChecksumLength = 256;  // CheckpointWritten.checksum
inline constexpr size_t kMaxErrorLength = 4096;    // StageFinished.error, kept to its end

// INVALID_ARGUMENT naming the first field of `hello` out of bounds: worker_id (required, a
// name as bounded as a study's), host, devices and their names, trainers, cached_states.
absl::Status CheckHello(const hippo::v1::WorkerHello& hello);

// The first bound `report` (one report, not a Reports batch) breaks, as "field: what is wrong":
// progress metrics (proto/report_checks.h), a checkpoint's uri and checksum, a finish's seconds.
// nullopt when none is broken.
std::optional<std::string> ReportProblem(const hippo::v1::WorkerMessage& report);

// Whether `report` is progress whose metrics break no bound but a value's being finite: the
// trial's training diverged, which says nothing about the worker that ran it (its attempt still
// fails, but the worker's health does not count it; engine_retry.cc).
bool ReportsDivergence(const hippo::v1::WorkerMessage& report);

// The attempt `report` is about (progress, checkpoint, finished); 0 for other reports.
int64_t AttemptOfReport(const hippo::v1::WorkerMessage& report);

// `error` cut to its last kMaxErrorLength bytes (a failure's end says most: the exception, the
// last lines of output), at a UTF-8 character boundary.
std::string BoundedError(const std::string& error);

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_REPORT_BOUNDS_H_
