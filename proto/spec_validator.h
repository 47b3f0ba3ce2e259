// The generic checks of a study spec: everything hippo.proto alone says about a valid spec.
// What a search algorithm needs of its own config (asha.min_resource <= max_resource, grid over
// finite domains, ...) is that algorithm's to check; the caller passes that check in
// SpecRules::check_algorithm (search_algos/spec_checks.h builds it from the algorithm registry,
// which this layer cannot see).
#ifndef HIPPO_PROTO_SPEC_VALIDATOR_H_
#define HIPPO_PROTO_SPEC_VALIDATOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "google/protobuf/message.h"
#include "hippo/v1/hippo.pb.h"
#include "proto/spec_issues.h"

namespace hippo::proto {

// What a spec is checked against beyond hippo.proto: the algorithms there are.
struct SpecRules {
  // The algorithm names a spec may use.
  std::vector<std::string> algorithms;
  // Accept a name not in `algorithms`, without checking its config: a client cannot know which
  // plugins its server has loaded, so it leaves such a name to the server.
  bool accept_unknown_algorithms = false;
  // The named algorithm's own checks, run on a spec that passed the generic ones and names an
  // algorithm in `algorithms`. Empty: none.
  std::function<Issue(const hippo::v1::StudySpec& spec)> check_algorithm;
};

// Bounds on what one spec may ask of the coordinator (docs/security.md lists them).
inline constexpr std::int64_t kMaxBudgetSteps = 1'000'000'000;
inline constexpr size_t kMaxNameLength = 256;  // study, parameter, metric names; label keys
inline constexpr size_t kMaxLabelValueLength = 1024;
inline constexpr int kMaxLabels = 64;
// The spec as a protobuf message, encoded: what CreateStudy carries and the store keeps.
inline constexpr size_t kMaxStudySpecBytes = 1 << 20;

// The first problem of `spec`: an encoding larger than kMaxStudySpecBytes (at the top-level
// field that holds most of it); a number that is not finite (CheckFinite); a family name of other
// characters than letters, digits, '.', '_' and '-'; a name, metric, label key or value too long
// or holding a control character (bounds above); then, in the order a reader goes through
// it: objective (metric and direction set); trainer (kind one of trainer_kinds.h, a command
// exactly when kind is command, step_unit epoch, iteration or empty, no negative counts);
// budget (max_steps > 0, no negative counts); resources (no negative counts, gpus_per_stage at
// most 1); search_space (search_space_checks.h; sequences use max_steps); algorithm (name set
// and known, no negative numbers in its config blocks); then rules.check_algorithm.
Issue CheckStudySpec(const hippo::v1::StudySpec& spec, const SpecRules& rules);

// Every double in `message`, its sub-messages and the numbers of its Struct and Value fields is
// finite. Spec text cannot write a NaN or an infinity (the loader refuses them), but a message
// built in code and sent to CreateStudy can; `path` is the message's own path ("" at the top),
// and a Struct's entries are named by their keys (trainer.config.dropout).
Issue CheckFinite(const google::protobuf::Message& message, const std::string& path);

// Every integer and double set in `message` and its sub-messages (well-known types excepted)
// is >= 0; `path` is the message's own path.
Issue CheckNotNegative(const google::protobuf::Message& message, const std::string& path);

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_SPEC_VALIDATOR_H_
