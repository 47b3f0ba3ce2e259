// ResponseCache: the bodies of a study's reads, by key (the request's path and query), valid
// while the study's version is the same: every dashboard watching a study asks for the same
// reads, and a 100 000-trial study's aggregates are worth computing (and compressing) once. The
// event streams (event_texts.h) take their parts from the same entries, so a read a page asked
// for and the same read pushed to it are made once.
#ifndef HIPPO_DASHBOARD_SERVER_RESPONSE_CACHE_H_
#define HIPPO_DASHBOARD_SERVER_RESPONSE_CACHE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "dashboard/server/compressed_body.h"
#include "dashboard/server/remake_policy.h"

namespace hippo::dashboard {

class ResponseCache {
 public:
  struct Made {
    std::shared_ptr<const CompressedBody> body;
    int64_t version = 0;  // the study's version it was made at
  };

  // The body cached under `key`, else the one `make` returns (cached with `version`, the
  // study's current one). A cached body made at an older version is answered as it is while
  // remake_policy.h allows (an expensive read) or for `min_fresh` (a pushed part: at most one
  // making per `min_fresh` however often the study changes). Concurrent requests for one key
  // wait for a single `make`: ten dashboards asking at once after a change cost one computation.
  template <typename Make>
  absl::StatusOr<Made> GetOrMake(
      const std::string& key, int64_t version, Make make,
      std::chrono::steady_clock::duration min_fresh = std::chrono::steady_clock::duration::zero()) {
    std::shared_ptr<Entry> entry;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (entries_.size() >= kMaxEntries && !entries_.contains(key)) entries_.clear();
      std::shared_ptr<Entry>& slot = entries_[key];
      if (slot == nullptr) slot = std::make_shared<Entry>();
      entry = slot;
    }
    std::lock_guard<std::mutex> lock(entry->mutex);
    const auto now = std::chrono::steady_clock::now();
    if (entry->body != nullptr &&
        (entry->version == version || now - entry->made_at < entry->fresh_for ||
         now - entry->made_at < min_fresh)) {
      return Made{entry->body, entry->version};
    }
    absl::StatusOr<std::string> made = make();
    if (!made.ok()) return made.status();
    entry->body = MakeBody(*std::move(made), "application/json");
    entry->version = version;
    entry->made_at = std::chrono::steady_clock::now();
    // A body that was expensive to make (a large running study's aggregates) is answered
    // while its study changes as remake_policy.h allows; cheap ones are made at every version.
    entry->fresh_for = RemakeAfter(entry->made_at - now);
    return Made{entry->body, entry->version};
  }

 private:
  static constexpr size_t kMaxEntries = 512;
  struct Entry {
    std::mutex mutex;  // held while the body is made
    int64_t version = 0;
    std::shared_ptr<const CompressedBody> body;
    std::chrono::steady_clock::time_point made_at;
    std::chrono::steady_clock::duration fresh_for{0};
  };
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
};

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_RESPONSE_CACHE_H_
