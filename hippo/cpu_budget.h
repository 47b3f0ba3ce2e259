// CpuBudget: how much CPU time the study service's calls may take, all clients together
// (docs/security.md, "Rates"). Bytes are a poor measure of what a call costs (an Ask of 1000
// trials answers 0.3 MB but samples, builds and stores 1000 trials), so each call is also charged
// the CPU time its handler thread actually spent on it, measured after the fact, to a token bucket
// of CPU seconds that refills at `cores` seconds a second (ServerOptions::client_cpu; `hippo
// server --client-cpu-cores`).
//
// On arrival, before any work, a call reserves what the last call of its method took per item
// asked for (at most what the bucket holds) and waits until the bucket has paid for that and for
// any debt before it; past max_wait_seconds it is refused with RESOURCE_EXHAUSTED, nothing done and
// nothing charged, the message saying when to retry. Once handled, the call is charged its handler
// thread's CPU time (CLOCK_THREAD_CPUTIME_ID) less what it reserved: a call that cost more leaves
// the bucket in debt, which the next calls wait out. So clients together get `cores` of the
// coordinator's CPU on average, and a call that is expensive once is paid for by the calls after.
//
// Not charged here: gRPC's reading and parsing of a request and its writing of the answer (the
// byte budgets, client_pacing.h, pay for those), and the commit of a call's changes on the
// committer thread (Ask's work charge in bytes stands for it).
#ifndef HIPPO_HIPPO_CPU_BUDGET_H_
#define HIPPO_HIPPO_CPU_BUDGET_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "hippo/token_bucket.h"

namespace hippo::coordinator {

struct CpuBudgetOptions {
  // CPU seconds a second (cores) for all clients' calls together.
  double cores = 0.5;
  // The bucket holds this many seconds of the rate (cores x burst_seconds of CPU time: 1.25 s by
  // default), spent at once by a burst of calls on an idle coordinator without a wait.
  double burst_seconds = 2.5;
  // A call whose wait would pass this is refused instead.
  double max_wait_seconds = 10;
};

// InvalidArgument naming the first setting of `options` that cannot work (cores, with its flag;
// the burst; the longest wait).
absl::Status CheckCpuBudget(const CpuBudgetOptions& options);

// Totals since the server started, for tests and benchmarks.
struct CpuBudgetStats {
  int64_t calls = 0;           // admitted
  int64_t refused = 0;         // RESOURCE_EXHAUSTED on arrival
  double charged_seconds = 0;  // CPU time measured on the calls' handler threads
  double waited_seconds = 0;   // spent waiting for the bucket, all calls together
};

// The CPU time the calling thread has used so far, in seconds.
double ThreadCpuSeconds();

class CpuBudget {
 public:
  using Clock = TokenBucket::Clock;

  // What Admit reserved for a call, and when its work began: Settle's input.
  struct Ticket {
    std::string method;
    double reserved_seconds = 0;
    double thread_seconds_at_start = 0;
  };

  explicit CpuBudget(CpuBudgetOptions options);

  const CpuBudgetOptions& options() const { return options_; }

  // A call of `method` asking for `items` (Ask's count, a page's size; 1 otherwise) arrives:
  // reserves its estimate and waits for the bucket (or until the call is cancelled or its
  // deadline passes). RESOURCE_EXHAUSTED, nothing reserved, when the wait would pass
  // max_wait_seconds; CANCELLED, the reservation given back, when the call gave up meanwhile.
  // On OK, `*ticket` is to be passed to Settle once the work is done, on this thread.
  grpc::Status Admit(grpc::ServerContext* context, const std::string& method, int64_t items,
                     Ticket* ticket);

  // The call's work is done (its answer built, `items` in it; 0 for a call that failed):
  // charges this thread's CPU time since Admit beyond what was reserved, or gives back what was
  // reserved too much, and learns the method's cost per item. Does not wait: a debt holds the
  // next calls back.
  void Settle(const Ticket& ticket, int64_t items);

  CpuBudgetStats stats() const;

 private:
  const CpuBudgetOptions options_;
  TokenBucket bucket_;
  std::mutex mutex_;
  std::map<std::string, double> seconds_per_item_;  // by method, from its last call
  std::atomic<int64_t> calls_{0};
  std::atomic<int64_t> refused_{0};
  std::atomic<int64_t> charged_nanoseconds_{0};
  std::atomic<int64_t> waited_nanoseconds_{0};
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_CPU_BUDGET_H_
