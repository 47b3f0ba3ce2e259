// Text and JSON rendering of the v1 views for the command line.
#ifndef HIPPO_CLI_OUTPUT_H_
#define HIPPO_CLI_OUTPUT_H_

#include <cstdint>
#include <iosfwd>
#include <string>

#include "google/protobuf/message.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::cli {

// One line of JSON (protobuf's JSON mapping, snake_case field names).
std::string ToJson(const google::protobuf::Message& message);

std::string StudyStateName(hippo::v1::StudyState state);
std::string TrialStateName(hippo::v1::TrialState state);
std::string StageStateName(hippo::v1::StageState state);

// "lr=0.1→0.01@60 weight_decay=0.0005": scalars as values, sequences by their segments.
std::string ParametersLine(const hippo::v1::Trial& trial);

// The unit of the study's steps (trainer.step_unit): "epoch", "iteration", or "step" when unset.
std::string StepUnit(const hippo::v1::StudySpec& spec);
// `unit` for a count: "1 epoch", "12 epochs".
std::string CountOf(int64_t count, const std::string& unit);

// The end-of-study summary: state, trials, best trial, steps and what merging saved.
void PrintStudySummary(const hippo::v1::Study& study, std::ostream& out);

// What merging saved, like for like. A completed study whose trials all reached their targets
// (WorkIsWhole): executed steps against trial by trial, distinct configurations and (with
// forks) checkpoint-copying PBT. Any other (running, stopped, failed): against the work done so
// far, each trial counted up to the step it reached (reached_trial_steps); while it runs, also a
// projection labelled as one (trial_steps / unique_steps of the trials known now).
void PrintSavings(const hippo::v1::Study& study, std::ostream& out);
bool WorkIsWhole(const hippo::v1::Study& study);
// How `executed` steps compare with a baseline's `reference` steps, with the ratio always at
// least 1 and the words saying which way: "2.38x fewer epochs than trial by trial", "as many
// epochs as checkpoint-copying PBT", "2.38x more epochs than checkpoint-copying PBT" (`unit`:
// StepUnit's singular); with nothing executed, "no epochs (trial by trial: 120)".
std::string Compared(int64_t executed, int64_t reference, const std::string& unit,
                     const std::string& baseline);
// steps / executed, or 0 when nothing was executed.
double Ratio(int64_t steps, int64_t executed);
// `"distinct_steps": .., "checkpoint_copy_steps": .., "reached_trial_steps": .., "savings_vs_
// trial_by_trial": .., "savings_vs_distinct": .., "savings_vs_checkpoint_copy": ..,
// "savings_so_far": ..` (ratios to executed_steps; 0 when nothing was executed), for the
// commands' JSON.
std::string SavingsJsonFields(const hippo::v1::StepCounts& steps);

}  // namespace hippo::cli

#endif  // HIPPO_CLI_OUTPUT_H_
