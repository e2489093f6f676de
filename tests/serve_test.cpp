// mtctl serve and mtctl health (SPEC §7, §8): the exporter over real sockets, its fleet gauges
// bounded by tenant_labels, a real Prometheus server scraping it, /health/db flipping to 503 while
// the database is down, and health's exit status and JSON.
#include "support/daemon.hpp"
#include "support/http.hpp"
#include "support/pgbouncer.hpp"
#include "support/wait.hpp"

#include <mt/base/redact.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <csignal>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace mt::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {


// `mtctl --json serve --listen 127.0.0.1:0` in the project's folder; the port comes from the one
// JSON document it prints once listening.
class Serve {
public:
    explicit Serve(const Project& p, const std::string& flags = "")
        : process_(shell_quote(MT_MTCTL) + " --no-color --json serve --listen 127.0.0.1:0 " + flags, p.dir()) {
        bool exited = false;
        poll_until([&] {
            const auto doc = json::parse(process_.out(), nullptr, false);
            if (doc.is_object() && doc.contains("listening")) {
                const std::string addr = doc["listening"];
                port_ = std::stoi(addr.substr(addr.rfind(':') + 1));
                return true;
            }
            exited = !process_.running();
            return exited;
        });
        if (exited) FAIL("mtctl serve exited before listening; stdout: " << process_.out() << "\nstderr: " << process_.err());
        if (port_ == 0)
            FAIL("mtctl serve printed no listening address in " << kDefaultDeadline.count()
                                                                << " ms; stderr: " << process_.err());
    }
    int port() const { return port_; }
    Daemon& process() { return process_; }

private:
    Daemon process_;
    int port_ = 0;
};

// Migrations 0000 and 0001; tenants a (up to date), b (0001 pending), c and d (both pending);
// metrics-prometheus as sink with room for two tenant labels.
void fleet(Project& p) {
    p.set("plugins.load", "tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, retry-exponential, "
                          "metrics-prometheus");
    p.set("roles.sinks", "metrics-prometheus");
    p.set("plugin.metrics-prometheus.tenant_labels", "top:2");
    p.set("plugin.retry-exponential.max_attempts", "2");
    p.set("plugin.retry-exponential.initial_delay", "20ms");
    p.set("database.connect_timeout", "2s");
    p.migration("0000_items", "CREATE TABLE items (id serial PRIMARY KEY);");
    p.migration("0001_items_name", "ALTER TABLE items ADD COLUMN name text;");
    p.tenants({"a", "b", "c", "d"}, false);
    for (const char* id : {"a", "b", "c", "d"}) REQUIRE(p.mtctl(std::string("tenant create --no-migrate --id ") + id).exit_code == 0);
    REQUIRE(p.mtctl("migrate --tenant a").exit_code == 0);
    REQUIRE(p.mtctl("migrate --tenant b --to 0000_items").exit_code == 0);
}

// One sample's value; NaN (equal to nothing) when the exposition lacks it.
double value_of(const std::map<std::string, double>& samples, const std::string& sample) {
    const auto it = samples.find(sample);
    return it == samples.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
}

// Samples of one metric: name{labels} -> value.
std::map<std::string, double> series(const std::map<std::string, double>& samples, const std::string& name) {
    std::map<std::string, double> out;
    for (const auto& [sample, value] : samples)
        if (sample == name || sample.rfind(name + "{", 0) == 0) out[sample] = value;
    return out;
}

// A Prometheus server of the test's own scraping one target every second, with its TSDB in a temp
// folder, on a free loopback port.
class Prometheus {
public:
    explicit Prometheus(int target_port) {
        write_file(dir_ / "prometheus.yml", "global:\n"
                                            "  scrape_interval: 1s\n"
                                            "  scrape_timeout: 1s\n"
                                            "  evaluation_interval: 1s\n"
                                            "scrape_configs:\n"
                                            "  - job_name: mtctl-serve\n"
                                            "    static_configs:\n"
                                            "      - targets: ['127.0.0.1:" +
                                                std::to_string(target_port) + "']\n");
        if (run("command -v prometheus").exit_code != 0)
            FAIL("prometheus is not installed: run tools/setup.sh (it installs the Debian package)");
        std::string log;
        for (int attempt = 0; attempt < 3 && port_ == 0; ++attempt) {
            const int port = free_loopback_port();
            process_.emplace("prometheus --config.file=" + shell_quote((dir_ / "prometheus.yml").string()) +
                                 " --storage.tsdb.path=" + shell_quote((dir_ / "data").string()) +
                                 " --web.listen-address=127.0.0.1:" + std::to_string(port),
                             dir_.path());
            // When it exits instead (another process took the port first), the next attempt picks another port.
            if (poll_until([&] { return !process_->running() || http_get(port, "/-/ready").status == 200; },
                           kDefaultDeadline, 100ms) &&
                process_->running())
                port_ = port;
            if (port_ == 0) {
                log = process_->err();
                process_.reset();
            }
        }
        if (port_ == 0) FAIL("prometheus did not become ready; its log:\n" << log);
    }

    // An instant query's data.result (an array of {metric, value: [time, "text"]}).
    json query(const std::string& expr) const {
        const auto reply = http_get(port_, "/api/v1/query?query=" + mt::detail::percent_encode(expr));
        const auto doc = reply.json();
        if (reply.status != 200 || !doc.is_object() || doc.value("status", "") != "success") return json::array();
        return doc["data"]["result"];
    }

    std::string log() const { return process_ ? process_->err() : ""; }

private:
    TempDir dir_;  // declared first: the process stops before its folder goes
    std::optional<Daemon> process_;
    int port_ = 0;
};

// `label` -> value of each series of an instant query's result.
std::map<std::string, std::string> by_label(const json& result, const std::string& label) {
    std::map<std::string, std::string> out;
    for (const auto& s : result) out[s["metric"].value(label, "")] = s["value"][1].get<std::string>();
    return out;
}

}  // namespace

TEST_CASE("mtctl serve answers /health/db with the health JSON and /metrics with fleet gauges bounded by tenant_labels",
          "[serve][pg]") {
    Project p;
    fleet(p);
    Serve serve(p, "--refresh 0s");

    const auto health = http_get(serve.port(), "/health/db");
    REQUIRE(health.status == 200);
    const auto h = health.json();
    CHECK(h["healthy"] == true);
    CHECK(h["shared"]["status"] == "ok");
    for (const char* key : {"pools", "total_pools", "degraded_pools", "unhealthy_pools", "timestamp", "duration_ms"}) {
        INFO(key);
        CHECK(h.contains(key));
    }

    auto metrics = http_get(serve.port(), "/metrics");
    REQUIRE(metrics.status == 200);
    auto samples = scrape(metrics.body);
    CHECK(value_of(samples, "mt_tenants") == 4);
    CHECK(value_of(samples, "mt_health_status") == 1);
    // top:2: a and b keep their label (discovery order), c and d are summed under "other".
    CHECK(series(samples, "mt_tenant_pending_migrations") ==
          std::map<std::string, double>{{"mt_tenant_pending_migrations{tenant=\"a\"}", 0},
                                        {"mt_tenant_pending_migrations{tenant=\"b\"}", 1},
                                        {"mt_tenant_pending_migrations{tenant=\"other\"}", 4}});
    CHECK(metrics.body.find("# TYPE mt_tenant_pending_migrations gauge") != std::string::npos);

    // The gauges follow the fleet (--refresh 0s: every scrape re-reads it).
    REQUIRE(p.mtctl("migrate --all").exit_code == 0);
    p.tenants({"e"}, false);
    REQUIRE(p.mtctl("tenant create --id e --no-migrate").exit_code == 0);
    metrics = http_get(serve.port(), "/metrics");
    samples = scrape(metrics.body);
    CHECK(value_of(samples, "mt_tenants") == 5);
    CHECK(series(samples, "mt_tenant_pending_migrations") ==
          std::map<std::string, double>{{"mt_tenant_pending_migrations{tenant=\"a\"}", 0},
                                        {"mt_tenant_pending_migrations{tenant=\"b\"}", 0},
                                        {"mt_tenant_pending_migrations{tenant=\"other\"}", 2}});
    // a–d share one structure, e (no migrations yet) another; migrating e folds them into one.
    CHECK(value_of(samples, "mt_drift_groups") == 2);
    REQUIRE(p.mtctl("migrate --all").exit_code == 0);
    CHECK(value_of(scrape(http_get(serve.port(), "/metrics").body), "mt_drift_groups") == 1);

    CHECK(http_get(serve.port(), "/").status == 200);
    CHECK(http_get(serve.port(), "/no-such-route").status == 404);
    CHECK(serve.process().stop(SIGTERM) == 0);
}

TEST_CASE("mtctl serve refreshes the fleet gauges at most every --refresh", "[serve][pg]") {
    Project p;
    fleet(p);
    Serve serve(p, "--refresh 1h");
    CHECK(value_of(scrape(http_get(serve.port(), "/metrics").body), "mt_tenant_pending_migrations{tenant=\"other\"}") == 4);
    REQUIRE(p.mtctl("migrate --all").exit_code == 0);
    CHECK(value_of(scrape(http_get(serve.port(), "/metrics").body), "mt_tenant_pending_migrations{tenant=\"other\"}") == 4);
}

TEST_CASE("a real Prometheus server scrapes mtctl serve", "[serve][prometheus][pg]") {
    Project p;
    fleet(p);
    Serve serve(p);
    Prometheus prometheus(serve.port());

    json up, tenants, pending;
    const bool scraped = poll_until(
        [&] {
            up = prometheus.query("up{job=\"mtctl-serve\"}");
            tenants = prometheus.query("mt_tenants");
            pending = prometheus.query("mt_tenant_pending_migrations");
            return by_label(up, "job") == std::map<std::string, std::string>{{"mtctl-serve", "1"}} &&
                   !tenants.empty() && pending.size() == 3;
        },
        kDefaultDeadline, 250ms);
    INFO("up: " << up.dump() << "\nmt_tenants: " << tenants.dump() << "\npending: " << pending.dump()
                << "\nprometheus log:\n" << prometheus.log());
    REQUIRE(scraped);
    CHECK(by_label(tenants, "job") == std::map<std::string, std::string>{{"mtctl-serve", "4"}});
    CHECK(by_label(pending, "tenant") == std::map<std::string, std::string>{{"a", "0"}, {"b", "1"}, {"other", "4"}});
    CHECK(by_label(prometheus.query("mt_tenant_pending_migrations{tenant=\"c\"}"), "tenant").empty());
}

TEST_CASE("mtctl serve's /health/db is 503 while the database is down and 200 once it is back", "[serve][crash][pg]") {
    PrivateServer server;
    {
        pqxx::connection admin(server.admin_url());
        pqxx::nontransaction tx(admin);
        tx.exec0("CREATE DATABASE app");
    }
    Project p(server.url_for("app"));
    fleet(p);
    Serve serve(p, "--refresh 0s");
    REQUIRE(http_get(serve.port(), "/health/db").status == 200);
    REQUIRE(value_of(scrape(http_get(serve.port(), "/metrics").body), "mt_tenants") == 4);

    server.stop();
    const auto down = http_get(serve.port(), "/health/db");
    CHECK(down.status == 503);
    const auto h = down.json();
    CHECK(h["healthy"] == false);
    CHECK(h["shared"]["status"] == "unhealthy");
    CHECK_FALSE(h["shared"].value("error", "").empty());
    // /metrics still answers (the fleet gauges keep their last numbers) and says unhealthy.
    const auto metrics = http_get(serve.port(), "/metrics");
    CHECK(metrics.status == 200);
    const auto samples = scrape(metrics.body);
    CHECK(value_of(samples, "mt_health_status") == 0);
    CHECK(value_of(samples, "mt_tenants") == 4);

    server.start();
    const auto back = http_get(serve.port(), "/health/db");
    CHECK(back.status == 200);
    CHECK(back.json()["healthy"] == true);
    CHECK(serve.process().stop(SIGTERM) == 0);
}

TEST_CASE("mtctl serve refuses a malformed --listen or --refresh and a port in use (exit 2)", "[serve][pg]") {
    Project p;
    fleet(p);
    const auto no_port = p.mtctl("serve --listen 127.0.0.1");
    CHECK(no_port.exit_code == 2);
    CHECK(no_port.err.find("HOST:PORT") != std::string::npos);
    const auto bad_port = p.mtctl("serve --listen 127.0.0.1:70000");
    CHECK(bad_port.exit_code == 2);
    const auto refresh = p.mtctl("serve --listen 127.0.0.1:0 --refresh soon");
    CHECK(refresh.exit_code == 2);
    CHECK(refresh.err.find("--refresh soon") != std::string::npos);

    Serve first(p);
    // Under `timeout`: an exporter that shares the port instead of refusing it would serve forever.
    const auto taken = run("cd " + shell_quote(p.dir().string()) + " && timeout 20 " + shell_quote(MT_MTCTL) +
                           " serve --listen 127.0.0.1:" + std::to_string(first.port()));
    CHECK(taken.exit_code == 2);
    CHECK(taken.err.find("cannot listen on 127.0.0.1:" + std::to_string(first.port())) != std::string::npos);
}

TEST_CASE("mtctl health exits 0 on a healthy fleet and prints the health report as JSON", "[health][pg]") {
    Project p;
    fleet(p);
    const auto human = p.mtctl("health");
    CHECK(human.exit_code == 0);
    CHECK(human.out.find("healthy: 0 tenants checked") != std::string::npos);

    const auto r = p.mtctl("--json health --all");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const auto h = json::parse(r.out);
    CHECK(h["healthy"] == true);
    CHECK(h["shared"]["status"] == "ok");
    CHECK(h["total_pools"] == 4);
    CHECK(h["unhealthy_pools"] == 0);
    CHECK(h["degraded_pools"] == 0);
    CHECK_FALSE(h["timestamp"].get<std::string>().empty());
    REQUIRE(h["pools"].size() == 4);
    std::vector<std::string> tenants;
    for (const auto& pool : h["pools"]) {
        tenants.push_back(pool["tenant"]);
        CHECK(pool["schema"] == "tenant_" + pool["tenant"].get<std::string>());
        CHECK(pool["status"] == "ok");
        for (const char* key : {"total", "idle", "waiting", "response_ms"}) CHECK(pool.contains(key));
    }
    CHECK(tenants == std::vector<std::string>{"a", "b", "c", "d"});

    const auto some = json::parse(p.mtctl("--json health --tenants b,d").out);
    CHECK(some["total_pools"] == 2);

    const auto bad = p.mtctl("health --timeout soon");
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("--timeout soon") != std::string::npos);
}

TEST_CASE("mtctl health exits 1 and reports the shared schema unhealthy when the server is down", "[health][pg]") {
    Project p;
    p.set("database.url", "postgresql://postgres@127.0.0.1:" + std::to_string(free_loopback_port()) + "/app");
    p.set("database.connect_timeout", "2s");
    p.set("plugin.retry-exponential.max_attempts", "2");
    for (const std::string selection : {"", " --all"}) {
        const auto r = p.mtctl("--json health" + selection);
        INFO("health" << selection << ": " << r.out << r.err);
        CHECK(r.exit_code == 1);
        const auto h = json::parse(r.out, nullptr, false);
        REQUIRE(h.is_object());
        CHECK(h["healthy"] == false);
        CHECK(h["shared"]["status"] == "unhealthy");
        CHECK(h["shared"]["error"].get<std::string>().find("cannot connect") != std::string::npos);
        CHECK_FALSE(h["timestamp"].get<std::string>().empty());
    }
    const auto human = p.mtctl("health");
    CHECK(human.exit_code == 1);
    CHECK(human.out.find("UNHEALTHY") != std::string::npos);
}

namespace {

// A throwaway self-signed certificate for 127.0.0.1 (openssl req -x509); the key readable by its
// owner only, as serve demands.
struct TlsFiles {
    TempDir dir;
    std::filesystem::path cert = dir / "cert.pem";
    std::filesystem::path key = dir / "key.pem";
    TlsFiles() {
        const auto made = run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                              "-addext subjectAltName=IP:127.0.0.1 -keyout " +
                              shell_quote(key.string()) + " -out " + shell_quote(cert.string()) + " 2>&1");
        REQUIRE(made.exit_code == 0);
        std::filesystem::permissions(key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    }
    std::string flags() const {
        return "--tls-cert " + shell_quote(cert.string()) + " --tls-key " + shell_quote(key.string());
    }
};

void owner_only(const std::filesystem::path& file) {
    std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

}  // namespace

TEST_CASE("mtctl serve --tls-cert --tls-key answers https and refuses plain http", "[serve][tls][pg]") {
    Project p;
    fleet(p);
    TlsFiles tls;
    Serve serve(p, tls.flags());
    httplib::SSLClient client("127.0.0.1", serve.port());
    client.set_ca_cert_path(tls.cert.c_str());
    client.enable_server_certificate_verification(true);
    client.set_read_timeout(15, 0);
    const auto metrics = client.Get("/metrics");
    REQUIRE(metrics);
    CHECK(metrics->status == 200);
    CHECK(metrics->body.find("mt_tenants") != std::string::npos);
    // Plain HTTP on the TLS port gets no HTTP answer at all...
    CHECK(http_get(serve.port(), "/metrics").status == 0);
    // ...and does not disturb the exporter.
    const auto again = client.Get("/");
    REQUIRE(again);
    CHECK(again->status == 200);
}

TEST_CASE("mtctl serve --basic-auth admits the right user and password, 401 with WWW-Authenticate otherwise",
          "[serve][auth][pg]") {
    Project p;
    fleet(p);
    TempDir dir;
    const auto hashed = run("openssl passwd -6 -salt pepper1234 'correct horse'");
    REQUIRE(hashed.exit_code == 0);
    std::string hash = hashed.out;
    while (!hash.empty() && hash.back() == '\n') hash.pop_back();
    write_file(dir / "users", "# who may scrape\nprometheus:" + hash + "\n");
    Serve serve(p, "--basic-auth " + shell_quote((dir / "users").string()));

    auto get = [&](const std::string& user, const std::string& password) {
        httplib::Client client("127.0.0.1", serve.port());
        client.set_read_timeout(15, 0);
        if (!user.empty()) client.set_basic_auth(user.c_str(), password.c_str());
        return client.Get("/metrics");
    };
    const auto right = get("prometheus", "correct horse");
    REQUIRE(right);
    CHECK(right->status == 200);
    for (const auto& [user, password] : {std::pair<std::string, std::string>{"prometheus", "correct horsE"},
                                         {"prometheus", ""},
                                         {"grafana", "correct horse"},
                                         {"", ""}}) {
        INFO("user '" << user << "' password '" << password << "'");
        const auto refused = get(user, password);
        REQUIRE(refused);
        CHECK(refused->status == 401);
        CHECK(refused->get_header_value("WWW-Authenticate") == R"(Basic realm="mtctl serve", charset="UTF-8")");
        CHECK(refused->body == R"({"error":"unauthorized"})");
    }
    // The stored hash itself is not a password.
    const auto by_hash = get("prometheus", hash);
    REQUIRE(by_hash);
    CHECK(by_hash->status == 401);
}

TEST_CASE("mtctl serve --bearer-token-file admits the token only, over TLS too", "[serve][auth][tls][pg]") {
    Project p;
    fleet(p);
    TempDir dir;
    const std::string token = "tok-3f9c1a7e5b2d4e6f8a0b";
    write_file(dir / "token", token + "\n");
    owner_only(dir / "token");
    TlsFiles tls;
    Serve serve(p, "--bearer-token-file " + shell_quote((dir / "token").string()) + " " + tls.flags());
    auto get = [&](const std::string& bearer) {
        httplib::SSLClient client("127.0.0.1", serve.port());
        client.enable_server_certificate_verification(false);
        client.set_read_timeout(15, 0);
        if (!bearer.empty()) client.set_bearer_token_auth(bearer.c_str());
        return client.Get("/health/db");
    };
    const auto right = get(token);
    REQUIRE(right);
    CHECK(right->status == 200);
    CHECK(json::parse(right->body, nullptr, false).value("healthy", false) == true);
    for (const auto& wrong : {token + "x", token.substr(0, token.size() - 1), std::string("nope"), std::string()}) {
        INFO("token '" << wrong << "'");
        const auto refused = get(wrong);
        REQUIRE(refused);
        CHECK(refused->status == 401);
        CHECK(refused->get_header_value("WWW-Authenticate") == R"(Bearer realm="mtctl serve")");
        CHECK(refused->body.find(token) == std::string::npos);
    }
}

TEST_CASE("mtctl serve refuses unusable TLS and auth files with exit 2 naming the file", "[serve][auth][tls][pg]") {
    Project p;
    fleet(p);
    TempDir dir;
    const auto path = [&](const std::string& name) { return (dir / name).string(); };
    write_file(dir / "token", "tok-abc\n");
    std::filesystem::permissions(dir / "token", std::filesystem::perms::others_read, std::filesystem::perm_options::add);
    const auto world = p.mtctl("serve --listen 127.0.0.1:0 --bearer-token-file " + shell_quote(path("token")));
    CHECK(world.exit_code == 2);
    CHECK(world.err.find("--bearer-token-file " + path("token") + ": readable by every user of this machine; run chmod 600") !=
          std::string::npos);

    write_file(dir / "empty", "\n");
    owner_only(dir / "empty");
    const auto empty = p.mtctl("serve --listen 127.0.0.1:0 --bearer-token-file " + shell_quote(path("empty")));
    CHECK(empty.exit_code == 2);
    CHECK(empty.err.find("--bearer-token-file " + path("empty") + ": the file is empty") != std::string::npos);

    const auto missing = p.mtctl("serve --listen 127.0.0.1:0 --basic-auth " + shell_quote(path("nowhere")));
    CHECK(missing.exit_code == 2);
    CHECK(missing.err.find("--basic-auth " + path("nowhere") + ": No such file or directory") != std::string::npos);

    write_file(dir / "plain", "prometheus:hunter2\n");
    const auto plain = p.mtctl("serve --listen 127.0.0.1:0 --basic-auth " + shell_quote(path("plain")));
    CHECK(plain.exit_code == 2);
    CHECK(plain.err.find("--basic-auth " + path("plain") + ":1: expected USER:HASH") != std::string::npos);
    CHECK(plain.err.find("hunter2") == std::string::npos);

    owner_only(dir / "token");
    const auto both = p.mtctl("serve --listen 127.0.0.1:0 --basic-auth " + shell_quote(path("plain")) +
                              " --bearer-token-file " + shell_quote(path("token")));
    CHECK(both.exit_code == 2);
    CHECK(both.err.find("--basic-auth and --bearer-token-file exclude each other") != std::string::npos);

    TlsFiles tls;
    const auto half = p.mtctl("serve --listen 127.0.0.1:0 --tls-cert " + shell_quote(tls.cert.string()));
    CHECK(half.exit_code == 2);
    CHECK(half.err.find("--tls-cert and --tls-key go together") != std::string::npos);

    write_file(dir / "garbage.pem", "not a certificate\n");
    const auto garbage = p.mtctl("serve --listen 127.0.0.1:0 --tls-cert " + shell_quote(path("garbage.pem")) +
                                 " --tls-key " + shell_quote(tls.key.string()));
    CHECK(garbage.exit_code == 2);
    CHECK(garbage.err.find("--tls-cert " + path("garbage.pem")) != std::string::npos);
    CHECK(garbage.err.find("cannot load the certificate and key") != std::string::npos);

    std::filesystem::permissions(tls.key, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
    const auto open_key = p.mtctl("serve --listen 127.0.0.1:0 " + tls.flags());
    CHECK(open_key.exit_code == 2);
    CHECK(open_key.err.find("--tls-key " + tls.key.string() + ": readable by every user") != std::string::npos);
}

TEST_CASE("mtctl serve listens on loopback when --listen names no host", "[serve][pg]") {
    Project p;
    fleet(p);
    Daemon serve(shell_quote(MT_MTCTL) + " --no-color --json serve --listen :0", p.dir());
    std::string listening;
    poll_until([&] {
        const auto doc = json::parse(serve.out(), nullptr, false);
        if (doc.is_object() && doc.contains("listening")) listening = doc["listening"];
        return !listening.empty() || !serve.running();
    });
    INFO(serve.err());
    REQUIRE_FALSE(listening.empty());
    CHECK(listening.rfind("127.0.0.1:", 0) == 0);
    const auto help = p.mtctl("serve --help");
    CHECK(help.out.find("127.0.0.1:9465") != std::string::npos);
}

TEST_CASE("mtctl serve over TLS answers a fresh scrape within 1 s behind 64 idle connections", "[serve][tls][pg]") {
    Project p;
    fleet(p);
    TlsFiles tls;
    Serve serve(p, tls.flags());
    std::vector<int> idle;
    for (int i = 0; i < 64; ++i) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<uint16_t>(serve.port()));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        idle.push_back(fd);
    }
    // Eight of them start a TLS handshake and stall (one byte of a ClientHello).
    for (int i = 0; i < 8; ++i) REQUIRE(::send(idle[static_cast<size_t>(i)], "\x16", 1, MSG_NOSIGNAL) == 1);
    httplib::SSLClient client("127.0.0.1", serve.port());
    client.enable_server_certificate_verification(false);
    client.set_read_timeout(15, 0);
    const auto start = std::chrono::steady_clock::now();
    const auto reply = client.Get("/");
    const auto waited = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    for (int fd : idle) ::close(fd);
    std::cout << "figure: mtctl serve (TLS): fresh request answered after " << waited << " ms behind 64 idle connections\n";
    REQUIRE(reply);
    CHECK(reply->status == 200);
    CHECK(waited < 1000);
}
