#include "dashboard/server/study_reads.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"

namespace hippo::dashboard {
namespace {

template <typename Message>
absl::StatusOr<std::string> Json(const absl::StatusOr<Message>& message) {
  if (!message.ok()) return message.status();
  return ToJson(*message);
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // The dashboard's messages hold no Any: printing cannot fail on them.
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return "{}";
  return json;
}

absl::StatusOr<std::string> MakeStudyRead(const Mirror& mirror, TreeWindows& trees, StudyRead read,
                                          const std::string& study_id, const Query& query,
                                          int64_t version) {
  switch (read) {
    case StudyRead::kRow:
      return Json(StudyRowOf(mirror, study_id));
    case StudyRead::kTrials:
      return Json(TrialsPage(mirror, study_id, query));
    case StudyRead::kCurves:
      return Json(Curves(mirror, study_id, query));
    case StudyRead::kHistory:
      return Json(HistoryOf(mirror, study_id));
    case StudyRead::kParameters:
      return Json(ParametersOf(mirror, study_id));
    case StudyRead::kSavings:
      return Json(SavingsOf(mirror, study_id));
    case StudyRead::kTree:
      return Json(trees.Window(study_id, version, query));
  }
  return absl::InternalError("an unknown study read");
}

std::string ReadKey(const std::string& path, const Query& query) {
  std::string key = path;
  for (const auto& [name, value] : query) {
    if (name == "token") continue;
    absl::StrAppend(&key, "&", name, "=", value);
  }
  return key;
}

std::string ReadPath(StudyRead read, const std::string& study_id) {
  static constexpr const char* kSuffix[] = {
      "", "/trials", "/curves", "/history", "/parameters", "/savings", "/tree"};
  return absl::StrCat("/api/v1/studies/", study_id, kSuffix[static_cast<int>(read)]);
}

}  // namespace hippo::dashboard
