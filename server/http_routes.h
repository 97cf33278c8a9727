// The HTTP API's routes (docs/protocol.md, "HTTP API") and the embedded
// dashboard, as a pure function of the request and the Hub.
#pragma once

#include <libwebsockets.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace farmhand::server {

class Hub;

struct HttpResponse {
  unsigned int status = 200;
  std::string_view content_type = "application/json";
  std::string body;
  std::optional<std::string_view> static_body;  // embedded content, not copied
  std::optional<std::string> set_cookie;         // "fh_session=..."; attributes are added
  std::string_view body_view() const { return static_body ? *static_body : std::string_view(body); }
};

// One request on a connection and its answer while it is written.
struct HttpExchange {
  std::string method;  // GET, POST, HEAD or OTHER
  std::string path;
  std::vector<std::pair<std::string, std::string>> args;
  std::string body;
  HttpResponse response;
  size_t sent = 0;
  bool close_after = false;
};

HttpResponse json_response(unsigned int status, const nlohmann::json& body);
// `wsi` is only used to read the Cookie header.
HttpResponse route(Hub& hub, lws* wsi, const HttpExchange& request);

}  // namespace farmhand::server
