// The corpus of broken study specs in tests/proto/bad_specs, with the message each must get.
// Used by the spec-loader tests and by the end-to-end bad-input tests (`hippo submit`).
#ifndef HIPPO_TESTS_PROTO_BAD_SPEC_CORPUS_H_
#define HIPPO_TESTS_PROTO_BAD_SPEC_CORPUS_H_

#include <ostream>
#include <string>
#include <vector>

namespace hippo::proto::testing_corpus {

inline const std::string& CorpusDirectory() {
  static const auto* const directory =
      new std::string(std::string(HIPPO_SOURCE_DIR) + "/tests/proto/bad_specs/");
  return *directory;
}

struct BadSpec {
  std::string file;
  std::string expected;  // a substring of the message: the path, and what is wrong
};

inline const std::vector<BadSpec>& Corpus() {
  static const auto* const corpus = new std::vector<BadSpec>{
      {"unknown_algorithm.yaml", "algorithm.name: unknown algorithm \"bayesopt\"; known: grid"},
      {"empty_search_space.yaml", "search_space.parameters: empty"},
      {"negative_max_steps.yaml", "budget.max_steps: must be > 0 (got -120)"},
      {"wrong_type.yaml", "search_space.parameters[1].float.low: expected a number, got \"abc\""},
      {"unknown_field_top.yaml",
       "objectve: unknown field; allowed here: name, objective, trainer, search_space"},
      {"unknown_field_nested.yaml",
       "algorithm.asha.reduction_factr: unknown field; allowed here: min_resource, "
       "max_resource, reduction_factor, sampler"},
      {"syntax_error.yaml", "syntax_error.yaml:4:8: YAML syntax error: end of map flow not found"},
      {"not_json.json", "not_json.json:4:"},
      {"scalar_document.yaml", "expected a mapping of study fields"},
      {"two_oneof_members.yaml",
       "search_space.parameters[0]: both int and float are set, but only one of categorical, "
       "int, float, sequence, fixed may be"},
      {"two_sequence_shapes.yaml",
       "search_space.parameters[0].sequence: both constant and step_decay are set"},
      {"milestones_not_increasing.yaml",
       "search_space.parameters[0].sequence.step_decay.milestones.choices[1].steps[1]: must be "
       "greater than the step before it (got 60 after 90)"},
      {"milestone_past_max_steps.yaml",
       "search_space.parameters[0].sequence.step_decay.milestones.choices[0].steps[1]: must be "
       "below budget.max_steps (120) (got 120)"},
      {"log_range_not_positive.yaml",
       "search_space.parameters[0].float.low: must be > 0 when log is true (got 0)"},
      {"low_not_below_high.yaml",
       "search_space.parameters[0].sequence.constant.range.low: must be below high (got low=0.1, "
       "high=0.01)"},
      {"duplicate_parameter_names.yaml",
       "search_space.parameters[2].name: \"lr\" is also the name of search_space.parameters[0]"},
      {"bad_parameter_name.yaml", "search_space.parameters[0].name: \"learning-rate\" is not"},
      {"missing_direction.yaml", "objective.direction: required; set direction: MINIMIZE or"},
      {"unknown_direction.yaml",
       "objective.direction: unknown value \"MAXIMISE\"; allowed: "
       "MINIMIZE, MAXIMIZE"},
      {"grid_over_continuous_range.yaml",
       "search_space.parameters[1].float: grid search needs a finite domain"},
      {"grid_over_sequence_range.yaml",
       "search_space.parameters[0].sequence.constant.range: grid search needs a finite domain"},
      {"command_without_command.yaml", "trainer.command: required when kind is command"},
      {"unknown_trainer.yaml", "trainer.kind: unknown trainer \"pytorch\"; known: command, sim"},
      {"empty_choices.yaml",
       "search_space.parameters[0].sequence.step_decay.gamma.choices.values: empty"},
      {"number_domain_unset.yaml",
       "search_space.parameters[0].sequence.step_decay.gamma: required; set one of value, "
       "choices or range"},
      {"sequence_without_shape.yaml", "search_space.parameters[0].sequence: no shape"},
      {"one_of_and_shape.yaml",
       "search_space.parameters[0].sequence.one_of: set either a shape or one_of, not both"},
      {"one_of_warmup_twice.yaml",
       "search_space.parameters[0].sequence.one_of[1].warmup_steps: warm-up is set for every "
       "alternative already"},
      {"piecewise_boundaries_overlap.yaml",
       "search_space.parameters[0].sequence.piecewise.boundary_domains[1]: every value must be "
       "above every value of boundary_domains[0] (lowest 50, highest before 60)"},
      {"piecewise_value_count.yaml",
       "search_space.parameters[0].sequence.piecewise.value_choices.choices[1].values: has 2 "
       "values for 2 boundaries"},
      {"linear_end_before_start.yaml",
       "search_space.parameters[0].sequence.linear.end: must be above start for every choice "
       "(lowest end 30, highest start 40)"},
      {"negative_count.yaml", "resources.gpus_per_stage: must not be negative (got -1)"},
      {"asha_min_above_max.yaml", "algorithm.asha.min_resource: must not exceed max_resource"},
      {"list_for_mapping.yaml", "budget: expected a mapping (Budget), got a list"},
      {"unknown_step_unit.yaml",
       "trainer.step_unit: unknown unit \"batch\"; use epoch or iteration"},
      {"multi_gpu_stage.yaml",
       "resources.gpus_per_stage: a stage trains on one device: multi-GPU stages are not "
       "supported (got 4)"},
      {"grid_too_large.yaml",
       "search_space.parameters[1]: the grid has more than 1000000 points with this parameter"},
      {"int_beyond_2p53.yaml",
       "search_space.parameters[0].int.high: must be within ±2^53 (9007199254740992) (got "
       "9007199254740999)"},
      {"int_step_not_dividing_range.yaml",
       "search_space.parameters[0].int.high: high - low (104) is not a multiple of step (16), so "
       "high is never drawn; use high: 112 or 128"},
      {"condition_on_later_parameter.yaml",
       "search_space.parameters[0].when.param: \"layers\" is listed after this one"},
      {"condition_on_dynamic_parameter.yaml",
       "search_space.parameters[1].when.param: \"lr\" is not structural; mark it structural: "
       "true"},
      {"condition_orders_strings.yaml",
       "search_space.parameters[1].when.at_least: \"optimizer\" takes strings, which have no "
       "order; use equals or any_of"},
      {"condition_without_test.yaml",
       "search_space.parameters[1].when: needs a test: equals, any_of, at_least or at_most"},
      {"max_steps_too_large.yaml",
       "budget.max_steps: must be at most 1000000000 (got 9223372036854775807)"},
      {"yaml_alias_bomb.yaml",
       "trainer.config.e[7][8][8][8][2]: the document expands to more than 100000 nodes"},
      {"study_name_too_long.yaml", "name: too long: 300 characters, at most 256"},
      {"metric_control_character.yaml",
       "objective.metric: holds a control character (code 27) at position 3"},
      {"label_value_too_long.yaml", "labels.team: too long: 2000 characters, at most 1024"},
      // The same messages as the coordinator's for a message built in code (bad_input_test.cc).
      {"nan_fixed.yaml", "search_space.parameters[1].fixed: must be a finite number (got nan)"},
      {"inf_categorical.yaml",
       "search_space.parameters[0].categorical.values[1]: must be a finite number (got inf)"},
      {"nan_trainer_config.yaml", "trainer.config.layers[1]: must be a finite number (got -inf)"},
      {"mixed_type_categorical.yaml",
       "search_space.parameters[1].categorical.values[1]: is a string, values[0] a number"},
      {"duplicate_categorical.yaml",
       "search_space.parameters[1].categorical.values[2]: repeats values[0] (1)"},
  };
  return *corpus;
}

// Names the case in test output instead of dumping its bytes.
inline void PrintTo(const BadSpec& bad, std::ostream* out) { *out << bad.file; }

}  // namespace hippo::proto::testing_corpus

#endif  // HIPPO_TESTS_PROTO_BAD_SPEC_CORPUS_H_
