// What the coordinator's gRPC services share: the token check every call starts with, and the
// conversion of the engine's statuses to gRPC's.
#ifndef HIPPO_HIPPO_GRPC_CALLS_H_
#define HIPPO_HIPPO_GRPC_CALLS_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"

namespace hippo::coordinator {

// The metadata key a call carries the coordinator's token in.
inline constexpr char kTokenHeader[] = "x-hippo-token";

// `status` with the same code and message.
grpc::Status ToGrpc(const absl::Status& status);

// Checks the shared secret of a call (compared in constant time, TokenMatches in server.h);
// OK when the server has none (`insecure`), else UNAUTHENTICATED saying how to pass it.
grpc::Status Authorize(const grpc::ServerContextBase* context, const std::string& token);

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_GRPC_CALLS_H_
