// mtctl serve: a long-running exporter with /health/db (200 healthy / 503 + the health JSON) and
// /metrics (the sinks' exposition, with fleet gauges refreshed at most every --refresh). Loopback
// by default; optionally over TLS and behind basic auth or a bearer token, the way Prometheus
// exporters take a web config (docs/http.md). The server, /health/db and /metrics are the httplib
// adapter's (plugins/adapter-httplib); what serve adds is the access check in front of them and the
// fleet gauges' refresh before /metrics, which only a process that reads the whole fleet does.
#include "cli.hpp"
#include "json.hpp"

#include <mt/adapter/httplib.hpp>
#include <mt/base/errors.hpp>
#include <mt/fleet/commands.hpp>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <crypt.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

namespace mtctl {

namespace {

httplib::Server* running_server = nullptr;

constexpr const char* default_listen = "127.0.0.1:9465";

// The whole of a secret or credentials file; exit 2 naming the file when it cannot be read, is
// empty, or (for a file holding a secret itself) can be read by other users.
std::string read_secret_file(const std::string& flag, const std::string& path, bool refuse_other_readers) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw mt::UsageError(flag + " " + path + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw mt::UsageError(flag + " " + path + ": not a regular file");
    if (refuse_other_readers && (st.st_mode & S_IROTH))
        throw mt::UsageError(flag + " " + path + ": readable by every user of this machine; run chmod 600 " + path);
    std::ifstream in(path, std::ios::binary);
    if (!in) throw mt::UsageError(flag + " " + path + ": cannot be read (permissions?)");
    std::ostringstream all;
    all << in.rdbuf();
    std::string text = all.str();
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
    if (text.empty()) throw mt::UsageError(flag + " " + path + ": the file is empty");
    return text;
}

// Equal bytes, in a time that depends only on the expected value's length.
bool same_secret(const std::string& given, const std::string& expected) {
    unsigned char diff = given.size() == expected.size() ? 0 : 1;
    for (size_t i = 0; i < expected.size(); ++i)
        diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
    return diff == 0;
}

std::string base64_decode(const std::string& in) {
    static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    int bits = 0;
    unsigned value = 0;
    for (char ch : in) {
        if (ch == '=') break;
        const auto pos = chars.find(ch);
        if (pos == std::string::npos) return {};
        value = (value << 6) | static_cast<unsigned>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((value >> bits) & 0xff);
        }
    }
    return out;
}

// Who may read the exporter: everybody, the users of a basic-auth file, or the holder of a token.
class Access {
public:
    static Access from_flags(const po::variables_map& vm) {
        Access a;
        const bool basic = vm.count("basic-auth") > 0, bearer = vm.count("bearer-token-file") > 0;
        if (basic && bearer) throw mt::UsageError("--basic-auth and --bearer-token-file exclude each other: choose one");
        if (bearer) {
            const auto path = vm["bearer-token-file"].as<std::string>();
            a.token_ = read_secret_file("--bearer-token-file", path, true);
            if (a.token_.find_first_of("\r\n") != std::string::npos)
                throw mt::UsageError("--bearer-token-file " + path + ": the token must be one line");
        }
        if (basic) {
            const auto path = vm["basic-auth"].as<std::string>();
            std::istringstream lines(read_secret_file("--basic-auth", path, false));
            std::string line;
            for (int number = 1; std::getline(lines, line); ++number) {
                if (!line.empty() && line.back() == '\r') line.pop_back();
                if (line.empty() || line[0] == '#') continue;
                const auto colon = line.find(':');
                const std::string user = line.substr(0, colon), hash = colon == std::string::npos ? "" : line.substr(colon + 1);
                if (user.empty() || hash.size() < 4 || hash[0] != '$')
                    throw mt::UsageError("--basic-auth " + path + ":" + std::to_string(number) +
                                         ": expected USER:HASH with a crypt(3) hash such as bcrypt ($2y$...) or "
                                         "SHA-512 ($6$...), e.g. from htpasswd -nB USER or openssl passwd -6; "
                                         "plain passwords are not accepted");
                a.users_[user] = hash;
            }
            if (a.users_.empty()) throw mt::UsageError("--basic-auth " + path + ": no USER:HASH line");
        }
        return a;
    }

    bool open() const { return token_.empty() && users_.empty(); }

    // true when the request may pass; otherwise res holds the 401.
    bool admit(const httplib::Request& req, httplib::Response& res) const {
        if (open()) return true;
        const std::string header = req.get_header_value("Authorization");
        bool ok = false;
        if (!token_.empty()) {
            ok = header.rfind("Bearer ", 0) == 0 && same_secret(header.substr(7), token_);
        } else if (header.rfind("Basic ", 0) == 0) {
            const std::string pair = base64_decode(header.substr(6));
            const auto colon = pair.find(':');
            if (colon != std::string::npos) ok = check_password(pair.substr(0, colon), pair.substr(colon + 1));
        }
        if (ok) return true;
        res.status = 401;
        res.set_header("WWW-Authenticate", token_.empty() ? R"(Basic realm="mtctl serve", charset="UTF-8")"
                                                          : R"(Bearer realm="mtctl serve")");
        res.set_content(R"({"error":"unauthorized"})", "application/json");
        return false;
    }

private:
    bool check_password(const std::string& user, const std::string& password) const {
        const auto it = users_.find(user);
        // An unknown user costs the same hashing as a known one (no user enumeration by timing).
        const std::string& hash = it != users_.end() ? it->second : users_.begin()->second;
        crypt_data data{};
        const char* computed = ::crypt_r(password.c_str(), hash.c_str(), &data);
        const bool match = computed && computed[0] != '*' && same_secret(computed, hash);
        return match && it != users_.end();
    }

    std::string token_;
    std::map<std::string, std::string> users_;
};

void stop_on_signal(int) {
    if (running_server) running_server->stop();
}

std::pair<std::string, int> parse_listen(const std::string& addr) {
    const auto colon = addr.rfind(':');
    if (colon == std::string::npos || colon + 1 >= addr.size())
        throw mt::UsageError("--listen " + addr + ": expected HOST:PORT, e.g. 127.0.0.1:9465");
    std::string host = addr.substr(0, colon);
    if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    try {
        size_t used = 0;
        const int port = std::stoi(addr.substr(colon + 1), &used);
        if (used != addr.size() - colon - 1 || port < 0 || port > 65535) throw std::out_of_range("port");
        // No host: loopback. Every interface only when asked for (0.0.0.0 or [::]).
        return {host.empty() ? "127.0.0.1" : host, port};
    } catch (const std::exception&) {
        throw mt::UsageError("--listen " + addr + ": the port must be a number from 0 to 65535");
    }
}

int cmd_serve(const Invocation& inv, const Output& out) {
    po::options_description desc("serve options");
    desc.add_options()("listen", po::value<std::string>()->default_value(default_listen)->value_name("HOST:PORT"),
                       "HOST:PORT to serve /health/db and /metrics on (loopback unless a host says otherwise)")(
        "refresh", po::value<std::string>()->default_value("15s")->value_name("DURATION"), "how stale the fleet gauges may get")(
        "tls-cert", po::value<std::string>()->value_name("FILE"), "serve HTTPS with this PEM certificate (chain)")(
        "tls-key", po::value<std::string>()->value_name("FILE"), "the PEM private key of --tls-cert")(
        "basic-auth", po::value<std::string>()->value_name("FILE"), "require HTTP basic auth: USER:HASH lines (crypt(3) hashes)")(
        "bearer-token-file", po::value<std::string>()->value_name("FILE"), "require Authorization: Bearer with the token in this file");
    const auto vm = parse_options(inv, desc);
    const auto [host, port] = parse_listen(vm["listen"].as<std::string>());
    const auto refresh = duration_flag(vm, "refresh");
    const Access access = Access::from_flags(vm);
    if (vm.count("tls-cert") != vm.count("tls-key"))
        throw mt::UsageError("--tls-cert and --tls-key go together: give both PEM files");
    const bool tls = vm.count("tls-cert") > 0;
    if (tls) {
        read_secret_file("--tls-cert", vm["tls-cert"].as<std::string>(), false);
        read_secret_file("--tls-key", vm["tls-key"].as<std::string>(), true);
    }

    mt::command::Exporter exporter(inv.globals.manifest_input(), refresh);
    if (!exporter.has_sinks())
        spdlog::warn("no metrics sink configured: /metrics stays empty until metrics-prometheus is in [roles] sinks");

    // The adapter's server: bounded bodies and heads, timeouts, idle connections hold no thread,
    // no exception text in answers; over TLS too.
    std::unique_ptr<mt::adapter::httplib::Server> owned;
    if (tls) {
        owned = std::make_unique<mt::adapter::httplib::Server>(mt::adapter::httplib::ServerOptions{},
                                                               vm["tls-cert"].as<std::string>(),
                                                               vm["tls-key"].as<std::string>());
        if (!owned->is_valid())
            throw mt::UsageError("--tls-cert " + vm["tls-cert"].as<std::string>() + " / --tls-key " +
                                 vm["tls-key"].as<std::string>() +
                                 ": cannot load the certificate and key (PEM files of one key pair?)");
    } else {
        owned = std::make_unique<mt::adapter::httplib::Server>();
    }
    httplib::Server& server = *owned;
    const auto health = mt::adapter::httplib::health_handler(exporter.manager());
    const auto metrics = mt::adapter::httplib::metrics_handler(exporter.manager());
    server.Get("/health/db", [&](const httplib::Request& req, httplib::Response& res) {
        if (access.admit(req, res)) health(req, res);
    });
    server.Get("/metrics", [&](const httplib::Request& req, httplib::Response& res) {
        if (!access.admit(req, res)) return;
        exporter.refresh_fleet_gauges();
        metrics(req, res);
    });
    server.Get("/", [&](const httplib::Request& req, httplib::Response& res) {
        if (!access.admit(req, res)) return;
        res.set_content("mtctl serve: /health/db, /metrics\n", "text/plain");
    });

    // cpp-httplib's default sets SO_REUSEPORT, with which a second exporter on a port in use binds
    // too and silently shares its connections: keep SO_REUSEADDR only (restarts over TIME_WAIT).
    server.set_socket_options([](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    int bound = port;
    if (port == 0) bound = server.bind_to_any_port(host);
    else if (!server.bind_to_port(host, port)) bound = -1;
    if (bound < 0) throw mt::UsageError("cannot listen on " + host + ":" + std::to_string(port) + " (in use?)");
    running_server = &server;
    std::signal(SIGINT, stop_on_signal);
    std::signal(SIGTERM, stop_on_signal);
    out.json({{"listening", host + ":" + std::to_string(bound)}, {"tls", tls}, {"auth", access.open() ? "none" : vm.count("basic-auth") ? "basic" : "bearer"}});
    if (!inv.globals.json)
        std::cout << "serving /health/db and /metrics on " << (tls ? "https://" : "http://") << host << ":" << bound << "\n";
    // Whoever started us (a supervisor, a test) learns the port from this line: do not leave it in
    // the buffer of a redirected stdout.
    std::cout.flush();
    server.listen_after_bind();
    running_server = nullptr;
    return 0;
}

const bool serve_registered = register_command(
    {"serve",
     "serve [--listen 127.0.0.1:9465] [--refresh 15s] [--tls-cert FILE --tls-key FILE] "
     "[--basic-auth FILE | --bearer-token-file FILE]",
     "exporter: /health/db and /metrics with fleet gauges", 90,
     cmd_serve});

}  // namespace
}  // namespace mtctl
