#include "dashboard/server/compressed_body.h"

#include <httplib.h>
#include <zlib.h>

#include <algorithm>

#include "absl/strings/match.h"

namespace hippo::dashboard {
namespace {

constexpr size_t kCompressAbove = 1024;  // smaller bodies fit a packet as they are

// The gzip stream of `plain`, or "" when zlib fails (the body then goes plain).
std::string Gzip(const std::string& plain, int level) {
  z_stream stream{};
  // windowBits 15 + 16: a gzip header and trailer rather than zlib's.
  if (deflateInit2(&stream, std::clamp(level, 1, 9), Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return "";
  }
  std::string out(deflateBound(&stream, plain.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  stream.avail_in = static_cast<uInt>(plain.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return result == Z_STREAM_END ? out : "";
}

}  // namespace

bool CompressedBody::compressible() const { return plain_.size() > kCompressAbove; }

const std::string& CompressedBody::gzip() const {
  std::call_once(gzipped_, [this] {
    if (!compressible()) return;
    gzip_ = Gzip(plain_, level_);
    if (gzip_.size() >= plain_.size()) gzip_.clear();
  });
  return gzip_;
}

std::shared_ptr<const CompressedBody> MakeBody(std::string plain, std::string content_type,
                                               int level) {
  return std::make_shared<const CompressedBody>(std::move(plain), std::move(content_type), level);
}

void SendBody(const httplib::Request& request, httplib::Response& response,
              std::shared_ptr<const CompressedBody> body) {
  const bool accepts = absl::StrContains(request.get_header_value("Accept-Encoding"), "gzip");
  const bool gzip = accepts && body->compressible() && !body->gzip().empty();
  if (body->compressible()) response.set_header("Vary", "Accept-Encoding");
  if (gzip) response.set_header("Content-Encoding", "gzip");
  const std::string* bytes = gzip ? &body->gzip() : &body->plain();
  // A provider of known length: cpp-httplib sends it as it is (it compresses only set_content
  // bodies and chunked providers). The provider holds the body while the response is written.
  response.set_content_provider(
      bytes->size(), body->content_type(),
      [body, bytes](size_t offset, size_t length, httplib::DataSink& sink) {
        return sink.write(bytes->data() + offset, length);
      });
}

}  // namespace hippo::dashboard
