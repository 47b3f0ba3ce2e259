#include "hippo/token_bucket.h"

#include <algorithm>

namespace hippo::coordinator {

TokenBucket::TokenBucket(double rate, double burst, double max_wait_seconds)
    : rate_(rate),
      burst_(burst),
      max_wait_seconds_(max_wait_seconds),
      tokens_(burst),
      updated_(Clock::now()) {}

std::optional<TokenBucket::Clock::duration> TokenBucket::Charge(double amount,
                                                                Clock::time_point now,
                                                                bool refusable,
                                                                Clock::duration* refused_wait) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (now > updated_) {
    const double elapsed = std::chrono::duration<double>(now - updated_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    updated_ = now;
  }
  const double after = tokens_ - amount;
  const double wait_seconds = after >= 0 ? 0 : -after / rate_;
  const auto wait =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait_seconds));
  if (refusable && wait_seconds > max_wait_seconds_) {
    if (refused_wait != nullptr) *refused_wait = wait;
    return std::nullopt;
  }
  tokens_ = after;
  return wait;
}

void TokenBucket::Refund(double amount) {
  if (!(amount > 0)) return;
  std::lock_guard<std::mutex> lock(mutex_);
  tokens_ = std::min(burst_, tokens_ + amount);
}

}  // namespace hippo::coordinator
