#include "proto/spec_issues.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace hippo::proto {
namespace {

// Edit distance, to suggest the name a typo meant.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

Issue Problem(std::string path, std::string message) {
  return SpecIssue{std::move(path), std::move(message), std::nullopt};
}

std::string JoinPath(const std::string& parent, const std::string& child) {
  return parent.empty() ? child : absl::StrCat(parent, ".", child);
}

std::string IndexPath(const std::string& parent, size_t index) {
  return absl::StrCat(parent, "[", index, "]");
}

std::string FormatIssue(const std::string& source, const SpecIssue& issue) {
  std::string where = source;
  if (issue.position.has_value()) {
    absl::StrAppend(&where, ":", issue.position->line + 1, ":", issue.position->column + 1);
  }
  if (issue.path.empty()) {
    return absl::StrCat(where, ": ", issue.message);
  }
  return absl::StrCat(where, ": ", issue.path, ": ", issue.message);
}

std::string FormatIssue(const SpecIssue& issue) {
  if (issue.path.empty()) {
    return issue.message;
  }
  return absl::StrCat(issue.path, ": ", issue.message);
}

void LocateIssue(const std::map<std::string, TextPosition>& positions, SpecIssue& issue) {
  std::string path = issue.path;
  while (!path.empty()) {
    if (auto it = positions.find(path); it != positions.end()) {
      issue.position = it->second;
      return;
    }
    const size_t cut = path.find_last_of(".[");
    path.resize(cut == std::string::npos ? 0 : cut);
  }
}

std::string FormatNumber(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string QuoteJson(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(/*indent=*/-1, /*indent_char=*/' ', /*ensure_ascii=*/false,
            nlohmann::json::error_handler_t::replace);
}

std::optional<std::string> ClosestName(const std::string& typo,
                                       const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (absl::EqualsIgnoreCase(name, typo)) {
      return name;
    }
  }
  std::optional<std::string> best;
  size_t best_distance = std::max<size_t>(2, typo.size() / 4) + 1;
  for (const std::string& name : names) {
    const size_t distance = EditDistance(typo, name);
    if (distance < best_distance) {
      best = name;
      best_distance = distance;
    }
  }
  return best;
}

Issue CheckNumberNotNegative(double value, const std::string& path) {
  if (value >= 0) {
    return std::nullopt;
  }
  return Problem(path, absl::StrCat("must not be negative (got ", FormatNumber(value), ")"));
}

std::string NotFiniteMessage(double value) {
  return absl::StrCat("must be a finite number (got ",
                      std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf"), ")");
}

Issue CheckText(const std::string& text, const std::string& path, size_t max_length) {
  if (text.size() > max_length) {
    return Problem(path, absl::StrCat("too long: ", text.size(), " characters, at most ",
                                      max_length, "; use a shorter one"));
  }
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      return Problem(path, absl::StrCat("holds a control character (code ", static_cast<int>(c),
                                        ") at position ", i, "; use printable characters"));
    }
  }
  return std::nullopt;
}

}  // namespace hippo::proto
