#include "hippo/client_pacing.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"

namespace hippo::coordinator {

int64_t ClientPacing::Estimate(const AnswerEstimate& answer, int64_t request_bytes) {
  int64_t per_item = answer.guess_bytes_per_item;
  if (answer.learn) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = bytes_per_item_.find(answer.method);
    if (it != bytes_per_item_.end()) per_item = it->second;
  }
  // Clamped so that the product cannot overflow (a count is the client's to choose).
  const int64_t items = std::clamp<int64_t>(answer.items, 0, int64_t{1} << 24);
  const int64_t estimate = items * std::clamp<int64_t>(per_item, 0, int64_t{1} << 32);
  // With the request, never above what an idle budget admits: an estimate alone never refuses
  // a call.
  const ByteBudgetOptions& options = budget_->options();
  const double admissible =
      options.burst_bytes + options.bytes_per_second * options.max_wait_seconds - request_bytes;
  return std::max<int64_t>(
      0, std::min({estimate, answer.max_bytes, static_cast<int64_t>(std::min(admissible, 1e15))}));
}

int64_t ClientPacing::Work(const AnswerEstimate& answer, int64_t charged) const {
  const int64_t items = std::clamp<int64_t>(answer.items, 0, int64_t{1} << 24);
  const int64_t work = items * std::clamp<int64_t>(answer.work_bytes_per_item, 0, int64_t{1} << 32);
  // Like the estimate, never above what an idle budget admits: a call is slowed, not refused.
  const ByteBudgetOptions& options = budget_->options();
  const double admissible =
      options.burst_bytes + options.bytes_per_second * options.max_wait_seconds - charged;
  return std::max<int64_t>(0, std::min(work, static_cast<int64_t>(std::min(admissible, 1e15))));
}

grpc::Status ClientPacing::Admit(grpc::ServerContext* context,
                                 const google::protobuf::Message& request,
                                 const AnswerEstimate& answer, int64_t* reserved) {
  const int64_t request_bytes = static_cast<int64_t>(request.ByteSizeLong());
  const int64_t estimate = Estimate(answer, request_bytes);
  const int64_t work = Work(answer, request_bytes + estimate);
  const int64_t bytes = request_bytes + estimate + work;
  const std::optional<Clock::duration> wait = budget_->Charge(bytes, Clock::now());
  if (!wait) {
    ++refused_;
    const ByteBudgetOptions& options = budget_->options();
    const std::string which = options.large_message_bytes > 1
                                  ? absl::StrCat("requests and answers of ",
                                                 options.large_message_bytes, " bytes or more")
                                  : "requests and answers";
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat(
            "a request of ", request_bytes, " bytes with an answer of about ", estimate, " bytes",
            work > 0 ? absl::StrCat(" (and ", work, " for the work of making it)") : "",
            ": the coordinator takes ", which, " at ", options.bytes_per_second / (1 << 20),
            " MiB/s from all clients together, and more than ", options.max_wait_seconds,
            " s of them are queued: retry later, or send smaller ones (a smaller "
            "trainer.config, count or page_size)"));
  }
  // Below the budget's threshold nothing was charged: the answer is then charged as built.
  *reserved = bytes >= budget_->options().large_message_bytes ? estimate : 0;
  ++calls_;
  request_bytes_ += request_bytes;
  Sleep(context, *wait);
  // A caller that gave up while it waited gets no work done: its request stays paid for, the
  // answer it will not take is given back.
  if (context->IsCancelled() || std::chrono::system_clock::now() >= context->deadline()) {
    budget_->Refund(*reserved + work);
    *reserved = 0;
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "the call was cancelled, or its deadline passed, while it waited for its "
                        "share of the clients' byte budget");
  }
  answer_bytes_reserved_ += *reserved;
  work_bytes_ += work;
  return grpc::Status::OK;
}

void ClientPacing::Settle(grpc::ServerContext* context, const AnswerEstimate& answer,
                          int64_t reserved, int64_t answer_bytes, int64_t items) {
  answer_bytes_ += answer_bytes;
  if (answer.learn && items > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    bytes_per_item_[answer.method] = (answer_bytes + items - 1) / items;
  }
  if (answer_bytes <= reserved) {
    budget_->Refund(reserved - answer_bytes);
    return;
  }
  const int64_t extra = answer_bytes - reserved;
  answer_bytes_over_estimate_ += extra;
  const std::optional<Clock::duration> wait =
      budget_->Charge(extra, Clock::now(), /*refusable=*/false);
  Sleep(context,
        std::min<Clock::duration>(
            *wait, std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(budget_->options().max_wait_seconds))));
}

ClientPacingStats ClientPacing::stats() const {
  ClientPacingStats stats;
  stats.calls = calls_.load();
  stats.refused = refused_.load();
  stats.request_bytes = request_bytes_.load();
  stats.answer_bytes_reserved = answer_bytes_reserved_.load();
  stats.answer_bytes = answer_bytes_.load();
  stats.answer_bytes_over_estimate = answer_bytes_over_estimate_.load();
  stats.work_bytes = work_bytes_.load();
  return stats;
}

void ClientPacing::Sleep(grpc::ServerContext* context, Clock::duration wait) {
  const auto until = Clock::now() + wait;
  while (Clock::now() < until && !context->IsCancelled() &&
         std::chrono::system_clock::now() < context->deadline()) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
  }
}

}  // namespace hippo::coordinator
