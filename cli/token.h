// The shared secret of `hippo server` and of the clients (`hippo worker`, the client commands):
// one reader, so that both sides take the same bytes from the same file.
#ifndef HIPPO_CLI_TOKEN_H_
#define HIPPO_CLI_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"

namespace hippo::cli {

// With a `token_file`, its first line, which must not be empty; without one, $HIPPO_TOKEN, else
// "" (no token). InvalidArgument naming --token-file and the file when it cannot be read.
absl::StatusOr<std::string> ReadToken(const std::string& token_file);

}  // namespace hippo::cli

#endif  // HIPPO_CLI_TOKEN_H_
