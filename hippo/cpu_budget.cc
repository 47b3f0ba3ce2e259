#include "hippo/cpu_budget.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hippo/client_pacing.h"

namespace hippo::coordinator {

absl::Status CheckCpuBudget(const CpuBudgetOptions& options) {
  if (!(options.cores > 0) || !std::isfinite(options.cores)) {
    return absl::InvalidArgumentError(
        absl::StrCat("client_cpu.cores (--client-cpu-cores): must be a positive number of cores, "
                     "e.g. 0.1 (got ",
                     options.cores, ")"));
  }
  if (!(options.burst_seconds > 0) || !std::isfinite(options.burst_seconds)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client_cpu.burst_seconds: must be a positive number of seconds of the rate (got ",
        options.burst_seconds, ")"));
  }
  if (!(options.max_wait_seconds >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client_cpu.max_wait_seconds: must not be negative (got ", options.max_wait_seconds, ")"));
  }
  return absl::OkStatus();
}

double ThreadCpuSeconds() {
  timespec now{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now) != 0) return 0;
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

CpuBudget::CpuBudget(CpuBudgetOptions options)
    : options_(options),
      bucket_(options.cores, options.cores * options.burst_seconds, options.max_wait_seconds) {}

grpc::Status CpuBudget::Admit(grpc::ServerContext* context, const std::string& method,
                              int64_t items, Ticket* ticket) {
  double per_item = 0;  // unknown before the method's first call: nothing reserved
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = seconds_per_item_.find(method); it != seconds_per_item_.end()) {
      per_item = it->second;
    }
  }
  // At most what the bucket holds: an estimate alone never refuses a call on an idle
  // coordinator.
  const double reserved =
      std::min(bucket_.burst(), per_item * static_cast<double>(std::max<int64_t>(items, 1)));
  const Clock::time_point arrived = Clock::now();
  Clock::duration refused_wait{};
  const std::optional<Clock::duration> wait =
      bucket_.Charge(reserved, arrived, /*refusable=*/true, &refused_wait);
  if (!wait) {
    ++refused_;
    // The same call would be admitted once its wait is down to the longest.
    const double retry_seconds =
        std::ceil(10 * (std::chrono::duration<double>(refused_wait).count() -
                        options_.max_wait_seconds)) /
        10;
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrFormat("the coordinator spends at most %g of a core on all clients' calls "
                        "together (hippo server --client-cpu-cores), and more than %g s of "
                        "them are queued: retry in %g s or later, or make fewer or smaller "
                        "calls (a smaller count or page_size)",
                        options_.cores, options_.max_wait_seconds, std::max(0.1, retry_seconds)));
  }
  ClientPacing::Sleep(context, *wait);
  waited_nanoseconds_ +=
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - arrived).count();
  if (context->IsCancelled() || std::chrono::system_clock::now() >= context->deadline()) {
    bucket_.Refund(reserved);
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "the call was cancelled, or its deadline passed, while it waited for its "
                        "share of the clients' CPU budget");
  }
  ++calls_;
  ticket->method = method;
  ticket->reserved_seconds = reserved;
  ticket->thread_seconds_at_start = ThreadCpuSeconds();
  return grpc::Status::OK;
}

void CpuBudget::Settle(const Ticket& ticket, int64_t items) {
  const double used = std::max(0.0, ThreadCpuSeconds() - ticket.thread_seconds_at_start);
  charged_nanoseconds_ += static_cast<int64_t>(used * 1e9);
  if (items > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    seconds_per_item_[ticket.method] = used / static_cast<double>(items);
  }
  if (used > ticket.reserved_seconds) {
    (void)bucket_.Charge(used - ticket.reserved_seconds, Clock::now(), /*refusable=*/false);
  } else {
    bucket_.Refund(ticket.reserved_seconds - used);
  }
}

CpuBudgetStats CpuBudget::stats() const {
  CpuBudgetStats stats;
  stats.calls = calls_.load();
  stats.refused = refused_.load();
  stats.charged_seconds = static_cast<double>(charged_nanoseconds_.load()) / 1e9;
  stats.waited_seconds = static_cast<double>(waited_nanoseconds_.load()) / 1e9;
  return stats;
}

}  // namespace hippo::coordinator
