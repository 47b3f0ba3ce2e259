#include "search_algos/external.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "search_algos/tpe.h"

namespace hippo::search_algos {

absl::StatusOr<std::unique_ptr<SearchAlgorithm>> ExternalAskTell::Create(
    const AlgorithmContext& context) {
  AlgorithmContext sampler_context = context;
  // TPE defaults to 100 trials; an ask/tell study without a budget runs until it is stopped.
  if (sampler_context.max_trials == 0) {
    sampler_context.max_trials = std::numeric_limits<int32_t>::max();
  }
  absl::StatusOr<std::unique_ptr<SearchAlgorithm>> sampler = TpeSearch::Create(sampler_context);
  if (!sampler.ok()) return sampler.status();
  return std::unique_ptr<SearchAlgorithm>(new ExternalAskTell(*std::move(sampler)));
}

void ExternalAskTell::OnMetric(TrialNumber trial, Step step, double objective) {
  sampler_->OnMetric(trial, step, objective);
}

void ExternalAskTell::OnTrialReachedTarget(TrialNumber trial, Step target) {
  sampler_->OnTrialReachedTarget(trial, target);
}

void ExternalAskTell::OnTrialEnded(TrialNumber trial, TrialOutcome outcome) {
  sampler_->OnTrialEnded(trial, outcome);
}

std::vector<Request> ExternalAskTell::Suggest(int64_t max_new_trials) {
  const int64_t count = std::min(max_new_trials, asked_);
  if (count <= 0) return {};
  std::vector<Request> requests = sampler_->Suggest(count);
  asked_ -= static_cast<int64_t>(requests.size());
  return requests;
}

bool ExternalAskTell::Finished() const { return sampler_->Finished(); }

std::string ExternalAskTell::SaveState() const { return sampler_->SaveState(); }

absl::Status ExternalAskTell::LoadState(const std::string& state) {
  asked_ = 0;
  return sampler_->LoadState(state);
}

proto::Issue ExternalAskTell::CheckConfig(const hippo::v1::Algorithm& config,
                                          const hippo::v1::StudySpec&) {
  return CheckTpeConfig(config.tpe());
}

}  // namespace hippo::search_algos
