#include "agent/enroll_exchange.h"

#include <optional>
#include <variant>

#include "agent/loop.h"
#include "agent/ws_client.h"
#include "common/log.h"

#ifndef FARMHAND_VERSION
#define FARMHAND_VERSION "unknown"
#endif

namespace farmhand::agent {

Result<protocol::Enrolled> exchange_enrollment_token(const std::string& url, const std::string& token,
                                                     const std::string& ca_file,
                                                     std::chrono::milliseconds timeout) {
  log::add_secret(token);
  auto server = parse_server_url(url);
  if (!server) return server.error();
  auto loop = EventLoop::create();
  if (!loop) return loop.error();

  std::optional<Result<protocol::Enrolled>> outcome;
  auto finish = [&](Result<protocol::Enrolled> r) {
    if (!outcome) outcome = std::move(r);
    (*loop)->stop();
  };
  WsClient* client = nullptr;
  WsClient ws(**loop, WsClient::Handlers{
                          [&] {
                            client->send(protocol::encode(
                                protocol::AgentFrame(protocol::Enroll{token, FARMHAND_VERSION})));
                          },
                          [&](std::string_view text) {
                            auto decoded = protocol::decode_server_frame(text);
                            if (auto* err = std::get_if<protocol::ProtocolError>(&decoded)) {
                              finish(fail("bad answer from " + url + ": " + err->message));
                            } else if (auto* frame = std::get_if<protocol::ServerFrame>(&decoded)) {
                              if (auto* enrolled = std::get_if<protocol::Enrolled>(frame)) {
                                log::add_secret(enrolled->credential);
                                finish(*enrolled);
                              } else if (auto* e = std::get_if<protocol::ErrorFrame>(frame)) {
                                finish(fail(url + " refused the enrollment: " + e->error.message + " (" +
                                            e->error.code + ")"));
                              } else {
                                finish(fail("unexpected answer from " + url + " to enroll"));
                              }
                            }
                            client->close("done");
                          },
                          [&](const std::string& reason) {
                            finish(fail("cannot enroll with " + url + ": " + reason));
                          },
                          nullptr,
                      });
  client = &ws;
  WsOptions options;
  options.subprotocol = protocol::kAgentSubprotocol;
  options.ca_file = ca_file;
  if (auto s = ws.connect(*server, options); !s) return s.error().context("cannot enroll with " + url);
  auto limit = (*loop)->after(timeout, [&] {
    auto ms = timeout.count();
    finish(fail("no answer from " + url + " within " +
                (ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms")));
  });
  (*loop)->run();
  (*loop)->cancel(limit);
  if (!outcome) return fail("cannot enroll with " + url + ": the event loop failed");
  return std::move(*outcome);
}

}  // namespace farmhand::agent
