// The SHA-256 of a coordinator's database as it lies on disk: the main file and its write-ahead
// log together, so that a commit not yet checkpointed into the main file changes it too. Tests
// of refused input compare it before and after: a refusal must not change a byte.
#ifndef HIPPO_TESTS_SUPPORT_DB_DIGEST_H_
#define HIPPO_TESTS_SUPPORT_DB_DIGEST_H_

#include <string>

namespace hippo::test_support {

// Lowercase hex SHA-256 of the bytes of `db_path` followed by those of `db_path`-wal (absent
// files count as empty).
std::string DatabaseSha256(const std::string& db_path);

}  // namespace hippo::test_support

#endif  // HIPPO_TESTS_SUPPORT_DB_DIGEST_H_
