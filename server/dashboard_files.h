// The dashboard's static files (server/dashboard/), embedded into the binary
// at build time by embed_dashboard.cmake.
#pragma once

#include <string_view>
#include <vector>

namespace farmhand::server {

struct EmbeddedFile {
  std::string_view path;  // relative to server/dashboard/, '/'-separated
  std::string_view content;
};

const std::vector<EmbeddedFile>& dashboard_files();  // generated
const EmbeddedFile* find_dashboard_file(std::string_view path);
std::string_view content_type_for(std::string_view path);

}  // namespace farmhand::server
