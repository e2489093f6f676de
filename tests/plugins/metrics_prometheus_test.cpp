// metrics-prometheus (SPEC §8): the built plugin loaded through the real loader, fed kernel events,
// and its exposition parsed back: every metric name under the prefix, histograms, tenant labels
// bounded by tenant_labels, the built-in /metrics endpoint, refused configs, and metrics_text().
#include <mt/base/errors.hpp>
#include <mt/context/kernel.hpp>
#include <mt/context/metrics.hpp>
#include <mt/plugin_host/plugins.hpp>

#include "support/pg.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

using Catch::Matchers::Contains;

namespace {

using Labels = std::map<std::string, std::string>;

struct Sample {
    std::string name;
    Labels labels;
    double value = 0;
};

// The text exposition format, as much of it as prometheus-cpp writes: `name{k="v",…} value`.
std::vector<Sample> parse_exposition(const std::string& text) {
    std::vector<Sample> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        const std::string line = text.substr(pos, eol - pos);
        pos = eol + 1;
        if (line.empty() || line[0] == '#') continue;
        Sample s;
        size_t i = line.find_first_of("{ ");
        REQUIRE(i != std::string::npos);
        s.name = line.substr(0, i);
        if (line[i] == '{') {
            ++i;
            while (line.at(i) != '}') {
                const size_t eq = line.find('=', i);
                const std::string key = line.substr(i, eq - i);
                REQUIRE(line.at(eq + 1) == '"');
                std::string value;
                size_t j = eq + 2;
                for (; line.at(j) != '"'; ++j) {
                    if (line[j] == '\\') {
                        ++j;
                        value += line.at(j) == 'n' ? '\n' : line[j];
                    } else {
                        value += line[j];
                    }
                }
                s.labels[key] = value;
                i = j + 1;
                if (line.at(i) == ',') ++i;
            }
            ++i;
        }
        REQUIRE(line.at(i) == ' ');
        s.value = std::stod(line.substr(i + 1));
        out.push_back(std::move(s));
    }
    return out;
}

// Samples named `name` whose labels include every pair of `subset`.
std::vector<Sample> find(const std::vector<Sample>& samples, const std::string& name, const Labels& subset = {}) {
    std::vector<Sample> out;
    for (const auto& s : samples) {
        if (s.name != name) continue;
        bool match = true;
        for (const auto& [k, v] : subset) {
            auto it = s.labels.find(k);
            match = match && it != s.labels.end() && it->second == v;
        }
        if (match) out.push_back(s);
    }
    return out;
}

std::optional<double> value(const std::vector<Sample>& samples, const std::string& name, const Labels& labels = {}) {
    for (const auto& s : samples)
        if (s.name == name && s.labels == labels) return s.value;
    return std::nullopt;
}

std::set<std::string> tenant_labels_of(const std::vector<Sample>& samples, const std::string& name) {
    std::set<std::string> out;
    for (const auto& s : find(samples, name))
        if (s.labels.count("tenant")) out.insert(s.labels.at("tenant"));
    return out;
}

struct MetricsPlugin {
    mt::PluginRegistry registry{{mt::test::plugin_dir()}};
    MetricsPlugin() { registry.load("metrics-prometheus"); }
    mt::MetricsSink sink(const std::map<std::string, std::string>& config = {}) const {
        return mt::MetricsSink(registry.create("metrics-prometheus", MT_KIND_METRICS_SINK, config));
    }
};

mt_event event(mt_event_type type, const std::string& tenant = {}) {
    // The strings live in a per-thread ring so an event's views stay valid while it is sent.
    thread_local std::string tenants[8];
    thread_local size_t next = 0;
    std::string& t = tenants[next++ % 8];
    t = tenant;
    mt_event e{};
    e.struct_size = sizeof e;
    e.type = type;
    e.tenant = mt::sdk::str(t);
    return e;
}

mt_event query(double seconds, bool ok) {
    auto e = event(MT_EVENT_QUERY, "acme");
    e.statement = mt::sdk::str(std::string_view("SELECT 1"));
    e.duration_s = seconds;
    e.ok = ok ? 1 : 0;
    return e;
}

mt_event pool_stats(const std::string& tenant, int64_t active, int64_t idle, int64_t waiting) {
    auto e = event(MT_EVENT_POOL_STATS, tenant);
    e.active = active;
    e.idle = idle;
    e.waiting = waiting;
    return e;
}

mt_event evicted(const std::string& tenant, std::string_view reason) {
    auto e = event(MT_EVENT_POOL_EVICTED, tenant);
    e.reason = mt::sdk::str(reason);
    return e;
}

// A pool opened for each tenant, with 1 active, 2 idle and 0 waiting connections.
void open_pools(const mt::MetricsSink& sink, const std::vector<std::string>& tenants) {
    for (const auto& t : tenants) {
        sink.on_event(event(MT_EVENT_POOL_CREATED, t));
        sink.on_event(pool_stats(t, 1, 2, 0));
    }
}

mt::PluginError config_error(const MetricsPlugin& loaded, const std::map<std::string, std::string>& config) {
    try {
        loaded.sink(config);
    } catch (const mt::PluginError& e) {
        return e;
    }
    FAIL("expected the config to be refused");
    throw std::logic_error("unreachable");
}

// A port nobody listens on right now: bind to port 0, read the port, close.
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// GET path over a raw socket (HTTP/1.0: the server closes when done). Returns the whole response.
std::string raw_http_get(int port, const std::string& path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    REQUIRE(::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
    std::string response;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) response.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return response;
}

}  // namespace

TEST_CASE("metrics-prometheus exposes every SPEC §8 metric under its prefix", "[sinks][prometheus]") {
    MetricsPlugin loaded;
    auto sink = loaded.sink({{"prefix", "app"}});

    auto created = event(MT_EVENT_POOL_CREATED, "acme");
    created.schema = mt::sdk::str(std::string_view("tenant_acme"));
    created.pools_active = 1;
    created.pools_max = 50;
    sink.on_event(created);
    auto stats = pool_stats("acme", 2, 3, 1);
    stats.pools_active = 1;
    stats.pools_max = 50;
    sink.on_event(stats);
    sink.on_event(query(0.003, true));
    sink.on_event(query(0.2, false));
    sink.on_event(query(0.04, true));
    auto retry = event(MT_EVENT_RETRY, "acme");
    retry.attempt = 2;
    retry.max_attempts = 3;
    sink.on_event(retry);
    auto migration = event(MT_EVENT_MIGRATION, "acme");
    migration.name = mt::sdk::str(std::string_view("0001_init"));
    migration.duration_s = 1.5;
    migration.ok = 1;
    sink.on_event(migration);
    migration.ok = 0;
    migration.duration_s = 0.02;
    sink.on_event(migration);
    auto health = event(MT_EVENT_HEALTH);
    health.ok = 1;
    sink.on_event(health);
    auto lru = evicted("acme", "lru");
    lru.pools_active = 0;
    lru.pools_max = 50;
    sink.on_event(lru);
    sink.on_event(evicted("zeta", "idle"));

    const std::string text = sink.render();
    const auto samples = parse_exposition(text);
    INFO(text);

    CHECK(value(samples, "app_pools_active") == 0.0);
    CHECK(value(samples, "app_pools_max") == 50.0);
    // The pool was evicted: its connections read 0 again, the series stays (tenant keeps its slot).
    CHECK(value(samples, "app_pool_connections", {{"tenant", "acme"}, {"state", "active"}}) == 0.0);
    CHECK(value(samples, "app_pool_connections", {{"tenant", "acme"}, {"state", "idle"}}) == 0.0);
    CHECK(value(samples, "app_pool_connections", {{"tenant", "acme"}, {"state", "waiting"}}) == 0.0);
    CHECK(value(samples, "app_pool_evictions_total", {{"reason", "lru"}}) == 1.0);
    CHECK(value(samples, "app_pool_evictions_total", {{"reason", "idle"}}) == 1.0);
    CHECK(value(samples, "app_queries_total", {{"status", "ok"}}) == 2.0);
    CHECK(value(samples, "app_queries_total", {{"status", "error"}}) == 1.0);
    CHECK(value(samples, "app_retries_total") == 1.0);
    CHECK(value(samples, "app_migrations_applied_total") == 1.0);
    CHECK(value(samples, "app_migrations_failed_total") == 1.0);
    CHECK(value(samples, "app_health_status") == 1.0);

    // Histograms: cumulative buckets, +Inf = count, sum of the observations.
    CHECK(value(samples, "app_query_duration_seconds_bucket", {{"le", "0.001"}}) == 0.0);
    CHECK(value(samples, "app_query_duration_seconds_bucket", {{"le", "0.005"}}) == 1.0);
    CHECK(value(samples, "app_query_duration_seconds_bucket", {{"le", "0.05"}}) == 2.0);
    CHECK(value(samples, "app_query_duration_seconds_bucket", {{"le", "0.25"}}) == 3.0);
    CHECK(value(samples, "app_query_duration_seconds_bucket", {{"le", "+Inf"}}) == 3.0);
    CHECK(value(samples, "app_query_duration_seconds_count") == 3.0);
    CHECK(std::abs(value(samples, "app_query_duration_seconds_sum").value_or(-1) - 0.243) < 1e-9);
    CHECK(find(samples, "app_query_duration_seconds_bucket").size() >= 10);
    CHECK(value(samples, "app_migration_duration_seconds_count") == 2.0);
    CHECK(std::abs(value(samples, "app_migration_duration_seconds_sum").value_or(-1) - 1.52) < 1e-9);
    CHECK(value(samples, "app_migration_duration_seconds_bucket", {{"le", "+Inf"}}) == 2.0);
    CHECK(value(samples, "app_migration_duration_seconds_bucket", {{"le", "1"}}) == 1.0);

    // Histograms carry no tenant label (bounded whatever the fleet size), and nothing leaks out
    // under the default prefix.
    for (const auto& s : samples) {
        CHECK(s.name.rfind("app_", 0) == 0);
        if (s.name.find("duration_seconds") != std::string::npos) CHECK(s.labels.count("tenant") == 0);
    }
    CHECK_THAT(text, Contains("# TYPE app_query_duration_seconds histogram"));
    CHECK_THAT(text, Contains("# TYPE app_queries_total counter"));
    CHECK_THAT(text, Contains("# TYPE app_pools_active gauge"));
}

TEST_CASE("metrics-prometheus reads pool connections from stats and defaults to the mt prefix", "[sinks][prometheus]") {
    MetricsPlugin loaded;
    auto sink = loaded.sink();
    // No health check yet: no health series (a 0 would read as unhealthy).
    CHECK(find(parse_exposition(sink.render()), "mt_health_status").empty());

    open_pools(sink, {"acme"});
    sink.on_event(pool_stats("acme", 4, 1, 2));
    sink.on_event(pool_stats("", 3, 7, 0));  // the shared pool
    auto health = event(MT_EVENT_HEALTH);
    health.ok = 0;
    sink.on_event(health);
    auto samples = parse_exposition(sink.render());
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "acme"}, {"state", "active"}}) == 4.0);
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "acme"}, {"state", "idle"}}) == 1.0);
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "acme"}, {"state", "waiting"}}) == 2.0);
    CHECK(value(samples, "mt_pool_connections", {{"tenant", ""}, {"state", "idle"}}) == 7.0);
    CHECK(value(samples, "mt_health_status") == 0.0);
    // Without fleet numbers in the events, the live pool count follows creations and evictions.
    CHECK(value(samples, "mt_pools_active") == 1.0);
    sink.on_event(evicted("acme", "manual"));
    samples = parse_exposition(sink.render());
    CHECK(value(samples, "mt_pools_active") == 0.0);
    CHECK(value(samples, "mt_pool_evictions_total", {{"reason", "manual"}}) == 1.0);
}

TEST_CASE("tenant_labels = top:2 gives the first two tenants a label and folds the rest into other",
          "[sinks][prometheus]") {
    MetricsPlugin loaded;
    auto sink = loaded.sink({{"tenant_labels", "top:2"}});
    open_pools(sink, {"t1", "t2", "t3", "t4", "t5"});
    sink.on_event(pool_stats("t4", 5, 0, 3));

    auto samples = parse_exposition(sink.render());
    CHECK(tenant_labels_of(samples, "mt_pool_connections") == std::set<std::string>{"t1", "t2", "other"});
    CHECK(find(samples, "mt_pool_connections").size() == 9);
    // other is the sum over t3, t4 and t5.
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "other"}, {"state", "active"}}) == 7.0);
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "other"}, {"state", "idle"}}) == 4.0);
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "other"}, {"state", "waiting"}}) == 3.0);

    // Evicting a folded tenant takes its connections out of other; a labelled one reads 0 and
    // keeps its slot, so a new tenant still goes to other.
    sink.on_event(evicted("t4", "lru"));
    sink.on_event(evicted("t1", "lru"));
    open_pools(sink, {"t6"});
    samples = parse_exposition(sink.render());
    CHECK(tenant_labels_of(samples, "mt_pool_connections") == std::set<std::string>{"t1", "t2", "other"});
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "other"}, {"state", "active"}}) == 3.0);
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "other"}, {"state", "waiting"}}) == 0.0);
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "t1"}, {"state", "idle"}}) == 0.0);
}

TEST_CASE("tenant_labels = none puts every tenant under other", "[sinks][prometheus]") {
    MetricsPlugin loaded;
    auto sink = loaded.sink({{"tenant_labels", "none"}});
    open_pools(sink, {"a", "b", "c"});
    const auto samples = parse_exposition(sink.render());
    CHECK(tenant_labels_of(samples, "mt_pool_connections") == std::set<std::string>{"other"});
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "other"}, {"state", "idle"}}) == 6.0);
}

TEST_CASE("tenant_labels = all labels every tenant and drops an evicted tenant's series", "[sinks][prometheus]") {
    MetricsPlugin loaded;
    auto sink = loaded.sink({{"tenant_labels", "all"}});
    std::vector<std::string> tenants;
    for (int i = 0; i < 150; ++i) tenants.push_back("t" + std::to_string(i));
    open_pools(sink, tenants);
    auto samples = parse_exposition(sink.render());
    CHECK(tenant_labels_of(samples, "mt_pool_connections").size() == 150);
    CHECK(tenant_labels_of(samples, "mt_pool_connections").count("other") == 0);
    sink.on_event(evicted("t7", "idle"));
    samples = parse_exposition(sink.render());
    CHECK(tenant_labels_of(samples, "mt_pool_connections").size() == 149);
    CHECK(tenant_labels_of(samples, "mt_pool_connections").count("t7") == 0);
}

TEST_CASE("the default tenant_labels is top:100", "[sinks][prometheus]") {
    MetricsPlugin loaded;
    auto sink = loaded.sink();
    std::vector<std::string> tenants;
    for (int i = 0; i < 130; ++i) tenants.push_back("t" + std::to_string(i));
    open_pools(sink, tenants);
    const auto labels = tenant_labels_of(parse_exposition(sink.render()), "mt_pool_connections");
    CHECK(labels.size() == 101);
    CHECK(labels.count("other") == 1);
    CHECK(labels.count("t99") == 1);
    CHECK(labels.count("t100") == 0);
}

mt_event fleet(const std::string& tenant, int64_t pending) {
    auto e = event(MT_EVENT_FLEET, tenant);
    e.pending = pending;
    return e;
}

mt_event fleet_summary(int64_t tenants, int64_t pending, int64_t drift_groups) {
    auto e = event(MT_EVENT_FLEET);
    e.tenants = tenants;
    e.pending = pending;
    e.drift_groups = drift_groups;
    return e;
}

TEST_CASE("fleet gauges from mtctl serve: pending migrations per tenant, bounded, replaced per snapshot",
          "[sinks][prometheus]") {
    MetricsPlugin loaded;
    auto sink = loaded.sink({{"tenant_labels", "top:2"}});
    auto samples = parse_exposition(sink.render());
    CHECK(find(samples, "mt_tenants").empty());
    CHECK(find(samples, "mt_tenant_pending_migrations").empty());

    for (auto [tenant, pending] : {std::pair{"a", 1}, {"b", 0}, {"c", 2}, {"d", 3}}) sink.on_event(fleet(tenant, pending));
    // Nothing is published before the snapshot's summary.
    CHECK(find(parse_exposition(sink.render()), "mt_tenant_pending_migrations").empty());
    sink.on_event(fleet_summary(4, 6, 1));
    samples = parse_exposition(sink.render());
    CHECK(tenant_labels_of(samples, "mt_tenant_pending_migrations") == std::set<std::string>{"a", "b", "other"});
    CHECK(value(samples, "mt_tenant_pending_migrations", {{"tenant", "a"}}) == 1.0);
    CHECK(value(samples, "mt_tenant_pending_migrations", {{"tenant", "b"}}) == 0.0);
    CHECK(value(samples, "mt_tenant_pending_migrations", {{"tenant", "other"}}) == 5.0);
    CHECK(value(samples, "mt_tenants") == 4.0);
    CHECK(value(samples, "mt_drift_groups") == 1.0);

    // Next snapshot: b and d were dropped, drift not computed.
    sink.on_event(fleet("a", 0));
    sink.on_event(fleet("c", 1));
    sink.on_event(fleet_summary(2, 1, -1));
    samples = parse_exposition(sink.render());
    CHECK(tenant_labels_of(samples, "mt_tenant_pending_migrations") == std::set<std::string>{"a", "other"});
    CHECK(value(samples, "mt_tenant_pending_migrations", {{"tenant", "a"}}) == 0.0);
    CHECK(value(samples, "mt_tenant_pending_migrations", {{"tenant", "other"}}) == 1.0);
    CHECK(value(samples, "mt_tenants") == 2.0);
    CHECK(find(samples, "mt_drift_groups").empty());

    // The slots are shared with the pool gauges: a and b keep theirs, a new tenant goes to other.
    open_pools(sink, {"b", "e"});
    CHECK(tenant_labels_of(parse_exposition(sink.render()), "mt_pool_connections") ==
          std::set<std::string>{"b", "other"});
}

TEST_CASE("metrics-prometheus counts events sent from many threads at once", "[sinks][prometheus]") {
    MetricsPlugin loaded;
    auto sink = loaded.sink({{"tenant_labels", "top:3"}});
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&sink, t] {
            for (int i = 0; i < 1000; ++i) {
                sink.on_event(query(0.001, i % 10 != 0));
                const std::string tenant = "t" + std::to_string((t * 1000 + i) % 20);
                sink.on_event(pool_stats(tenant, 1, 0, 0));
                if (i % 100 == 0) (void)sink.render();
            }
        });
    for (auto& t : threads) t.join();
    const auto samples = parse_exposition(sink.render());
    CHECK(value(samples, "mt_queries_total", {{"status", "ok"}}) == 7200.0);
    CHECK(value(samples, "mt_queries_total", {{"status", "error"}}) == 800.0);
    CHECK(value(samples, "mt_query_duration_seconds_count") == 8000.0);
    CHECK(tenant_labels_of(samples, "mt_pool_connections").size() == 4);
    // 20 tenants with one active connection each: 3 labelled, 17 folded into other.
    CHECK(value(samples, "mt_pool_connections", {{"tenant", "other"}, {"state", "active"}}) == 17.0);
}

TEST_CASE("metrics-prometheus refuses a malformed config at create", "[sinks][prometheus]") {
    MetricsPlugin loaded;
    for (const std::string bad : {"bogus", "top:", "top:x", "top:0", "top:-3", "some", "ALL"}) {
        const auto e = config_error(loaded, {{"tenant_labels", bad}});
        CHECK(e.stage == "config");
        CHECK_THAT(e.reason, Contains("tenant_labels"));
        CHECK_THAT(e.reason, Contains(bad));
    }
    for (const std::string bad : {"9464", "127.0.0.1", "127.0.0.1:", ":9464", "127.0.0.1:http", "127.0.0.1:70000",
                                  "::1:9464", "host :1"}) {
        const auto e = config_error(loaded, {{"listen", bad}});
        CHECK(e.stage == "config");
        CHECK_THAT(e.reason, Contains("listen"));
    }
    for (const std::string bad : {"", "1mt", "my-app", "mt.x"}) {
        const auto e = config_error(loaded, {{"prefix", bad}});
        CHECK(e.stage == "config");
        CHECK_THAT(e.reason, Contains("prefix"));
    }
    const auto e = config_error(loaded, {{"tenant_label", "all"}});  // a misspelt key
    CHECK(e.stage == "config");
    CHECK_THAT(e.reason, Contains("tenant_label"));
}

// One Exposer for the whole file: each takes about 2 s to shut down (TOOLCHAIN gotcha 6).
TEST_CASE("metrics-prometheus serves /metrics on listen", "[sinks][prometheus]") {
    MetricsPlugin loaded;
    const int port = free_port();
    const std::string listen = "127.0.0.1:" + std::to_string(port);
    auto sink = loaded.sink({{"listen", listen}, {"prefix", "served"}});
    sink.on_event(query(0.01, true));

    const std::string response = raw_http_get(port, "/metrics");
    INFO(response);
    REQUIRE_THAT(response, Contains("200 OK"));
    const auto body_at = response.find("\r\n\r\n");
    REQUIRE(body_at != std::string::npos);
    const auto samples = parse_exposition(response.substr(body_at + 4));
    CHECK(value(samples, "served_queries_total", {{"status", "ok"}}) == 1.0);
    CHECK(value(samples, "served_query_duration_seconds_count") == 1.0);
    // render() reads the same registry without going through HTTP.
    CHECK(value(parse_exposition(sink.render()), "served_queries_total", {{"status", "ok"}}) == 1.0);

    // A port already taken is a create failure that names listen and the address.
    try {
        loaded.sink({{"listen", listen}});
        FAIL("a second sink on the same port was accepted");
    } catch (const mt::PluginError& e) {
        CHECK(e.stage == "create");
        CHECK_THAT(e.reason, Contains("listen"));
        CHECK_THAT(e.reason, Contains(listen));
    }
}

TEST_CASE("metrics_text concatenates every sink that can render", "[sinks][prometheus]") {
    mt::test::TempDir dir;
    const auto log = dir / "debug.log";
    mt::test::write_file(dir / "multitenant.ini",
                         "[database]\n"
                         "url = postgresql://nobody@127.0.0.1:1/none\n"
                         "[plugins]\n"
                         "path = " + mt::test::plugin_dir().string() + "\n"
                         "load = tracking-name, metrics-prometheus, log-debug\n"
                         "[roles]\n"
                         "sinks = metrics-prometheus, log-debug\n"
                         "[plugin.metrics-prometheus]\n"
                         "prefix = fleet\n"
                         "[plugin.log-debug]\n"
                         "file = " + log.string() + "\n");
    mt::ManifestInput input;
    input.file = dir / "multitenant.ini";
    input.use_environment = false;
    mt::Kernel kernel(input);
    REQUIRE(kernel.sinks().size() == 2);
    kernel.emit(query(0.002, true));

    const std::string text = mt::metrics_text(kernel);
    const auto samples = parse_exposition(text);
    CHECK(value(samples, "fleet_queries_total", {{"status", "ok"}}) == 1.0);
    CHECK(text.back() == '\n');
    // The log sink saw the same event and renders nothing.
    CHECK_THAT(mt::test::read_file(log), Contains("[mt] tenant=acme query=\"SELECT 1\" duration=2ms"));
}
