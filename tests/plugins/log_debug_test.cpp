// log-debug (SPEC §8): the built plugin loaded through the real loader, writing to a file; every
// line format, the slow-query flag, statements cut at 200 characters, secrets never written, and
// the switches that silence query and pool lines.
#include <mt/base/errors.hpp>
#include <mt/plugin_host/plugins.hpp>

#include "support/pg.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using Config = std::map<std::string, std::string>;

class LogSink {
public:
    explicit LogSink(Config config = {}) {
        registry_.load("log-debug");
        config["file"] = (dir_ / "debug.log").string();
        sink_.emplace(registry_.create("log-debug", MT_KIND_METRICS_SINK, config));
    }
    void send(const mt_event& e) const { sink_->on_event(e); }
    const mt::MetricsSink& sink() const { return *sink_; }

    std::vector<std::string> lines() const {
        std::vector<std::string> out;
        const std::string text = mt::test::read_file(dir_ / "debug.log");
        size_t pos = 0;
        while (pos < text.size()) {
            size_t eol = text.find('\n', pos);
            if (eol == std::string::npos) eol = text.size();
            out.push_back(text.substr(pos, eol - pos));
            pos = eol + 1;
        }
        return out;
    }
    std::string text() const { return mt::test::read_file(dir_ / "debug.log"); }

private:
    mt::test::TempDir dir_;
    mt::PluginRegistry registry_{{mt::test::plugin_dir()}};
    std::optional<mt::MetricsSink> sink_;
};

// Owns the strings an event points to.
struct Event {
    std::string tenant, schema, statement, reason, error, name;
    mt_event e{};
    explicit Event(mt_event_type type, std::string t = "abc") : tenant(std::move(t)) {
        e.struct_size = sizeof e;
        e.type = type;
    }
    const mt_event& get() {
        e.tenant = mt::sdk::str(tenant);
        e.schema = mt::sdk::str(schema);
        e.statement = mt::sdk::str(statement);
        e.reason = mt::sdk::str(reason);
        e.error = mt::sdk::str(error);
        e.name = mt::sdk::str(name);
        return e;
    }
};

const mt_event& query(Event& ev, std::string statement, double seconds, bool ok = true) {
    ev.statement = std::move(statement);
    ev.e.duration_s = seconds;
    ev.e.ok = ok ? 1 : 0;
    return ev.get();
}

void send_query(const LogSink& log, const std::string& statement, double seconds, bool ok = true) {
    Event ev(MT_EVENT_QUERY);
    log.send(query(ev, statement, seconds, ok));
}

mt::PluginError config_error(const std::map<std::string, std::string>& config) {
    mt::PluginRegistry registry({mt::test::plugin_dir()});
    registry.load("log-debug");
    try {
        registry.create("log-debug", MT_KIND_METRICS_SINK, config);
    } catch (const mt::PluginError& e) {
        return e;
    }
    FAIL("expected the config to be refused");
    throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("log-debug writes the SPEC §8 line formats", "[sinks][log-debug]") {
    LogSink log;
    send_query(log, "SELECT * FROM orders", 0.045);
    send_query(log, "SELECT pg_sleep(1.2)", 1.2);

    Event created(MT_EVENT_POOL_CREATED);
    created.schema = "tenant_abc";
    log.send(created.get());

    Event evicted(MT_EVENT_POOL_EVICTED);
    evicted.reason = "lru";
    log.send(evicted.get());

    Event retry(MT_EVENT_RETRY);
    retry.error = "connection refused";
    retry.e.attempt = 2;
    retry.e.max_attempts = 3;
    retry.e.delay_s = 0.2;
    log.send(retry.get());

    Event migration(MT_EVENT_MIGRATION);
    migration.name = "0001_x";
    migration.e.duration_s = 0.012;
    migration.e.ok = 1;
    log.send(migration.get());

    Event failed(MT_EVENT_MIGRATION);
    failed.name = "0002_y";
    failed.e.duration_s = 0.003;
    failed.error = "relation \"users\" already exists";
    log.send(failed.get());

    Event health(MT_EVENT_HEALTH, "");
    health.e.ok = 1;
    health.e.duration_s = 0.008;
    log.send(health.get());

    Event fleet(MT_EVENT_FLEET);  // per tenant: trace, below the default level
    fleet.e.pending = 2;
    log.send(fleet.get());
    Event summary(MT_EVENT_FLEET, "");
    summary.e.tenants = 200;
    summary.e.pending = 5;
    summary.e.drift_groups = 1;
    log.send(summary.get());

    const std::vector<std::string> expected{
        R"~([mt] tenant=abc query="SELECT * FROM orders" duration=45ms)~",
        R"~([mt] tenant=abc SLOW_QUERY query="SELECT pg_sleep(1.2)" duration=1200ms)~",
        R"~([mt] tenant=abc POOL_CREATED schema=tenant_abc)~",
        R"~([mt] tenant=abc POOL_EVICTED reason=lru)~",
        R"~([mt] tenant=abc CONNECTION_RETRY attempt=2/3 delay=200ms error="connection refused")~",
        R"~([mt] tenant=abc MIGRATION name=0001_x duration=12ms ok=true)~",
        R"~([mt] tenant=abc MIGRATION name=0002_y duration=3ms ok=false error="relation \"users\" already exists")~",
        R"~([mt] HEALTH healthy=true duration=8ms)~",
        R"~([mt] FLEET tenants=200 pending=5 drift_groups=1)~",
    };
    CHECK(log.lines() == expected);
}

TEST_CASE("log-debug flags queries at or over slow_query_threshold", "[sinks][log-debug]") {
    LogSink log(Config{{"slow_query_threshold", "100ms"}});
    send_query(log, "SELECT 1", 0.099);
    send_query(log, "SELECT 2", 0.1);
    send_query(log, "SELECT 3", 0.25);
    send_query(log, "SELECT 4", 0.0004);
    send_query(log, "SELECT x", 0.002, false);
    const std::vector<std::string> expected{
        R"~([mt] tenant=abc query="SELECT 1" duration=99ms)~",
        R"~([mt] tenant=abc SLOW_QUERY query="SELECT 2" duration=100ms)~",
        R"~([mt] tenant=abc SLOW_QUERY query="SELECT 3" duration=250ms)~",
        R"~([mt] tenant=abc query="SELECT 4" duration=0.40ms)~",
        R"~([mt] tenant=abc query="SELECT x" duration=2ms error="")~",
    };
    CHECK(log.lines() == expected);
}

TEST_CASE("log-debug cuts statements at 200 characters on a UTF-8 boundary", "[sinks][log-debug]") {
    LogSink log;
    send_query(log, std::string(300, 'x'), 0.001);
    std::string accents;
    for (int i = 0; i < 250; ++i) accents += "\xC3\xA9";  // é, two bytes each
    send_query(log, accents, 0.001);
    send_query(log, std::string(200, 'y'), 0.001);
    send_query(log, "SELECT 1\nFROM t\twhere a = \"q\"", 0.001);

    const auto lines = log.lines();
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "[mt] tenant=abc query=\"" + std::string(200, 'x') + "\xE2\x80\xA6\" duration=1ms");
    std::string cut_accents;
    for (int i = 0; i < 200; ++i) cut_accents += "\xC3\xA9";
    CHECK(lines[1] == "[mt] tenant=abc query=\"" + cut_accents + "\xE2\x80\xA6\" duration=1ms");
    // Exactly 200 is not cut.
    CHECK(lines[2] == "[mt] tenant=abc query=\"" + std::string(200, 'y') + "\" duration=1ms");
    // A statement stays on one line.
    CHECK(lines[3] == R"~([mt] tenant=abc query="SELECT 1\nFROM t\twhere a = \"q\"" duration=1ms)~");
}

TEST_CASE("log-debug never writes a password", "[sinks][log-debug]") {
    LogSink log;
    send_query(log, "SELECT dblink_connect('postgresql://app:s3cr3t-url@db.internal:5432/app')", 0.001);
    send_query(log, "SELECT dblink_connect('host=db user=app password=kv-secret dbname=app')", 0.001);
    send_query(log, "SELECT dblink_connect('host=db password = \"quoted secret\" user=app')", 0.001);
    send_query(log, "ALTER ROLE app WITH PASSWORD 'role-secret'", 0.001);
    send_query(log, "SELECT 1 /* postgres://:nouser-secret@h/x?sslmode=require&password=query-secret */", 0.001);

    Event retry(MT_EVENT_RETRY, "");
    retry.error = "could not connect to postgresql://app:retry/secret@db:5432/app: connection refused";
    retry.e.attempt = 2;
    retry.e.max_attempts = 3;
    retry.e.delay_s = 0.1;
    log.send(retry.get());

    Event failed(MT_EVENT_QUERY);
    log.send(query(failed, "SELECT 1", 0.001, false));
    failed.error = "bad conninfo: password=err-secret host=x";
    log.send(failed.get());

    const std::string text = log.text();
    INFO(text);
    for (const char* secret : {"s3cr3t-url", "kv-secret", "quoted secret", "role-secret", "nouser-secret",
                               "query-secret", "retry/secret", "err-secret"})
        CHECK_THAT(text, !Contains(secret));
    // What is around a secret is still there to debug with.
    CHECK_THAT(text, Contains("postgresql://app:***@db.internal:5432/app"));
    CHECK_THAT(text, Contains("password=*** dbname=app"));
    CHECK_THAT(text, Contains("PASSWORD ***"));
    CHECK_THAT(text, Contains("CONNECTION_RETRY attempt=2/3 delay=100ms error=\"could not connect to postgresql://app:***@db"));
    CHECK(log.lines().size() == 8);
}

TEST_CASE("log_queries = false silences query lines but keeps slow queries", "[sinks][log-debug]") {
    LogSink log(Config{{"log_queries", "false"}});
    send_query(log, "SELECT 1", 0.01);
    send_query(log, "SELECT slow()", 2.0);
    Event created(MT_EVENT_POOL_CREATED);
    created.schema = "tenant_abc";
    log.send(created.get());
    const std::vector<std::string> expected{
        R"~([mt] tenant=abc SLOW_QUERY query="SELECT slow()" duration=2000ms)~",
        R"~([mt] tenant=abc POOL_CREATED schema=tenant_abc)~",
    };
    CHECK(log.lines() == expected);
}

TEST_CASE("log_pool_events = false silences pool lines", "[sinks][log-debug]") {
    LogSink log(Config{{"log_pool_events", "false"}});
    Event created(MT_EVENT_POOL_CREATED);
    created.schema = "tenant_abc";
    log.send(created.get());
    Event evicted(MT_EVENT_POOL_EVICTED);
    evicted.reason = "idle";
    log.send(evicted.get());
    send_query(log, "SELECT 1", 0.001);
    CHECK(log.lines() == std::vector<std::string>{R"~([mt] tenant=abc query="SELECT 1" duration=1ms)~"});
}

TEST_CASE("log-debug level = warn keeps only slow queries, failures and retries", "[sinks][log-debug]") {
    LogSink log(Config{{"level", "warn"}});
    send_query(log, "SELECT 1", 0.001);
    send_query(log, "SELECT slow()", 1.5);
    Event created(MT_EVENT_POOL_CREATED);
    log.send(created.get());
    Event retry(MT_EVENT_RETRY);
    retry.e.attempt = 3;
    retry.e.max_attempts = 3;
    retry.e.delay_s = 0.4;
    log.send(retry.get());
    const auto lines = log.lines();
    REQUIRE(lines.size() == 2);
    CHECK_THAT(lines[0], StartsWith("[mt] tenant=abc SLOW_QUERY"));
    CHECK(lines[1] == R"~([mt] tenant=abc CONNECTION_RETRY attempt=3/3 delay=400ms error="")~");
}

TEST_CASE("log-debug level = trace adds pool stats and per-tenant fleet lines", "[sinks][log-debug]") {
    LogSink log(Config{{"level", "trace"}});
    Event stats(MT_EVENT_POOL_STATS);
    stats.e.active = 1;
    stats.e.idle = 2;
    stats.e.pools_active = 12;
    stats.e.pools_max = 50;
    log.send(stats.get());
    Event fleet(MT_EVENT_FLEET);
    fleet.e.pending = 2;
    log.send(fleet.get());
    const std::vector<std::string> expected{
        "[mt] tenant=abc POOL_STATS active=1 idle=2 waiting=0 pools=12/50",
        "[mt] tenant=abc FLEET pending=2",
    };
    CHECK(log.lines() == expected);
}

TEST_CASE("log-debug renders no metrics", "[sinks][log-debug]") {
    LogSink log;
    CHECK(log.sink().render().empty());
}

TEST_CASE("log-debug refuses a malformed config at create", "[sinks][log-debug]") {
    auto e = config_error({{"level", "loud"}});
    CHECK(e.stage == "config");
    CHECK_THAT(e.reason, Contains("level"));
    e = config_error({{"slow_query_threshold", "fast"}});
    CHECK(e.stage == "config");
    CHECK_THAT(e.reason, Contains("slow_query_threshold"));
    e = config_error({{"log_queries", "maybe"}});
    CHECK(e.stage == "config");
    CHECK_THAT(e.reason, Contains("log_queries"));
    mt::test::TempDir dir;
    mt::test::write_file(dir / "plain-file", "");
    e = config_error({{"file", (dir / "plain-file" / "debug.log").string()}});  // a file is not a folder
    CHECK(e.stage == "config");
    CHECK_THAT(e.reason, Contains("file"));
}
