// libFuzzer target: every frame a hostile peer can send goes through these
// decoders. A frame must decode or be refused, never crash, and a decoded
// frame must survive encode -> decode unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/protocol.h"

using namespace farmhand::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto agent = decode_agent_frame(text);
  if (auto* frame = std::get_if<AgentFrame>(&agent)) {
    auto again = decode_agent_frame(encode(*frame));
    if (!std::holds_alternative<AgentFrame>(again)) std::abort();
  }
  auto server = decode_server_frame(text);
  if (auto* frame = std::get_if<ServerFrame>(&server)) {
    auto again = decode_server_frame(encode(*frame));
    if (!std::holds_alternative<ServerFrame>(again)) std::abort();
  }
  (void)decode_ui_command(text);
  return 0;
}
