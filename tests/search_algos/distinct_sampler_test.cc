// Random draws without replacement from finite spaces (algorithm.sample_with_replacement false,
// the default): random search and ASHA's random sampler never repeat a configuration, stop at
// the space's size and say why; with replacement they repeat; the draws are the same after a
// restore; spaces with a float range are drawn as before.
#include "search_algos/distinct_sampler.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <variant>

#include "absl/strings/str_cat.h"
#include "search_algos/search_algorithm.h"
#include "search_algos/tpe.h"

namespace hippo::search_algos {
namespace {

namespace v1 = ::hippo::v1;

// 3 x 2 = 6 configurations, plus a one_of with alternatives of 1 and 2 values: 6 x 3 = 18.
stage_tree::SearchSpace FiniteSpace(bool with_one_of) {
  v1::SearchSpace proto;
  v1::Parameter* depth = proto.add_parameters();
  depth->set_name("depth");
  depth->mutable_int_()->set_low(2);
  depth->mutable_int_()->set_high(6);
  depth->mutable_int_()->set_step(2);
  v1::Parameter* optimizer = proto.add_parameters();
  optimizer->set_name("optimizer");
  optimizer->mutable_categorical()->add_values()->set_string_value("sgd");
  optimizer->mutable_categorical()->add_values()->set_string_value("adam");
  if (with_one_of) {
    v1::Parameter* lr = proto.add_parameters();
    lr->set_name("lr");
    v1::SequenceParameter* constant = lr->mutable_sequence()->add_one_of();
    constant->mutable_constant()->set_value(0.1);
    v1::StepDecaySequence* decay = lr->mutable_sequence()->add_one_of()->mutable_step_decay();
    decay->mutable_initial()->set_value(0.1);
    decay->mutable_gamma()->mutable_choices()->add_values(0.1);
    decay->mutable_gamma()->mutable_choices()->add_values(0.5);
    decay->mutable_milestones()->add_choices()->add_steps(10);
  }
  absl::StatusOr<stage_tree::SearchSpace> space = stage_tree::SearchSpaceFromProto(proto);
  EXPECT_TRUE(space.ok()) << space.status();
  return *space;
}

AlgorithmContext Context(const stage_tree::SearchSpace& space, const std::string& name,
                         int64_t max_trials, bool with_replacement) {
  AlgorithmContext context;
  context.space = &space;
  context.max_steps = 20;
  context.max_trials = max_trials;
  context.seed = 11;
  context.config.set_name(name);
  context.config.set_sample_with_replacement(with_replacement);
  if (name == "asha") context.config.mutable_asha()->set_min_resource(20);
  return context;
}

// The configuration of a point: its values on the dimensions it uses.
std::string ActiveKey(const stage_tree::SearchSpace& space, const stage_tree::Point& point) {
  std::string key;
  for (size_t d = 0; d < point.size(); ++d) {
    if (!stage_tree::IsActive(space.dimensions, point, d)) continue;
    if (const double* number = std::get_if<double>(&point[d])) {
      key += absl::StrCat(d, "=", *number, ",");
    } else if (const std::string* text = std::get_if<std::string>(&point[d])) {
      key += absl::StrCat(d, "=", *text, ",");
    } else {
      key += absl::StrCat(d, "=list,");
    }
  }
  return key;
}

std::string Text(const stage_tree::SearchSpace& space, const std::vector<Request>& requests) {
  std::string text;
  for (const Request& request : requests) text += EncodePoint(space, request.point) + ";";
  return text;
}

TEST(DistinctSamplerTest, CountsConfigurationsOfFiniteSpacesOnly) {
  EXPECT_EQ(DistinctSampler::CountConfigurations(FiniteSpace(false)), 6);
  EXPECT_EQ(DistinctSampler::CountConfigurations(FiniteSpace(true)), 18);
  v1::SearchSpace proto;
  v1::Parameter* lr = proto.add_parameters();
  lr->set_name("lr");
  lr->mutable_float_()->set_low(0.01);
  lr->mutable_float_()->set_high(0.1);
  EXPECT_EQ(DistinctSampler::CountConfigurations(*stage_tree::SearchSpaceFromProto(proto)), 0);
}

TEST(DistinctSamplerTest, RandomSearchDrawsEveryConfigurationOnceThenEndsSayingWhy) {
  for (bool with_one_of : {false, true}) {
    const stage_tree::SearchSpace space = FiniteSpace(with_one_of);
    const int64_t size = with_one_of ? 18 : 6;
    auto random =
        AlgorithmRegistry::Global().Create("random", Context(space, "random", 100, false));
    ASSERT_TRUE(random.ok()) << random.status();
    std::vector<Request> requests = (*random)->Suggest(1000);
    ASSERT_EQ(static_cast<int64_t>(requests.size()), size) << with_one_of;
    std::set<std::string> distinct;
    for (const Request& request : requests) {
      const std::string key = ActiveKey(space, request.point);
      EXPECT_TRUE(distinct.insert(key).second) << "drawn twice: " << key;
    }
    EXPECT_TRUE((*random)->Finished());
    EXPECT_NE((*random)->EndReason().find(absl::StrCat(size, " configurations were all drawn")),
              std::string::npos)
        << (*random)->EndReason();
  }
}

TEST(DistinctSamplerTest, WithReplacementRepeatsConfigurationsAndRunsItsCount) {
  const stage_tree::SearchSpace space = FiniteSpace(false);
  auto random = AlgorithmRegistry::Global().Create("random", Context(space, "random", 40, true));
  ASSERT_TRUE(random.ok()) << random.status();
  std::vector<Request> requests = (*random)->Suggest(1000);
  ASSERT_EQ(requests.size(), 40u);
  std::set<std::string> distinct;
  for (const Request& request : requests) distinct.insert(EncodePoint(space, request.point));
  EXPECT_LE(distinct.size(), 6u);
  EXPECT_TRUE((*random)->Finished());
  EXPECT_EQ((*random)->EndReason(), "");
}

TEST(DistinctSamplerTest, ARestoredRandomSearchDrawsWhatAnUninterruptedOneDraws) {
  const stage_tree::SearchSpace space = FiniteSpace(true);
  auto whole = AlgorithmRegistry::Global().Create("random", Context(space, "random", 18, false));
  ASSERT_TRUE(whole.ok());
  const std::string expected = Text(space, (*whole)->Suggest(100));
  auto first = AlgorithmRegistry::Global().Create("random", Context(space, "random", 18, false));
  ASSERT_TRUE(first.ok());
  std::string text = Text(space, (*first)->Suggest(7));
  auto resumed = AlgorithmRegistry::Global().Create("random", Context(space, "random", 18, false));
  ASSERT_TRUE(resumed.ok());
  ASSERT_TRUE((*resumed)->LoadState((*first)->SaveState()).ok());
  text += Text(space, (*resumed)->Suggest(100));
  EXPECT_EQ(text, expected);
}

TEST(DistinctSamplerTest, AshaStopsProposingAtTheSpacesSizeAndSaysWhy) {
  const stage_tree::SearchSpace space = FiniteSpace(false);
  auto asha = AlgorithmRegistry::Global().Create("asha", Context(space, "asha", 50, false));
  ASSERT_TRUE(asha.ok()) << asha.status();
  std::vector<Request> requests = (*asha)->Suggest(1000);
  ASSERT_EQ(requests.size(), 6u);
  std::set<std::string> distinct;
  for (const Request& request : requests) distinct.insert(EncodePoint(space, request.point));
  EXPECT_EQ(distinct.size(), 6u);
  // One rung (min_resource = max_steps): each trial that reaches it is done.
  for (TrialNumber trial = 0; trial < 6; ++trial) {
    (*asha)->OnMetric(trial, 19, 0.1 * static_cast<double>(trial));
    (*asha)->OnTrialReachedTarget(trial, 20);
  }
  (*asha)->Suggest(1000);
  EXPECT_TRUE((*asha)->Finished());
  EXPECT_NE((*asha)->EndReason().find("6 configurations were all drawn"), std::string::npos)
      << (*asha)->EndReason();

  auto independent = AlgorithmRegistry::Global().Create("asha", Context(space, "asha", 50, true));
  ASSERT_TRUE(independent.ok()) << independent.status();
  EXPECT_EQ((*independent)->Suggest(1000).size(), 50u);
}

}  // namespace
}  // namespace hippo::search_algos
