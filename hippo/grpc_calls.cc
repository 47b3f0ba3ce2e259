#include "hippo/grpc_calls.h"

#include <string_view>

#include "hippo/server.h"

namespace hippo::coordinator {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

grpc::Status Authorize(const grpc::ServerContextBase* context, const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kTokenHeader);
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this coordinator needs a token: pass --token-file FILE with the file "
                        "`hippo server` printed (or set HIPPO_TOKEN_FILE or HIPPO_TOKEN)");
  }
  if (!TokenMatches(std::string_view(it->second.data(), it->second.size()), token)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the token given is not this coordinator's: pass --token-file FILE with "
                        "the file `hippo server` printed (or set HIPPO_TOKEN_FILE or HIPPO_TOKEN)");
  }
  return grpc::Status::OK;
}

}  // namespace hippo::coordinator
