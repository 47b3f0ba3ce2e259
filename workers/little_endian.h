// Little-endian fixed-width integers and doubles: the one codec of the worker side's binary
// formats (the checkpoint file header, the sim, command and torch trainers' states). Every
// format is little-endian whatever the host, so that a file moves between machines.
#ifndef HIPPO_WORKERS_LITTLE_ENDIAN_H_
#define HIPPO_WORKERS_LITTLE_ENDIAN_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace hippo::workers {

// Stores `value` in sizeof(T) bytes at `out`, least significant byte first.
template <typename T>
void StoreLittleEndian(T value, char* out) {
  static_assert(std::is_unsigned_v<T>, "encode signed values through their unsigned type");
  for (size_t i = 0; i < sizeof(T); ++i) {
    out[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  }
}

// Reads the sizeof(T) bytes at `in` that StoreLittleEndian wrote.
template <typename T>
T LoadLittleEndian(const char* in) {
  static_assert(std::is_unsigned_v<T>, "decode signed values through their unsigned type");
  T value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    value |= static_cast<T>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  return value;
}

template <typename T>
void AppendLittleEndian(T value, std::string& out) {
  char bytes[sizeof(T)];
  StoreLittleEndian(value, bytes);
  out.append(bytes, sizeof(T));
}

// A double as the little-endian bytes of its IEEE 754 bits: exact, NaN payloads included.
inline void AppendDouble(double value, std::string& out) {
  AppendLittleEndian(std::bit_cast<uint64_t>(value), out);
}

// A length (u64) then the bytes.
inline void AppendText(std::string_view text, std::string& out) {
  AppendLittleEndian<uint64_t>(text.size(), out);
  out.append(text);
}

// Reads what the Append functions wrote, front to back. Every read checks the bounds and
// returns false (reading nothing) when too few bytes are left.
class LittleEndianReader {
 public:
  explicit LittleEndianReader(std::string_view bytes) : bytes_(bytes) {}

  template <typename T>
  bool Read(T* value) {
    if (bytes_.size() - offset_ < sizeof(T)) return false;
    *value = LoadLittleEndian<T>(bytes_.data() + offset_);
    offset_ += sizeof(T);
    return true;
  }
  bool ReadDouble(double* value) {
    uint64_t bits = 0;
    if (!Read(&bits)) return false;
    *value = std::bit_cast<double>(bits);
    return true;
  }
  bool Bytes(uint64_t size, std::string_view* out) {
    if (bytes_.size() - offset_ < size) return false;
    *out = bytes_.substr(offset_, size);
    offset_ += size;
    return true;
  }
  bool Text(std::string* out) {
    const size_t start = offset_;
    uint64_t size = 0;
    std::string_view view;
    if (!Read(&size) || !Bytes(size, &view)) {
      offset_ = start;
      return false;
    }
    *out = std::string(view);
    return true;
  }

  // The bytes not read yet.
  std::string_view rest() const { return bytes_.substr(offset_); }
  bool done() const { return offset_ == bytes_.size(); }

 private:
  std::string_view bytes_;
  size_t offset_ = 0;
};

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_LITTLE_ENDIAN_H_
