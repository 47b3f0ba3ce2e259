// The shared secret of `hippo server` and its clients (`hippo worker`, the client commands):
// where each side finds it, how a server makes one on first start, and the checks every token
// file passes, so that both sides take the same bytes from the same file.
//
// A token file holds the token; whitespace around it is ignored (as around $HIPPO_TOKEN). A file
// that its group or other users may read, or that is not a regular file, is refused: the token
// lets its holder run code on every worker.
#ifndef HIPPO_CLI_TOKEN_H_
#define HIPPO_CLI_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"

namespace hippo::cli {

// The file a client reads when nothing else names the token: the one `hippo server` writes
// beside its default database (`--db hippo.db`), in the current directory.
inline constexpr char kDefaultTokenFile[] = "hippo.db.token";

// A new token: 256 bits from the kernel's CSPRNG (getrandom), as 64 hex digits.
absl::StatusOr<std::string> NewToken();

// The token in `path` (a token file, see above). InvalidArgument naming `flag` and the file when
// it cannot be read, holds no token, or its permissions are too loose (the fix: chmod 600).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path,
                                          const std::string& flag = "--token-file");

// The token of a client: --token-file `token_file`, else $HIPPO_TOKEN, else the file named by
// $HIPPO_TOKEN_FILE, else kDefaultTokenFile when it exists, else "" (no token).
absl::StatusOr<std::string> ClientToken(const std::string& token_file);

// The token `hippo server` expects, and where it came from (for the server's first lines).
struct ServerToken {
  std::string token;
  std::string file;      // the token file read or created; empty: from $HIPPO_TOKEN
  bool created = false;  // `file` was created now
};
// --token-file `token_file` (which must exist), else $HIPPO_TOKEN, else the file `<db>.token`:
// read when it exists, else created with a NewToken() and mode 0600.
absl::StatusOr<ServerToken> LoadOrCreateServerToken(const std::string& token_file,
                                                    const std::string& db);

// The PEM contents of the CA file given to --tls-ca. InvalidArgument naming --tls-ca and the
// file when it cannot be read or holds no PEM block.
absl::StatusOr<std::string> ReadTlsCa(const std::string& path);

}  // namespace hippo::cli

#endif  // HIPPO_CLI_TOKEN_H_
