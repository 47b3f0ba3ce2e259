#include "dashboard/server/http_server.h"

#include <google/protobuf/util/json_util.h>
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
#include "dashboard/server/remake_policy.h"
#include "hippo/server.h"

namespace hippo::dashboard {
namespace {

constexpr char kTokenHeader[] = "x-hippo-token";
// A connection holds a thread while open (an event stream for good, a keep-alive one until it
// idles): ten browsers hold six each.
constexpr int kThreads = 128;
constexpr char kJson[] = "application/json";

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // The dashboard's messages hold no Any: printing cannot fail on them.
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return "{}";
  return json;
}

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

// Responses of a study's reads by URL, valid while the study's version is the same: every
// dashboard watching a study asks for the same pages, and a 100 000-trial study's aggregates
// are worth computing (and compressing) once.
class ResponseCache {
 public:
  // The body cached under `key` at `version`, else the one `make` returns (cached). Concurrent
  // requests for one key wait for a single `make`: ten dashboards asking at once after a change
  // cost one computation.
  template <typename Make>
  absl::StatusOr<std::shared_ptr<const CompressedBody>> GetOrMake(const std::string& key,
                                                                  int64_t version, Make make) {
    std::shared_ptr<Entry> entry;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (entries_.size() >= 512 && !entries_.contains(key)) entries_.clear();
      std::shared_ptr<Entry>& slot = entries_[key];
      if (slot == nullptr) slot = std::make_shared<Entry>();
      entry = slot;
    }
    std::lock_guard<std::mutex> lock(entry->mutex);
    const auto now = std::chrono::steady_clock::now();
    if (entry->body != nullptr &&
        (entry->version == version || now - entry->made_at < entry->fresh_for)) {
      return entry->body;
    }
    absl::StatusOr<std::string> made = make();
    if (!made.ok()) return made.status();
    entry->body = MakeBody(*std::move(made), kJson);
    entry->version = version;
    entry->made_at = std::chrono::steady_clock::now();
    // A body that was expensive to make (a large running study's aggregates) is answered
    // while its study changes as remake_policy.h allows; cheap ones are made at every version.
    entry->fresh_for = RemakeAfter(entry->made_at - now);
    return entry->body;
  }

 private:
  struct Entry {
    std::mutex mutex;  // held while the body is made
    int64_t version = 0;
    std::shared_ptr<const CompressedBody> body;
    std::chrono::steady_clock::time_point made_at;
    std::chrono::steady_clock::duration fresh_for{0};
  };
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
};

// The text of the event that takes a stream from one version to the next, made once for every
// stream at the same version (all of them, but those that just reconnected): ten dashboards
// cost one serialization of each change.
class EventTexts {
 public:
  std::shared_ptr<const std::string> Get(const Mirror& mirror, int64_t since,
                                         const api::Change& change) {
    const std::pair<int64_t, int64_t> key(since, change.version());
    std::lock_guard<std::mutex> lock(mutex_);
    std::shared_ptr<const std::string>& text = texts_[key];
    if (text != nullptr) return text;
    if (texts_.size() > 64) {
      // Keep only the latest version's texts: older ones are asked no more.
      std::erase_if(texts_, [&](const auto& entry) { return entry.first.second < key.second; });
    }
    api::Change full = change;
    // The changed studies' rows ride along when few changed (a study page or the studies page
    // then asks for nothing to show them).
    constexpr int kMaxRows = 20;
    if (full.studies_size() <= kMaxRows) {
      for (const std::string& id : full.studies()) {
        absl::StatusOr<api::StudyRow> row = StudyRowOf(mirror, id);
        // A study deleted meanwhile has no row: the client asks and gets 404.
        if (row.ok()) *full.add_rows() = *std::move(row);
      }
    }
    text = std::make_shared<const std::string>(
        absl::StrCat("event: change\nid: ", full.version(), "\ndata: ", ToJson(full), "\n\n"));
    return text;
  }

 private:
  std::mutex mutex_;
  std::map<std::pair<int64_t, int64_t>, std::shared_ptr<const std::string>> texts_;
};

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

std::string CacheKey(const httplib::Request& request) {
  std::string key = request.path;
  for (const auto& [name, value] : request.params) {
    if (name == "token") continue;
    absl::StrAppend(&key, "&", name, "=", value);
  }
  return key;
}

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
  server->trees_ = std::make_unique<TreeWindows>(engine);
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
  auto events = std::make_shared<EventTexts>();

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
  auto study_read = [mirror, cache](auto make) {
    return [mirror, cache, make](const httplib::Request& request, httplib::Response& response) {
      const std::string study_id = request.matches[1];
      absl::StatusOr<int64_t> version = StudyVersion(*mirror, study_id);
      if (!version.ok()) return Fail(request, response, version.status());
      absl::StatusOr<std::shared_ptr<const CompressedBody>> body = cache->GetOrMake(
          CacheKey(request), *version, [&] { return make(study_id, QueryOf(request), *version); });
      if (!body.ok()) return Fail(request, response, body.status());
      response.set_header("Cache-Control", "no-store");
      SendBody(request, response, *std::move(body));
    };
  };
  auto json = [](auto status_or) -> absl::StatusOr<std::string> {
    if (!status_or.ok()) return status_or.status();
    return ToJson(*status_or);
  };

  http.Get("/api/v1/studies",
           [mirror](const httplib::Request& request, httplib::Response& response) {
             absl::StatusOr<api::StudiesPage> page = StudiesPage(*mirror, QueryOf(request));
             if (!page.ok()) return Fail(request, response, page.status());
             SendJson(request, response, *page);
           });
  http.Get(R"(/api/v1/studies/([^/]+))",
           study_read([mirror, json](const std::string& id, const Query&, int64_t) {
             return json(StudyRowOf(*mirror, id));
           }));
  http.Get(R"(/api/v1/studies/([^/]+)/trials)",
           study_read([mirror, json](const std::string& id, const Query& query, int64_t) {
             return json(TrialsPage(*mirror, id, query));
           }));
  http.Get(R"(/api/v1/studies/([^/]+)/curves)",
           study_read([mirror, json](const std::string& id, const Query& query, int64_t) {
             return json(Curves(*mirror, id, query));
           }));
  http.Get(R"(/api/v1/studies/([^/]+)/history)",
           study_read([mirror, json](const std::string& id, const Query&, int64_t) {
             return json(HistoryOf(*mirror, id));
           }));
  http.Get(R"(/api/v1/studies/([^/]+)/parameters)",
           study_read([mirror, json](const std::string& id, const Query&, int64_t) {
             return json(ParametersOf(*mirror, id));
           }));
  http.Get(R"(/api/v1/studies/([^/]+)/savings)",
           study_read([mirror, json](const std::string& id, const Query&, int64_t) {
             return json(SavingsOf(*mirror, id));
           }));
  http.Get(R"(/api/v1/studies/([^/]+)/tree)",
           study_read([trees, json](const std::string& id, const Query& query, int64_t version) {
             return json(trees->Window(id, version, query));
           }));
  http.Post(R"(/api/v1/studies/([^/]+)/stop)", [mirror](const httplib::Request& request,
                                                        httplib::Response& response) {
    if (request.get_header_value("X-Hippo-Dashboard") != "1") {
      return Fail(request, response, 403,
                  "a stop needs the header X-Hippo-Dashboard: 1 (sent by the dashboard's page)");
    }
    const std::string reason = request.has_param("reason") ? request.get_param_value("reason")
                                                           : "stopped from the dashboard";
    absl::StatusOr<hippo::v1::Study> study = mirror->StopStudy(request.matches[1], reason);
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
    int64_t since = mirror->version();
    if (request.has_param("since") && !absl::SimpleAtoi(request.get_param_value("since"), &since)) {
      return Fail(request, response, 400, "since: expected a version (an integer)");
    }
    // A version from before a restart of the coordinator: start from nothing.
    if (since > mirror->version()) since = 0;
    response.set_header("Cache-Control", "no-store");
    auto last = std::make_shared<int64_t>(since);
    // An open stream keeps the mirror following the engine until it ends.
    mirror->Watch();
    response.set_chunked_content_provider(
        "text/event-stream",
        [mirror, events, last](size_t, httplib::DataSink& sink) {
          // One event per change, a comment every 15 s so that proxies keep the stream open;
          // the stream ends when the server stops or the client is gone.
          const api::Change change = mirror->WaitForChange(*last, std::chrono::seconds(15));
          if (mirror->stopping()) return false;
          if (change.version() <= *last) {
            static constexpr char kKeepAlive[] = ": keep-alive\n\n";
            return sink.write(kKeepAlive, sizeof(kKeepAlive) - 1);
          }
          const std::shared_ptr<const std::string> text = events->Get(*mirror, *last, change);
          *last = change.version();
          return sink.write(text->data(), text->size());
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
