#include "stage_tree/sequence.h"

#include <gtest/gtest.h>

namespace hippo::stage_tree {
namespace {

TEST(SequenceTest, StepDecayFollowsWorkloadsDefinition) {
  absl::StatusOr<Sequence> lr = StepDecay(0.1, 0.2, {30, 60, 90}, 5, 120);
  ASSERT_TRUE(lr.ok()) << lr.status();
  for (Step s = 0; s < 120; ++s) {
    double expected;
    if (s < 5) {
      expected = 0.1 * static_cast<double>(s + 1) / 5;
    } else {
      const int k = (s >= 30) + (s >= 60) + (s >= 90);
      expected = 0.1 * std::pow(0.2, k);
    }
    EXPECT_EQ(lr->Evaluate(s), expected) << "step " << s;
  }
  EXPECT_EQ(lr->Horizon(), 120);
}

TEST(SequenceTest, WarmupRampPassesThroughSmallerConstantExactly) {
  // Why W1 has 7 438 unique steps and not 7 440: 0.1 * 1 / 5 is exactly 0.02.
  absl::StatusOr<Sequence> ramp = StepDecay(0.1, 0.1, {60}, 5, 120);
  absl::StatusOr<Sequence> flat = StepDecay(0.02, 0.1, {60}, 0, 120);
  ASSERT_TRUE(ramp.ok() && flat.ok());
  EXPECT_EQ(ramp->Evaluate(0), flat->Evaluate(0));
  EXPECT_NE(ramp->Evaluate(1), flat->Evaluate(1));
}

TEST(SequenceTest, AdjacentEqualSegmentsMerge) {
  absl::StatusOr<Sequence> sequence = Sequence::FromSegments(
      {{0, 10, SegmentFunction::Constant(1)}, {10, 20, SegmentFunction::Constant(1)}});
  ASSERT_TRUE(sequence.ok());
  EXPECT_EQ(sequence->segments().size(), 1u);
  EXPECT_EQ(sequence->segments()[0].end, 20);
}

TEST(SequenceTest, GapsAndEmptySegmentsAreRejected) {
  EXPECT_FALSE(Sequence::FromSegments(
                   {{0, 10, SegmentFunction::Constant(1)}, {11, 20, SegmentFunction::Constant(2)}})
                   .ok());
  EXPECT_FALSE(Sequence::FromSegments({{0, 0, SegmentFunction::Constant(1)}}).ok());
  EXPECT_FALSE(Sequence::FromSegments({{1, 5, SegmentFunction::Constant(1)}}).ok());
  EXPECT_FALSE(Sequence::FromSegments({}).ok());
}

TEST(SequenceTest, DegenerateFunctionsBecomeConstants) {
  EXPECT_EQ(SegmentFunction::Linear(2, 2, 0, 5), SegmentFunction::Constant(2));
  EXPECT_EQ(SegmentFunction::Exponential(3, 1, 7), SegmentFunction::Constant(3));
  EXPECT_EQ(SegmentFunction::Cosine(4, 4, 0, 9), SegmentFunction::Constant(4));
  EXPECT_EQ(SegmentFunction::Constant(-0.0), SegmentFunction::Constant(0.0));
}

TEST(SequenceTest, CosineAndExponentialEvaluate) {
  absl::StatusOr<Sequence> cosine = CosineSchedule(1.0, 0.0, 100, 0, 100);
  ASSERT_TRUE(cosine.ok());
  EXPECT_DOUBLE_EQ(cosine->Evaluate(0), 1.0);
  EXPECT_NEAR(cosine->Evaluate(50), 0.5, 1e-12);
  absl::StatusOr<Sequence> exponential = ExponentialSchedule(1.0, 0.5, 0, 10);
  ASSERT_TRUE(exponential.ok());
  EXPECT_DOUBLE_EQ(exponential->Evaluate(3), 0.125);
}

TEST(SequenceTest, PiecewiseHoldsEachValueUntilItsBoundary) {
  absl::StatusOr<Sequence> sequence = Piecewise({10, 20}, {1, 2, 3}, 30);
  ASSERT_TRUE(sequence.ok());
  EXPECT_EQ(sequence->Evaluate(9), 1);
  EXPECT_EQ(sequence->Evaluate(10), 2);
  EXPECT_EQ(sequence->Evaluate(29), 3);
  EXPECT_FALSE(Piecewise({10}, {1}, 30).ok());
  EXPECT_FALSE(Piecewise({20, 10}, {1, 2, 3}, 30).ok());
}

TEST(SequenceTest, MilestonesMustIncrease) {
  EXPECT_FALSE(StepDecay(0.1, 0.1, {60, 30}, 0, 120).ok());
  EXPECT_FALSE(StepDecay(0.1, 0.1, {0}, 0, 120).ok());
  // Milestones past the horizon are ignored.
  absl::StatusOr<Sequence> sequence = StepDecay(0.1, 0.1, {60, 200}, 0, 120);
  ASSERT_TRUE(sequence.ok());
  EXPECT_EQ(sequence->segments().size(), 2u);
}

TEST(SequenceTest, ForkFollowsTheParentBeforeTheStepAndTheNewValuesAfter) {
  TrialSequences parent = {{"lr", *StepDecay(0.1, 0.1, {60}, 0, 120)}};
  TrialSequences explored = {{"lr", Sequence::ConstantOver(0.08, 120)}};
  absl::StatusOr<TrialSequences> fork = ComposeAt(parent, explored, 30);
  ASSERT_TRUE(fork.ok()) << fork.status();
  for (Step s = 0; s < 120; ++s) {
    EXPECT_EQ(fork->at("lr").Evaluate(s), s < 30 ? parent.at("lr").Evaluate(s) : 0.08);
  }
  EXPECT_FALSE(ComposeAt(parent, explored, 0).ok());
  EXPECT_FALSE(ComposeAt(parent, explored, 120).ok());
  EXPECT_FALSE(ComposeAt(parent, {{"momentum", Sequence::ConstantOver(0.9, 120)}}, 30).ok());
}

TEST(SequenceTest, EncodingRoundTripsExactly) {
  TrialSequences sequences = {{"lr", *StepDecay(0.1, 0.2, {30, 60}, 5, 120)},
                              {"momentum", *CosineSchedule(0.95, 0.85, 120, 0, 120)},
                              {"weight_decay", *ExponentialSchedule(1e-4 / 3, 0.99, 0, 120)}};
  absl::StatusOr<TrialSequences> decoded = DecodeSequences(EncodeSequences(sequences));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, sequences);
  EXPECT_FALSE(DecodeSequences("lr 1\n0 10 9 0 0 0 0\n").ok());
  EXPECT_FALSE(DecodeSequences("lr 2\n0 10 0 0 0 0 0\n").ok());
}

}  // namespace
}  // namespace hippo::stage_tree
