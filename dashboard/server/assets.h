// The web app's built files (dashboard/web, built by vite at `make` time), embedded in the
// binary by a generated assets.cc, so that the page loads nothing from outside the coordinator.
#ifndef HIPPO_DASHBOARD_SERVER_ASSETS_H_
#define HIPPO_DASHBOARD_SERVER_ASSETS_H_

#include <span>
#include <string_view>

namespace hippo::dashboard {

struct Asset {
  std::string_view path;          // "/index.html", "/assets/index-1a2b3c.js"
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view data;
};

// Every built file, index.html among them.
std::span<const Asset> Assets();

}  // namespace hippo::dashboard

#endif  // HIPPO_DASHBOARD_SERVER_ASSETS_H_
