// Routing across servers (SPEC §9, issue 10 item 3) with two real databases as two servers: the
// project's database is database.url, a second one is [servers.eu1]; discovery-sql reads
// public.tenants (id, server). Routes come only from a discovery that succeeded, are refreshed on
// a miss and on refresh_routes(), a moved tenant's new leases go to its new server while leases
// held across the move finish on the old one, and the directory gate looks on the tenant's server.
#include "support/project.hpp"
#include "support/wait.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_directory.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <optional>
#include <thread>

using namespace mt::test;
using namespace std::chrono_literals;

namespace {

// database.url is the project's database, [servers.eu1] another database of the same PostgreSQL.
struct TwoServers {
    explicit TwoServers(const std::string& mode) {
        p.set("database.pool_mode", mode);
        p.set("database.pool_size", "2");
        p.set("servers.eu1.url", eu1.url());
        // discoveries counts the discovery queries (the CTE runs once per query).
        p.set("plugin.discovery-sql.query",
              "WITH d AS (SELECT nextval('public.discoveries')) SELECT id, server FROM public.tenants, d ORDER BY id");
        p.exec("CREATE SEQUENCE public.discoveries; CREATE TABLE public.tenants (id text PRIMARY KEY, server text)");
    }

    // Lists the tenant (server: nullopt = database.url) and creates its schema there, with a table `items` whose one row names the database it was created in.
    void add(const std::string& id, const std::optional<std::string>& server) const {
        p.exec("INSERT INTO public.tenants (id, server) VALUES ($1, $2)", {id, server});
        create_schema(id, server);
    }
    void create_schema(const std::string& id, const std::optional<std::string>& server) const {
        const std::string schema = mt::quote_ident("tenant_" + id);
        const std::string sql = "CREATE SCHEMA " + schema + "; CREATE TABLE " + schema +
                                ".items (db text NOT NULL DEFAULT current_database()); INSERT INTO " + schema +
                                ".items DEFAULT VALUES";
        if (server) eu1.exec(sql);
        else p.exec(sql);
    }
    long discoveries() const { return std::stol(p.scalar("SELECT last_value FROM public.discoveries")); }
    const std::string& default_db() const { return p_db; }

    Project p;
    TempDatabase eu1;
    std::string p_db = p.scalar("SELECT current_database()");
};

std::string database_of(mt::TenantLease& lease) { return lease.query("SELECT current_database()")[0][0].c_str(); }
// The database the tenant's own `items` table was created in (its schema, found via search_path).
std::string items_db(mt::TenantLease& lease) { return lease.query("SELECT db FROM items")[0][0].c_str(); }

}  // namespace

TEST_CASE("a tenant added on another server after the manager started is routed there, in every pool mode",
          "[routing][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    TwoServers s(mode);
    s.add("a", std::nullopt);
    mt::Kernel kernel(s.p.manifest_input());
    mt::TenantManager manager(kernel);
    {
        auto a = manager.tenant("a");
        CHECK(database_of(a) == s.default_db());
    }
    CHECK_FALSE(manager.server_of("a").has_value());
    const long before = s.discoveries();

    s.add("b", std::string("eu1"));  // after the first discovery: b is a miss, which refreshes
    {
        auto b = manager.tenant("b");
        CHECK(database_of(b) == s.eu1.name());
        CHECK(items_db(b) == s.eu1.name());
    }
    CHECK(manager.server_of("b") == std::optional<std::string>("eu1"));
    CHECK(s.discoveries() == before + 1);
    {
        auto a = manager.tenant("a");  // the refresh did not move a
        CHECK(database_of(a) == s.default_db());
    }
    CHECK(s.discoveries() == before + 1);  // known tenants never cause a discovery
}

TEST_CASE("routes come only from a discovery that succeeded: a failed one keeps the old routes and is retried",
          "[routing][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    TwoServers s(mode);
    s.p.exec("ALTER TABLE public.tenants RENAME TO tenants_later");
    mt::Kernel kernel(s.p.manifest_input());
    mt::TenantManager manager(kernel);

    // The first discovery fails: no route is made up (the lease is refused, not sent to database.url).
    try {
        manager.tenant("b");
        FAIL("a lease was routed without a discovery");
    } catch (const mt::OperationError& e) {
        const std::string what = e.what();
        CHECK(what.find("cannot route tenant 'b' to its server: tenant discovery failed") != std::string::npos);
        CHECK(what.find("no discovery has succeeded yet") != std::string::npos);
        CHECK(what.find("tenants") != std::string::npos);  // the driver's "relation … does not exist"
    }
    s.p.exec("ALTER TABLE public.tenants_later RENAME TO tenants");
    s.add("a", std::nullopt);
    s.add("b", std::string("eu1"));
    {
        auto b = manager.tenant("b");  // retried on the next lease
        CHECK(database_of(b) == s.eu1.name());
    }

    // Discovery breaks again: the routes it made stay in use.
    s.p.exec("ALTER TABLE public.tenants RENAME TO tenants_gone");
    CHECK_THROWS_AS(manager.refresh_routes(), std::exception);
    {
        auto b = manager.tenant("b");
        CHECK(database_of(b) == s.eu1.name());
        auto a = manager.tenant("a");
        CHECK(database_of(a) == s.default_db());
    }
    // An id the last good table does not hold cannot be routed while discovery fails.
    try {
        manager.tenant("c");
        FAIL("an unknown tenant was routed while discovery fails");
    } catch (const mt::OperationError& e) {
        CHECK(std::string(e.what()).find("the tenant is not in the last route table") != std::string::npos);
    }
    s.p.exec("ALTER TABLE public.tenants_gone RENAME TO tenants");
    s.add("c", std::string("eu1"));
    auto c = manager.tenant("c");
    CHECK(database_of(c) == s.eu1.name());
}

TEST_CASE("a tenant moved to another server is routed there after the refresh, leases held across the move finish "
          "on the old one",
          "[routing][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    TwoServers s(mode);
    s.add("a", std::nullopt);
    s.add("z", std::nullopt);
    mt::Kernel kernel(s.p.manifest_input());
    mt::TenantManager manager(kernel);
    auto held = manager.tenant("a");
    CHECK(items_db(held) == s.default_db());

    // The move: the schema is copied to eu1, then discovery names eu1.
    s.create_schema("a", std::string("eu1"));
    s.p.exec("UPDATE public.tenants SET server = 'eu1' WHERE id = 'a'");
    {
        auto before_refresh = manager.tenant("z");  // an unrelated lease does not refresh a fresh table
        CHECK(database_of(before_refresh) == s.default_db());
    }
    manager.refresh_routes();
    const auto evictions = manager.stats().evictions;
    {
        auto moved = manager.tenant("a");
        CHECK(database_of(moved) == s.eu1.name());
        CHECK(items_db(moved) == s.eu1.name());
    }
    // The lease taken before the move still runs on the old server, and keeps its session.
    CHECK(database_of(held) == s.default_db());
    CHECK(items_db(held) == s.default_db());
    held.release();
    if (mode == "per-tenant") CHECK(manager.stats().evictions == evictions + 1);  // the old pool, once
    for (int i = 0; i < 3; ++i) {
        auto again = manager.tenant("a");
        CHECK(database_of(again) == s.eu1.name());
    }
    if (mode == "per-tenant") CHECK(manager.stats().evictions == evictions + 1);

    // And back again.
    s.p.exec("UPDATE public.tenants SET server = NULL WHERE id = 'a'");
    manager.refresh_routes();
    auto back = manager.tenant("a");
    CHECK(database_of(back) == s.default_db());
}

TEST_CASE("a flood of unknown tenant ids costs at most one discovery per interval", "[routing][pg]") {
    TwoServers s("shared");
    s.add("a", std::nullopt);
    mt::Kernel kernel(s.p.manifest_input());
    mt::TenantManager manager(kernel);
    { auto a = manager.tenant("a"); }
    const long before = s.discoveries();
    const auto t0 = std::chrono::steady_clock::now();
    std::atomic<int> routed_default{0};
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < 8; ++t)
            threads.emplace_back([&, t] {
                for (int i = 0; i < 5; ++i)
                    if (!manager.server_of("nobody_" + std::to_string(t) + "_" + std::to_string(i))) ++routed_default;
            });
    }
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    CHECK(routed_default == 40);  // not listed: database.url, after a discovery confirmed it
    const long made = s.discoveries() - before;
    const long allowed = 1 + static_cast<long>(elapsed / 250ms);
    INFO("discoveries " << made << " in " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
                        << "ms");
    CHECK(made >= 1);
    CHECK(made <= allowed);
    // Asked again, the same unknown ids cost nothing: the absence was confirmed by a discovery.
    const long after = s.discoveries();
    for (int i = 0; i < 5; ++i) CHECK_FALSE(manager.server_of("nobody_0_" + std::to_string(i)).has_value());
    CHECK(s.discoveries() == after);
}

TEST_CASE("the directory gate finds a tenant only where its leases go: its own server", "[routing][adapter][pg]") {
    TwoServers s("per-tenant");
    s.add("a", std::nullopt);
    s.p.exec("INSERT INTO public.tenants (id, server) VALUES ('b', 'eu1')");
    s.create_schema("b", std::nullopt);  // on the wrong server only
    mt::Kernel kernel(s.p.manifest_input());
    mt::TenantManager manager(kernel);
    mt::TenantDirectory directory(manager, {30s, 50ms});
    CHECK(directory.contains("a"));
    CHECK_FALSE(directory.contains("b"));

    // Created on eu1 after the gate loaded: found on a later miss, and its lease opens on eu1.
    s.create_schema("b", std::string("eu1"));
    s.add("c", std::string("eu1"));
    // Within the deadline only a miss can reload (the background refresh is every 30 s).
    wait_until([&] { return directory.contains("b") && directory.contains("c"); },
               "misses to reload the directory and find b and c on eu1", 20s);
    auto lease = manager.tenant("c");
    CHECK(items_db(lease) == s.eu1.name());

    // Moved back to database.url where its schema does not exist: not there any more.
    s.p.exec("UPDATE public.tenants SET server = NULL WHERE id = 'c'");
    directory.refresh();
    CHECK_FALSE(directory.contains("c"));
}
