// Paging of StudyService's lists (ListStudies, ListTrials, GetStageTree, ListWorkers): page
// sizes and opaque page tokens.
//
// A token is web-safe base64 of "hippo.<list>:<fields>", where <list> names the list (and, for
// a study's lists, the study and the listing's filter) and the fields are the position after
// the previous page. Clients pass next_page_token back unchanged; a token of another list,
// another study or another filter, or text that is no token, is INVALID_ARGUMENT naming
// page_token.
#ifndef HIPPO_HIPPO_STUDY_PAGES_H_
#define HIPPO_HIPPO_STUDY_PAGES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::coordinator {

// page_size 0 asks for the default; larger sizes than the maximum are lowered to it.
inline constexpr size_t kDefaultStudyPageSize = 100;
inline constexpr size_t kMaxStudyPageSize = 1000;
inline constexpr size_t kDefaultTrialPageSize = 100;
inline constexpr size_t kMaxTrialPageSize = 1000;
inline constexpr size_t kDefaultStagePageSize = 1000;
inline constexpr size_t kMaxStagePageSize = 5000;
inline constexpr size_t kDefaultWorkerPageSize = 100;
inline constexpr size_t kMaxWorkerPageSize = 1000;
// A page of studies ends before its serialized size would pass this (a study's spec may be up
// to 1 MiB), so every page fits gRPC's default 4 MiB receive limit and a listing's memory stays
// bounded; a page always holds at least one study.
inline constexpr size_t kMaxStudyPageBytes = 2 << 20;

// The page size a request asks for: `fallback` for 0, at most `max`. InvalidArgument naming
// page_size when negative; `items` names what is listed ("studies").
absl::StatusOr<size_t> PageSizeOf(int32_t page_size, size_t fallback, size_t max,
                                  absl::string_view items);

// The token of the position `fields` in `list`.
std::string PageToken(absl::string_view list, const std::vector<int64_t>& fields);
// The position a token holds: exactly `count` integers, the token being one of `list`.
// InvalidArgument naming page_token, and `rpc` whose next_page_token it must be, otherwise.
absl::StatusOr<std::vector<int64_t>> ParsePageToken(absl::string_view list, absl::string_view rpc,
                                                    const std::string& token, size_t count);

// The same for a list ordered by a text key: the token holds the last key listed.
std::string PageTokenAfterKey(absl::string_view list, absl::string_view key);
absl::StatusOr<std::string> ParsePageTokenAfterKey(absl::string_view list, absl::string_view rpc,
                                                   const std::string& token);

struct StudyPage {
  size_t offset = 0;  // index of the page's first study in creation order
  size_t size = kDefaultStudyPageSize;
};

// Studies are listed in the order they were created, which never changes (a study is never
// removed), so a page is an offset into that order. InvalidArgument naming page_size
// (negative) or page_token (not one this server hands out).
absl::StatusOr<StudyPage> ParseStudyPage(const hippo::v1::ListStudiesRequest& request);

// The token of the page that starts at `offset`.
std::string StudyPageToken(size_t offset);

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_STUDY_PAGES_H_
