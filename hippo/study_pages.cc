#include "hippo/study_pages.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace hippo::coordinator {

absl::StatusOr<size_t> PageSizeOf(int32_t page_size, size_t fallback, size_t max,
                                  absl::string_view items) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must not be negative (got ",
                                                   page_size, "); 0 asks for ", fallback, " ",
                                                   items, ", at most ", max, " are returned"));
  }
  if (page_size == 0) return fallback;
  return std::min(static_cast<size_t>(page_size), max);
}

std::string PageToken(absl::string_view list, const std::vector<int64_t>& fields) {
  // The prefix inside the base64 makes a token of another list (or random text that happens to
  // decode) fail to parse rather than be read as a position.
  return absl::WebSafeBase64Escape(absl::StrCat("hippo.", list, ":", absl::StrJoin(fields, ",")));
}

absl::StatusOr<std::vector<int64_t>> ParsePageToken(absl::string_view list, absl::string_view rpc,
                                                    const std::string& token, size_t count) {
  auto refuse = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token: \"", absl::CHexEscape(token.substr(0, 200)), "\" is not a token from ", rpc,
        " for this request; pass the next_page_token of the previous page "
        "unchanged (with the same other fields), or none for the first page"));
  };
  std::string decoded;
  const std::string prefix = absl::StrCat("hippo.", list, ":");
  if (!absl::WebSafeBase64Unescape(token, &decoded) || !absl::StartsWith(decoded, prefix)) {
    return refuse();
  }
  std::vector<int64_t> fields;
  for (absl::string_view text :
       absl::StrSplit(absl::string_view(decoded).substr(prefix.size()), ',')) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(text, &value)) return refuse();
    fields.push_back(value);
  }
  if (fields.size() != count) return refuse();
  return fields;
}

std::string PageTokenAfterKey(absl::string_view list, absl::string_view key) {
  return absl::WebSafeBase64Escape(absl::StrCat("hippo.", list, ":", key));
}

absl::StatusOr<std::string> ParsePageTokenAfterKey(absl::string_view list, absl::string_view rpc,
                                                   const std::string& token) {
  std::string decoded;
  const std::string prefix = absl::StrCat("hippo.", list, ":");
  if (!absl::WebSafeBase64Unescape(token, &decoded) || !absl::StartsWith(decoded, prefix)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token: \"", absl::CHexEscape(token.substr(0, 200)), "\" is not a token from ", rpc,
        "; pass the next_page_token of the previous page unchanged, or none for "
        "the first page"));
  }
  return decoded.substr(prefix.size());
}

absl::StatusOr<StudyPage> ParseStudyPage(const hippo::v1::ListStudiesRequest& request) {
  StudyPage page;
  absl::StatusOr<size_t> size =
      PageSizeOf(request.page_size(), kDefaultStudyPageSize, kMaxStudyPageSize, "studies");
  if (!size.ok()) return size.status();
  page.size = *size;
  if (request.page_token().empty()) return page;
  absl::StatusOr<std::vector<int64_t>> fields =
      ParsePageToken("studies.from", "ListStudies", request.page_token(), 1);
  if (!fields.ok()) return fields.status();
  if ((*fields)[0] < 0) {
    return absl::InvalidArgumentError(
        "page_token: not a token from ListStudies; pass the next_page_token of the previous "
        "page unchanged, or none for the first page");
  }
  page.offset = static_cast<size_t>((*fields)[0]);
  return page;
}

std::string StudyPageToken(size_t offset) {
  return PageToken("studies.from", {static_cast<int64_t>(offset)});
}

}  // namespace hippo::coordinator
