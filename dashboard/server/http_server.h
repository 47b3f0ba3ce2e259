// HttpServer: the dashboard over HTTP (cpp-httplib): the web app embedded in the binary, the
// JSON API of api.h under /api/v1, and server-sent events of changes.
//
// Routes (GET unless said):
//   /                                  the web app (index.html, /assets/*)
//   /api/v1/studies                    StudiesPage
//   /api/v1/studies/{id}               StudyRow
//   /api/v1/studies/{id}/trials        TrialsPage
//   /api/v1/studies/{id}/curves        CurvesOverview
//   /api/v1/studies/{id}/history       History
//   /api/v1/studies/{id}/parameters    ParameterSample
//   /api/v1/studies/{id}/tree          TreeWindow
//   /api/v1/studies/{id}/savings       Savings
//   POST /api/v1/studies/{id}/stop     hippo.v1.Study (needs the header X-Hippo-Dashboard: 1, so
//                                      that another site's form cannot stop a study)
//   /api/v1/workers                    Workers
//   /api/v1/changes?since=V&timeout_ms=T   a Change once the version passes V (long poll)
//   /api/v1/events?since=V             the same as server-sent events ("change"), kept open
// Errors answer api.Error with the HTTP status (400 bad parameter, 401 token, 404 unknown).
//
// A token, when set, is required on every request: the header x-hippo-token (as gRPC),
// "Authorization: Bearer TOKEN", the cookie hippo_token, or ?token= (which sets the cookie, so
// the browser's later requests and its EventSource carry it).
#ifndef HIPPO_DASHBOARD_SERVER_HTTP_SERVER_H_
#define HIPPO_DASHBOARD_SERVER_HTTP_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "dashboard/server/mirror.h"
#include "dashboard/server/tree_window.h"
#include "hippo/engine.h"

namespace httplib {
class Server;
}

namespace hippo::dashboard {

struct HttpOptions {
  // host:port; port 0 picks a free one (see HttpServer::port()).
  std::string listen = "127.0.0.1:8080";
  // Required when `listen` is not loopback: the coordinator's gRPC token.
  std::string token;
  Mirror::Options mirror;
};

class HttpServer {
 public:
  // Starts serving. FailedPrecondition for a non-loopback address without a token,
  // Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(coordinator::Engine* engine,
                                                           const HttpOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // http://HOST:PORT/ as a browser would open it.
  std::string url() const { return url_; }
  // Stops serving, ends open event streams. Idempotent.
  void Shutdown();

 private:
  HttpServer() = default;
  void Route();

  std::unique_ptr<Mirror> mirror_;
  std::unique_ptr<TreeWindows> trees_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  std::string token_;
  int port_ = 0;
  std::string url_;
  bool stopped_ = false;
};

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_HTTP_SERVER_H_
