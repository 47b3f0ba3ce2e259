// Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio, Kégl, "Algorithms for
// Hyper-Parameter Optimization", NeurIPS 2011), as Optuna's (univariate) TPESampler does it.
//
// The first n_startup_trials suggestions are random (SamplePoint: the same points as random
// search). Then the known results are split at the gamma quantile into a good group, modelled
// by l(x), and the rest, modelled by g(x). Each dimension is modelled on its own by a Parzen
// estimator: for numbers a mixture of Gaussians truncated to [low, high] (in log space for log
// dimensions), one kernel per result plus a prior kernel over the whole range, bandwidths from
// the distances to the neighbouring kernels; for choices a histogram smoothed by a uniform
// prior. n_ei_candidates values are drawn from l(x) and the one with the greatest l(x) / g(x)
// (the greatest expected improvement) is kept.
//
// The model's size is bounded, so that a suggestion costs the same after 100 or 100 000 results:
// as Optuna's default gamma, the good group holds at most max_good results (the best ones), and
// g(x) models the newest max_bad of the others (older ones already weigh little: see
// ObservationWeights). The results are kept ranked as they arrive, so a suggestion never sorts
// them all.
#ifndef HIPPO_SEARCH_ALGOS_TPE_H_
#define HIPPO_SEARCH_ALGOS_TPE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "search_algos/search_algorithm.h"

namespace hippo::search_algos {

struct TpeParameters {
  int64_t n_startup_trials = 10;  // results needed before the model is used
  int64_t n_ei_candidates = 24;   // draws from l(x) scored per dimension and suggestion
  double gamma = 0.25;            // fraction of the results in the good group
  double prior_weight = 1.0;      // weight of the prior kernel against one result's
  int64_t max_good = 25;          // at most this many results in the good group (as Optuna)
  int64_t max_bad = 500;          // g(x) models the newest this many of the other results
};

// algorithm.tpe with its defaults filled in; InvalidArgument naming the field if one is out of
// range.
absl::StatusOr<TpeParameters> TpeParametersFromConfig(const hippo::v1::TpeConfig& config);

// The spec checks of algorithm.tpe (for tpe, and for the algorithms that sample with TPE).
proto::Issue CheckTpeConfig(const hippo::v1::TpeConfig& config);

// The sampler on its own, so that other algorithms (ASHA) can suggest points with TPE.
// Deterministic: the index-th suggestion is a pure function of (seed, index, results observed).
class TpeSampler {
 public:
  TpeSampler(const stage_tree::SearchSpace& space, uint64_t seed, bool minimize,
             TpeParameters parameters);

  // Records the result of `trial`, replacing an earlier result of the same trial. A result of
  // a higher `level` ranks above every result of a lower level, whatever the values (as Optuna
  // ranks pruned trials by the step they reached): ASHA passes the rung a trial reached. A
  // point that is not of the space, or a NaN objective, is ignored.
  void Observe(TrialNumber trial, const stage_tree::Point& point, double objective,
               int64_t level = 0);

  // The index-th suggestion: SamplePoint(space, seed, index) while fewer than n_startup_trials
  // results are known; TPE's choice, drawn from SeededGenerator(seed, kStream, index), after.
  stage_tree::Point Sample(uint64_t index) const;

  int64_t observation_count() const { return static_cast<int64_t>(observations_.size()); }

  static constexpr uint64_t kStream = 1;

 private:
  struct Observation {
    std::vector<double> coordinates;  // per dimension: the index of the choice, or the number
    std::vector<bool> used;           // per dimension: whether the point used it (IsActive)
    double objective = 0;
    int64_t level = 0;
  };
  // Orders results best first: higher level, then better objective, then earlier trial.
  struct RankKey {
    int64_t level;
    double objective;
    TrialNumber trial;
  };
  struct RankOrder {
    bool minimize;
    bool operator()(const RankKey& a, const RankKey& b) const {
      if (a.level != b.level) return a.level > b.level;
      if (a.objective != b.objective) {
        return minimize ? a.objective < b.objective : a.objective > b.objective;
      }
      return a.trial < b.trial;
    }
  };

  stage_tree::SearchSpace space_;
  uint64_t seed_;
  bool minimize_;
  TpeParameters parameters_;
  std::map<TrialNumber, Observation> observations_;
  std::set<RankKey, RankOrder> ranked_;  // one key per entry of observations_
};

// A point as one line of text: per dimension the index of its choice, or its number written
// exactly, separated by spaces. For saved states.
std::string EncodePoint(const stage_tree::SearchSpace& space, const stage_tree::Point& point);
// DataLoss if `text` is not a point of `space` as EncodePoint writes it.
absl::StatusOr<stage_tree::Point> DecodePoint(const stage_tree::SearchSpace& space,
                                              absl::string_view text);

// TPE as a study's algorithm: max_trials trials (100 when unset), each trained to max_steps,
// the k-th suggested by TpeSampler::Sample(k) from the results of the trials completed before.
// A trial's result is the last objective reported for it; stopped and failed trials have none.
// Suggest proposes up to max_new_trials at once, so with many parallel slots the first
// suggestions are all random (they see no result yet), as in a parallel Optuna study.
// State: the trials proposed, with their points, states and last objectives (text).
class TpeSearch : public SearchAlgorithm {
 public:
  // InvalidArgument naming the field of algorithm.tpe that is out of range.
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);
  // The spec's algorithm.tpe; see ConfigCheck.
  static proto::Issue CheckConfig(const hippo::v1::Algorithm& config,
                                  const hippo::v1::StudySpec& spec);

  void OnMetric(TrialNumber trial, Step step, double objective) override;
  void OnTrialReachedTarget(TrialNumber, Step) override {}
  void OnTrialEnded(TrialNumber trial, TrialOutcome outcome) override;
  std::vector<Request> Suggest(int64_t max_new_trials) override;
  bool Finished() const override;
  std::string SaveState() const override;
  absl::Status LoadState(const std::string& state) override;
  // A delta holds one line per trial proposed or changed since the last one, as SaveState
  // writes it with the trial's number after "trial".
  bool SupportsStateDelta() const override { return true; }
  std::string TakeStateDelta() override;
  absl::Status ApplyStateDelta(const std::string& delta) override;

 private:
  enum class TrialState { kRunning, kCompleted, kEnded };
  struct Trial {
    stage_tree::Point point;
    TrialState state = TrialState::kRunning;
    std::optional<double> last_objective;
  };

  TpeSearch(const AlgorithmContext& context, TpeParameters parameters, int64_t max_trials);
  // "<running|completed|ended> <last objective or -> <point>", and back (DataLoss naming
  // `line` if it is not one).
  std::string TrialText(const Trial& trial) const;
  absl::StatusOr<Trial> TrialFromText(absl::string_view text, absl::string_view line) const;

  stage_tree::SearchSpace space_;
  TpeParameters parameters_;
  uint64_t seed_;
  bool minimize_;
  Step max_steps_;
  int64_t max_trials_;
  TpeSampler sampler_;
  std::vector<Trial> trials_;      // by trial number
  std::set<TrialNumber> changed_;  // trials proposed or changed since the last delta
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_TPE_H_
