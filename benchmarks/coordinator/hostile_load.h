// A hostile client for the coordinator benchmark, run in a process of its own
// (coordinator_benchmark --hostile-client ADDRESS): while simulated workers train a study, it
// sends the largest requests the limits allow (docs/security.md, "Bounded inputs"), one after
// another without a pause, as fast as the coordinator answers (docs/security.md, "Rates"), and
// requests over them, which are refused. Every message but each round's new spec is serialized
// once and sent as bytes (gRPC's generic stub): the client's own CPU, which shares the machine
// with the coordinator in the benchmark, goes to sending, not to building what it sends.
//
// - a study-service client, each round: CreateStudy of a new study whose spec is at the size
//   limit (1 MiB trainer config, names of 256 characters; external, so that it adds no stage
//   for the workers), Ask at the count cap (1000) on it, ListTrials with metrics and ListStudies
//   at their largest page sizes (1000), and CreateStudy of a spec twice the size limit and of
//   one above the server's receive limit;
// - a raw worker stream (serving a trainer kind no study uses, so it is given nothing):
//   Reports messages just under the receive limit (reports of an attempt it does not hold, each
//   with 256 metrics of 256-character names: parsed, checked and ignored), one report out of
//   bounds (a metric name too long) and one message above the receive limit, which ends its
//   stream (it connects again).
#ifndef HIPPO_BENCHMARKS_COORDINATOR_HOSTILE_LOAD_H_
#define HIPPO_BENCHMARKS_COORDINATOR_HOSTILE_LOAD_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace grpc {
class ClientContext;
}  // namespace grpc

namespace hippo::benchmarks {

class HostileLoad {
 public:
  // Starts the client's two threads against the coordinator at `address` (insecure).
  explicit HostileLoad(std::string address);
  // Cancels their calls in flight, stops and joins them.
  ~HostileLoad();
  HostileLoad(const HostileLoad&) = delete;
  HostileLoad& operator=(const HostileLoad&) = delete;

  int64_t client_requests() const { return client_requests_.load(); }
  int64_t client_refused() const { return client_refused_.load(); }
  int64_t client_bytes() const { return client_bytes_.load(); }
  int64_t worker_messages() const { return worker_messages_.load(); }
  int64_t worker_bytes() const { return worker_bytes_.load(); }

 private:
  void ClientLoop();
  void WorkerLoop();
  // The call a thread has in flight, so that the destructor can cancel it (a paced call may
  // wait for seconds). `slot` is client_call_ or worker_call_; `context` nullptr when done.
  void InFlight(grpc::ClientContext** slot, grpc::ClientContext* context);

  const std::string address_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> client_requests_{0};
  std::atomic<int64_t> client_refused_{0};  // refused as the limits say they must be
  std::atomic<int64_t> client_bytes_{0};    // of the requests sent
  std::atomic<int64_t> worker_messages_{0};
  std::atomic<int64_t> worker_bytes_{0};
  std::mutex calls_mutex_;
  grpc::ClientContext* client_call_ = nullptr;
  grpc::ClientContext* worker_call_ = nullptr;
  std::thread client_;
  std::thread worker_;
};

}  // namespace hippo::benchmarks

#endif  // HIPPO_BENCHMARKS_COORDINATOR_HOSTILE_LOAD_H_
