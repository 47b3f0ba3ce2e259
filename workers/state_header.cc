#include "workers/state_header.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/little_endian.h"

namespace hippo::workers {

void AppendStateHeader(const StateFormat& format, Step step, std::string& out) {
  out.append(format.magic);
  AppendLittleEndian(format.version, out);
  AppendLittleEndian(static_cast<uint64_t>(step), out);
}

absl::StatusOr<Step> ParseStateHeader(const StateFormat& format, std::string_view bytes,
                                      size_t fixed_bytes) {
  if (bytes.size() < std::max(fixed_bytes, kStateHeaderBytes) ||
      bytes.substr(0, format.magic.size()) != format.magic) {
    return absl::DataLossError(absl::StrCat("not a ", format.what, " (bad magic or too short)"));
  }
  const auto version = LoadLittleEndian<uint32_t>(bytes.data() + 4);
  if (version != format.version) {
    return absl::DataLossError(absl::StrCat(format.what, " has format version ", version,
                                            ", this build reads ", format.version));
  }
  const auto step = static_cast<Step>(LoadLittleEndian<uint64_t>(bytes.data() + 8));
  if (step < 0) return absl::DataLossError(absl::StrCat(format.what, " has a negative step"));
  return step;
}

}  // namespace hippo::workers
