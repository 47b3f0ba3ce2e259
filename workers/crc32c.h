// CRC-32C (Castagnoli), the checksum of checkpoint files. Software, table-driven (slicing by 8),
// so it behaves the same on every host; about 1 GB/s, far below checkpoint write times.
#ifndef HIPPO_WORKERS_CRC32C_H_
#define HIPPO_WORKERS_CRC32C_H_

#include <cstdint>
#include <string_view>

namespace hippo::workers {

// Extends `crc` (the CRC-32C of some prefix; 0 for none) over `data`.
uint32_t Crc32cExtend(uint32_t crc, std::string_view data);

inline uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data); }

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_CRC32C_H_
