#include "common/strict_json.h"

#include <vector>

namespace farmhand {

namespace {

using Json = nlohmann::ordered_json;

// A SAX handler building an ordered_json DOM that keeps duplicate keys.
class DomBuilder {
 public:
  Json root;
  std::string error;

  bool null() { return put(Json(nullptr)) != nullptr; }
  bool boolean(bool v) { return put(Json(v)) != nullptr; }
  bool number_integer(Json::number_integer_t v) { return put(Json(v)) != nullptr; }
  bool number_unsigned(Json::number_unsigned_t v) { return put(Json(v)) != nullptr; }
  bool number_float(Json::number_float_t v, const std::string&) { return put(Json(v)) != nullptr; }
  bool string(std::string& v) { return put(Json(std::move(v))) != nullptr; }
  bool binary(Json::binary_t& v) { return put(Json::binary(std::move(v))) != nullptr; }
  bool start_object(std::size_t) {
    open_.push_back(put(Json::object()));
    return true;
  }
  bool key(std::string& k) {
    key_ = std::move(k);
    return true;
  }
  bool end_object() {
    open_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    open_.push_back(put(Json::array()));
    return true;
  }
  bool end_array() {
    open_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) {
    error = ex.what();
    return false;
  }

 private:
  // Only the innermost open container grows, so pointers to the open ones stay valid.
  Json* put(Json value) {
    if (open_.empty()) {
      root = std::move(value);
      return &root;
    }
    Json& parent = *open_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    auto& members = parent.get_ref<Json::object_t&>();
    members.Json::object_t::Container::emplace_back(std::move(key_), std::move(value));
    return &members.back().second;
  }

  std::vector<Json*> open_;
  std::string key_;
};

}  // namespace

std::string json_error_reason(const std::string& what) {
  std::string reason = what;
  if (reason.starts_with("[json.exception.")) {
    if (size_t end = reason.find("] "); end != std::string::npos) reason.erase(0, end + 2);
  }
  return reason;
}

Result<nlohmann::ordered_json> parse_json_keeping_duplicates(std::string_view text) {
  DomBuilder dom;
  bool parsed = false;
  try {
    parsed = Json::sax_parse(text, &dom);
  } catch (const Json::exception& ex) {
    dom.error = ex.what();
  }
  if (!parsed) return fail(json_error_reason(dom.error));
  return std::move(dom.root);
}

}  // namespace farmhand
