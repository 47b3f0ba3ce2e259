// The store's reads, on a read-only connection of their own.
//
// In WAL mode readers never wait for the writer and see only committed transactions. One mutex
// serialises the reads (a connection serves one thread at a time); reads are short, and the
// hot path of the coordinator is writing, not reading.
#ifndef HIPPO_STORE_READER_H_
#define HIPPO_STORE_READER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace hippo::store::internal {

class Reader {
 public:
  explicit Reader(std::unique_ptr<Connection> connection) : connection_(std::move(connection)) {}

  // Every query of LoadSnapshot runs in one read transaction, so the snapshot is consistent.
  absl::StatusOr<Snapshot> LoadSnapshot();
  absl::StatusOr<std::vector<StudyRecord>> ListStudies();
  absl::StatusOr<std::optional<StudyRecord>> GetStudy(const std::string& id);
  absl::StatusOr<std::vector<TrialRecord>> ListTrials(const std::string& study_id);
  absl::StatusOr<std::vector<StageRecord>> ListStages(int64_t family_id);
  absl::StatusOr<std::vector<MetricRecord>> ListMetrics(int64_t family_id,
                                                        const std::vector<int64_t>& lineages,
                                                        int64_t from_step, int64_t to_step);
  absl::StatusOr<std::vector<WorkerRecord>> ListWorkers();
  absl::StatusOr<std::vector<EventRecord>> ListEvents(int64_t after_sequence, int64_t limit);

 private:
  absl::StatusOr<Snapshot> LoadSnapshotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::StatusOr<std::vector<StudyRecord>> ListStudiesLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::StatusOr<std::vector<TrialRecord>> ListTrialsLocked(const std::string* study_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  absl::Mutex mutex_;
  std::unique_ptr<Connection> connection_ ABSL_PT_GUARDED_BY(mutex_);
};

}  // namespace hippo::store::internal

#endif  // HIPPO_STORE_READER_H_
