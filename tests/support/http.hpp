// HTTP test support for the framework adapters: a project whose manifest chains extract-header and
// extract-path (/t/{tenant}) with metrics-prometheus as sink, tenants with a `tasks` table, and
// clients over real loopback sockets (cpp-httplib's, and a raw one for bytes a client refuses to send).
#pragma once

#include "support/project.hpp"

#include <mt/context/manifest.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

namespace mt::test {

inline void configure_http(Project& p) {
    p.set("plugins.load",
          "tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, discovery-schemas, retry-exponential, "
          "metrics-prometheus, extract-header, extract-path");
    p.set("roles.extractor", "extract-header, extract-path");
    p.set("roles.sinks", "metrics-prometheus");
    p.set("plugin.extract-path.prefix", "/t/{tenant}");
    p.set("plugin.retry-exponential.max_attempts", "2");
    p.set("plugin.retry-exponential.initial_delay", "20ms");
}

inline mt::ManifestInput manifest_of(const Project& p) {
    mt::ManifestInput in;
    in.file = p.dir() / "multitenant.ini";
    in.use_environment = false;
    return in;
}

// Registers the tenants, creates their schemas with a `tasks` table holding one task titled
// "<id>'s first task".
inline void tenants_with_tasks(const Project& p, const std::vector<std::string>& ids) {
    p.tenants(ids);
    for (const auto& id : ids) {
        pqxx::connection c(p.url());
        pqxx::work tx(c);
        const std::string table = tx.quote_name("tenant_" + id) + ".tasks";
        tx.exec0("CREATE TABLE " + table + " (id serial PRIMARY KEY, title text NOT NULL)");
        tx.exec_params0("INSERT INTO " + table + " (title) VALUES ($1)", id + "'s first task");
        tx.commit();
    }
}

struct HttpReply {
    int status = 0;  // 0: no answer
    std::string body;
    nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
    std::string error() const {
        const auto j = json();
        return j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "";
    }
};

inline HttpReply http_get(int port, const std::string& path, const httplib::Headers& headers = {}) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(15, 0);
    auto r = client.Get(path.c_str(), headers);
    return r ? HttpReply{r->status, r->body} : HttpReply{};
}

inline HttpReply http_post(int port, const std::string& path, const std::string& body, const httplib::Headers& headers = {}) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(15, 0);
    auto r = client.Post(path.c_str(), headers, body, "application/json");
    return r ? HttpReply{r->status, r->body} : HttpReply{};
}

inline HttpReply tenant_get(int port, const std::string& tenant, const std::string& path = "/tasks") {
    return http_get(port, path, {{"X-Tenant-Id", tenant}});
}

// Sends bytes as they are (a client library would refuse or repair them) and reads to EOF.
inline HttpReply raw_http(int port, const std::string& bytes) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return {};
    timeval tv{15, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string in;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size())) {
        char buf[4096];
        for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) in.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    HttpReply reply;
    if (in.rfind("HTTP/1.", 0) == 0 && in.size() > 12) reply.status = std::stoi(in.substr(9, 3));
    if (const auto end = in.find("\r\n\r\n"); end != std::string::npos) reply.body = in.substr(end + 4);
    return reply;
}

// A GET with one header line written verbatim, and Connection: close.
inline HttpReply raw_get(int port, const std::string& target, const std::string& header_lines) {
    return raw_http(port, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header_lines +
                              "Connection: close\r\n\r\n");
}

// Titles of a /tasks listing, in order.
inline std::vector<std::string> titles(const HttpReply& reply) {
    std::vector<std::string> out;
    const auto j = reply.json();
    if (!j.is_array()) return {"<not a JSON array: " + reply.body.substr(0, 200) + ">"};
    for (const auto& task : j) out.push_back(task.value("title", "<no title>"));
    return out;
}

// `name{labels} value` lines of a Prometheus exposition: sample (name plus labels as written) -> value.
inline std::map<std::string, double> scrape(const std::string& exposition) {
    std::map<std::string, double> out;
    size_t pos = 0;
    while (pos < exposition.size()) {
        size_t eol = exposition.find('\n', pos);
        if (eol == std::string::npos) eol = exposition.size();
        const std::string line = exposition.substr(pos, eol - pos);
        pos = eol + 1;
        if (line.empty() || line[0] == '#') continue;
        const auto space = line.rfind(' ');
        if (space == std::string::npos) continue;
        out[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return out;
}

}  // namespace mt::test
