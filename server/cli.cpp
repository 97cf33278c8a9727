#include "server/cli.h"

#include <csignal>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>

#include "common/fs.h"
#include "common/log.h"
#include "common/systemd.h"
#include "server/auth.h"
#include "server/server.h"
#include "server/store.h"

namespace farmhand::server {
namespace {

constexpr const char* kUsage =
    "usage: farmhand-server serve [--config FILE] [--database FILE] [--listen ADDR:PORT] [--port-file FILE]\n"
    "       farmhand-server check-config [--config FILE]\n"
    "       farmhand-server token create --name HOST [--expires 24h]\n"
    "       farmhand-server token list\n"
    "       farmhand-server token revoke ID | --name HOST\n"
    "       farmhand-server host list\n"
    "       farmhand-server host remove NAME\n"
    "       farmhand-server user add NAME --role viewer|admin --password-file FILE|-\n"
    "       farmhand-server user list\n"
    "       farmhand-server user remove NAME\n"
    "every command takes --config FILE (default /etc/farmhand/server.json) and --database FILE\n";

// The parsed command line: positional words and --options with a value.
struct Args {
  std::vector<std::string> words;
  std::map<std::string, std::string> options;
};

const std::map<std::string, bool> kOptions = {{"--config", true},   {"--database", true}, {"--listen", true},
                                              {"--port-file", true}, {"--name", true},     {"--expires", true},
                                              {"--role", true},      {"--password-file", true}};

Result<Args> parse_args(const std::vector<std::string>& args) {
  Args out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      std::string name = a;
      std::optional<std::string> value;
      if (auto eq = a.find('='); eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
      }
      if (!kOptions.contains(name)) return fail("unknown option " + name);
      if (!value) {
        if (i + 1 >= args.size()) return fail(name + " needs a value");
        value = args[++i];
      }
      if (out.options.contains(name)) return fail(name + " is given twice");
      out.options[name] = *value;
    } else {
      out.words.push_back(a);
    }
  }
  return out;
}

std::optional<std::string> option(const Args& a, const std::string& name) {
  auto it = a.options.find(name);
  return it == a.options.end() ? std::nullopt : std::optional<std::string>(it->second);
}

Status only_options(const Args& a, std::initializer_list<const char*> allowed) {
  for (const auto& [name, value] : a.options) {
    bool ok = name == "--config" || name == "--database";
    for (const char* x : allowed) ok = ok || name == x;
    if (!ok) return fail(name + " does not apply to this command");
  }
  return {};
}

Result<ServerConfig> load_config(const Args& a) {
  auto path = option(a, "--config");
  auto config = load_server_config(path.value_or(kDefaultConfigPath), path.has_value());
  if (!config) return config.error();
  if (auto db = option(a, "--database")) config->database = *db;
  if (auto listen = option(a, "--listen")) {
    if (auto s = apply_listen_override(*config, *listen); !s) return s.error();
  }
  return config;
}

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string format_time(std::optional<int64_t> ms) {
  if (!ms) return "-";
  time_t secs = static_cast<time_t>(*ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &t);
  return buf;
}

Server* g_server = nullptr;
void on_stop_signal(int) {
  if (g_server != nullptr) g_server->request_stop();
}

int serve(const Args& a, std::ostream& err) {
  if (auto s = only_options(a, {"--listen", "--port-file"}); !s) {
    err << "farmhand-server: " << s.error().message() << "\n";
    return 2;
  }
  auto config = load_config(a);
  if (!config) {
    log::error(config.error().message());
    return 1;
  }
  auto server = Server::create(*config);
  if (!server) {
    log::error(server.error().message());
    return 1;
  }
  const uint16_t port = (*server)->port();
  log::notice("listening on ", config->listen_address, ":", port, config->tls() ? " (TLS)" : "");
  if (auto file = option(a, "--port-file")) {
    if (auto s = write_file_atomic(*file, std::to_string(port) + "\n", 0644); !s) {
      log::error("writing the port file: ", s.error().message());
      return 1;
    }
  }
  g_server = server->get();
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  notify_service_manager("READY=1");
  Status s = (*server)->run();
  notify_service_manager("STOPPING=1");
  g_server = nullptr;
  server->reset();
  if (!s) {
    log::error(s.error().message());
    return 1;
  }
  log::notice("stopped");
  return 0;
}

Result<std::string> read_password(const std::string& file, std::istream& in) {
  std::string text;
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else {
    auto r = read_file(file);
    if (!r) return r.error();
    text = std::move(*r);
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) return fail("the password is empty");
  if (text.size() > 1024) return fail("the password is longer than 1024 bytes");
  return text;
}

// The admin subcommands, one method per noun; messages for people go to `err`.
class Admin {
 public:
  Admin(const Args& args, std::istream& input, std::ostream& output, std::ostream& errors, ServerConfig cfg)
      : a(args),
        in(input),
        out(output),
        err(errors),
        config(std::move(cfg)),
        verb(args.words.size() > 1 ? args.words[1] : ""),
        rest(args.words.begin() + std::min<size_t>(2, args.words.size()), args.words.end()) {}

  int token();
  int host();
  int user();

  int bad(const std::string& message) {
    err << "farmhand-server: " << message << "\n";
    return 2;
  }
  int failed(const Error& e) {
    err << "farmhand-server: " << e.message() << "\n";
    return 1;
  }
  int usage() {
    err << kUsage;
    return 2;
  }

 private:
  Result<Store> open() { return Store::open(config.database); }

  const Args& a;
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  const ServerConfig config;
  const std::string verb;
  const std::vector<std::string> rest;
};

int Admin::token() {
  if (verb == "create") {
    if (auto s = only_options(a, {"--name", "--expires"}); !s) return bad(s.error().message());
    auto name = option(a, "--name");
    if (!name || !rest.empty()) return bad("usage: token create --name HOST [--expires 24h]");
    if (auto s = check_name(*name, "host"); !s) return bad(s.error().message());
    auto lifetime = parse_duration_ms(option(a, "--expires").value_or("24h"));
    if (!lifetime) return bad(lifetime.error().message());
    auto store = open();
    if (!store) return failed(store.error());
    auto token = store->create_token(*name, now_ms(), *lifetime);
    if (!token) return failed(token.error());
    out << token->token << "\n";
    err << "token " << token->id << " for host \"" << *name << "\" is valid until "
        << format_time(now_ms() + *lifetime) << " and can be used once\n";
    return 0;
  }
  if (verb == "list") {
    if (auto s = only_options(a, {}); !s) return bad(s.error().message());
    if (!rest.empty()) return bad("usage: token list");
    auto store = open();
    if (!store) return failed(store.error());
    auto tokens = store->list_tokens(now_ms());
    if (!tokens) return failed(tokens.error());
    out << std::left << std::setw(6) << "ID" << std::setw(24) << "HOST" << std::setw(22) << "CREATED" << std::setw(22)
        << "EXPIRES" << "STATE\n";
    for (const auto& t : *tokens) {
      out << std::left << std::setw(6) << t.id << std::setw(24) << t.host << std::setw(22) << format_time(t.created)
          << std::setw(22) << format_time(t.expires) << t.state << "\n";
    }
    return 0;
  }
  if (verb == "revoke") {
    if (auto s = only_options(a, {"--name"}); !s) return bad(s.error().message());
    auto name = option(a, "--name");
    if (name.has_value() == (rest.size() == 1) || rest.size() > 1) return bad("usage: token revoke ID | --name HOST");
    auto store = open();
    if (!store) return failed(store.error());
    if (name) {
      if (auto s = check_name(*name, "host"); !s) return bad(s.error().message());
      auto n = store->revoke_tokens_for(*name, now_ms());
      if (!n) return failed(n.error());
      err << "revoked " << *n << " token" << (*n == 1 ? "" : "s") << " of host \"" << *name << "\"\n";
      return 0;
    }
    if (rest[0].empty() || rest[0].find_first_not_of("0123456789") != std::string::npos || rest[0].size() > 18) {
      return bad("\"" + rest[0] + "\" is not a token id (see token list)");
    }
    auto revoked = store->revoke_token(std::stoll(rest[0]), now_ms());
    if (!revoked) return failed(revoked.error());
    if (!*revoked) return failed(fail("no unused, unrevoked token has the id " + rest[0]));
    err << "revoked token " << rest[0] << "\n";
    return 0;
  }
  return usage();
}

int Admin::host() {
  if (verb == "list") {
    if (auto s = only_options(a, {}); !s) return bad(s.error().message());
    if (!rest.empty()) return bad("usage: host list");
    auto store = open();
    if (!store) return failed(store.error());
    auto hosts = store->list_hosts();
    if (!hosts) return failed(hosts.error());
    out << std::left << std::setw(24) << "NAME" << std::setw(22) << "ENROLLED" << std::setw(22) << "LAST SEEN"
        << "ACKED SEQ\n";
    for (const auto& h : *hosts) {
      out << std::left << std::setw(24) << h.name << std::setw(22) << format_time(h.enrolled) << std::setw(22)
          << format_time(h.last_seen) << h.acked_seq << "\n";
    }
    return 0;
  }
  if (verb == "remove") {
    if (auto s = only_options(a, {}); !s) return bad(s.error().message());
    if (rest.size() != 1) return bad("usage: host remove NAME");
    if (auto s = check_name(rest[0], "host"); !s) return bad(s.error().message());
    auto store = open();
    if (!store) return failed(store.error());
    auto removed = store->remove_host(rest[0]);
    if (!removed) return failed(removed.error());
    if (!*removed) return failed(fail("no host is called \"" + rest[0] + "\""));
    err << "removed host \"" << rest[0] << "\"; a connected agent of it is disconnected within seconds\n";
    return 0;
  }
  return usage();
}

int Admin::user() {
  if (verb == "add") {
    if (auto s = only_options(a, {"--role", "--password-file"}); !s) return bad(s.error().message());
    auto role_text = option(a, "--role");
    auto file = option(a, "--password-file");
    if (rest.size() != 1 || !role_text || !file) {
      return bad("usage: user add NAME --role viewer|admin --password-file FILE|-");
    }
    if (auto s = check_name(rest[0], "user"); !s) return bad(s.error().message());
    auto role = parse_role(*role_text);
    if (!role) return bad("--role: expected viewer or admin, got \"" + *role_text + "\"");
    auto password = read_password(*file, in);
    if (!password) return failed(password.error().context("reading the password"));
    auto store = open();
    if (!store) return failed(store.error());
    auto existed = store->put_user(rest[0], *role, *password);
    if (!existed) return failed(existed.error());
    err << (*existed ? "updated" : "added") << " user \"" << rest[0] << "\" (" << role_name(*role) << ")\n";
    return 0;
  }
  if (verb == "list") {
    if (auto s = only_options(a, {}); !s) return bad(s.error().message());
    auto store = open();
    if (!store) return failed(store.error());
    auto users = store->list_users();
    if (!users) return failed(users.error());
    out << std::left << std::setw(24) << "NAME" << "ROLE\n";
    for (const auto& u : *users) out << std::left << std::setw(24) << u.name << role_name(u.role) << "\n";
    return 0;
  }
  if (verb == "remove") {
    if (auto s = only_options(a, {}); !s) return bad(s.error().message());
    if (rest.size() != 1) return bad("usage: user remove NAME");
    if (auto s = check_name(rest[0], "user"); !s) return bad(s.error().message());
    auto store = open();
    if (!store) return failed(store.error());
    auto removed = store->remove_user(rest[0]);
    if (!removed) return failed(removed.error());
    if (!*removed) return failed(fail("no user is called \"" + rest[0] + "\""));
    err << "removed user \"" << rest[0] << "\" and ended their sessions\n";
    return 0;
  }
  return usage();
}

int admin(const Args& a, std::istream& in, std::ostream& out, std::ostream& err) {
  auto config = load_config(a);
  if (!config) {
    err << "farmhand-server: " << config.error().message() << "\n";
    return 1;
  }
  Admin cmd(a, in, out, err, std::move(*config));
  const std::string& noun = a.words[0];
  if (noun == "check-config") {
    if (a.words.size() > 1) return cmd.bad("check-config takes no arguments");
    err << "the configuration is valid\n";
    return 0;
  }
  if (noun == "token") return cmd.token();
  if (noun == "host") return cmd.host();
  if (noun == "user") return cmd.user();
  return cmd.usage();
}

}  // namespace

Result<int64_t> parse_duration_ms(std::string_view text) {
  auto bad = [&] {
    return fail("--expires: expected a duration like 30m, 24h or 7d (at most 365d), got \"" + std::string(text) + "\"");
  };
  if (text.size() < 2 || text.size() > 12) return bad();
  std::string_view digits = text.substr(0, text.size() - 1);
  if (digits.find_first_not_of("0123456789") != std::string_view::npos) return bad();
  int64_t n = std::stoll(std::string(digits));
  int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1000; break;
    case 'm': unit = 60 * 1000; break;
    case 'h': unit = 3600 * 1000; break;
    case 'd': unit = 86400 * 1000; break;
    default: return bad();
  }
  if (n < 1 || n > 365LL * 86400 * 1000 / unit) return bad();
  return n * unit;
}

int run_cli(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      out << kUsage;
      return 0;
    }
  }
  auto parsed = parse_args(args);
  if (!parsed) {
    err << "farmhand-server: " << parsed.error().message() << "\n" << kUsage;
    return 2;
  }
  if (parsed->words.empty() || parsed->words[0] == "help" ) {
    err << kUsage;
    return parsed->words.empty() ? 2 : 0;
  }
  if (parsed->words[0] == "serve") {
    if (parsed->words.size() != 1) {
      err << kUsage;
      return 2;
    }
    return serve(*parsed, err);
  }
  return admin(*parsed, in, out, err);
}

}  // namespace farmhand::server
