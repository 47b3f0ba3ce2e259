// An example search-algorithm plugin: quasi-random search along the Halton sequence, which
// covers a space more evenly than random draws. Load it with
//   hippo server --plugin build/examples/plugins/libhippo_halton_search.so
// and use `algorithm: {name: halton}` in a spec (budget.max_trials points, default 16).
//
// plugin_config: {skip: N} starts at the N-th point of the sequence (default 1 + seed % 1000;
// point 0 is all zeros). The plugin checks its config itself (CheckHaltonConfig): `hippo
// validate` and the server refuse any other key, and a skip that is not a whole number >= 1.
#include <cmath>
#include <memory>
#include <optional>
#include <string>

#include "search_algos/plugin.h"

namespace {

using hippo::proto::Issue;
using hippo::proto::SpecIssue;
using hippo::search_algos::AlgorithmContext;
using hippo::search_algos::Request;
using hippo::search_algos::SearchAlgorithm;

// The index-th element of the van der Corput sequence in `base`, in [0, 1).
double RadicalInverse(uint64_t index, uint64_t base) {
  double result = 0;
  double scale = 1.0 / static_cast<double>(base);
  for (; index > 0; index /= base, scale /= static_cast<double>(base)) {
    result += static_cast<double>(index % base) * scale;
  }
  return result;
}

constexpr uint64_t kPrimes[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53};

constexpr char kSkipPath[] = "algorithm.plugin_config.skip";

// The only key of plugin_config. Only inline protobuf accessors are used here (and libprotobuf's
// own symbols): a plugin cannot call into the server's generated code.
Issue CheckHaltonConfig(const hippo::v1::Algorithm& config, const hippo::v1::StudySpec&) {
  for (const auto& [key, value] : config.plugin_config().fields()) {
    if (key != "skip") {
      return SpecIssue{"algorithm.plugin_config." + key, "unknown field; allowed here: skip",
                       std::nullopt};
    }
    const double skip = value.number_value();
    if (value.kind_case() != google::protobuf::Value::kNumberValue || skip < 1 ||
        skip > 9007199254740992.0 || std::trunc(skip) != skip) {
      return SpecIssue{kSkipPath,
                       "must be a whole number >= 1, the first point of the sequence to use "
                       "(point 0 is all zeros), e.g. skip: 1",
                       std::nullopt};
    }
  }
  return std::nullopt;
}

// plugin_config.skip if set (CheckHaltonConfig accepted it), else 1 + seed % 1000.
uint64_t FirstIndex(const AlgorithmContext& context) {
  const auto& fields = context.config.plugin_config().fields();
  if (const auto it = fields.find("skip"); it != fields.end()) {
    return static_cast<uint64_t>(it->second.number_value());
  }
  return 1 + context.seed % 1000;
}

class HaltonSearch : public SearchAlgorithm {
 public:
  explicit HaltonSearch(const AlgorithmContext& context)
      : space_(*context.space),
        max_steps_(context.max_steps),
        count_(context.max_trials > 0 ? context.max_trials : 16),
        offset_(FirstIndex(context)) {}

  void OnMetric(int64_t, int64_t, double) override {}
  void OnTrialReachedTarget(int64_t, int64_t) override {}
  void OnTrialEnded(int64_t, hippo::search_algos::TrialOutcome) override {}

  std::vector<Request> Suggest(int64_t max_new_trials) override {
    std::vector<Request> requests;
    while (proposed_ < count_ && static_cast<int64_t>(requests.size()) < max_new_trials) {
      Request request;
      request.point = PointAt(static_cast<uint64_t>(proposed_++) + offset_);
      request.target = max_steps_;
      requests.push_back(std::move(request));
    }
    return requests;
  }

  bool Finished() const override { return proposed_ >= count_; }
  std::string SaveState() const override { return std::to_string(proposed_); }
  absl::Status LoadState(const std::string& state) override {
    char* end = nullptr;
    const long long proposed = std::strtoll(state.c_str(), &end, 10);
    if (end == state.c_str() || *end != '\0' || proposed < 0 || proposed > count_) {
      return absl::DataLossError("halton: bad saved state");
    }
    proposed_ = proposed;
    return absl::OkStatus();
  }

 private:
  hippo::stage_tree::Point PointAt(uint64_t index) const {
    hippo::stage_tree::Point point;
    for (size_t d = 0; d < space_.dimensions.size(); ++d) {
      const hippo::stage_tree::Dimension& dimension = space_.dimensions[d];
      const double unit = RadicalInverse(index, kPrimes[d % std::size(kPrimes)]);
      if (dimension.kind == hippo::stage_tree::DimensionKind::kChoice) {
        const auto choice =
            static_cast<size_t>(unit * static_cast<double>(dimension.choices.size()));
        point.push_back(dimension.choices[std::min(choice, dimension.choices.size() - 1)]);
        continue;
      }
      double value = dimension.log && dimension.low > 0
                         ? std::exp(std::log(dimension.low) +
                                    unit * (std::log(dimension.high) - std::log(dimension.low)))
                         : dimension.low + unit * (dimension.high - dimension.low);
      if (dimension.step > 0) {
        value =
            dimension.low + std::round((value - dimension.low) / dimension.step) * dimension.step;
      }
      point.emplace_back(std::min(std::max(value, dimension.low), dimension.high));
    }
    return point;
  }

  hippo::stage_tree::SearchSpace space_;
  int64_t max_steps_;
  int64_t count_;
  uint64_t offset_;
  int64_t proposed_ = 0;
};

}  // namespace

extern "C" void HippoRegisterAlgorithms(hippo::search_algos::PluginRegistrar* registrar) {
  // A registration error (the name is taken) reaches LoadPlugin through the registrar, which
  // reports it for the plugin; there is nothing else to do with it here.
  (void)registrar->Add(
      "halton",
      {[](const AlgorithmContext& context) -> absl::StatusOr<std::unique_ptr<SearchAlgorithm>> {
         return std::make_unique<HaltonSearch>(context);
       },
       &CheckHaltonConfig,
       {}});
}
