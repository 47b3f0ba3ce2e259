// EventTexts: the text of the server-sent events of GET /api/v1/events, made once for every
// stream in the same state. A stream that watches a study (?study=ID) is pushed that study's
// page as it changes (api.StudyParts: the trials changed since its last event, the learning
// curves, history, parameters, savings and the tree's first window), a stream that watches the
// workers (?workers=true) the workers' page: a watching page asks for nothing, so ten
// dashboards cost what one does plus the writing of each event to ten sockets.
//
// A stream's state is the version of its last event and the version of each part it was sent.
// Streams in one state (watching the same thing since the same event) get the same text, made
// by the first of them; the parts come from the ResponseCache the reads are answered from, a
// chart at most every kPartInterval however often the study changes.
#ifndef HIPPO_DASHBOARD_SERVER_EVENT_TEXTS_H_
#define HIPPO_DASHBOARD_SERVER_EVENT_TEXTS_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "dashboard/api/dashboard.pb.h"
#include "dashboard/server/mirror.h"
#include "dashboard/server/response_cache.h"
#include "dashboard/server/tree_window.h"

namespace hippo::dashboard {

// A pushed chart (the learning curves, history, parameters, savings and the tree's first
// window) is made again at most this often while its study changes, so at most once an event:
// streams out of step with each other share one making instead of one each. The charts are
// made from what the mirror keeps up to date as trials change (study_aggregates.h), a few
// milliseconds each however large the study, so they go with every event that follows a change
// and a page shows a chart's change with the next event, as it shows the summary and the
// table (within the mirror's period and a refresh). An expensive read (over 10 ms: the
// stage tree of a large running study, which is read from the engine whole) is made again as
// remake_policy.h allows, and lags by as much. Until the charts were kept incrementally they
// went every 2 s, since making them from every trial doubled the dashboard's CPU.
inline constexpr std::chrono::milliseconds kPartInterval{1000};

// A stream sends at most one event a tick of the mirror's clock (Mirror::Options::period,
// 1.5 s), right after the tick's refresh published: the changes of a tick go out together, so
// what an event costs (making it once, writing it to each stream, each page parsing it and
// drawing a frame) is paid per tick, not per change, and its share per trial falls as the
// dispatch rate rises. A page shows a change within a period and a refresh. Most of a watching
// page's CPU is paid per event (receiving and parsing it, a frame for the summary's figures,
// the charts redrawn), not per byte, and ten pages on the coordinator's two cores cost it
// dispatch rate in proportion.

// What one event stream watches and what it was sent.
struct StreamState {
  std::string study;     // "" when it watches no study
  bool workers = false;  // whether it watches the workers
  int64_t last = 0;      // the version of its last event (or of its start)
  // The version of each part it was sent (api.StudyParts' fields 2..7, then the workers' page);
  // 0: none yet, so its first event carries every part.
  std::array<int64_t, 7> sent{};
  // A part it got was made at an older version than its study's (remake_policy.h): the stream
  // looks again within kPartInterval, changes or not, so that the page ends at the last state.
  bool behind = false;
};

class EventTexts {
 public:
  EventTexts(const Mirror* mirror, TreeWindows* trees, ResponseCache* cache)
      : mirror_(mirror), trees_(trees), cache_(cache) {}

  // The event that takes `stream` to `change` (a change of the version may be absent: only
  // parts made since), or nullptr when there is nothing to send; `stream` is advanced to what
  // the event holds.
  std::shared_ptr<const std::string> Next(StreamState& stream, const api::Change& change);

 private:
  struct Made {
    std::shared_ptr<const std::string> text;  // nullptr: nothing to send
    std::array<int64_t, 7> sent{};
    bool behind = false;
  };
  struct Entry {
    std::mutex mutex;     // held while the text is made
    int64_t version = 0;  // the change's
    bool made = false;
    Made result;
  };
  Made Make(const StreamState& stream, const api::Change& change);
  // Appends the parts of the study that `stream` was not sent (as `"study":{...}`), noting
  // them in `made`; false when none.
  // `at`: the version of the change the event carries when the study changed in it (0: not,
  // only parts made since).
  bool AppendStudyParts(const StreamState& stream, int64_t at, Made& made, std::string& json);

  const Mirror* mirror_;
  TreeWindows* trees_;
  ResponseCache* cache_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // by the stream's state
  int64_t newest_ = 0;  // the newest version an entry was made for
};

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_EVENT_TEXTS_H_
