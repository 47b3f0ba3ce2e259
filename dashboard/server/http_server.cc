#include "dashboard/server/http_server.h"

#include <httplib.h>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "dashboard/server/api.h"
#include "dashboard/server/assets.h"
#include "dashboard/server/compressed_body.h"
#include "dashboard/server/event_texts.h"
#include "dashboard/server/response_cache.h"
#include "dashboard/server/study_reads.h"
#include "hippo/request_bounds.h"
#include "hippo/server.h"

namespace hippo::dashboard {
namespace {

constexpr char kTokenHeader[] = "x-hippo-token";
// A connection holds a thread while open (an event stream for good, a keep-alive one until it
// idles): ten browsers hold six each.
constexpr int kThreads = 128;
constexpr char kJson[] = "application/json";

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    default:
      return 500;
  }
}

void SendJson(const httplib::Request& request, httplib::Response& response,
              const google::protobuf::Message& message) {
  SendBody(request, response, MakeBody(ToJson(message), kJson, /*level=*/1));
}

void Fail(const httplib::Request& request, httplib::Response& response, int code,
          const std::string& message) {
  api::Error error;
  error.set_code(code);
  error.set_message(message);
  response.status = code;
  SendJson(request, response, error);
}

void Fail(const httplib::Request& request, httplib::Response& response,
          const absl::Status& status) {
  Fail(request, response, HttpStatusOf(status), std::string(status.message()));
}

Query QueryOf(const httplib::Request& request) {
  Query query;
  for (const auto& [key, value] : request.params) query[key] = value;
  return query;
}

std::string CookieToken(const httplib::Request& request, const std::string& name) {
  const std::string cookies = request.get_header_value("Cookie");
  const std::string key = absl::StrCat(name, "=");
  size_t at = 0;
  while ((at = cookies.find(key, at)) != std::string::npos) {
    if (at == 0 || cookies[at - 1] == ' ' || cookies[at - 1] == ';') {
      const size_t start = at + key.size();
      const size_t end = cookies.find(';', start);
      return cookies.substr(start, end == std::string::npos ? std::string::npos : end - start);
    }
    at += key.size();
  }
  return "";
}

// cpp-httplib's thread pool, its threads named "hippo-http" (as the refresh thread is named
// "hippo-mirror"), so that the dashboard's share of the coordinator's CPU can be told apart
// from the dispatch path's (/proc/PID/task/*/comm; benchmarks/dashboard reads it).
class NamedThreadPool : public httplib::TaskQueue {
 public:
  explicit NamedThreadPool(size_t threads) : pool_(threads) {}
  void enqueue(std::function<void()> task) override {
    pool_.enqueue([task = std::move(task)] {
      thread_local bool named = false;
      if (!named) {
        // Only a name for tools: a failure changes nothing.
        (void)pthread_setname_np(pthread_self(), "hippo-http");
        named = true;
      }
      task();
    });
  }
  void shutdown() override { pool_.shutdown(); }

 private:
  httplib::ThreadPool pool_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(coordinator::Engine* engine,
                                                              const HttpOptions& options) {
  if (options.token.empty() && !options.insecure) {
    return absl::FailedPreconditionError(
        "the dashboard needs the coordinator's token (or --insecure to let every caller in)");
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key: give both (the certificate chain and its private key) or "
        "neither");
  }
  const bool tls = !options.tls_cert_file.empty();
  if (!coordinator::IsLoopback(options.listen) && !tls && !options.insecure) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--http ", options.listen,
        " is not a loopback address: serve HTTPS (--tls-cert FILE --tls-key FILE) so that the "
        "token does not cross the network in plaintext, or pass --insecure"));
  }
  const size_t colon = options.listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http ", options.listen, ": expected HOST:PORT, e.g. 127.0.0.1:8080"));
  }
  std::string host = options.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->token_ = options.token;
  server->mirror_ = std::make_unique<Mirror>(engine, options.mirror);
  server->trees_ = std::make_unique<TreeWindows>(engine, server->mirror_.get());
  if (tls) {
    auto https = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                      options.tls_key_file.c_str());
    if (!https->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat("--tls-cert ", options.tls_cert_file,
                                                     " --tls-key ", options.tls_key_file,
                                                     ": cannot load them as a PEM certificate "
                                                     "chain and its private key"));
    }
    server->http_ = std::move(https);
  } else {
    server->http_ = std::make_unique<httplib::Server>();
  }
  server->secure_ = tls;
  server->http_->new_task_queue = [] { return new NamedThreadPool(kThreads); };
  server->Route();
  if (port == 0) {
    port = server->http_->bind_to_any_port(host);
  } else if (!server->http_->bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("--http ", options.listen, ": cannot listen there (address in use?)"));
  }
  server->port_ = port;
  server->cookie_name_ = absl::StrCat("hippo_token_", port);
  const std::string shown =
      host == "0.0.0.0" || host == "::" ? "127.0.0.1" : options.listen.substr(0, colon);
  server->url_ = absl::StrCat(tls ? "https://" : "http://", shown, ":", port, "/");
  server->mirror_->Start();
  server->thread_ = std::thread([raw = server.get()] { raw->http_->listen_after_bind(); });
  return server;
}

std::string HttpServer::login_url() const {
  return token_.empty() ? url_ : absl::StrCat(url_, "?token=", token_);
}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  if (mirror_) mirror_->Stop();  // wakes the event streams, which then end
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpServer::Route() {
  httplib::Server& http = *http_;
  Mirror* mirror = mirror_.get();
  TreeWindows* trees = trees_.get();
  auto cache = std::make_shared<ResponseCache>();
  auto events = std::make_shared<EventTexts>(mirror, trees, cache.get());

  http.set_pre_routing_handler(
      [this, mirror](const httplib::Request& request, httplib::Response& response) {
        if (!token_.empty()) {
          std::string given = request.get_header_value(kTokenHeader);
          const std::string authorization = request.get_header_value("Authorization");
          if (given.empty() && absl::StartsWith(authorization, "Bearer ")) {
            given = authorization.substr(7);
          }
          if (given.empty()) given = CookieToken(request, cookie_name_);
          if (given.empty() && request.has_param("token")) {
            given = request.get_param_value("token");
            if (coordinator::TokenMatches(given, token_)) {
              response.set_header("Set-Cookie", absl::StrCat(cookie_name_, "=", token_,
                                                             "; Path=/; HttpOnly; SameSite=Strict",
                                                             secure_ ? "; Secure" : ""));
            }
          }
          if (!coordinator::TokenMatches(given, token_)) {
            Fail(request, response, 401,
                 "this coordinator needs its token: open the dashboard once with the URL `hippo "
                 "server` printed (it ends in ?token=...), or send the header x-hippo-token");
            return httplib::Server::HandlerResponse::Handled;
          }
        }
        if (absl::StartsWith(request.path, "/api/")) mirror->Touch();
        return httplib::Server::HandlerResponse::Unhandled;
      });

  // A study read, answered from the cache while the study's version is unchanged.
  auto study_read = [mirror, trees, cache](StudyRead read) {
    return
        [mirror, trees, cache, read](const httplib::Request& request, httplib::Response& response) {
          const std::string study_id = request.matches[1];
          if (absl::Status bounded = coordinator::CheckId(study_id, "study_id"); !bounded.ok()) {
            return Fail(request, response, bounded);
          }
          absl::StatusOr<int64_t> version = StudyVersion(*mirror, study_id);
          if (!version.ok()) return Fail(request, response, version.status());
          const Query query = QueryOf(request);
          absl::StatusOr<ResponseCache::Made> made = cache->GetOrMake(
              ReadKey(request.path, query), *version,
              [&] { return MakeStudyRead(*mirror, *trees, read, study_id, query, *version); });
          if (!made.ok()) return Fail(request, response, made.status());
          response.set_header("Cache-Control", "no-store");
          SendBody(request, response, made->body);
        };
  };

  http.Get("/api/v1/studies",
           [mirror](const httplib::Request& request, httplib::Response& response) {
             absl::StatusOr<api::StudiesPage> page = StudiesPage(*mirror, QueryOf(request));
             if (!page.ok()) return Fail(request, response, page.status());
             SendJson(request, response, *page);
           });
  http.Get(R"(/api/v1/studies/([^/]+))", study_read(StudyRead::kRow));
  http.Get(R"(/api/v1/studies/([^/]+)/trials)", study_read(StudyRead::kTrials));
  http.Get(R"(/api/v1/studies/([^/]+)/curves)", study_read(StudyRead::kCurves));
  http.Get(R"(/api/v1/studies/([^/]+)/history)", study_read(StudyRead::kHistory));
  http.Get(R"(/api/v1/studies/([^/]+)/parameters)", study_read(StudyRead::kParameters));
  http.Get(R"(/api/v1/studies/([^/]+)/savings)", study_read(StudyRead::kSavings));
  http.Get(R"(/api/v1/studies/([^/]+)/tree)", study_read(StudyRead::kTree));
  http.Post(R"(/api/v1/studies/([^/]+)/stop)", [mirror](const httplib::Request& request,
                                                        httplib::Response& response) {
    if (request.get_header_value("X-Hippo-Dashboard") != "1") {
      return Fail(request, response, 403,
                  "a stop needs the header X-Hippo-Dashboard: 1 (sent by the dashboard's page)");
    }
    const std::string study_id = request.matches[1];
    const std::string reason = request.has_param("reason") ? request.get_param_value("reason")
                                                           : "stopped from the dashboard";
    for (const absl::Status& bounded : {coordinator::CheckId(study_id, "study_id"),
                                        coordinator::CheckStopReason(reason, "reason")}) {
      if (!bounded.ok()) return Fail(request, response, bounded);
    }
    absl::StatusOr<hippo::v1::Study> study = mirror->StopStudy(study_id, reason);
    if (!study.ok()) return Fail(request, response, study.status());
    SendJson(request, response, *study);
  });
  http.Get("/api/v1/workers",
           [mirror](const httplib::Request& request, httplib::Response& response) {
             SendJson(request, response, WorkersOf(*mirror));
           });
  http.Get("/api/v1/changes", [mirror](const httplib::Request& request,
                                       httplib::Response& response) {
    const Query query = QueryOf(request);
    int64_t since = 0, timeout_ms = 25000;
    if (request.has_param("since") && !absl::SimpleAtoi(request.get_param_value("since"), &since)) {
      return Fail(request, response, 400, "since: expected a version (an integer)");
    }
    if (request.has_param("timeout_ms") &&
        (!absl::SimpleAtoi(request.get_param_value("timeout_ms"), &timeout_ms) || timeout_ms < 0 ||
         timeout_ms > 60000)) {
      return Fail(request, response, 400, "timeout_ms: expected an integer in [0, 60000]");
    }
    SendJson(request, response,
             mirror->WaitForChange(since, std::chrono::milliseconds(timeout_ms)));
  });
  http.Get("/api/v1/events", [mirror, events](const httplib::Request& request,
                                              httplib::Response& response) {
    auto stream = std::make_shared<StreamState>();
    stream->last = mirror->version();
    if (request.has_param("since") &&
        !absl::SimpleAtoi(request.get_param_value("since"), &stream->last)) {
      return Fail(request, response, 400, "since: expected a version (an integer)");
    }
    // A version from before a restart of the coordinator: start from nothing.
    if (stream->last > mirror->version()) stream->last = 0;
    stream->study = request.get_param_value("study");
    if (absl::Status bounded = coordinator::CheckId(stream->study, "study"); !bounded.ok()) {
      return Fail(request, response, bounded);
    }
    if (request.has_param("workers")) {
      const std::string workers = request.get_param_value("workers");
      if (workers != "true" && workers != "false") {
        return Fail(request, response, 400,
                    "workers: expected true (push the workers' page) or false");
      }
      stream->workers = workers == "true";
    }
    response.set_header("Cache-Control", "no-store");
    // An open stream keeps the mirror following the engine until it ends.
    mirror->Watch();
    auto quiet_since =
        std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
    auto last_event = std::make_shared<std::chrono::steady_clock::time_point>();
    response.set_chunked_content_provider(
        "text/event-stream",
        [mirror, events, stream, quiet_since, last_event](size_t, httplib::DataSink& sink) {
          // One event a tick of the mirror's clock at most, once the tick's refresh published
          // (and for a part made again while the stream was behind on it), a comment after 15 s
          // of nothing so that proxies keep the stream open; the stream ends when the server
          // stops or the client is gone.
          constexpr auto kKeepAlive = std::chrono::seconds(15);
          mirror->PauseUntil(mirror->NextTick(*last_event));
          if (mirror->stopping()) return false;
          const api::Change change = mirror->WaitForChange(
              stream->last, stream->behind ? std::chrono::milliseconds(kPartInterval)
                                           : std::chrono::milliseconds(kKeepAlive));
          if (mirror->stopping()) return false;
          const std::shared_ptr<const std::string> text = events->Next(*stream, change);
          const auto now = std::chrono::steady_clock::now();
          if (text != nullptr) {
            *quiet_since = now;
            *last_event = now;
            return sink.write(text->data(), text->size());
          }
          if (now - *quiet_since < kKeepAlive) return true;
          *quiet_since = now;
          static constexpr char kComment[] = ": keep-alive\n\n";
          return sink.write(kComment, sizeof(kComment) - 1);
        },
        [mirror](bool) { mirror->Unwatch(); });
  });

  // The web app, compressed once here: hashed assets never change; index.html is always asked
  // again.
  for (const Asset& asset : Assets()) {
    const std::string path(asset.path);
    std::shared_ptr<const CompressedBody> body =
        MakeBody(std::string(asset.data.data(), asset.data.size()), std::string(asset.content_type),
                 /*level=*/9);
    body->gzip();  // at start-up, not on a first page load
    auto serve = [asset, body](const httplib::Request& request, httplib::Response& response) {
      response.set_header("Cache-Control", asset.path.starts_with("/assets/")
                                               ? "public, max-age=31536000, immutable"
                                               : "no-cache");
      SendBody(request, response, body);
    };
    http.Get(path, serve);
    if (path == "/index.html") http.Get("/", serve);
  }
}

}  // namespace hippo::dashboard
