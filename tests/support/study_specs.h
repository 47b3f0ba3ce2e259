// Study specs that several test folders build in code rather than read from YAML.
#ifndef HIPPO_TESTS_SUPPORT_STUDY_SPECS_H_
#define HIPPO_TESTS_SUPPORT_STUDY_SPECS_H_

#include <cstdint>
#include <string>

#include "hippo/v1/hippo.pb.h"

namespace hippo::test_support {

// An ask-and-tell study ("external" algorithm: the client asks for trials and tells their
// results): one float parameter `parameter` in [0.001, 0.1], loss minimized, 10 steps a trial,
// at most `max_trials` trials. A long `parameter` name makes every asked trial that much larger.
v1::StudySpec AskTellSpec(int64_t max_trials, const std::string& parameter = "lr");

}  // namespace hippo::test_support

#endif  // HIPPO_TESTS_SUPPORT_STUDY_SPECS_H_
