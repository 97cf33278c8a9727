// libFuzzer target: the agent's configuration parser. Any input must give a
// configuration or a list of errors, never a crash.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "provisioner/config.h"
#include "provisioner/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto book = farmhand::provisioner::RecipeBook::builtin();
  if (!book) std::abort();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto load = farmhand::provisioner::parse_config(text, *book);
  if (load.config.has_value() == !load.errors.empty()) std::abort();
  return 0;
}
