// Spec issues: what is wrong in a study spec, at which field path, and where in the text.
//
// Every check of a spec (the loader's, and each search algorithm's own) reports its first
// problem as a SpecIssue; the loader turns it into the InvalidArgument message users read:
//   w1.yaml:14:20: search_space.parameters[0].float.low: must be below high (got low=1, high=0.5)
#ifndef HIPPO_PROTO_SPEC_ISSUES_H_
#define HIPPO_PROTO_SPEC_ISSUES_H_

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hippo::proto {

// A place in spec text, 0-based (the loader prints both 1-based).
struct TextPosition {
  int line = 0;
  int column = 0;
};

struct SpecIssue {
  // snake_case field names as in hippo.proto, e.g. budget.max_steps,
  // search_space.parameters[2].float.low; empty for a problem of the whole document.
  std::string path;
  // What is wrong and how to fix it: "must be > 0 (got -1); set ..., e.g. ...".
  std::string message;
  // Where the field was written, when the spec came from text.
  std::optional<TextPosition> position;
};

// The first problem a check found, or nullopt when there is none.
using Issue = std::optional<SpecIssue>;

// An issue at `path` with no position yet (the loader locates it; see LocateIssue).
Issue Problem(std::string path, std::string message);

// "parent.child", or "child" at the top.
std::string JoinPath(const std::string& parent, const std::string& child);
// "parent[index]".
std::string IndexPath(const std::string& parent, size_t index);

// "source:line:column: path: message", the form compilers use, so that editors can jump to it
// (line and column only when known, the path only when not empty).
std::string FormatIssue(const std::string& source, const SpecIssue& issue);
// "path: message", for a spec that did not come from text.
std::string FormatIssue(const SpecIssue& issue);

// Points `issue` at the nearest enclosing field of its path that `positions` (field path →
// where it was written) holds: a missing objective.direction points at the objective mapping.
void LocateIssue(const std::map<std::string, TextPosition>& positions, SpecIssue& issue);

// The shortest text that reads back as `value` ("0.1", "1e-05", "120").
std::string FormatNumber(double value);

// `text` as a JSON string literal, quotes included (invalid UTF-8 becomes U+FFFD).
std::string QuoteJson(std::string_view text);

// The name in `names` that `typo` most likely meant (same name in another case, or a close
// edit distance), for "did you mean" hints; nullopt when none is close.
std::optional<std::string> ClosestName(const std::string& typo,
                                       const std::vector<std::string>& names);

// Counts and amounts are never negative: an issue at `path` if `value` is.
Issue CheckNumberNotNegative(double value, const std::string& path);

// "must be a finite number (got nan)" (or inf, -inf): the one wording for a NaN or an infinity,
// whether the spec loader, the coordinator's spec checks or its report checks find it.
std::string NotFiniteMessage(double value);

// `text` at `path` is at most `max_length` bytes and holds no control character (codes 0-31 and
// 127, NUL included): names end up in logs, terminals and database keys. The message quotes
// none of `text`, which may be long or hold escape codes.
Issue CheckText(const std::string& text, const std::string& path, size_t max_length);

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_SPEC_ISSUES_H_
