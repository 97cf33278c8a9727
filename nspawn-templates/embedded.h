// The recipe documents of nspawn-templates/recipes/, as (file name, JSON text).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace farmhand::templates {
const std::vector<std::pair<std::string, std::string>>& embedded_recipes();
}  // namespace farmhand::templates
