#include "tests/support/study_specs.h"

namespace hippo::test_support {

v1::StudySpec AskTellSpec(int64_t max_trials, const std::string& parameter) {
  v1::StudySpec spec;
  spec.set_name("ask-tell");
  spec.mutable_objective()->set_metric("loss");
  spec.mutable_objective()->set_direction(v1::MINIMIZE);
  v1::Parameter& lr = *spec.mutable_search_space()->add_parameters();
  lr.set_name(parameter);
  lr.mutable_float_()->set_low(0.001);
  lr.mutable_float_()->set_high(0.1);
  spec.mutable_algorithm()->set_name("external");
  spec.mutable_budget()->set_max_steps(10);
  spec.mutable_budget()->set_max_trials(max_trials);
  return spec;
}

}  // namespace hippo::test_support
