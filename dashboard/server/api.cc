#include "dashboard/server/api.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <numeric>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hippo::dashboard {
namespace {

namespace v1 = ::hippo::v1;

constexpr int64_t kDefaultPageSize = 100;
constexpr int64_t kMaxPageSize = 1000;

std::string Get(const Query& query, const std::string& key) {
  auto it = query.find(key);
  return it == query.end() ? std::string() : it->second;
}

absl::StatusOr<int64_t> IntParam(const Query& query, const std::string& key, int64_t fallback,
                                 int64_t low, int64_t high) {
  const std::string text = Get(query, key);
  if (text.empty()) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < low || value > high) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": expected an integer in [", low, ", ", high, "], got '", text, "'"));
  }
  return value;
}

struct Page {
  int64_t offset = 0;
  int64_t size = kDefaultPageSize;
  int64_t since = 0;
};

absl::StatusOr<Page> PageOf(const Query& query) {
  Page page;
  absl::StatusOr<int64_t> size = IntParam(query, "page_size", kDefaultPageSize, 1, kMaxPageSize);
  if (!size.ok()) return size.status();
  page.size = *size;
  const std::string token = Get(query, "page_token");
  if (!token.empty() && (!absl::SimpleAtoi(token, &page.offset) || page.offset < 0)) {
    return absl::InvalidArgumentError(
        "page_token: not a token of this server; pass the next_page_token of the previous "
        "page, or none for the first page");
  }
  absl::StatusOr<int64_t> since =
      IntParam(query, "since", 0, 0, std::numeric_limits<int64_t>::max());
  if (!since.ok()) return since.status();
  page.since = *since;
  return page;
}

api::StudyRow RowOf(const StudyData& study) {
  api::StudyRow row;
  *row.mutable_study() = study.view;
  *row.mutable_study()->mutable_spec() = study.Spec();
  row.set_version(study.version);
  const v1::Study& view = study.view;
  const double created =
      static_cast<double>(view.created().seconds()) + view.created().nanos() / 1e9;
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const bool finished = view.finished().seconds() > 0;
  const double elapsed =
      std::max(0.0, (finished ? static_cast<double>(view.finished().seconds()) : now) - created);
  row.set_elapsed_seconds(elapsed);
  // Progress: ended trials of the trial budget when there is one, else steps trained of the
  // unique steps known so far.
  double progress = 0;
  const int64_t max_trials = study.Spec().budget().max_trials();
  if (finished || view.state() == v1::STUDY_COMPLETED) {
    progress = 1;
  } else if (max_trials > 0) {
    progress = static_cast<double>(study.ended_trials) / static_cast<double>(max_trials);
  } else if (view.steps().unique_steps() > 0) {
    progress =
        static_cast<double>(view.steps().executed_steps() - view.steps().recomputed_steps()) /
        static_cast<double>(view.steps().unique_steps());
  }
  progress = std::clamp(progress, 0.0, 1.0);
  row.set_progress(progress);
  row.set_eta_seconds(view.state() == v1::STUDY_RUNNING && progress > 0.01
                          ? elapsed * (1 - progress) / progress
                          : -1);
  return row;
}

// A trial's value in a sort/filter column; NaN when it has none.
struct Column {
  enum Kind { kId, kState, kObjective, kReached, kTarget, kParameter } kind = kId;
  size_t parameter = 0;
};

absl::StatusOr<Column> ColumnOf(const StudyData& study, const std::string& name,
                                const std::string& field) {
  Column column;
  if (name == "id") return column;
  if (name == "state") return Column{Column::kState, 0};
  if (name == "objective") return Column{Column::kObjective, 0};
  if (name == "reached_step") return Column{Column::kReached, 0};
  if (name == "target_step") return Column{Column::kTarget, 0};
  if (absl::StartsWith(name, "param:")) {
    const std::string parameter = name.substr(6);
    for (size_t i = 0; i < study.parameters.size(); ++i) {
      if (study.parameters[i].name == parameter) return Column{Column::kParameter, i};
    }
  }
  std::string known = "id, state, objective, reached_step, target_step";
  for (const ParameterColumn& parameter : study.parameters) {
    absl::StrAppend(&known, ", param:", parameter.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": unknown column '", name, "'; the columns are ", known));
}

double ValueOf(const TrialEntry& trial, size_t number, const Column& column) {
  switch (column.kind) {
    case Column::kId:
      return static_cast<double>(number);
    case Column::kState:
      return trial.state;
    case Column::kObjective:
      return trial.has_objective ? trial.objective : std::numeric_limits<double>::quiet_NaN();
    case Column::kReached:
      return static_cast<double>(trial.reached_step);
    case Column::kTarget:
      return static_cast<double>(trial.target_step);
    case Column::kParameter:
      return trial.parameters[column.parameter];
  }
  return 0;
}

// One filter term: a numeric comparison, or a substring of a text column.
struct Filter {
  Column column;
  double low = -std::numeric_limits<double>::infinity();
  double high = std::numeric_limits<double>::infinity();
  bool low_open = false, high_open = false;
  std::string text;  // for state and string parameters
};

absl::StatusOr<std::vector<Filter>> FiltersOf(const StudyData& study, const std::string& spec) {
  std::vector<Filter> filters;
  for (absl::string_view term : absl::StrSplit(spec, ';', absl::SkipWhitespace())) {
    const size_t colon = term.find(':', absl::StartsWith(term, "param:") ? 6 : 0);
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "filter: '", term, "' is not COLUMN:EXPR (e.g. objective:>0.9 or state:completed)"));
    }
    Filter filter;
    absl::StatusOr<Column> column = ColumnOf(study, std::string(term.substr(0, colon)), "filter");
    if (!column.ok()) return column.status();
    filter.column = *column;
    std::string expr(absl::StripAsciiWhitespace(term.substr(colon + 1)));
    const bool textual =
        column->kind == Column::kState ||
        (column->kind == Column::kParameter && study.parameters[column->parameter].categorical);
    if (textual) {
      filter.text = absl::AsciiStrToLower(expr);
      filters.push_back(std::move(filter));
      continue;
    }
    auto number = [&](absl::string_view text, double* out) {
      if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), out)) {
        return absl::InvalidArgumentError(
            absl::StrCat("filter: '", text, "' in '", term,
                         "' is not a number (use >x, >=x, <x, <=x, =x or a..b)"));
      }
      return absl::OkStatus();
    };
    absl::Status status;
    if (const size_t dots = expr.find(".."); dots != std::string::npos) {
      status = number(absl::string_view(expr).substr(0, dots), &filter.low);
      if (status.ok()) status = number(absl::string_view(expr).substr(dots + 2), &filter.high);
    } else if (absl::StartsWith(expr, ">=")) {
      status = number(absl::string_view(expr).substr(2), &filter.low);
    } else if (absl::StartsWith(expr, "<=")) {
      status = number(absl::string_view(expr).substr(2), &filter.high);
    } else if (absl::StartsWith(expr, ">")) {
      status = number(absl::string_view(expr).substr(1), &filter.low);
      filter.low_open = true;
    } else if (absl::StartsWith(expr, "<")) {
      status = number(absl::string_view(expr).substr(1), &filter.high);
      filter.high_open = true;
    } else {
      status = number(absl::StartsWith(expr, "=") ? absl::string_view(expr).substr(1) : expr,
                      &filter.low);
      filter.high = filter.low;
    }
    if (!status.ok()) return status;
    filters.push_back(std::move(filter));
  }
  return filters;
}

bool Passes(const StudyData& study, const TrialEntry& trial, size_t number,
            const std::vector<Filter>& filters) {
  for (const Filter& filter : filters) {
    if (!filter.text.empty() || filter.column.kind == Column::kState ||
        (filter.column.kind == Column::kParameter &&
         study.parameters[filter.column.parameter].categorical)) {
      std::string value;
      if (filter.column.kind == Column::kState) {
        value = v1::TrialState_Name(static_cast<v1::TrialState>(trial.state));
      } else {
        const ParameterColumn& column = study.parameters[filter.column.parameter];
        const double index = trial.parameters[filter.column.parameter];
        if (!std::isnan(index) && index >= 0 && index < column.categories.size()) {
          value = column.categories[static_cast<size_t>(index)];
        }
      }
      if (!absl::StrContains(absl::AsciiStrToLower(value), filter.text)) return false;
      continue;
    }
    const double value = ValueOf(trial, number, filter.column);
    if (std::isnan(value)) return false;
    if (filter.low_open ? value <= filter.low : value < filter.low) return false;
    if (filter.high_open ? value >= filter.high : value > filter.high) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<api::StudiesPage> StudiesPage(const Mirror& mirror, const Query& query) {
  absl::StatusOr<Page> page = PageOf(query);
  if (!page.ok()) return page.status();
  api::StudiesPage response;
  response.set_version(mirror.version());
  mirror.ReadAll([&](const std::vector<const StudyData*>& studies, const auto&) {
    std::vector<const StudyData*> matching;
    for (const StudyData* study : studies) {
      if (study->version > page->since) matching.push_back(study);
    }
    // Newest first: a list of many studies opens on the ones running now.
    std::reverse(matching.begin(), matching.end());
    const int64_t end = std::min<int64_t>(matching.size(), page->offset + page->size);
    for (int64_t i = page->offset; i < end; ++i) *response.add_studies() = RowOf(*matching[i]);
    if (end < static_cast<int64_t>(matching.size())) {
      response.set_next_page_token(absl::StrCat(end));
    }
  });
  return response;
}

absl::StatusOr<api::StudyRow> StudyRowOf(const Mirror& mirror, const std::string& study_id) {
  api::StudyRow row;
  absl::Status status =
      mirror.ReadStudy(study_id, [&](const StudyData& study) { row = RowOf(study); });
  if (!status.ok()) return status;
  return row;
}

absl::StatusOr<int64_t> StudyVersion(const Mirror& mirror, const std::string& study_id) {
  int64_t version = 0;
  absl::Status status =
      mirror.ReadStudy(study_id, [&](const StudyData& study) { version = study.version; });
  if (!status.ok()) return status;
  return version;
}

absl::StatusOr<api::TrialsPage> TrialsPage(const Mirror& mirror, const std::string& study_id,
                                           const Query& query) {
  absl::StatusOr<Page> page = PageOf(query);
  if (!page.ok()) return page.status();
  const std::string desc = Get(query, "desc");
  if (!desc.empty() && desc != "true" && desc != "false") {
    return absl::InvalidArgumentError("desc: expected true or false, got '" + desc + "'");
  }
  api::TrialsPage response;
  absl::Status error;
  absl::Status status = mirror.ReadStudy(study_id, [&](const StudyData& study) {
    response.set_version(study.version);
    response.set_total(static_cast<int64_t>(study.trials.size()));
    for (const char* name : {"id", "state", "objective", "reached_step", "target_step"}) {
      response.add_columns(name);
    }
    for (const ParameterColumn& column : study.parameters) {
      response.add_columns("param:" + column.name);
    }
    const std::string sort_name = Get(query, "sort").empty() ? "id" : Get(query, "sort");
    absl::StatusOr<Column> sort = ColumnOf(study, sort_name, "sort");
    if (!sort.ok()) {
      error = sort.status();
      return;
    }
    absl::StatusOr<std::vector<Filter>> filters = FiltersOf(study, Get(query, "filter"));
    if (!filters.ok()) {
      error = filters.status();
      return;
    }
    std::vector<int32_t> rows;
    auto consider = [&](size_t i) {
      if (filters->empty() || Passes(study, study.trials[i], i, *filters)) {
        rows.push_back(static_cast<int32_t>(i));
      }
    };
    if (page->since > 0) {
      // Only the trials changed since, from the study's index by version: a page that follows
      // a running study costs its changes, not its size.
      for (auto it = study.by_version.upper_bound(page->since); it != study.by_version.end();
           ++it) {
        consider(static_cast<size_t>(it->second));
      }
      std::sort(rows.begin(), rows.end());
    } else {
      rows.reserve(study.trials.size());
      for (size_t i = 0; i < study.trials.size(); ++i) consider(i);
    }
    if (sort->kind != Column::kId || desc == "true") {
      const bool descending = desc == "true";
      // Trials without a value (NaN) go last in both directions; ties by trial number.
      std::stable_sort(rows.begin(), rows.end(), [&](int32_t a, int32_t b) {
        const double x = ValueOf(study.trials[a], a, *sort);
        const double y = ValueOf(study.trials[b], b, *sort);
        if (std::isnan(x) || std::isnan(y)) return !std::isnan(x) && std::isnan(y);
        return descending ? x > y : x < y;
      });
    }
    response.set_matching(static_cast<int64_t>(rows.size()));
    const int64_t end = std::min<int64_t>(rows.size(), page->offset + page->size);
    for (int64_t i = page->offset; i < end; ++i) {
      const TrialEntry& trial = study.trials[rows[i]];
      api::TrialRow* row = response.add_trials();
      row->mutable_trial()->ParseFromString(trial.bytes);
      row->set_version(trial.version);
    }
    if (end < static_cast<int64_t>(rows.size())) response.set_next_page_token(absl::StrCat(end));
  });
  if (!status.ok()) return status;
  if (!error.ok()) return error;
  return response;
}

absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ChangedTrialRanges(
    const Mirror& mirror, const std::string& study_id, int64_t since) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  absl::Status status = mirror.ReadStudy(study_id, [&](const StudyData& study) {
    if (since <= 0) {
      if (!study.trials.empty()) ranges.emplace_back(0, study.trials.size() - 1);
      return;
    }
    std::vector<int32_t> numbers;
    for (auto it = study.by_version.upper_bound(since); it != study.by_version.end(); ++it) {
      numbers.push_back(it->second);
    }
    std::sort(numbers.begin(), numbers.end());
    for (int32_t number : numbers) {
      if (!ranges.empty() && number <= ranges.back().second + 1) {
        ranges.back().second = std::max<int64_t>(ranges.back().second, number);
      } else {
        ranges.emplace_back(number, number);
      }
    }
  });
  if (!status.ok()) return status;
  return ranges;
}

absl::StatusOr<api::Savings> SavingsOf(const Mirror& mirror, const std::string& study_id) {
  api::Savings response;
  absl::Status status = mirror.ReadStudy(study_id, [&](const StudyData& study) {
    response.set_version(study.version);
    for (const SavingsSample& sample : study.savings) {
      api::SavingsPoint* point = response.add_points();
      point->set_time_seconds(sample.time_seconds);
      point->set_trial_steps(sample.trial_steps);
      point->set_executed_steps(sample.executed_steps);
      point->set_trials_completed(sample.trials_completed);
    }
  });
  if (!status.ok()) return status;
  return response;
}

api::Workers WorkersOf(const Mirror& mirror) {
  api::Workers response;
  response.set_version(mirror.version());
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double history = std::chrono::duration<double>(mirror.worker_history()).count();
  mirror.ReadAll([&](const auto&, const std::map<std::string, WorkerData>& workers) {
    for (const auto& [id, worker] : workers) {
      api::WorkerRow* row = response.add_workers();
      *row->mutable_worker() = worker.info;
      row->set_running_study(worker.running_study);
      for (int i = 0; i < worker.info.fork_cache_size(); ++i) {
        api::ForkCacheEntry* entry = row->add_fork_cache();
        entry->set_stage_id(worker.info.fork_cache(i).stage_id());
        entry->set_step(worker.info.fork_cache(i).step());
        if (static_cast<size_t>(i) < worker.fork_cache_studies.size()) {
          entry->set_study_id(worker.fork_cache_studies[i]);
        }
      }
      // The busy share of each of at most 120 buckets of the history, from the transitions
      // the mirror saw (a state holds from one transition to the next).
      const std::deque<std::pair<double, bool>>& transitions = worker.transitions;
      if (transitions.empty()) continue;
      const double from = std::max(transitions.front().first, now - history);
      if (now - from < 1) continue;
      constexpr int kBuckets = 120;
      const double width = (now - from) / kBuckets;
      std::vector<double> busy(kBuckets, 0);
      for (size_t i = 0; i < transitions.size(); ++i) {
        if (!transitions[i].second) continue;
        const double start = std::max(from, transitions[i].first);
        const double end = i + 1 < transitions.size() ? transitions[i + 1].first : now;
        if (end <= start) continue;
        const int first = std::clamp(static_cast<int>((start - from) / width), 0, kBuckets - 1);
        for (int bucket = first; bucket < kBuckets; ++bucket) {
          const double bucket_start = from + bucket * width;
          const double bucket_end = bucket + 1 == kBuckets ? now : bucket_start + width;
          busy[bucket] += std::max(0.0, std::min(end, bucket_end) - std::max(start, bucket_start));
          if (bucket_end >= end) break;
        }
      }
      double total = 0;
      for (int bucket = 0; bucket < kBuckets; ++bucket) {
        api::WorkerSample* sample = row->add_samples();
        sample->set_time_seconds(from + (bucket + 1) * width);
        sample->set_busy(std::clamp(busy[bucket] / width, 0.0, 1.0));
        total += busy[bucket];
      }
      row->set_utilisation(std::clamp(total / (now - from), 0.0, 1.0));
    }
  });
  return response;
}

}  // namespace hippo::dashboard
