// Coordinator SIGKILLs at random moments: W1 (96 trials, real time per step) on two real
// `hippo worker` processes, the coordinator SIGKILLed again and again and restarted on the same
// database, sometimes before it answered again (a kill during recovery). Every study must end,
// each trial with the objective and metric history of the trial trained uninterrupted.
//
// One run of this binary lands HIPPO_STRESS_KILLS kills (default: a CI slice, kSliceKills),
// running studies one after another until they are spent. The kill moments come from
// HIPPO_STRESS_SEED (default: a random seed); the seed is printed with every failure, and
// HIPPO_STRESS_SEED=<seed> replays the same schedule of kills (the processes' own timing is not
// replayed, so a run is not reproduced step for step).
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <thread>

#include "tests/e2e/fault_scenarios.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;
using std::chrono::milliseconds;

constexpr int kSliceKills = 12;
// Real time per step: W1's 7 438 unique steps take about 7.5 s of two workers' time.
constexpr double kSecondsPerStep = 0.002;
// The longest a study may take to end after its last kill (its work is a few seconds).
constexpr std::chrono::seconds kEndTimeout(120);

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  return std::strtoll(value, nullptr, 10);
}

// Runs one study under kills (at most `budget` of them); returns how many landed.
int StressedStudy(std::mt19937_64& random, int budget) {
  TempDir dir;
  const std::string spec = WriteW1(dir, kSecondsPerStep);
  Cluster cluster(dir, /*workers=*/2, {"--lease-seconds", "2"});
  const std::string study_id = cluster.Submit(spec);
  if (study_id.empty()) return budget;  // a test failure already; spend the budget

  // A kill lands 0 to 1.5 s after the previous start (after it answered, or not, at random).
  std::uniform_int_distribution<int> pause_ms(0, 1500);
  std::bernoulli_distribution wait_for_server(0.75);
  bool serving = true;
  int kills = 0;
  while (kills < budget) {
    std::this_thread::sleep_for(milliseconds(pause_ms(random)));
    if (serving) {
      absl::StatusOr<v1::Study> study = GetStudy(cluster.address(), study_id);
      if (study.ok() && study->state() != v1::STUDY_RUNNING) break;
    }
    cluster.KillServer();
    ++kills;
    serving = wait_for_server(random);
    cluster.StartServer(serving);
  }
  absl::StatusOr<EndedStudy> ended = WaitForEndedStudy(cluster.address(), study_id, kEndTimeout);
  if (!ended.ok()) {
    ADD_FAILURE() << "the study did not end within " << kEndTimeout.count()
                  << " s of its last kill (" << kills << " kills):\n"
                  << DescribeStudy(cluster.address(), study_id, cluster.server_log());
    return kills;
  }
  ExpectUninterruptedResults(*ended, spec, /*trials=*/96);
  std::printf("study %s: %d kills, %lld of %lld steps executed\n", study_id.c_str(), kills,
              static_cast<long long>(ended->study.steps().executed_steps()),
              static_cast<long long>(ended->study.steps().unique_steps()));
  return kills;
}

TEST(KillStressTest, EveryStudyEndsLikeAnUninterruptedRunWhateverTheKillMoments) {
  const int64_t kills = EnvInt("HIPPO_STRESS_KILLS", kSliceKills);
  const auto seed = static_cast<uint64_t>(EnvInt("HIPPO_STRESS_SEED", std::random_device{}()));
  SCOPED_TRACE(testing::Message() << "reproduce the kill moments with HIPPO_STRESS_SEED=" << seed
                                  << " HIPPO_STRESS_KILLS=" << kills);
  std::printf("HIPPO_STRESS_SEED=%llu HIPPO_STRESS_KILLS=%lld\n",
              static_cast<unsigned long long>(seed), static_cast<long long>(kills));

  std::mt19937_64 random(seed);
  int landed = 0;
  int studies = 0;
  while (landed < kills && !testing::Test::HasFailure()) {
    landed += StressedStudy(random, static_cast<int>(kills - landed));
    ++studies;
  }
  std::printf("%d kills over %d studies\n", landed, studies);
}

}  // namespace
}  // namespace hippo::e2e
