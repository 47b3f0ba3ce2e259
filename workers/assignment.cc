#include "workers/assignment.h"

#include <google/protobuf/util/json_util.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hippo::workers {
namespace {

std::string ToJson(const google::protobuf::Message& message, std::string_view fallback) {
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json).ok())
    return std::string(fallback);
  return json;
}

}  // namespace

absl::StatusOr<stage_tree::Segment> SegmentFromProto(const hippo::v1::Segment& segment) {
  using stage_tree::SegmentFunction;
  stage_tree::Segment result;
  result.start = segment.start();
  result.end = segment.end();
  switch (segment.function_case()) {
    case hippo::v1::Segment::kConstant:
      result.function = SegmentFunction::Constant(segment.constant());
      break;
    case hippo::v1::Segment::kLinear:
      if (segment.linear().span() == 0) {
        return absl::InvalidArgumentError("linear segment with span 0");
      }
      result.function = SegmentFunction::Linear(segment.linear().from(), segment.linear().to(),
                                                segment.linear().origin(), segment.linear().span());
      break;
    case hippo::v1::Segment::kExponential:
      result.function = SegmentFunction::Exponential(segment.exponential().initial(),
                                                     segment.exponential().rate(),
                                                     segment.exponential().origin());
      break;
    case hippo::v1::Segment::kCosine:
      if (segment.cosine().period() == 0) {
        return absl::InvalidArgumentError("cosine segment with period 0");
      }
      result.function =
          SegmentFunction::Cosine(segment.cosine().max(), segment.cosine().min(),
                                  segment.cosine().origin(), segment.cosine().period());
      break;
    case hippo::v1::Segment::FUNCTION_NOT_SET:
      return absl::InvalidArgumentError(
          absl::StrCat("segment [", segment.start(), ", ", segment.end(), ") has no function"));
  }
  return result;
}

StaticValue StaticValueFromProto(const google::protobuf::Value& value) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      return value.number_value();
    case google::protobuf::Value::kBoolValue:
      return value.bool_value();
    case google::protobuf::Value::kStringValue:
      return value.string_value();
    default:
      return ToJson(value, "null");
  }
}

absl::StatusOr<Assignment> AssignmentFromProto(const hippo::v1::Assign& assign) {
  Assignment assignment;
  StageTask& task = assignment.task;
  task.attempt_id = assign.attempt_id();
  task.stage_id = assign.stage_id();
  task.start_step = assign.start_step();
  task.end_step = assign.end_step();
  for (const hippo::v1::ParameterSegments& parameter : assign.parameters()) {
    if (parameter.name().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("assign ", assign.attempt_id(), ": a parameter has no name"));
    }
    auto [it, inserted] = task.parameters.try_emplace(parameter.name());
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          "assign ", assign.attempt_id(), ": parameter '", parameter.name(), "' appears twice"));
    }
    for (const hippo::v1::Segment& segment : parameter.segments()) {
      absl::StatusOr<stage_tree::Segment> converted = SegmentFromProto(segment);
      if (!converted.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("assign ", assign.attempt_id(),
                                                       ": parameter '", parameter.name(),
                                                       "': ", converted.status().message()));
      }
      it->second.push_back(*converted);
    }
  }
  for (const auto& [name, value] : assign.static_parameters()) {
    task.static_parameters[name] = StaticValueFromProto(value);
  }
  task.trainer_kind = assign.trainer().kind();
  task.trainer_config_json =
      assign.trainer().has_config() ? ToJson(assign.trainer().config(), "{}") : "{}";
  task.command.assign(assign.trainer().command().begin(), assign.trainer().command().end());
  task.seed = assign.trainer().seed();
  task.timeout_seconds = assign.trainer().timeout_seconds();
  task.checkpoint_steps.assign(assign.checkpoint_steps().begin(), assign.checkpoint_steps().end());

  if (assign.has_inherit()) {
    if (assign.parent_stage_id() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "assign ", assign.attempt_id(), ": inherit is set but parent_stage_id names no state"));
    }
    StageTask& parent = assignment.inherited_from.emplace(task);
    parent.static_parameters.clear();
    for (const auto& [name, value] : assign.inherit().parent_static_parameters()) {
      parent.static_parameters[name] = StaticValueFromProto(value);
    }
  }
  assignment.parent_stage_id = assign.parent_stage_id();
  assignment.parent_state_uri = assign.parent_state_uri();
  assignment.parent_state_step = assign.parent_state_step();
  assignment.lease_seconds = assign.lease_seconds();

  if (absl::Status valid = ValidateStageTask(task); !valid.ok()) return valid;
  if (task.trainer_kind.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("assign ", assign.attempt_id(), ": trainer.kind is empty"));
  }
  return assignment;
}

hippo::v1::WorkerMessage ProgressMessage(int64_t attempt_id, Step step, const Metrics& metrics) {
  hippo::v1::WorkerMessage message;
  hippo::v1::Progress* progress = message.mutable_progress();
  progress->set_attempt_id(attempt_id);
  progress->set_step(step);
  for (const auto& [name, value] : metrics) (*progress->mutable_metrics())[name] = value;
  return message;
}

int64_t AttemptOf(const hippo::v1::WorkerMessage& message) {
  switch (message.message_case()) {
    case hippo::v1::WorkerMessage::kProgress:
      return message.progress().attempt_id();
    case hippo::v1::WorkerMessage::kCheckpoint:
      return message.checkpoint().attempt_id();
    case hippo::v1::WorkerMessage::kFinished:
      return message.finished().attempt_id();
    case hippo::v1::WorkerMessage::kReports:
      for (const hippo::v1::WorkerMessage& report : message.reports().messages()) {
        if (const int64_t attempt = AttemptOf(report); attempt != 0) return attempt;
      }
      return 0;
    default:
      return 0;
  }
}

}  // namespace hippo::workers
