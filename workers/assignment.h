// The RPC edge of the worker: hippo.v1.Assign in, plain structs out, and the reverse for the
// reports. Nothing else in workers/ sees protobuf types, apart from the session code.
#ifndef HIPPO_WORKERS_ASSIGNMENT_H_
#define HIPPO_WORKERS_ASSIGNMENT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "hippo/v1/hippo.pb.h"
#include "workers/trainer.h"

namespace hippo::workers {

// An Assign as plain data: the stage to train and where its start state comes from.
struct Assignment {
  StageTask task;
  int64_t parent_stage_id = 0;
  // Empty at the root (then the stage must start at step 0).
  std::string parent_state_uri;
  Step parent_state_step = 0;
  double lease_seconds = 0;
  // Set when the parent state is another family's (Assign.inherit): the task that state was
  // trained under (this task with the parent family's structural values), to load it with
  // before Trainer::Morph reshapes it for `task`.
  std::optional<StageTask> inherited_from;
};

// Converts an Assign, validating it (ValidateStageTask). InvalidArgument naming the field
// otherwise: a segment without a function, a zero span, segments that do not cover the stage.
absl::StatusOr<Assignment> AssignmentFromProto(const hippo::v1::Assign& assign);

// proto Segment -> stage_tree::Segment (through the canonicalising named constructors).
absl::StatusOr<stage_tree::Segment> SegmentFromProto(const hippo::v1::Segment& segment);

// A google.protobuf.Value of a static parameter: numbers, booleans and strings map to
// themselves; null, lists and structs to their JSON text.
StaticValue StaticValueFromProto(const google::protobuf::Value& value);

hippo::v1::WorkerMessage ProgressMessage(int64_t attempt_id, Step step, const Metrics& metrics);

// The attempt a report is about (of the first report in a Reports message); 0 for a hello, a
// heartbeat or an eviction.
int64_t AttemptOf(const hippo::v1::WorkerMessage& message);

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_ASSIGNMENT_H_
