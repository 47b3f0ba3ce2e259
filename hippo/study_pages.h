// Paging of StudyService.ListStudies: page sizes and the opaque page token.
//
// Studies are listed in the order they were created, which never changes (a study is never
// removed), so a page is an offset into that order and the token carries the offset of the
// next page. The token is opaque to clients: they pass next_page_token back unchanged.
#ifndef HIPPO_HIPPO_STUDY_PAGES_H_
#define HIPPO_HIPPO_STUDY_PAGES_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::coordinator {

// page_size 0 asks for the default; larger sizes than the maximum are lowered to it.
inline constexpr size_t kDefaultStudyPageSize = 100;
inline constexpr size_t kMaxStudyPageSize = 1000;

struct StudyPage {
  size_t offset = 0;  // index of the page's first study in creation order
  size_t size = kDefaultStudyPageSize;
};

// The page a request asks for. InvalidArgument naming page_size (negative) or page_token (not
// one this server hands out).
absl::StatusOr<StudyPage> ParseStudyPage(const hippo::v1::ListStudiesRequest& request);

// The token of the page that starts at `offset`.
std::string StudyPageToken(size_t offset);

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_STUDY_PAGES_H_
