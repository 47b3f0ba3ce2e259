// WorkerService over gRPC's callback API: one reactor per worker stream (WorkerSession), no
// thread per stream. Each message is parsed into the stream's arena; large ones are paced on the
// workers' byte budget (byte_budget.h) by re-arming the stream's read only once their share is
// paid (a grpc::Alarm: no thread waits). The engine answers through the stream's outbox
// (StreamChannel) from its committer thread, after the commit.
#ifndef HIPPO_HIPPO_WORKER_SERVICE_H_
#define HIPPO_HIPPO_WORKER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "hippo/byte_budget.h"
#include "hippo/engine.h"

namespace hippo::coordinator {

// The service to register on the server: every stream authorized by `token` (none when empty),
// its hello and reports handed to `engine`, its large messages drawn on `budget`. `engine` and
// `budget` must outlive it.
std::unique_ptr<grpc::Service> MakeWorkerService(Engine* engine, std::string token,
                                                 ByteBudget* budget);

}  // namespace hippo::coordinator

#endif  // HIPPO_HIPPO_WORKER_SERVICE_H_
