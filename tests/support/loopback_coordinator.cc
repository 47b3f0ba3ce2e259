#include "tests/support/loopback_coordinator.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <utility>

namespace hippo::test_support {
namespace {

// A database path of its own for every coordinator a test process starts.
std::string FreshDbPath() {
  static std::atomic<int> started{0};
  const std::string name = "hippo-loopback-" + std::to_string(getpid()) + "-" +
                           std::to_string(started.fetch_add(1)) + ".db";
  return (std::filesystem::temp_directory_path() / name).string();
}

}  // namespace

LoopbackCoordinator::LoopbackCoordinator(coordinator::ServerOptions options) : db(FreshDbPath()) {
  options.listen = "127.0.0.1:0";
  options.db_path = db;
  options.insecure = options.token.empty();
  absl::StatusOr<std::unique_ptr<coordinator::Server>> started =
      coordinator::Server::Start(options);
  EXPECT_TRUE(started.ok()) << started.status();
  if (!started.ok()) return;
  server = *std::move(started);
  stub =
      v1::StudyService::NewStub(grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
}

LoopbackCoordinator::~LoopbackCoordinator() {
  stub.reset();
  server.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db + suffix);
}

std::string LoopbackCoordinator::address() const {
  return "127.0.0.1:" + std::to_string(server == nullptr ? 0 : server->port());
}

}  // namespace hippo::test_support
