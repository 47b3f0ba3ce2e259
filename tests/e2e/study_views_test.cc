// The bounded read views of StudyService over real gRPC to a `hippo server` process: every list
// RPC pages (ListTrials, GetStageTree, ListWorkers) with tokens that are checked, ListTrials
// follows a study incrementally (changed_since), and WatchStudy serves many watchers from one
// thread woken by changes: each sees every event, one over the cap is refused, and open
// watches of a study that does not change cost the coordinator no CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;

// `trials` random sim trials of `steps` steps, each step sleeping `seconds_per_step`.
std::string WriteSpec(const TempDir& dir, const std::string& name, int trials, int steps,
                      double seconds_per_step) {
  const std::string path = dir.File(name + ".yaml");
  std::ofstream(path) << "name: " << name << R"yaml(
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer: {kind: sim, config: {model: resnet20, cost_per_step: )yaml"
                      << seconds_per_step << R"yaml(}}
search_space:
  parameters:
    - {name: lr, float: {low: 0.001, high: 0.1, log: true}}
algorithm: {name: random, seed: 1}
budget: {max_steps: )yaml"
                      << steps << ", max_trials: " << trials << "}\n";
  return path;
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

// Every page of ListTrials from `request`; the trial ids in the order listed, and the version of
// the first page.
struct Listing {
  std::vector<int64_t> ids;
  std::vector<v1::Trial> trials;
  int64_t version = 0;
  int pages = 0;
};
Listing ListAll(v1::StudyService::Stub& stub, v1::ListTrialsRequest request) {
  Listing listing;
  do {
    v1::ListTrialsResponse page;
    const grpc::Status status = stub.ListTrials(Context().get(), request, &page);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok()) break;
    if (listing.pages++ == 0) listing.version = page.version();
    for (const v1::Trial& trial : page.trials()) {
      listing.ids.push_back(trial.id());
      listing.trials.push_back(trial);
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return listing;
}

TEST(StudyViewsTest, ListTrialsPagesAndFollowsChangesSinceAVersion) {
  TempDir dir("study-views");
  Cluster cluster(dir, /*workers=*/1);
  const std::string id = cluster.Submit(WriteSpec(dir, "paged", 7, 4, 0.05));
  auto stub = Connect(cluster.address());
  // Early in the study: the version to follow it from.
  v1::ListTrialsRequest request;
  request.set_study_id(id);
  request.set_page_size(3);
  const Listing early = ListAll(*stub, request);
  ASSERT_GT(early.version, 0);

  absl::StatusOr<v1::Study> study = WaitForStudy(cluster.address(), id, std::chrono::seconds(120));
  ASSERT_TRUE(study.ok()) << study.status();
  ASSERT_EQ(study->state(), v1::STUDY_COMPLETED);

  // Every trial once, by number, three to a page.
  const Listing all = ListAll(*stub, request);
  EXPECT_EQ(all.pages, 3);
  EXPECT_EQ(all.ids, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));

  // Changed since the early version: every trial that was not completed then, each once, in
  // the state it has now.
  std::set<int64_t> expected;
  for (int64_t trial = 0; trial < 7; ++trial) expected.insert(trial);
  for (const v1::Trial& trial : early.trials) {
    if (trial.state() == v1::TRIAL_COMPLETED) expected.erase(trial.id());
  }
  v1::ListTrialsRequest since = request;
  since.set_changed_since(early.version);
  since.set_page_size(2);
  const Listing changed = ListAll(*stub, since);
  const std::set<int64_t> changed_ids(changed.ids.begin(), changed.ids.end());
  EXPECT_EQ(changed_ids.size(), changed.ids.size()) << "a trial listed twice";
  for (int64_t trial : expected) EXPECT_TRUE(changed_ids.contains(trial)) << "trial " << trial;
  for (const v1::Trial& trial : changed.trials) EXPECT_EQ(trial.state(), v1::TRIAL_COMPLETED);

  // Nothing changed after the listing of the ended study.
  since.set_changed_since(all.version);
  EXPECT_TRUE(ListAll(*stub, since).ids.empty());

  // With metrics, only the names asked for.
  v1::ListTrialsRequest metrics = request;
  metrics.set_with_metrics(true);
  metrics.add_metric_names("val_accuracy");
  v1::ListTrialsResponse page;
  ASSERT_TRUE(stub->ListTrials(Context().get(), metrics, &page).ok());
  ASSERT_EQ(page.metrics_size(), 3);
  for (const v1::TrialMetrics& trial : page.metrics()) {
    ASSERT_EQ(trial.metrics_size(), 4);
    for (const v1::Metric& metric : trial.metrics()) {
      EXPECT_EQ(metric.values_size(), 1);
      EXPECT_TRUE(metric.values().contains("val_accuracy"));
    }
  }
}

TEST(StudyViewsTest, PageTokensAndSizesAreChecked) {
  TempDir dir("study-views");
  Cluster cluster(dir, /*workers=*/0);
  const std::string a = cluster.Submit(WriteSpec(dir, "a", 5, 4, 0.05));
  const std::string b = cluster.Submit(WriteSpec(dir, "b", 5, 4, 0.05));
  auto stub = Connect(cluster.address());
  v1::ListTrialsRequest request;
  request.set_study_id(a);
  request.set_page_size(2);
  v1::ListTrialsResponse first;
  ASSERT_TRUE(stub->ListTrials(Context().get(), request, &first).ok());
  ASSERT_FALSE(first.next_page_token().empty());

  auto refused = [&](const v1::ListTrialsRequest& bad, const std::string& field) {
    v1::ListTrialsResponse response;
    const grpc::Status status = stub->ListTrials(Context().get(), bad, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_EQ(status.error_message().rfind(field + ": ", 0), 0u) << status.error_message();
  };
  v1::ListTrialsRequest bad = request;
  bad.set_page_token("not-a-token");
  refused(bad, "page_token");
  bad.set_page_token(first.next_page_token());
  bad.set_study_id(b);  // a token of another study's listing
  refused(bad, "page_token");
  bad = request;
  bad.set_page_token(first.next_page_token());
  bad.set_changed_since(1);  // of another filter
  refused(bad, "page_token");
  bad = request;
  bad.set_page_size(-1);
  refused(bad, "page_size");
  bad = request;
  bad.set_changed_since(-5);
  refused(bad, "changed_since");

  // A page size above the maximum is lowered to it, not refused.
  request.set_page_size(1 << 30);
  v1::ListTrialsResponse whole;
  ASSERT_TRUE(stub->ListTrials(Context().get(), request, &whole).ok());
  EXPECT_EQ(whole.trials_size(), 5);
  EXPECT_TRUE(whole.next_page_token().empty());

  v1::GetStageTreeRequest tree;
  tree.set_study_id(a);
  tree.set_page_token("bm9wZQ");
  v1::StageTree stages;
  EXPECT_EQ(stub->GetStageTree(Context().get(), tree, &stages).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListWorkersRequest workers;
  workers.set_page_token("x");
  v1::ListWorkersResponse listed;
  const grpc::Status status = stub->ListWorkers(Context().get(), workers, &listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("page_token: ", 0), 0u) << status.error_message();
}

TEST(StudyViewsTest, StageTreeAndWorkersPageThroughEverything) {
  TempDir dir("study-views");
  Cluster cluster(dir, /*workers=*/3);
  const std::string id = cluster.Submit(WriteSpec(dir, "tree", 6, 4, 0.02));
  ASSERT_TRUE(WaitForStudy(cluster.address(), id, std::chrono::seconds(120)).ok());
  auto stub = Connect(cluster.address());

  v1::GetStageTreeRequest request;
  request.set_study_id(id);
  request.set_page_size(5000);
  v1::StageTree whole;
  ASSERT_TRUE(stub->GetStageTree(Context().get(), request, &whole).ok());
  ASSERT_GE(whole.stages_size(), 6);
  EXPECT_TRUE(whole.next_page_token().empty());
  request.set_page_size(2);
  std::vector<int64_t> paged;
  int pages = 0;
  do {
    v1::StageTree page;
    ASSERT_TRUE(stub->GetStageTree(Context().get(), request, &page).ok());
    ++pages;
    EXPECT_LE(page.stages_size(), 2);
    EXPECT_EQ(page.steps().trial_steps(), whole.steps().trial_steps());
    for (const v1::Stage& stage : page.stages()) paged.push_back(stage.id());
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  std::vector<int64_t> expected;
  for (const v1::Stage& stage : whole.stages()) expected.push_back(stage.id());
  EXPECT_EQ(paged, expected);
  EXPECT_EQ(pages, (whole.stages_size() + 1) / 2);

  // Workers, two to a page: every one once, by id.
  std::vector<std::string> ids;
  v1::ListWorkersRequest workers;
  workers.set_page_size(2);
  do {
    v1::ListWorkersResponse page;
    ASSERT_TRUE(stub->ListWorkers(Context().get(), workers, &page).ok());
    for (const v1::WorkerInfo& worker : page.workers()) ids.push_back(worker.worker_id());
    workers.set_page_token(page.next_page_token());
  } while (!workers.page_token().empty());
  EXPECT_EQ(ids, (std::vector<std::string>{"worker-0", "worker-1", "worker-2"}));

  // The CLI lists over the pages.
  const CommandResult listed = RunHippo({"workers", "--coordinator", cluster.address()});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  for (const std::string& worker : ids) EXPECT_NE(listed.output.find(worker), std::string::npos);
}

// `hippo workers` shows what each worker's fork cache holds, as the coordinator's ListWorkers
// says (WorkerInfo.fork_cache): the count and the newest states, as FAMILY/NODE@STEP.
TEST(StudyViewsTest, WorkersCommandShowsTheForkCacheContents) {
  TempDir dir("study-views");
  Cluster cluster(dir, /*workers=*/2);
  const std::string id = cluster.Submit(WriteSpec(dir, "cache", 6, 4, 0.02));
  ASSERT_TRUE(WaitForStudy(cluster.address(), id, std::chrono::seconds(120)).ok());
  auto stub = Connect(cluster.address());
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(stub->ListWorkers(Context().get(), v1::ListWorkersRequest(), &workers).ok());
  const CommandResult listed = RunHippo({"workers", "--coordinator", cluster.address()});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  const std::vector<std::string> lines = absl::StrSplit(listed.output, '\n');
  int64_t states = 0;
  for (const v1::WorkerInfo& worker : workers.workers()) {
    states += worker.cached_states();
    if (worker.cached_states() == 0) continue;
    // The worker's row, then its fork cache on the next line.
    auto row = std::find_if(lines.begin(), lines.end(), [&](const std::string& line) {
      return line.starts_with(worker.worker_id() + " ");
    });
    ASSERT_NE(row, lines.end()) << listed.output;
    ASSERT_NE(row + 1, lines.end()) << listed.output;
    std::string expected = absl::StrCat("  fork cache: ", worker.cached_states(),
                                        worker.cached_states() == 1 ? " state" : " states");
    ASSERT_GT(worker.fork_cache_size(), 0);
    std::vector<std::string> shown;
    for (int i = 0; i < worker.fork_cache_size() && i < 12; ++i) {
      const int64_t stage = worker.fork_cache(i).stage_id();
      shown.push_back(
          absl::StrCat(stage >> 32, "/", stage & 0xffffffff, "@", worker.fork_cache(i).step()));
    }
    absl::StrAppend(&expected, ", newest first: ", absl::StrJoin(shown, " "));
    if (worker.cached_states() > 12) {
      absl::StrAppend(&expected, " (+", worker.cached_states() - 12, " more)");
    }
    EXPECT_EQ(row[1], expected) << listed.output;
  }
  // Every trained stage leaves its state in a worker's cache: something was shown.
  EXPECT_GT(states, 0) << listed.output;
}

// Reads a watch to its end: per trial, the metric steps seen (each must come once) and the
// last state seen.
struct Watched {
  std::map<int64_t, std::set<int64_t>> metric_steps;
  std::map<int64_t, v1::TrialState> states;
  v1::Study last;
  bool duplicate_step = false;
  grpc::Status status;
};
void ReadWatch(v1::StudyService::Stub* stub, const std::string& id, Watched* watched) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(180));
  v1::WatchStudyRequest request;
  request.set_study_id(id);
  std::unique_ptr<grpc::ClientReader<v1::StudyEvent>> reader = stub->WatchStudy(&context, request);
  v1::StudyEvent event;
  while (reader->Read(&event)) {
    watched->last = event.study();
    if (event.has_metric()) {
      if (!watched->metric_steps[event.trial().id()].insert(event.metric().step()).second) {
        watched->duplicate_step = true;
      }
    } else if (event.has_trial()) {
      watched->states[event.trial().id()] = event.trial().state();
    }
  }
  watched->status = reader->Finish();
}

TEST(StudyViewsTest, ManyWatchersEachSeeEveryMetricOnce) {
  TempDir dir("study-views");
  Cluster cluster(dir, /*workers=*/2);
  constexpr int kTrials = 6;
  constexpr int kSteps = 5;
  const std::string id = cluster.Submit(WriteSpec(dir, "watched", kTrials, kSteps, 0.05));
  constexpr int kWatchers = 12;
  std::vector<Watched> watched(kWatchers);
  std::vector<std::thread> threads;
  auto stub = Connect(cluster.address());
  for (int i = 0; i < kWatchers; ++i) {
    threads.emplace_back(ReadWatch, stub.get(), id, &watched[i]);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // joining at different moments
  }
  for (std::thread& thread : threads) thread.join();
  for (const Watched& watch : watched) {
    ASSERT_TRUE(watch.status.ok()) << watch.status.error_message();
    EXPECT_EQ(watch.last.state(), v1::STUDY_COMPLETED);
    EXPECT_FALSE(watch.duplicate_step);
    ASSERT_EQ(watch.states.size(), static_cast<size_t>(kTrials));
    for (const auto& [trial, state] : watch.states) {
      EXPECT_EQ(state, v1::TRIAL_COMPLETED) << "trial " << trial;
      EXPECT_EQ(watch.metric_steps.at(trial).size(), static_cast<size_t>(kSteps))
          << "trial " << trial;
    }
  }
}

// The CPU seconds (user + system) the process has used so far.
double CpuSeconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command (which may hold spaces) start after the last ')'.
  const std::vector<std::string> fields =
      absl::StrSplit(text.substr(text.rfind(')') + 2), ' ', absl::SkipEmpty());
  if (fields.size() < 13) return -1;
  return (std::stod(fields[11]) + std::stod(fields[12])) / sysconf(_SC_CLK_TCK);
}

// The pid of the `hippo server` listening on `address` (from /proc's command lines).
pid_t ServerPid(const std::string& address) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream file(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (cmdline.find(std::string("server") + '\0') != std::string::npos &&
        cmdline.find(address + '\0') != std::string::npos) {
      return static_cast<pid_t>(std::stol(entry.path().filename().string()));
    }
  }
  return -1;
}

TEST(StudyViewsTest, WatchersOverTheCapAreRefusedAndIdleOnesCostNoCpu) {
  TempDir dir("study-views");
  Cluster cluster(dir, /*workers=*/0);  // no worker: the study runs and never changes
  const std::string id = cluster.Submit(WriteSpec(dir, "idle", 200, 10, 0.05));
  const pid_t server = ServerPid(cluster.address());
  ASSERT_GT(server, 0);
  constexpr int kCap = 64;                 // WatchStreams::Options::max_streams
  auto stub = Connect(cluster.address());  // one channel: every stream shares it
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::StudyEvent>>> readers;
  v1::WatchStudyRequest request;
  request.set_study_id(id);
  for (int i = 0; i < kCap; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(stub->WatchStudy(contexts.back().get(), request));
    v1::StudyEvent event;
    ASSERT_TRUE(readers.back()->Read(&event)) << "watcher " << i << " got no first event";
    EXPECT_EQ(event.study().id(), id);
  }
  // Drain the first round (the study and its 200 trials) of every watcher.
  for (auto& reader : readers) {
    v1::StudyEvent event;
    int trials = 0;
    while (trials < 199 && reader->Read(&event)) trials += event.has_trial() ? 1 : 0;
  }
  {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::StudyEvent>> over = stub->WatchStudy(&context, request);
    v1::StudyEvent event;
    EXPECT_FALSE(over->Read(&event));
    const grpc::Status status = over->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  }
  // 64 open watches of a study that does not change: the coordinator sleeps (no round without
  // a change; a poll per watcher every 100 ms would cost 640 reads of 200 trials a second).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double before = CpuSeconds(server);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const double used = CpuSeconds(server) - before;
  EXPECT_LT(used, 0.3) << "CPU seconds in 3 s of idle watching";

  // A closed watch frees its place.
  contexts.front()->TryCancel();
  readers.front()->Finish().ok();  // CANCELLED, as asked
  bool reopened = false;
  for (int attempt = 0; attempt < 50 && !reopened; ++attempt) {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::StudyEvent>> again = stub->WatchStudy(&context, request);
    v1::StudyEvent event;
    reopened = again->Read(&event);
    context.TryCancel();
    again->Finish().ok();  // CANCELLED or RESOURCE_EXHAUSTED: only the read counts
    if (!reopened) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(reopened);
  for (auto& context : contexts) context->TryCancel();
}

}  // namespace
}  // namespace hippo::e2e
