// ByteBudget: how many bytes of large messages the coordinator parses or builds per second,
// shared by all callers (docs/security.md, "Rates"). A token bucket of bytes (token_bucket.h)
// with reservations: a caller that took a large message reserves its size and waits, before
// taking another, until the bucket has paid for it; messages below large_message_bytes (a
// worker's reports, its heartbeats) are not charged and never wait, so the workers' traffic goes
// first whatever a hostile peer sends. The study service's budget charges every message
// (ClientPacing).
#ifndef HIPPO_HIPPO_BYTE_BUDGET_H_
#define HIPPO_HIPPO_BYTE_BUDGET_H_

#include <cstdint>
#include <optional>

#include "hippo/token_bucket.h"

namespace hippo::coordinator {

struct ByteBudgetOptions {
  // Messages below this size are not charged (1: every message is).
  int64_t large_message_bytes = 64 << 10;
  // The sustained rate of large messages, and the bytes that may come at once (the largest
  // message the server takes, so that one never waits on an idle coordinator).
  double bytes_per_second = 1 << 20;
  double burst_bytes = 8 << 20;
  // A message whose wait would pass this is refused instead (the reservation is not made).
  double max_wait_seconds = 30;
};

class ByteBudget {
 public:
  using Clock = TokenBucket::Clock;

  explicit ByteBudget(ByteBudgetOptions options);

  const ByteBudgetOptions& options() const { return options_; }

  // Charges a message of `bytes` taken at `now`: how long its sender must wait (before its next
  // message is taken, or before this one is handled or answered: the caller's choice); zero for
  // a small one, or while the bucket holds enough. When that wait would pass max_wait_seconds
  // and the message is `refusable`, nullopt: the message is not charged, and its sender is to
  // be refused. Thread-safe.
  std::optional<Clock::duration> Charge(int64_t bytes, Clock::time_point now,
                                        bool refusable = true);

  // Gives back `bytes` of an earlier charge that turned out too large (an answer charged at an
  // estimate before it was built, smaller once built): later charges wait that much less. The
  // bucket still never holds more than the burst. Thread-safe.
  void Refund(int64_t bytes);

 private:
  const ByteBudgetOptions options_;
  TokenBucket bucket_;  // in bytes; negative: the bytes reserved and not yet paid for
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_BYTE_BUDGET_H_
