// A full disk on one of two workers: its checkpoint writes fail with ENOSPC from its third one
// on (HIPPO_TEST_DISK_FULL_AT_CHECKPOINT, workers/fault_injection.h), as when its file system
// fills up in the middle of a study. The stages it fails are retried on the healthy worker
// (after a backoff, not on the full one again), the full worker is drained and shown unhealthy
// with the cause, and the study ends with the results of an uninterrupted run.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "tests/e2e/fault_scenarios.h"
#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;

constexpr int kTrials = 8;  // the first 8 trials of W1: a few seconds of work

TEST(FullDiskTest, AFullDiskOnOneOfTwoWorkersLeavesTheResultsOfAnUninterruptedRun) {
  TempDir dir;
  const std::string spec = WriteW1(dir, /*seconds_per_step=*/0.002, kTrials);
  Cluster cluster(dir, /*workers=*/0, {"--retry-backoff-seconds", "0.1", "--unhealthy-after", "3"});
  // "a-full" comes first in the coordinator's order of workers, so it is offered stages first.
  // They share the checkpoint directory (as workers that continue each other's stages must);
  // the full disk is the one worker's: its writes fail, the other's succeed.
  cluster.AddWorker("a-full", dir.File("checkpoints"), dir.File("full.log"),
                    Env{{"HIPPO_TEST_DISK_FULL_AT_CHECKPOINT", "3"}});
  cluster.AddWorker("b-healthy", dir.File("checkpoints"), dir.File("healthy.log"));
  ASSERT_TRUE(cluster.WaitForWorkers(2, std::chrono::seconds(20)));

  const std::string study_id = cluster.Submit(spec);
  absl::StatusOr<EndedStudy> ended =
      WaitForEndedStudy(cluster.address(), study_id, std::chrono::seconds(180));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n"
                          << DescribeStudy(cluster.address(), study_id, cluster.server_log());
  ExpectUninterruptedResults(*ended, spec, kTrials);

  auto stub = Connect(cluster.address());
  {
    grpc::ClientContext context;
    v1::GetStageTreeRequest request;
    request.set_study_id(study_id);
    v1::StageTree tree;
    ASSERT_TRUE(stub->GetStageTree(&context, request, &tree).ok());
    int retried = 0;
    for (const v1::Stage& stage : tree.stages()) {
      // A stage that failed on the full worker went to the healthy one next.
      EXPECT_LE(stage.attempts(), 2) << "stage " << stage.id();
      retried += stage.attempts() == 2;
    }
    EXPECT_GE(retried, 3) << "the full worker failed at least --unhealthy-after stages";
  }
  grpc::ClientContext context;
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(stub->ListWorkers(&context, v1::ListWorkersRequest(), &workers).ok());
  ASSERT_EQ(workers.workers_size(), 2);
  for (const v1::WorkerInfo& worker : workers.workers()) {
    if (worker.worker_id() == "a-full") {
      EXPECT_FALSE(worker.healthy());
      EXPECT_TRUE(absl::StrContains(worker.health_message(), "No space left on device"))
          << worker.health_message();
    } else {
      EXPECT_TRUE(worker.healthy()) << worker.worker_id() << ": " << worker.health_message();
    }
  }
}

}  // namespace
}  // namespace hippo::e2e
