// The SQL that writes a WriteBatch: one cached statement per record type.
#ifndef HIPPO_STORE_APPLY_BATCH_H_
#define HIPPO_STORE_APPLY_BATCH_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace hippo::store::internal {

// Writes every record of `batch` inside the transaction the caller holds open on
// `connection`. On error some rows may be written: the caller rolls back (the writer thread
// wraps each batch in a savepoint). The error names the table and the record's key.
absl::Status ApplyWriteBatch(Connection& connection, const WriteBatch& batch);

// The removals of `batch` (checkpoint rows, garbage, studies, metrics) and the garbage upserts,
// in the order store.h lists them; apply_removals.cc. Called by ApplyWriteBatch last.
absl::Status ApplyRemovals(Connection& connection, const WriteBatch& batch);

// FamilyRecord::parameter_names as stored: a JSON array of strings.
std::string EncodeStringArray(const std::vector<std::string>& strings);

}  // namespace hippo::store::internal

#endif  // HIPPO_STORE_APPLY_BATCH_H_
