// Conversions between the stage tree's types and their protobuf and stored forms.
#include <chrono>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "hippo/engine_impl.h"

namespace hippo::coordinator::engine_internal {

namespace v1 = ::hippo::v1;
using stage_tree::StageState;
using stage_tree::Step;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

v1::StageState StageStateOf(const stage_tree::NodeView& view) {
  const bool trained_idle =
      view.trained && (view.state == StageState::kPending || view.state == StageState::kReady);
  if (trained_idle) return v1::STAGE_DONE;
  switch (view.state) {
    case StageState::kPending:
      return v1::STAGE_PENDING;
    case StageState::kReady:
      return v1::STAGE_READY;
    case StageState::kRunning:
      return v1::STAGE_RUNNING;
    case StageState::kDone:
      return v1::STAGE_DONE;
    case StageState::kFailed:
      return v1::STAGE_FAILED;
  }
  return v1::STAGE_STATE_UNSPECIFIED;
}

void ToProto(const stage_tree::Segment& segment, v1::Segment* out) {
  out->set_start(segment.start);
  out->set_end(segment.end);
  const stage_tree::SegmentFunction& function = segment.function;
  switch (function.kind) {
    case stage_tree::FunctionKind::kConstant:
      out->set_constant(function.first);
      break;
    case stage_tree::FunctionKind::kLinear: {
      v1::LinearFunction* linear = out->mutable_linear();
      linear->set_from(function.first);
      linear->set_to(function.second);
      linear->set_origin(function.origin);
      linear->set_span(function.span);
      break;
    }
    case stage_tree::FunctionKind::kExponential: {
      v1::ExponentialFunction* exponential = out->mutable_exponential();
      exponential->set_initial(function.first);
      exponential->set_rate(function.second);
      exponential->set_origin(function.origin);
      break;
    }
    case stage_tree::FunctionKind::kCosine: {
      v1::CosineFunction* cosine = out->mutable_cosine();
      cosine->set_max(function.first);
      cosine->set_min(function.second);
      cosine->set_origin(function.origin);
      cosine->set_period(function.span);
      break;
    }
  }
}

google::protobuf::Value ToProtoValue(const stage_tree::Value& value) {
  google::protobuf::Value out;
  if (const double* number = std::get_if<double>(&value)) {
    out.set_number_value(*number);
  } else if (const std::string* text = std::get_if<std::string>(&value)) {
    out.set_string_value(*text);
  } else {
    for (Step step : std::get<std::vector<Step>>(value)) {
      out.mutable_list_value()->add_values()->set_number_value(static_cast<double>(step));
    }
  }
  return out;
}

std::string PointToJson(const stage_tree::Point& point) {
  google::protobuf::ListValue list;
  for (const stage_tree::Value& value : point) *list.add_values() = ToProtoValue(value);
  std::string json;
  // A point holds finite numbers, strings and lists of steps, which always convert.
  (void)google::protobuf::util::MessageToJsonString(list, &json);
  return json;
}

absl::StatusOr<stage_tree::Point> PointFromJson(const std::string& json) {
  google::protobuf::ListValue list;
  if (!google::protobuf::util::JsonStringToMessage(json, &list).ok()) {
    return absl::DataLossError(absl::StrCat("stored point is not a JSON list: ", json));
  }
  stage_tree::Point point;
  for (const google::protobuf::Value& value : list.values()) {
    if (value.has_list_value()) {
      std::vector<Step> steps;
      for (const auto& step : value.list_value().values()) {
        steps.push_back(static_cast<Step>(step.number_value()));
      }
      point.emplace_back(std::move(steps));
    } else if (value.kind_case() == google::protobuf::Value::kStringValue) {
      point.emplace_back(value.string_value());
    } else {
      point.emplace_back(value.number_value());
    }
  }
  return point;
}

std::chrono::milliseconds LeaseOf(const EngineOptions& options) {
  return std::chrono::milliseconds(static_cast<int64_t>(options.lease_seconds * 1000));
}

}  // namespace hippo::coordinator::engine_internal
