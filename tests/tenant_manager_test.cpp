// The tenant runtime against a real PostgreSQL (SPEC §5.1): isolation in every pool mode, LRU and
// idle eviction with leases in flight, exhaustion, warmup, health, retry across a restart.
#include "support/http.hpp"
#include "support/project.hpp"
#include "support/wait.hpp"
#include "support/wait.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>
#include <mt/context/metrics.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <thread>

using namespace mt::test;

namespace {

// Each tenant gets a table `items` holding one row with its own id.
void tenants_with_rows(const Project& p, const std::vector<std::string>& ids) {
    p.tenants(ids);
    for (const auto& id : ids) {
        const std::string items = mt::quote_qualified("tenant_" + id, "items");
        p.exec("CREATE TABLE " + items + " (owner text)");
        p.exec("INSERT INTO " + items + " VALUES ($1)", {id});
    }
}

std::string owner(mt::TenantLease& lease) { return lease.query("SELECT owner FROM items")[0][0].c_str(); }

std::string current_schema(pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return tx.exec("SELECT current_schema()")[0][0].c_str();
}

size_t backends(const Project& p) {
    return std::stoul(p.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND application_name = 'mtenant'"));
}

// The manager's backends once the count settles at `expected` (a closed connection's backend leaves
// pg_stat_activity a moment after the close); the last count seen when it does not within 10 s.
size_t backends_settled(const Project& p, size_t expected) {
    size_t n = 0;
    poll_until([&] { return (n = backends(p)) == expected; }, std::chrono::seconds(10), std::chrono::milliseconds(20));
    return n;
}

}  // namespace

TEST_CASE("a lease for tenant A never sees tenant B's rows, in every pool mode", "[manager][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    Project p;
    p.set("database.pool_mode", mode);
    p.set("database.pool_size", "3");
    const std::vector<std::string> ids{"alpha", "Beta", "beta", "gamma"};
    tenants_with_rows(p, ids);
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    std::atomic<int> wrong{0}, done{0};
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < 6; ++t)
            threads.emplace_back([&, t] {
                for (int i = 0; i < 60; ++i) {
                    const auto& id = ids[static_cast<size_t>(t + i) % ids.size()];
                    auto lease = manager.tenant(id);
                    if (owner(lease) != id) ++wrong;
                    ++done;
                }
            });
    }
    CHECK(wrong == 0);
    CHECK(done == 360);
    if (mode != "per-tenant") CHECK(manager.stats().connections <= 3);
}

TEST_CASE("with_shared puts the shared schema after the tenant's, cross_schema expands $tenant and $shared",
          "[manager][pg]") {
    Project p;
    tenants_with_rows(p, {"a"});
    p.exec("CREATE TABLE public.plans (name text); INSERT INTO public.plans VALUES ('gold')");
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    {
        auto lease = manager.tenant("a", {true});
        CHECK(lease.query("SELECT name FROM plans")[0][0].c_str() == std::string("gold"));
        CHECK(owner(lease) == "a");
    }
    {
        auto lease = manager.tenant("a");
        CHECK_THROWS(lease.query("SELECT name FROM plans"));
    }
    auto cross = manager.cross_schema("a");
    const auto r = cross.query("SELECT i.owner, p.name FROM $tenant.items i CROSS JOIN $shared.plans p WHERE p.name = $1",
                               {std::string("gold")});
    REQUIRE(r.size() == 1);
    CHECK(r[0][0].c_str() == std::string("a"));
    CHECK(mt::expand_schemas("SELECT * FROM $tenant.t JOIN $shared.u", "tenant_x\"y", "public") ==
          "SELECT * FROM \"tenant_x\"\"y\".t JOIN \"public\".u");
    auto shared = manager.shared();
    CHECK(shared.query("SELECT count(*) FROM plans")[0][0].as<int>() == 1);
}

TEST_CASE("per-tenant mode evicts the least recently used pool and in-flight leases complete", "[manager][pg]") {
    Project p;
    p.set("database.max_pools", "2");
    tenants_with_rows(p, {"a", "b", "c"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    auto held = manager.tenant("a");  // in flight while its pool is evicted
    { auto b = manager.tenant("b"); }
    { auto c = manager.tenant("c"); }  // evicts a (least recently used)
    const auto s = manager.stats();
    CHECK(s.pools_active == 2);
    CHECK(s.evictions == 1);
    // One connection per lease taken one at a time: b's and c's idle ones, and a's in flight.
    CHECK(backends_settled(p, 3) == 3);
    CHECK(owner(held) == "a");  // still works after its pool was evicted
    held.release();
    // The evicted pool's connection, back from its lease, is kept as a spare (the manager holds
    // fewer than max_pools × pool_size = 8 backends), not closed and not duplicated.
    CHECK(backends_settled(p, 3) == 3);
    { auto b = manager.tenant("b"); }  // b was used after a: still alive, its connection reused
    CHECK(manager.stats().evictions == 1);
    CHECK(backends(p) == 3);
    // a's new pool (evicting c, now the least recently used) takes the spare: no new backend.
    {
        auto a = manager.tenant("a");
        CHECK(owner(a) == "a");
    }
    CHECK(manager.stats().evictions == 2);
    CHECK(backends_settled(p, 3) == 3);
}

TEST_CASE("backends reach pool_size per pool and never more, max_pools × pool_size in all", "[manager][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    Project p;
    p.set("database.pool_mode", mode);
    p.set("database.pool_size", "3");
    p.set("database.max_pools", "2");
    p.set("database.connect_timeout", "300ms");
    tenants_with_rows(p, {"a", "b", "c"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    std::vector<mt::TenantLease> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(manager.tenant("a"));
        CHECK(owner(held.back()) == "a");
    }
    CHECK(backends_settled(p, 3) == 3);
    CHECK_THROWS_AS(manager.tenant("a"), mt::PoolTimeout);  // a fourth would exceed pool_size
    CHECK(backends(p) == 3);
    if (mode == "per-tenant") {
        // b has a pool of its own: three more.
        for (int i = 0; i < 3; ++i) held.push_back(manager.tenant("b"));
        CHECK(backends_settled(p, 6) == 6);
        CHECK_THROWS_AS(manager.tenant("b"), mt::PoolTimeout);
        CHECK(backends(p) == 6);
    } else {
        // One pool for every tenant: b waits for a's connections like a does.
        CHECK_THROWS_AS(manager.tenant("b"), mt::PoolTimeout);
        CHECK(backends(p) == 3);
    }
    held.clear();
    // Released connections stay pooled (idle), not closed and not multiplied.
    {
        auto c = manager.tenant("c");
        CHECK(owner(c) == "c");
    }
    // per-tenant: c's pool evicts a's (max_pools 2, a used least recently); a's three idle
    // backends stay as spares (6 = max_pools × pool_size, not more) and c's pool takes one of them.
    // One pool: c reuses one of its three.
    const size_t after = mode == "per-tenant" ? 6 : 3;
    CHECK(backends_settled(p, after) == after);
    if (mode == "per-tenant") CHECK(manager.stats().evictions == 1);
}

TEST_CASE("per-tenant pools unused for pool_idle_timeout are evicted", "[manager][pg]") {
    Project p;
    p.set("database.pool_idle_timeout", "150ms");
    tenants_with_rows(p, {"a"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    { auto lease = manager.tenant("a"); }
    const auto released = std::chrono::steady_clock::now();
    CHECK(manager.stats().pools_active == 1);
    wait_until([&] { return manager.stats().pools_active == 0; }, "a's idle pool to be evicted");
    // Not before it was idle that long: a lower bound, which no slowness of the machine can break.
    CHECK(std::chrono::steady_clock::now() - released >= std::chrono::milliseconds(150));
    CHECK(manager.stats().evictions == 1);
    auto lease = manager.tenant("a");
    CHECK(owner(lease) == "a");
}

TEST_CASE("waiting for a connection times out with a clear error", "[manager][pg]") {
    Project p;
    p.set("database.pool_size", "1");
    p.set("database.connect_timeout", "300ms");
    tenants_with_rows(p, {"a"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    auto held = manager.tenant("a");
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(manager.tenant("a"), Catch::Contains("timed out") && Catch::Contains("pool_size"));
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(250));
    try {
        manager.tenant("a");
        FAIL("expected a PoolTimeout");
    } catch (const mt::PoolTimeout& e) {
        CHECK(e.tenant == "a");
        CHECK(e.pool_size == 1);
        CHECK(e.waited_ms == 300);
    }
    held.release();
    CHECK_NOTHROW(manager.tenant("a"));
}

TEST_CASE("warmup opens pools, a tenant whose schema does not exist is a failure", "[manager][pg]") {
    Project p;
    tenants_with_rows(p, {"a", "b"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    const auto report = manager.warmup({"a", "b", "nope"});
    CHECK(report.total == 3);
    CHECK(report.succeeded == 2);
    CHECK(report.failed == 1);
    CHECK(report.details[2].error.find("does not exist") != std::string::npos);
    const auto again = manager.warmup({"a"});
    CHECK(again.already_warm == 1);
    const auto json = nlohmann::json::parse(mt::to_json(report));
    CHECK(json["failed"] == 1);
    CHECK(json["details"].size() == 3);
}

TEST_CASE("injection attempts in tenant ids are refused before any SQL", "[manager][ids][pg]") {
    Project p;
    tenants_with_rows(p, {"a"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    for (const std::string& bad : std::vector<std::string>{"a\"; DROP TABLE items; --", "a b", "x'y", std::string(70, 'a'), "..", "a/b"})
        CHECK_THROWS_AS(manager.tenant(bad), mt::TenantIdError);
    CHECK(manager.stats().pools_created == 0);
    CHECK(manager.stats().connections_opened == 0);
}

TEST_CASE("health reports ok pools and a JSON rendering", "[manager][health][pg]") {
    Project p;
    tenants_with_rows(p, {"a", "b"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    { auto a = manager.tenant("a"); }
    { auto b = manager.tenant("b"); }
    const auto report = manager.health_check();
    CHECK(report.healthy);
    CHECK(report.total_pools == 2);
    CHECK(report.pools[0].status == mt::HealthStatus::ok);
    const auto json = nlohmann::json::parse(mt::to_json(report));
    CHECK(json["healthy"] == true);
    CHECK(json["shared"]["status"] == "ok");
    CHECK(json["pools"].size() == 2);
    for (const char* key : {"total_pools", "degraded_pools", "unhealthy_pools", "timestamp", "duration_ms"})
        CHECK(json.contains(key));
}

TEST_CASE("a server restart mid-use is retried, a dead server is unhealthy", "[manager][health][crash][pg]") {
    PrivateServer server;
    {
        pqxx::connection admin(server.admin_url());
        pqxx::nontransaction tx(admin);
        tx.exec0("CREATE DATABASE app");
    }
    Project p(server.url_for("app"));
    p.set("database.connect_timeout", "2s");
    p.set("plugin.retry-exponential.max_attempts", "6");
    p.set("plugin.retry-exponential.initial_delay", "200ms");
    tenants_with_rows(p, {"a"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    { auto lease = manager.tenant("a"); CHECK(owner(lease) == "a"); }
    server.stop();
    server.start();
    {
        // The pooled connection died with the old server: the query is retried on a new one.
        auto lease = manager.tenant("a");
        CHECK(owner(lease) == "a");
    }
    server.stop();
    mt::HealthOptions options;
    options.timeout = std::chrono::seconds(2);
    const auto report = manager.health_check(options);
    CHECK_FALSE(report.healthy);
    CHECK(report.unhealthy_pools == 1);
    CHECK(report.pools[0].status == mt::HealthStatus::unhealthy);
    server.start();
}

TEST_CASE("a search_path switch rides with the first statement and is never left stale", "[manager][pg]") {
    const std::string mode = GENERATE("shared", "transaction");
    Project p;
    p.set("database.pool_mode", mode);
    p.set("database.pool_size", "1");  // one connection: every lease for another tenant switches it
    tenants_with_rows(p, {"a", "b"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    { auto a = manager.tenant("a"); CHECK(owner(a) == "a"); }
    {
        // A failing statement rolls its folded SET back with it: the next statement sets it again.
        auto b = manager.tenant("b");
        CHECK_THROWS(b.query("SELECT owner FROM items WHERE 1 / 0 = 1"));
        CHECK(owner(b) == "b");
    }
    { auto a = manager.tenant("a"); CHECK_THROWS(a.query("SELECT nope FROM items")); }
    { auto b = manager.tenant("b"); CHECK(owner(b) == "b"); }
    {
        // Parameters and several statements are not folded: a SET of their own goes first.
        auto a = manager.tenant("a");
        CHECK(a.query("SELECT owner FROM items WHERE owner = $1", {std::string("a")}).size() == 1);
    }
    {
        auto b = manager.tenant("b");
        CHECK(b.query("SELECT count(*) FROM items; SELECT owner FROM items")[0][0].c_str() == std::string("b"));
    }
    if (mode == "shared") {
        // VACUUM cannot share a multi-statement query with the SET.
        { auto a = manager.tenant("a"); CHECK_NOTHROW(a.query("VACUUM items")); }
        auto b = manager.tenant("b");
        CHECK(current_schema(b.connection()) == "tenant_b");  // connection() applies the path first
    }
    {
        auto b = manager.tenant("b");
        CHECK(b.transaction([](pqxx::work& tx) { return std::string(tx.exec("SELECT owner FROM items")[0][0].c_str()); }) == "b");
    }
    { auto a = manager.tenant("a"); CHECK(owner(a) == "a"); }
    // Nothing was left inside a transaction (a failure in transaction mode rolls back).
    CHECK(p.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND application_name = 'mtenant' AND state LIKE 'idle in transaction%'") == "0");
    const auto s = manager.stats();
    if (mode == "shared") {
        CHECK(s.search_path_folded >= 4);
        CHECK(s.search_path_sets >= 1);
    } else {
        CHECK(s.search_path_folded + s.search_path_sets == 0);  // SET LOCAL per transaction instead
    }
}

TEST_CASE("metrics_text is what the metrics sinks render, with fresh pool gauges", "[manager][sinks][pg]") {
    Project p;
    p.set("plugins.load", "tracking-name, discovery-sql, retry-exponential, metrics-prometheus");
    p.set("roles.sinks", "metrics-prometheus");
    tenants_with_rows(p, {"a", "b"});
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    { auto a = manager.tenant("a"); CHECK(owner(a) == "a"); }
    { auto b = manager.tenant("b"); CHECK(owner(b) == "b"); }
    const std::string text = manager.metrics_text();
    CHECK(text == mt::metrics_text(kernel));  // same sinks, same state
    const auto samples = scrape(text);
    CHECK(samples.at("mt_pools_active") == 2);
    CHECK(samples.at("mt_queries_total{status=\"ok\"}") == 2);
    CHECK_THAT(text, Catch::Contains("tenant=\"a\""));
    CHECK(text.back() == '\n');

    Project quiet;  // no sink renders: empty text
    mt::Kernel plain(quiet.manifest_input());
    CHECK(mt::TenantManager(plain).metrics_text().empty());
}
