// What StudyService.WatchStudy streams: the changes of one study since the last look.
//
// A StudyWatch compares the engine's views of a study, its trials and their metrics with what it
// sent before and turns the differences into StudyEvents, each carrying the study's current view:
//  - the study view changed (state, counts, steps, best trial): `study` only;
//  - a trial is new or its view changed (state, reached step, objective): `trial` set;
//  - a metric of a trial arrived (a step not sent before): `metric` set, with `trial` the trial
//    it belongs to. A stage shared by several trials reports its metrics once per trial.
// The first look sends the study, every trial and every metric so far, so a watcher needs no
// other call to catch up.
#ifndef HIPPO_HIPPO_STUDY_WATCH_H_
#define HIPPO_HIPPO_STUDY_WATCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hippo/engine.h"
#include "hippo/v1/hippo.pb.h"

namespace hippo::coordinator {

class StudyWatch {
 public:
  StudyWatch(Engine* engine, std::string study_id)
      : engine_(engine), study_id_(std::move(study_id)) {}

  // The events since the last call (none when nothing changed). NotFound for an unknown study.
  absl::StatusOr<std::vector<hippo::v1::StudyEvent>> Poll();

  // Whether the study has ended (after a Poll that saw it end, all of its events sent).
  bool ended() const { return ended_; }

 private:
  Engine* const engine_;
  const std::string study_id_;
  std::string last_study_;                 // serialized view last sent
  std::vector<std::string> last_trial_;    // by trial id: serialized view last sent
  std::vector<int64_t> last_metric_step_;  // by trial id: the last step whose metrics were sent
  bool ended_ = false;
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_STUDY_WATCH_H_
