// The search space's checks: parameter names, domains and sequences. Part of the generic spec
// checks (spec_validator.h); the number domains of a sequence are also what a search algorithm
// looks at to refuse spaces it cannot search (grid: finite domains only).
#ifndef HIPPO_PROTO_SEARCH_SPACE_CHECKS_H_
#define HIPPO_PROTO_SEARCH_SPACE_CHECKS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hippo/v1/hippo.pb.h"
#include "proto/spec_issues.h"

namespace hippo::proto {

// Values that count steps (warm-up length, cosine period) are whole numbers in [min, max].
struct StepBounds {
  std::int64_t min;
  std::int64_t max;
};

// A NumberDomain inside a sequence parameter, with its path and, for step counts, its bounds.
struct SequenceDomain {
  std::string path;  // e.g. search_space.parameters[0].sequence.step_decay.gamma
  const hippo::v1::NumberDomain* domain;
  std::optional<StepBounds> bounds;
};

// Every NumberDomain of `sequence` (at `path`), whatever its shape, and of each one_of
// alternative (at path.one_of[i]); required ones are listed
// even when unset, so that an unset one is reported. Step counts are bounded by `max_steps`.
std::vector<SequenceDomain> SequenceDomains(const hippo::v1::SequenceParameter& sequence,
                                            const std::string& path, std::int64_t max_steps);

// At least one parameter; unique, well-formed names; every domain non-empty and ordered (low <
// high, log ranges positive, choices non-empty and distinct); sequences with a shape, step
// counts whole and inside the budget, milestones and boundaries increasing inside
// (0, max_steps). The first problem, with its path under search_space.
Issue CheckSearchSpace(const hippo::v1::SearchSpace& space, std::int64_t max_steps);

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_SEARCH_SPACE_CHECKS_H_
