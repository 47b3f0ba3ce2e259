// External: the study's trials are asked for by a client and trained by it (ask/tell, as in
// Optuna's study.ask() / study.tell()).
//
// StudyService.Ask(count) makes `count` new trials at once; the client trains each one itself
// (Hippo's workers never see them) and reports metrics with StudyService.Tell, ending the trial
// with its final state. The points come from TPE (algorithm.tpe configures it; random for the
// first n_startup_trials), so a client gets model-based suggestions from what it told so far.
// budget.max_trials limits the trials that can be asked (0: no limit; the study then runs until
// it is stopped).
//
// Asks are not part of the saved state: the engine answers an ask in the same batch that
// records it, and cancels whatever it could not answer (ClearAsks), so a restarted coordinator
// never makes trials nobody asked for.
#ifndef HIPPO_SEARCH_ALGOS_EXTERNAL_H_
#define HIPPO_SEARCH_ALGOS_EXTERNAL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "search_algos/search_algorithm.h"

namespace hippo::search_algos {

class ExternalAskTell : public SearchAlgorithm {
 public:
  static absl::StatusOr<std::unique_ptr<SearchAlgorithm>> Create(const AlgorithmContext& context);
  // The spec's algorithm.tpe, which configures the suggestions; see ConfigCheck.
  static proto::Issue CheckConfig(const hippo::v1::Algorithm& config,
                                  const hippo::v1::StudySpec& spec);

  // The client asks for `count` more trials; Suggest makes them (up to the budget).
  void Ask(int64_t count) { asked_ += count; }
  void ClearAsks() { asked_ = 0; }

  void OnMetric(TrialNumber trial, Step step, double objective) override;
  void OnTrialReachedTarget(TrialNumber trial, Step target) override;
  void OnTrialEnded(TrialNumber trial, TrialOutcome outcome) override;
  std::vector<Request> Suggest(int64_t max_new_trials) override;
  bool Finished() const override;
  std::string SaveState() const override;
  absl::Status LoadState(const std::string& state) override;
  bool SupportsStateDelta() const override { return sampler_->SupportsStateDelta(); }
  std::string TakeStateDelta() override { return sampler_->TakeStateDelta(); }
  absl::Status ApplyStateDelta(const std::string& delta) override {
    return sampler_->ApplyStateDelta(delta);
  }

 private:
  explicit ExternalAskTell(std::unique_ptr<SearchAlgorithm> sampler)
      : sampler_(std::move(sampler)) {}

  std::unique_ptr<SearchAlgorithm> sampler_;  // TpeSearch
  int64_t asked_ = 0;
};

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_EXTERNAL_H_
