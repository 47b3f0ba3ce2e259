// TokenBucket: a rate with a burst, in any unit (bytes, CPU seconds), shared by the callers of one
// budget (docs/security.md, "Rates"). Tokens come back at `rate` a second up to `burst`; a charge
// takes its amount at once and may leave the bucket in debt, which later charges wait out: a
// charge made while the bucket is short is told how long until the bucket will have paid for it.
// ByteBudget and CpuBudget are built on it.
#ifndef HIPPO_HIPPO_TOKEN_BUCKET_H_
#define HIPPO_HIPPO_TOKEN_BUCKET_H_

#include <chrono>
#include <mutex>
#include <optional>

namespace hippo::coordinator {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // Full at first. `rate` and `burst` must be positive, `max_wait_seconds` not negative (the
  // budgets check their options before they make one).
  TokenBucket(double rate, double burst, double max_wait_seconds);
  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  double rate() const { return rate_; }
  double burst() const { return burst_; }
  double max_wait_seconds() const { return max_wait_seconds_; }

  // Takes `amount` (0 included: a charge of nothing still waits out a debt) at `now`: how long
  // until the bucket has paid for it, zero when it held enough. When that wait would pass
  // max_wait_seconds and the charge is `refusable`, nullopt and nothing is taken; `*refused_wait`
  // (if given) is then the wait it would have had. Thread-safe.
  std::optional<Clock::duration> Charge(double amount, Clock::time_point now, bool refusable = true,
                                        Clock::duration* refused_wait = nullptr);

  // Gives `amount` back (an earlier charge that turned out too large); the bucket still never
  // holds more than the burst. Thread-safe.
  void Refund(double amount);

 private:
  const double rate_;
  const double burst_;
  const double max_wait_seconds_;
  std::mutex mutex_;
  double tokens_;  // negative: a debt, paid back at rate_
  Clock::time_point updated_;
};

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_TOKEN_BUCKET_H_
