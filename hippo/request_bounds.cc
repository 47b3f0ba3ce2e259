#include "hippo/request_bounds.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "proto/spec_issues.h"

namespace hippo::coordinator {
namespace {

using google::protobuf::FieldDescriptor;

absl::Status CheckTextField(const std::string& text, const std::string& field, size_t max_length) {
  if (proto::Issue issue = proto::CheckText(text, field, max_length)) {
    return absl::InvalidArgumentError(proto::FormatIssue(*issue));
  }
  return absl::OkStatus();
}

// The most characters a string field named `name` holds.
size_t MaxLengthOf(const std::string& name) {
  if (name == "page_token") return kMaxPageTokenLength;
  return kMaxIdLength;
}

// The most entries a repeated field named `name` holds.
int MaxEntriesOf(const std::string& name) {
  if (name == "trial_ids") return kMaxRetriedTrialIds;
  return kMaxMetricNamesListed;
}

}  // namespace

absl::Status CheckId(const std::string& id, const std::string& field) {
  return CheckTextField(id, field, kMaxIdLength);
}

absl::Status CheckStopReason(const std::string& reason, const std::string& field) {
  if (reason.size() <= kMaxStopReasonBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": too long: ", reason.size(),
                                                 " bytes, at most ", kMaxStopReasonBytes,
                                                 "; give a shorter reason"));
}

absl::Status CheckRequestBounds(const google::protobuf::Message& request) {
  const google::protobuf::Descriptor* descriptor = request.GetDescriptor();
  const google::protobuf::Reflection* reflection = request.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) continue;  // checked apart
    const std::string& name = field->name();
    if (field->is_repeated()) {
      const int entries = reflection->FieldSize(request, field);
      if (entries > MaxEntriesOf(name)) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": ", entries, " entries, at most ", MaxEntriesOf(name)));
      }
      if (field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) continue;
      std::string scratch;
      for (int k = 0; k < entries; ++k) {
        const std::string& text =
            reflection->GetRepeatedStringReference(request, field, k, &scratch);
        if (absl::Status status =
                CheckTextField(text, absl::StrCat(name, "[", k, "]"), MaxLengthOf(name));
            !status.ok()) {
          return status;
        }
      }
      continue;
    }
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) continue;
    std::string scratch;
    const std::string& text = reflection->GetStringReference(request, field, &scratch);
    absl::Status status = name == "reason" ? CheckStopReason(text, name)
                                           : CheckTextField(text, name, MaxLengthOf(name));
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace hippo::coordinator
