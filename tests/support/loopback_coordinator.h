// A coordinator in the test's own process, on a free loopback port and a fresh database file,
// with a StudyService stub connected to it: the in-process tests of the server's budgets and
// bounds (byte_budget_test, client_pacing_test, cpu_budget_test).
#ifndef HIPPO_TESTS_SUPPORT_LOOPBACK_COORDINATOR_H_
#define HIPPO_TESTS_SUPPORT_LOOPBACK_COORDINATOR_H_

#include <memory>
#include <string>

#include "hippo/server.h"
#include "hippo/v1/hippo.grpc.pb.h"

namespace hippo::test_support {

struct LoopbackCoordinator {
  // `options` as the test sets them; their listen address and database path are replaced, and
  // without a token the server trusts every caller. A failed start fails the test (EXPECT), and
  // leaves `server` and `stub` null.
  explicit LoopbackCoordinator(coordinator::ServerOptions options = {});
  // Stops the server and removes the database with its write-ahead log.
  ~LoopbackCoordinator();
  LoopbackCoordinator(const LoopbackCoordinator&) = delete;
  LoopbackCoordinator& operator=(const LoopbackCoordinator&) = delete;

  std::string address() const;

  const std::string db;
  std::unique_ptr<coordinator::Server> server;
  std::unique_ptr<v1::StudyService::Stub> stub;
};

}  // namespace hippo::test_support

#endif  // HIPPO_TESTS_SUPPORT_LOOPBACK_COORDINATOR_H_
