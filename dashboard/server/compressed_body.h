// Response bodies compressed once and sent as they are. cpp-httplib would otherwise compress
// every response itself, with brotli at its default quality (11) when the client accepts it:
// about half a second of CPU per 100 kB, per response and per client. Here a body is gzipped
// (zlib) once when it is made, cached with it (the embedded web app at start-up, the JSON API's
// responses while their version holds), and sent through a content provider of known length,
// which cpp-httplib passes through untouched.
#ifndef HIPPO_DASHBOARD_SERVER_COMPRESSED_BODY_H_
#define HIPPO_DASHBOARD_SERVER_COMPRESSED_BODY_H_

#include <memory>
#include <string>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace hippo::dashboard {

struct CompressedBody {
  std::string content_type;
  std::string plain;
  std::string gzip;  // empty when not worth it (a small body) or when zlib failed
};

// Makes a body, gzipping it (zlib level `level`, 1..9) when it is larger than a packet.
std::shared_ptr<const CompressedBody> MakeBody(std::string plain, std::string content_type,
                                               int level = 6);

// Answers `request` with `body`: gzip-encoded when the request accepts gzip, else plain.
void SendBody(const httplib::Request& request, httplib::Response& response,
              std::shared_ptr<const CompressedBody> body);

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_COMPRESSED_BODY_H_
