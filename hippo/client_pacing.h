// ClientPacing: how the study service's calls draw on the clients' byte budget (docs/security.md,
// "Rates"), so that no request makes the coordinator do work the budget has not paid for.
//
// On arrival, before any work, a call is charged its request's size and an estimate of its
// answer: the items it asks for (Ask's count, a list's page_size, 1 for one view) times the bytes
// per item of the last answer of that method (a first guess before one was measured), at most
// what such an answer can hold and what an idle budget admits with the request; and, for calls
// that make what they answer (Ask), a charge per item for the work, never given back. The call
// waits for that share before it is handled, or is refused with RESOURCE_EXHAUSTED, nothing done
// and nothing charged, when the wait would pass max_wait_seconds. Once its answer is built, Settle
// charges what the answer holds beyond the estimate (the call waits for that too before the answer
// is sent, at most max_wait_seconds) or gives back what the estimate held too much. So answers are
// built at the budget's rate; the work done before it was paid for is at most one answer's error of
// estimate, and the debt it leaves holds the next calls back.
//
// gRPC has read and parsed a request before any of this runs; its size is bounded by the
// server's receive limit (report_bounds.h).
#ifndef HIPPO_HIPPO_CLIENT_PACING_H_
#define HIPPO_HIPPO_CLIENT_PACING_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "google/protobuf/message.h"
#include "hippo/byte_budget.h"

namespace hippo::coordinator {

// What a call's answer is expected to hold.
struct AnswerEstimate {
  std::string method;            // the RPC's name: the key of the bytes per item learned
  int64_t items = 1;             // asked for: a count, a page size, 1 for one view
  int64_t guess_bytes_per_item;  // before an answer of `method` was measured
  int64_t max_bytes;             // the most such an answer holds (caps the estimate)
  bool learn = true;             // false: guess_bytes_per_item is known, not guessed
  // Charged per item asked for on top of the answer, for the work of making it (Ask's trials:
  // sampled, stored and committed), and never given back once the work is done: bytes are a
  // poor measure of that work, a trial's answer being a few hundred bytes.
  int64_t work_bytes_per_item = 0;
};

// Totals since the server started, for tests and benchmarks.
struct ClientPacingStats {
  int64_t calls = 0;                       // admitted
  int64_t refused = 0;                     // RESOURCE_EXHAUSTED on arrival
  int64_t request_bytes = 0;               // of the admitted requests, charged on arrival
  int64_t answer_bytes_reserved = 0;       // estimates charged before their answers were built
  int64_t answer_bytes = 0;                // of the answers built
  int64_t answer_bytes_over_estimate = 0;  // built beyond their estimates, charged after
  int64_t work_bytes = 0;                  // charged for the work of making items (Ask's trials)
};

class ClientPacing {
 public:
  using Clock = ByteBudget::Clock;

  // `budget` must outlive this.
  explicit ClientPacing(ByteBudget* budget) : budget_(budget) {}

  // Charges `request` and the estimate of its answer, and waits for their share (or until the
  // call is cancelled or its deadline passes). `*reserved` is the answer bytes charged, to be
  // passed to Settle. RESOURCE_EXHAUSTED, nothing charged, when the wait would pass
  // max_wait_seconds; CANCELLED, the request charged but not the answer, when the call was
  // cancelled or its deadline passed while it waited (nothing is to be done for it).
  grpc::Status Admit(grpc::ServerContext* context, const google::protobuf::Message& request,
                     const AnswerEstimate& answer, int64_t* reserved);

  // The answer is built (`answer_bytes` holding `items`; 0 and 0 for a call that failed):
  // charges what it holds beyond `reserved` and waits for that share (at most max_wait_seconds),
  // or gives back what `reserved` held too much; learns the bytes per item of `answer.method`.
  void Settle(grpc::ServerContext* context, const AnswerEstimate& answer, int64_t reserved,
              int64_t answer_bytes, int64_t items);

  ClientPacingStats stats() const;

  // Waits `wait`, or until the call is cancelled or its deadline passes.
  static void Sleep(grpc::ServerContext* context, Clock::duration wait);

 private:
  // The estimate of `answer`'s bytes, for a request of `request_bytes`.
  int64_t Estimate(const AnswerEstimate& answer, int64_t request_bytes);
  // The charge for the work of making `answer`'s items, with `charged` bytes charged besides.
  int64_t Work(const AnswerEstimate& answer, int64_t charged) const;

  ByteBudget* const budget_;
  std::mutex mutex_;
  std::map<std::string, int64_t> bytes_per_item_;  // by method, from its last answer
  std::atomic<int64_t> calls_{0};
  std::atomic<int64_t> refused_{0};
  std::atomic<int64_t> request_bytes_{0};
  std::atomic<int64_t> answer_bytes_reserved_{0};
  std::atomic<int64_t> answer_bytes_{0};
  std::atomic<int64_t> answer_bytes_over_estimate_{0};
  std::atomic<int64_t> work_bytes_{0};
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_CLIENT_PACING_H_
