#include "hippo/byte_budget.h"

#include <algorithm>

namespace hippo::coordinator {

ByteBudget::ByteBudget(ByteBudgetOptions options)
    : options_(options), tokens_(options.burst_bytes), updated_(Clock::now()) {}

std::optional<ByteBudget::Clock::duration> ByteBudget::Charge(int64_t bytes, Clock::time_point now,
                                                              bool refusable) {
  if (bytes < options_.large_message_bytes) return Clock::duration::zero();
  std::lock_guard<std::mutex> lock(mutex_);
  if (now > updated_) {
    const double elapsed = std::chrono::duration<double>(now - updated_).count();
    tokens_ = std::min(options_.burst_bytes, tokens_ + elapsed * options_.bytes_per_second);
    updated_ = now;
  }
  const double after = tokens_ - static_cast<double>(bytes);
  const double wait_seconds = after >= 0 ? 0 : -after / options_.bytes_per_second;
  if (refusable && wait_seconds > options_.max_wait_seconds) return std::nullopt;
  tokens_ = after;
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait_seconds));
}

void ByteBudget::Refund(int64_t bytes) {
  if (bytes <= 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  tokens_ = std::min(options_.burst_bytes, tokens_ + static_cast<double>(bytes));
}

}  // namespace hippo::coordinator
