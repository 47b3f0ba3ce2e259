#include "cli/token.h"

#include <cstdlib>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hippo::cli {

absl::StatusOr<std::string> ReadToken(const std::string& token_file) {
  if (token_file.empty()) {
    const char* env = std::getenv("HIPPO_TOKEN");
    return std::string(env != nullptr ? env : "");
  }
  std::ifstream file(token_file);
  std::string token;
  if (!file || !std::getline(file, token) || token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--token-file ", token_file,
                     ": cannot read a token from it (its first line is the token)"));
  }
  return token;
}

}  // namespace hippo::cli
