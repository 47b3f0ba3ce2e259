// Study specs: text → (yaml_to_json) JSON typed by the StudySpec descriptor → protobuf's JSON
// mapping → the generic checks (spec_validator) and the algorithm's own (SpecRules).
#include "proto/spec_loader.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "proto/spec_validator.h"
#include "proto/yaml_to_json.h"

namespace hippo::proto {
namespace {

using hippo::v1::StudySpec;

// Specs are a few kilobytes; the limit only keeps a wrong path (a dataset, a checkpoint) from
// being read into memory.
constexpr std::uintmax_t kMaxSpecFileBytes = 16 << 20;
constexpr char kTypeUrlPrefix[] = "type.googleapis.com";

absl::StatusOr<StudySpec> ParseSpecText(std::string_view text, const std::string& source,
                                        SpecFormat format, const SpecRules& rules) {
  absl::StatusOr<SpecJson> json = SpecTextToJson(text, source, format);
  if (!json.ok()) {
    return json.status();
  }
  StudySpec spec;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      json->json, &spec, google::protobuf::util::JsonParseOptions());
  if (!parsed.ok()) {
    // SpecTextToJson checks what the JSON mapping checks, so this is a loader bug.
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": cannot convert to StudySpec: ", parsed.message().ToString()));
  }
  if (Issue issue = CheckStudySpec(spec, rules)) {
    LocateIssue(json->positions, *issue);
    return absl::InvalidArgumentError(FormatIssue(source, *issue));
  }
  return spec;
}

absl::StatusOr<std::string> ReadSpecFile(const std::string& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  // A parent directory we may not search is not the same as a missing file.
  if (error && error != std::errc::no_such_file_or_directory &&
      error != std::errc::not_a_directory) {
    return absl::ErrnoToStatus(error.value(), path);
  }
  if (!std::filesystem::exists(status)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  if (std::filesystem::is_directory(status)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a spec file"));
  }
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (!error && size > kMaxSpecFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", size, " bytes is too large for a ",
                                                   "spec (the limit is ", kMaxSpecFileBytes,
                                                   " bytes)"));
  }
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                             &std::fclose);
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno, path);
  }
  std::string text;
  char buffer[1 << 16];
  while (const size_t read = std::fread(buffer, 1, sizeof(buffer), file.get())) {
    text.append(buffer, read);
    if (text.size() > kMaxSpecFileBytes) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": too large for a spec"));
    }
  }
  if (std::ferror(file.get())) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": read"));
  }
  if (const size_t zero = text.find('\0'); zero != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a text file (a NUL byte at offset ", zero, ")"));
  }
  return text;
}

}  // namespace

absl::StatusOr<StudySpec> ParseStudySpec(std::string_view text, std::string_view source,
                                         const SpecRules& rules) {
  return ParseSpecText(text, std::string(source), SpecFormat::kYaml, rules);
}

absl::StatusOr<StudySpec> LoadStudySpecFile(const std::string& path, const SpecRules& rules) {
  absl::StatusOr<std::string> text = ReadSpecFile(path);
  if (!text.ok()) {
    return text.status();
  }
  const bool is_json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  return ParseSpecText(*text, path, is_json ? SpecFormat::kJson : SpecFormat::kYaml, rules);
}

absl::Status ValidateStudySpec(const StudySpec& spec, const SpecRules& rules) {
  if (Issue issue = CheckStudySpec(spec, rules)) {
    return absl::InvalidArgumentError(FormatIssue(*issue));
  }
  return absl::OkStatus();
}

std::string StudySpecToJson(const StudySpec& spec) {
  // MessageToJsonString writes map entries (labels, Struct fields) in hash order, which differs
  // between runs. Serializing deterministically sorts them by key, and printing JSON from those
  // bytes keeps that order, so equal specs always give equal text.
  std::string binary;
  {
    google::protobuf::io::StringOutputStream stream(&binary);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }
  static google::protobuf::util::TypeResolver* const resolver =
      google::protobuf::util::NewTypeResolverForDescriptorPool(
          kTypeUrlPrefix, google::protobuf::DescriptorPool::generated_pool());
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // Cannot fail: the bytes were just written from a message of this very type.
  (void)google::protobuf::util::BinaryToJsonString(
      resolver, absl::StrCat(kTypeUrlPrefix, "/", StudySpec::descriptor()->full_name()), binary,
      &json, options);
  return json;
}

}  // namespace hippo::proto
