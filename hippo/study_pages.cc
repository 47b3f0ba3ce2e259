#include "hippo/study_pages.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace hippo::coordinator {
namespace {

// Inside the base64: a prefix so that a token of another list (or random text that happens
// to decode) is refused rather than read as an offset.
constexpr absl::string_view kTokenPrefix = "hippo.studies.from:";

}  // namespace

absl::StatusOr<StudyPage> ParseStudyPage(const hippo::v1::ListStudiesRequest& request) {
  StudyPage page;
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size: must not be negative (got ", request.page_size(), "); 0 asks for ",
        kDefaultStudyPageSize, " studies, at most ", kMaxStudyPageSize, " are returned"));
  }
  if (request.page_size() > 0) {
    page.size = std::min(static_cast<size_t>(request.page_size()), kMaxStudyPageSize);
  }
  if (request.page_token().empty()) return page;
  std::string decoded;
  size_t offset = 0;
  if (!absl::WebSafeBase64Unescape(request.page_token(), &decoded) ||
      !absl::StartsWith(decoded, kTokenPrefix) ||
      !absl::SimpleAtoi(absl::string_view(decoded).substr(kTokenPrefix.size()), &offset)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: \"", request.page_token(),
                     "\" is not a token from ListStudies; pass the next_page_token of the "
                     "previous page unchanged, or none for the first page"));
  }
  page.offset = offset;
  return page;
}

std::string StudyPageToken(size_t offset) {
  return absl::WebSafeBase64Escape(absl::StrCat(kTokenPrefix, offset));
}

}  // namespace hippo::coordinator
