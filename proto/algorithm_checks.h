// Interim: the built-in algorithms' own config checks, until each algorithm checks its own.
#ifndef HIPPO_PROTO_ALGORITHM_CHECKS_H_
#define HIPPO_PROTO_ALGORITHM_CHECKS_H_

#include "hippo/v1/hippo.pb.h"
#include "proto/spec_issues.h"

namespace hippo::proto {

Issue CheckBuiltInAlgorithm(const hippo::v1::StudySpec& spec);

}  // namespace hippo::proto

#endif  // HIPPO_PROTO_ALGORITHM_CHECKS_H_
