#include "hippo/byte_budget.h"

namespace hippo::coordinator {

ByteBudget::ByteBudget(ByteBudgetOptions options)
    : options_(options),
      bucket_(options.bytes_per_second, options.burst_bytes, options.max_wait_seconds) {}

std::optional<ByteBudget::Clock::duration> ByteBudget::Charge(int64_t bytes, Clock::time_point now,
                                                              bool refusable) {
  if (bytes < options_.large_message_bytes) return Clock::duration::zero();
  return bucket_.Charge(static_cast<double>(bytes), now, refusable);
}

void ByteBudget::Refund(int64_t bytes) {
  if (bytes > 0) bucket_.Refund(static_cast<double>(bytes));
}

}  // namespace hippo::coordinator
