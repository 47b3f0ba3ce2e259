// The trainer kinds a spec may name (trainer.kind). The one list: the spec checks accept these,
// and the workers' trainers take their kind names from here. A worker build may lack one (the
// torch trainer needs LibTorch); a worker then refuses the stages of that kind, naming what it
// has.
#ifndef HIPPO_PROTO_TRAINER_KINDS_H_
#define HIPPO_PROTO_TRAINER_KINDS_H_

#include <array>
#include <string_view>

namespace hippo::proto {

// Runs a program per stage (trainer.command), talking to it over its stdin and stdout.
inline constexpr std::string_view kCommandTrainerKind = "command";
// A simulated trainer: deterministic curves, no real training (tests, benchmarks, planning).
inline constexpr std::string_view kSimTrainerKind = "sim";
// The LibTorch trainer.
inline constexpr std::string_view kTorchTrainerKind = "torch";
// Stages served by Python SDK workers (`hippo.worker.serve`), the user's own training code.
inline constexpr std::string_view kExternalTrainerKind = "external";

// All of them, in the order messages list them.
inline constexpr std::array<std::string_view, 4> kTrainerKinds = {
    kCommandTrainerKind, kSimTrainerKind, kTorchTrainerKind, kExternalTrainerKind};

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_TRAINER_KINDS_H_
