#include "dashboard/server/event_texts.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dashboard/server/api.h"
#include "dashboard/server/study_reads.h"

namespace hippo::dashboard {
namespace {

// Indices into StreamState::sent.
constexpr size_t kTrialsPart = 0;
constexpr size_t kWorkersPart = 6;
// The changed trials pushed as rows in an event, at most (the rest as ranges of numbers).
constexpr int64_t kPushedTrialRows = 20;
// The changed studies' rows ride along when at most this many changed.
constexpr int kMaxRows = 20;
// A study of at most this many trials has all its curves drawn in full (the page's rule).
constexpr size_t kAllCurvesUpTo = 200;
// The entries kept: those of older versions are dropped past this many.
constexpr size_t kMaxEntries = 256;

// Appends `"name":value` to an object whose closing brace was taken off.
void AppendField(std::string& json, const char* name, const std::string& value) {
  if (json.back() != '{') json.push_back(',');
  absl::StrAppend(&json, "\"", name, "\":", value);
}

}  // namespace

std::shared_ptr<const std::string> EventTexts::Next(StreamState& stream,
                                                    const api::Change& change) {
  const bool moved = change.version() > stream.last;
  // A look without a change (a stream behind on a part) is made once per interval.
  const int64_t slot =
      moved ? 0 : std::chrono::steady_clock::now().time_since_epoch() / kPartInterval;
  const std::string key =
      absl::StrCat(stream.study, "|", stream.workers, "|", stream.last, "|", change.version(), "|",
                   slot, "|", absl::StrJoin(stream.sent, ","), "|", stream.behind);
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    newest_ = std::max(newest_, change.version());
    if (entries_.size() >= kMaxEntries && !entries_.contains(key)) {
      // Streams ask only for the newest version's texts (but those that just reconnected).
      std::erase_if(entries_, [&](const auto& item) { return item.second->version < newest_; });
      if (entries_.size() >= kMaxEntries) entries_.clear();
    }
    std::shared_ptr<Entry>& slot_entry = entries_[key];
    if (slot_entry == nullptr) {
      slot_entry = std::make_shared<Entry>();
      slot_entry->version = change.version();
    }
    entry = slot_entry;
  }
  std::lock_guard<std::mutex> lock(entry->mutex);
  if (!entry->made) {
    entry->result = Make(stream, change);
    entry->made = true;
  }
  const Made& made = entry->result;
  if (moved) stream.last = change.version();
  stream.sent = made.sent;
  stream.behind = made.behind;
  return made.text;
}

EventTexts::Made EventTexts::Make(const StreamState& stream, const api::Change& change) {
  Made made;
  made.sent = stream.sent;
  const bool moved = change.version() > stream.last;
  api::Change header;
  if (moved) {
    header = change;
    // The changed studies' rows ride along when few changed (a study page or the studies page
    // then asks for nothing to show them).
    if (header.studies_size() <= kMaxRows) {
      for (const std::string& id : header.studies()) {
        absl::StatusOr<api::StudyRow> row = StudyRowOf(*mirror_, id);
        // A study deleted meanwhile has no row: the client asks and gets 404.
        if (row.ok()) *header.add_rows() = *std::move(row);
      }
    }
  } else {
    header.set_version(stream.last);
  }
  std::string json = ToJson(header);
  json.pop_back();  // the closing brace: the pushed parts follow
  // A stream that watches a study (and not the workers) is sent an event only for that study:
  // when it changed or a part of it is due. Other studies' and the workers' changes would wake
  // each watching page for nothing; its version moves on all the same.
  bool any = moved && (stream.study.empty() || stream.workers);
  if (!stream.study.empty()) {
    const bool first = std::any_of(made.sent.begin(), made.sent.begin() + kWorkersPart,
                                   [](int64_t version) { return version == 0; });
    const bool changed = moved && std::find(change.studies().begin(), change.studies().end(),
                                            stream.study) != change.studies().end();
    if (first || changed || stream.behind) {
      made.behind = false;
      any |= AppendStudyParts(stream, changed ? change.version() : 0, made, json);
    } else {
      made.behind = stream.behind;
    }
  }
  if (stream.workers && (change.workers() || made.sent[kWorkersPart] == 0)) {
    absl::StatusOr<ResponseCache::Made> workers = cache_->GetOrMake(
        "push:workers", mirror_->version(),
        [&]() -> absl::StatusOr<std::string> { return ToJson(WorkersOf(*mirror_)); });
    if (workers.ok() && workers->version != made.sent[kWorkersPart]) {
      AppendField(json, "workers_page", workers->body->plain());
      made.sent[kWorkersPart] = workers->version;
      any = true;
    }
  }
  json.push_back('}');
  if (!any) return made;
  made.text = std::make_shared<const std::string>(
      absl::StrCat("event: change\nid: ", header.version(), "\ndata: ", json, "\n\n"));
  return made;
}

bool EventTexts::AppendStudyParts(const StreamState& stream, int64_t at, Made& made,
                                  std::string& json) {
  const std::string& id = stream.study;
  int64_t version = 0;
  size_t total = 0;
  if (!mirror_
           ->ReadStudy(id,
                       [&](const StudyData& study) {
                         version = study.version;
                         total = study.trials.size();
                       })
           .ok()) {
    return false;  // not known (yet): the page's own read says so
  }
  api::StudyParts head;
  head.set_study_id(id);
  // The trials changed since the stream's last event (all of them in its first), at each new
  // version: the first kPushedTrialRows by id as rows, and when more changed, every changed
  // number as ranges (the page reads again only the rows it shows among them). Cheap (the
  // mirror's index by version) and bounded whatever the rate of changes. Noted as sent at the
  // event's version, so that streams that opened apart share their texts from then on (a trial
  // changed after that version comes again in the next event: the page takes it twice).
  std::string trials_json;
  const bool first_trials = made.sent[kTrialsPart] == 0;
  if (at > 0 || first_trials) {
    const int64_t since = first_trials ? 0 : stream.last;
    absl::StatusOr<api::TrialsPage> trials =
        TrialsPage(*mirror_, id,
                   {{"since", absl::StrCat(since)}, {"page_size", absl::StrCat(kPushedTrialRows)}});
    if (trials.ok()) {
      if (!trials->next_page_token().empty()) {
        absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ranges =
            ChangedTrialRanges(*mirror_, id, since);
        if (ranges.ok()) {
          for (const auto& [first, last] : *ranges) {
            head.add_changed_trials(first);
            head.add_changed_trials(last);
          }
        }
      }
      trials_json = ToJson(*trials);
      made.sent[kTrialsPart] = at > 0 ? at : trials->version();
    }
  }
  std::string parts = ToJson(head);
  parts.pop_back();
  bool any = false;
  if (!trials_json.empty()) {
    AppendField(parts, "trials", trials_json);
    any = true;
  }
  struct Part {
    size_t index;
    StudyRead read;
    const char* field;
    Query query;
  };
  const std::vector<Part> reads = {
      {1, StudyRead::kCurves, "curves",
       total > 0 && total <= kAllCurvesUpTo ? Query{{"trials", "all"}} : Query{}},
      {2, StudyRead::kHistory, "history", {}},
      {3, StudyRead::kParameters, "parameters", {}},
      {4, StudyRead::kSavings, "savings", {}},
      {5, StudyRead::kTree, "tree", {{"depth", "6"}, {"max_children", "40"}}},
  };
  for (const Part& part : reads) {
    absl::StatusOr<ResponseCache::Made> body = cache_->GetOrMake(
        ReadKey(ReadPath(part.read, id), part.query), version,
        [&] { return MakeStudyRead(*mirror_, *trees_, part.read, id, part.query, version); },
        kPartInterval);
    if (!body.ok()) continue;  // the study vanished meanwhile: its page finds out by itself
    if (body->version < version) made.behind = true;
    if (body->version == made.sent[part.index]) continue;
    AppendField(parts, part.field, body->body->plain());
    made.sent[part.index] = body->version;
    any = true;
  }
  if (!any) return false;
  parts.push_back('}');
  AppendField(json, "study", parts);
  return true;
}

}  // namespace hippo::dashboard
