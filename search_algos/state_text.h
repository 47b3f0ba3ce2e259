// The text form of search-algorithm states (SaveState / LoadState): whitespace-separated
// tokens; doubles in their shortest form that reads back exactly; a point as one number per
// dimension (a choice's index, a range's value).
#ifndef HIPPO_SEARCH_ALGOS_STATE_TEXT_H_
#define HIPPO_SEARCH_ALGOS_STATE_TEXT_H_

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "stage_tree/search_space.h"

namespace hippo::search_algos::state_text {

using stage_tree::Dimension;
using stage_tree::DimensionKind;
using stage_tree::Point;
using stage_tree::SearchSpace;

inline void PutInt(std::string& out, int64_t value) { absl::StrAppend(&out, value, " "); }

inline void PutDouble(std::string& out, double value) {
  char buffer[32];
  const std::to_chars_result written = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, written.ptr);
  out.push_back(' ');
}

inline void PutPoint(std::string& out, const SearchSpace& space, const Point& point) {
  for (size_t d = 0; d < space.dimensions.size(); ++d) {
    const Dimension& dimension = space.dimensions[d];
    if (dimension.kind == DimensionKind::kChoice) {
      const auto found = std::find(dimension.choices.begin(), dimension.choices.end(), point[d]);
      PutInt(out, found - dimension.choices.begin());
    } else {
      PutDouble(out, std::get<double>(point[d]));
    }
  }
}

class TokenReader {
 public:
  explicit TokenReader(std::string_view text) : text_(text) {}

  bool Expect(std::string_view word) { return Token() == word; }
  bool Int(int64_t& value) { return Parse(value); }
  bool Double(double& value) { return Parse(value); }
  bool PointOf(const SearchSpace& space, Point& point) {
    point.clear();
    for (const Dimension& dimension : space.dimensions) {
      if (dimension.kind == DimensionKind::kChoice) {
        int64_t index = 0;
        if (!Int(index) || index < 0 || index >= static_cast<int64_t>(dimension.choices.size())) {
          return false;
        }
        point.push_back(dimension.choices[index]);
      } else {
        double value = 0;
        if (!Double(value)) return false;
        point.emplace_back(value);
      }
    }
    return true;
  }
  bool AtEnd() {
    SkipSpace();
    return position_ == text_.size();
  }

 private:
  template <typename T>
  bool Parse(T& value) {
    const std::string_view token = Token();
    if (token.empty()) return false;
    const std::from_chars_result read =
        std::from_chars(token.data(), token.data() + token.size(), value);
    return read.ec == std::errc() && read.ptr == token.data() + token.size();
  }
  void SkipSpace() {
    while (position_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[position_]))) {
      ++position_;
    }
  }
  std::string_view Token() {
    SkipSpace();
    const size_t start = position_;
    while (position_ < text_.size() &&
           !std::isspace(static_cast<unsigned char>(text_[position_]))) {
      ++position_;
    }
    return text_.substr(start, position_ - start);
  }

  std::string_view text_;
  size_t position_ = 0;
};

}  // namespace hippo::search_algos::state_text

#endif  // HIPPO_SEARCH_ALGOS_STATE_TEXT_H_
