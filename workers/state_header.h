// The header the sim and command trainers' states begin with: a 4-byte magic naming the format,
// the format version (u32) and the state's step (i64), little-endian (little_endian.h).
#ifndef HIPPO_WORKERS_STATE_HEADER_H_
#define HIPPO_WORKERS_STATE_HEADER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "workers/trainer.h"

namespace hippo::workers {

struct StateFormat {
  std::string_view magic;  // 4 bytes
  uint32_t version = 1;
  const char* what = "";  // for errors: "sim trainer state"
};

inline constexpr size_t kStateHeaderBytes = 4 + 4 + 8;

void AppendStateHeader(const StateFormat& format, Step step, std::string& out);

// The step in the header of `bytes`, which must hold at least `fixed_bytes` (the format's fixed
// part, header included). DataLoss naming `format.what`: too short or another magic, another
// version, a negative step.
absl::StatusOr<Step> ParseStateHeader(const StateFormat& format, std::string_view bytes,
                                      size_t fixed_bytes);

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_STATE_HEADER_H_
