// farmhand-load: B7's load tool. It simulates many agents in one process over
// loopback with the agent's own client code (AgentLink and its outboxes,
// WsClient and the protocol codec), all links sharing one EventLoop, and prints
// its figures as `key=value` lines for tests/bench/b7_server.sh.
#include <functional>
#include <filesystem>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <variant>
#include <vector>

#include "agent/ws_client.h"
#include "common/fs.h"
#include "common/log.h"
#include "tests/bench/load_agents.h"
#include "tests/bench/load_common.h"

namespace farmhand::load {
namespace {

// One enrollment in flight: the exchange of exchange_enrollment_token()
// (agent/enroll_exchange.cpp), but on the shared loop: that function builds
// an event loop with a TLS client context per call, which costs about 25 ms
// of CPU, far more than the exchange itself.
struct Enrollment {
  size_t index = 0;
  std::unique_ptr<agent::WsClient> ws;
  bool done = false;
};

// Enrolls every token of --tokens (one a line), --parallel at a time on one
// loop; writes "host credential" lines to --out (mode 0600).
int enroll(const Args& a) {
  auto url = a.need("url");
  auto tokens_file = a.need("tokens");
  auto out_file = a.need("out");
  auto parallel = a.number("parallel", 32);
  for (const Status& s : {status_of(url), status_of(tokens_file), status_of(out_file), status_of(parallel)}) {
    if (!s) return usage_error(s.error());
  }
  auto server = agent::parse_server_url(*url);
  if (!server) return usage_error(server.error());
  auto tokens = read_lines(*tokens_file);
  if (!tokens) {
    log::error(tokens.error().message());
    return 1;
  }
  for (const auto& t : *tokens) log::add_secret(t);
  raise_open_files(*parallel + 256);
  auto loop = agent::EventLoop::create();
  if (!loop) {
    log::error(loop.error().message());
    return 1;
  }
  std::vector<std::string> lines(tokens->size());
  size_t next = 0, finished = 0, failures = 0;
  std::string first_error;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<Enrollment>> slots;

  auto failed = [&](Enrollment& e, const std::string& why) {
    if (e.done) return;
    e.done = true;
    ++failures;
    if (first_error.empty()) first_error = why;
  };
  std::function<void(Enrollment&)> launch;
  // Called once per exchange, from its on_closed: frees the slot for the next token.
  auto closed = [&](Enrollment& e, const std::string& reason) {
    if (!e.done) failed(e, "cannot enroll with " + *url + ": " + reason);
    ++finished;
    (*loop)->after(std::chrono::milliseconds(0), [&, slot = &e] {
      if (next < tokens->size()) return launch(*slot);
      if (finished == tokens->size()) (*loop)->stop();
    });
  };
  launch = [&](Enrollment& e) {
    e.index = next++;
    e.done = false;
    Enrollment* self = &e;
    e.ws = std::make_unique<agent::WsClient>(
        **loop, agent::WsClient::Handlers{
                    [&, self] {
                      self->ws->send(protocol::encode(
                          protocol::AgentFrame(protocol::Enroll{(*tokens)[self->index], "0.1.0-load"})));
                    },
                    [&, self](std::string_view text) {
                      auto decoded = protocol::decode_server_frame(text);
                      const auto* frame = std::get_if<protocol::ServerFrame>(&decoded);
                      const auto* enrolled = frame ? std::get_if<protocol::Enrolled>(frame) : nullptr;
                      if (enrolled != nullptr && !self->done) {
                        log::add_secret(enrolled->credential);
                        lines[self->index] = enrolled->host + " " + enrolled->credential + "\n";
                        self->done = true;
                      } else if (const auto* err = frame ? std::get_if<protocol::ErrorFrame>(frame) : nullptr) {
                        failed(*self, *url + " refused the enrollment: " + err->error.message);
                      } else {
                        failed(*self, "unexpected answer from " + *url + " to enroll");
                      }
                      self->ws->close("done");
                    },
                    [&, self](const std::string& reason) { closed(*self, reason); },
                    nullptr,
                });
    agent::WsOptions options;
    options.subprotocol = protocol::kAgentSubprotocol;
    if (auto s = e.ws->connect(*server, options); !s) {
      failed(e, s.error().message());
      closed(e, s.error().message());
    }
  };
  for (uint64_t i = 0; i < std::max<uint64_t>(1, *parallel) && i < tokens->size(); ++i) {
    slots.push_back(std::make_unique<Enrollment>());
  }
  for (auto& slot : slots) launch(*slot);
  if (!tokens->empty()) (*loop)->run();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  slots.clear();

  std::string out;
  for (const auto& l : lines) out += l;
  if (auto s = write_file_atomic(std::filesystem::absolute(*out_file), out, 0600); !s) {
    log::error("writing ", *out_file, ": ", s.error().message());
    return 1;
  }
  std::printf("enrolled=%zu\nfailed=%zu\nseconds=%.3f\n", tokens->size() - failures, failures, secs);
  if (failures > 0) {
    log::error(failures, " enrollments failed; the first: ", first_error);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace farmhand::load

int main(int argc, char** argv) {
  using namespace farmhand;
  // The links are quiet already; info lines would cost the CPU the
  // benchmark measures.
  log::set_max_level(log::Level::kWarning);
  if (argc < 2) {
    std::cerr << load::kUsage;
    return 2;
  }
  const std::string mode = argv[1];
  auto args = load::Args::parse(argc, argv, 2);
  if (!args) return load::usage_error(args.error());
  if (mode == "enroll") return load::enroll(*args);
  if (mode == "agents") return load::run_agents(*args);
  if (mode == "events") return load::run_events(*args);
  std::cerr << load::kUsage;
  return 2;
}
