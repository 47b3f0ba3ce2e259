// Response bodies compressed once and sent as they are. cpp-httplib would otherwise compress
// every response itself, with brotli at its default quality (11) when the client accepts it:
// about half a second of CPU per 100 kB, per response and per client. Here a body is gzipped
// (zlib) once, the first time a client that accepts gzip asks for it, and kept with it (the
// embedded web app, the JSON API's responses while their version holds), then sent through a
// content provider of known length, which cpp-httplib passes through untouched. A body that is
// only pushed plain in the event stream (a watched study's charts) is never compressed.
#ifndef HIPPO_DASHBOARD_SERVER_COMPRESSED_BODY_H_
#define HIPPO_DASHBOARD_SERVER_COMPRESSED_BODY_H_

#include <memory>
#include <mutex>
#include <string>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace hippo::dashboard {

class CompressedBody {
 public:
  CompressedBody(std::string plain, std::string content_type, int level)
      : content_type_(std::move(content_type)), plain_(std::move(plain)), level_(level) {}

  const std::string& content_type() const { return content_type_; }
  const std::string& plain() const { return plain_; }
  // Whether the body is large enough to be worth compressing (larger than a packet).
  bool compressible() const;
  // The gzip stream of the body, made at the first call (thread-safe); empty when not worth
  // it (a small body, or one zlib could not shrink) or when zlib failed.
  const std::string& gzip() const;

 private:
  std::string content_type_;
  std::string plain_;
  int level_;
  mutable std::once_flag gzipped_;
  mutable std::string gzip_;
};

// Makes a body, to be gzipped (zlib level `level`, 1..9) when a client that accepts gzip
// first asks for it.
std::shared_ptr<const CompressedBody> MakeBody(std::string plain, std::string content_type,
                                               int level = 6);

// Answers `request` with `body`: gzip-encoded when the request accepts gzip, else plain.
void SendBody(const httplib::Request& request, httplib::Response& response,
              std::shared_ptr<const CompressedBody> body);

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_COMPRESSED_BODY_H_
