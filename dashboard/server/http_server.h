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
//   /api/v1/events?since=V             the same as server-sent events ("change"), kept open;
//                                      &study=ID pushes that study's page with each change,
//                                      &workers=true the workers' page (event_texts.h)
// Errors answer api.Error with the HTTP status (400 bad parameter, 401 token, 404 unknown).
//
// A token, when set, is required on every request: the header x-hippo-token (as gRPC),
// "Authorization: Bearer TOKEN", the cookie hippo_token_PORT, or ?token= (which sets the
// cookie, so the browser's later requests and its EventSource carry it: login_url() is the URL
// to open once). The cookie is named after the port because browsers share cookies between the
// ports of one host. With a certificate the dashboard speaks HTTPS only.
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
  // The coordinator's gRPC token, required on every request. Required unless `insecure`.
  std::string token;
  // Allows an empty token and plain HTTP on a non-loopback address.
  bool insecure = false;
  // PEM files of the certificate chain and private key (the coordinator's): both or neither.
  // With them the dashboard serves HTTPS; a non-loopback address requires them unless
  // `insecure`.
  std::string tls_cert_file;
  std::string tls_key_file;
  Mirror::Options mirror;
};

class HttpServer {
 public:
  // Starts serving. FailedPrecondition without a token, or without TLS on a non-loopback
  // address (unless `insecure`); InvalidArgument for a bad address or unusable TLS files;
  // Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(coordinator::Engine* engine,
                                                           const HttpOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // http://HOST:PORT/ (https with TLS) as a browser would open it.
  std::string url() const { return url_; }
  // url() with ?token=TOKEN: opened once, it lets the browser in (the cookie). url() without a
  // token.
  std::string login_url() const;
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
  std::string cookie_name_;
  bool secure_ = false;
  int port_ = 0;
  std::string url_;
  bool stopped_ = false;
};

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_HTTP_SERVER_H_
