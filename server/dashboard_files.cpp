#include "server/dashboard_files.h"

namespace farmhand::server {

const EmbeddedFile* find_dashboard_file(std::string_view path) {
  for (const auto& f : dashboard_files()) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

std::string_view content_type_for(std::string_view path) {
  struct Type {
    std::string_view suffix;
    std::string_view type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},  {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
      {".json", "application/json"},         {".svg", "image/svg+xml"},
      {".png", "image/png"},                 {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},              {".txt", "text/plain; charset=utf-8"},
      {".map", "application/json"},
  };
  for (const auto& t : kTypes) {
    if (path.size() >= t.suffix.size() && path.substr(path.size() - t.suffix.size()) == t.suffix) return t.type;
  }
  return "application/octet-stream";
}

}  // namespace farmhand::server
