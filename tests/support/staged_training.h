// Straight-versus-staged training for the trainer tests: a trial trained in one stage, and the
// same trial cut into stages handed over through checkpoint bytes or fork copies, must report
// bit-identical metrics (the property that lets the coordinator merge shared prefixes).
#ifndef HIPPO_TESTS_SUPPORT_STAGED_TRAINING_H_
#define HIPPO_TESTS_SUPPORT_STAGED_TRAINING_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "workers/trainer.h"

namespace hippo::test_support {

// A trial as a trainer sees it: full-length segments per hyper-parameter over [0, horizon).
struct TrainerTrial {
  std::string kind;  // the trainer kind, e.g. "sim"
  std::map<std::string, std::vector<stage_tree::Segment>> parameters;
  std::map<std::string, workers::StaticValue> static_parameters;
  workers::Step horizon = 0;
  uint64_t seed = 0;
  std::string config = "{}";
};

// The stage [start, end) of `trial`: its segments clipped to the stage (functions keep their
// absolute origins), a checkpoint at `end`, and a stage id that differs per stage (it must not
// influence training).
workers::StageTask TaskFor(const TrainerTrial& trial, workers::Step start, workers::Step end);

// Metrics per step, in the order the trainer reported them.
using Curve = std::vector<std::pair<workers::Step, workers::Metrics>>;

// Trains [start, end) of `trial` on `state`, appending the reported metrics to `curve`; a test
// failure if the trainer fails or stops elsewhere than at `end`.
void TrainStage(workers::Trainer& trainer, const TrainerTrial& trial, workers::Step start,
                workers::Step end, workers::TrainingState& state, Curve& curve);

using TrainerFactory = std::function<std::unique_ptr<workers::Trainer>()>;

// The whole trial as one stage, from a fresh state.
Curve TrainStraight(const TrainerFactory& make_trainer, const TrainerTrial& trial);

enum class Handover { kCheckpointBytes, kForkCopy };

// The trial cut at `cuts` (increasing, inside (0, horizon)); each stage on a fresh trainer, as if
// another worker trained it, from the previous stage's state serialised and read back (nothing
// else survives) or cloned.
Curve TrainInStages(const TrainerFactory& make_trainer, const TrainerTrial& trial,
                    const std::vector<workers::Step>& cuts, Handover handover);

// Same steps, same metric names, and every value equal to the bit.
void ExpectBitIdentical(const Curve& expected, const Curve& actual, const std::string& what);

}  // namespace hippo::test_support

#endif  // HIPPO_TESTS_SUPPORT_STAGED_TRAINING_H_
