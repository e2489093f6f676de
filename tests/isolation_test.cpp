// Session state never crosses leases (issue 10 item 1, SPEC §11): an application sends every kind
// of session-changing statement through a lease of tenant A, releases it, and the next leases of
// tenant B and of A on the same backend (pool_size = 1) see exactly their own schema and none of
// A's objects — in every pool mode and behind PgBouncer in transaction mode.
#include "support/pgbouncer.hpp"
#include "support/project.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <thread>

using namespace mt::test;

namespace {

void isolation_tenants(const Project& p, const std::vector<std::string>& ids) {
    p.tenants(ids);
    for (const auto& id : ids) {
        const std::string items = mt::quote_qualified("tenant_" + id, "items");
        p.exec("CREATE TABLE " + items + " (owner text)");
        p.exec("INSERT INTO " + items + " VALUES ($1)", {id});
    }
    // A role without any privilege, for SET ROLE / SET SESSION AUTHORIZATION (roles are cluster-wide;
    // parallel tests may race to create it).
    p.exec("DO $$ BEGIN CREATE ROLE mt_isolation_probe; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$");
}

// Every row the lease's unqualified `items` shows, e.g. "b".
std::string owners(mt::TenantLease& lease) {
    std::string out;
    for (const auto& row : lease.query("SELECT owner FROM items ORDER BY owner"))
        out += (out.empty() ? "" : ",") + std::string(row[0].c_str());
    return out;
}

void raw(mt::TenantLease& lease, const std::string& sql) {
    pqxx::nontransaction tx(lease.connection());
    tx.exec(sql);
}

std::string one(mt::TenantLease& lease, const std::string& sql) {
    const auto r = lease.query(sql);
    return r.empty() || r[0][0].is_null() ? std::string() : std::string(r[0][0].c_str());
}

struct Hostile {
    std::string name;
    std::function<void(mt::TenantLease& a, const Project& p)> act;
    // Runs on the next lease (tenant b, same backend): the specific state must be gone.
    std::function<void(mt::TenantLease& b, const Project& p)> gone = [](mt::TenantLease&, const Project&) {};
};

struct Counter : pqxx::notification_receiver {
    using pqxx::notification_receiver::notification_receiver;
    void operator()(const std::string&, int) override { ++received; }
    int received = 0;
};

std::vector<Hostile> hostile_statements() {
    return {
        {"RESET ALL", [](auto& a, auto&) { raw(a, "RESET ALL"); }},
        {"SET search_path to another tenant", [](auto& a, auto&) { raw(a, "SET search_path TO tenant_b"); }},
        {"set_config('search_path') through query()",
         [](auto& a, auto&) { a.query("SELECT set_config('search_path', 'tenant_b', false)"); }},
        {"DISCARD ALL", [](auto& a, auto&) { raw(a, "DISCARD ALL"); }},
        {"a temp table shadowing items",
         [](auto& a, auto&) { raw(a, "CREATE TEMP TABLE items (owner text); INSERT INTO items VALUES ('temp-a')"); },
         [](auto& b, auto&) { CHECK(one(b, "SELECT to_regclass('pg_temp.items')::text").empty()); }},
        {"SET ROLE", [](auto& a, auto&) { raw(a, "SET ROLE mt_isolation_probe"); },
         [](auto& b, auto&) { CHECK(one(b, "SELECT current_user = session_user") == "t"); }},
        {"SET SESSION AUTHORIZATION", [](auto& a, auto&) { raw(a, "SET SESSION AUTHORIZATION mt_isolation_probe"); },
         [](auto& b, auto&) { CHECK(one(b, "SELECT session_user::text") != "mt_isolation_probe"); }},
        {"read-only session characteristics",
         [](auto& a, auto&) { raw(a, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"); },
         [](auto& b, auto&) {
             b.query("INSERT INTO items VALUES ('b-write')");
             b.query("DELETE FROM items WHERE owner = 'b-write'");
         }},
        {"SQL PREPARE", [](auto& a, auto&) { raw(a, "PREPARE probe AS SELECT owner FROM tenant_a.items"); },
         [](auto& b, auto&) {
             CHECK(one(b, "SELECT count(*) FROM pg_prepared_statements") == "0");
             b.query("PREPARE probe AS SELECT 1");
         }},
        {"libpqxx prepared statement",
         [](auto& a, auto&) {
             a.connection().prepare("probe", "SELECT owner FROM items");
             auto tx = a.begin();
             CHECK(std::string(tx->exec_prepared("probe")[0][0].c_str()) == "a");
             tx->commit();
         },
         [](auto& b, auto&) {
             b.connection().prepare("probe", "SELECT owner FROM items");
             auto tx = b.begin();
             CHECK(std::string(tx->exec_prepared("probe")[0][0].c_str()) == "b");
             tx->commit();
         }},
        {"a cursor WITH HOLD",
         [](auto& a, auto&) {
             auto tx = a.begin();
             tx->exec("DECLARE probe CURSOR WITH HOLD FOR SELECT owner FROM items");
             tx->commit();
         },
         [](auto& b, auto&) { CHECK(one(b, "SELECT count(*) FROM pg_cursors") == "0"); }},
        {"LISTEN with a notification left queued",
         [](auto& a, auto&) { raw(a, "LISTEN probe; NOTIFY probe, 'from-a'"); },
         [](auto& b, auto&) {
             CHECK(one(b, "SELECT count(*) FROM pg_listening_channels()") == "0");
             auto& c = b.connection();
             Counter receiver(c, "probe");
             CHECK(c.get_notifs() == 0);
             CHECK(receiver.received == 0);
         }},
        {"a session advisory lock", [](auto& a, auto&) { raw(a, "SELECT pg_advisory_lock(4242)"); },
         [](auto&, auto& p) {
             CHECK(p.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242") == "0");
         }},
        {"a transaction left open",
         [](auto& a, auto&) { raw(a, "BEGIN; INSERT INTO tenant_a.items VALUES ('uncommitted-a')"); },
         [](auto&, auto& p) { CHECK(p.scalar("SELECT count(*) FROM tenant_a.items WHERE owner <> 'a'") == "0"); }},
        {"an aborted transaction",
         [](auto& a, auto&) {
             raw(a, "BEGIN");
             CHECK_THROWS_AS(raw(a, "SELECT 1/0"), pqxx::sql_error);
         }},
        {"statement_timeout = 50ms", [](auto& a, auto&) { raw(a, "SET statement_timeout = 50"); },
         [](auto& b, auto&) {
             CHECK(one(b, "SELECT current_setting('statement_timeout')") == "0");
             b.query("SELECT pg_sleep(0.1)");
         }},
        {"a cancelled statement",
         [](auto& a, auto& p) {
             auto& c = a.connection();
             const std::string pid = std::to_string(c.backendpid());
             std::optional<std::string> error;
             std::thread sleeper([&] {
                 try {
                     pqxx::nontransaction tx(c);
                     tx.exec("SELECT pg_sleep(30)");
                 } catch (const pqxx::sql_error& e) {
                     error = e.sqlstate();
                 }
             });
             // Behind PgBouncer the client's backend pid is the pooler's: look for the statement.
             const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
             while (p.scalar("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
                             "AND state = 'active'") != "1" &&
                    std::chrono::steady_clock::now() < deadline)
                 std::this_thread::yield();
             c.cancel_query();
             sleeper.join();
             CHECK(error == std::optional<std::string>("57014"));
             (void)pid;
         }},
    };
}

void check_every_hostile_statement(Project& p, const std::string& label) {
    for (const auto& h : hostile_statements()) {
        INFO(label << ": " << h.name);
        mt::Kernel kernel(p.manifest_input());
        mt::TenantManager manager(kernel);
        {
            auto a = manager.tenant("a");
            CHECK(owners(a) == "a");
            h.act(a, p);
        }
        {
            auto b = manager.tenant("b");
            CHECK(owners(b) == "b");
            CHECK(one(b, "SELECT current_schema()") == "tenant_b");
            h.gone(b, p);
        }
        {
            auto a = manager.tenant("a");
            CHECK(owners(a) == "a");
        }
        {
            auto shared = manager.shared();
            CHECK(one(shared, "SELECT current_schema()") == "public");
        }
    }
}

}  // namespace

TEST_CASE("hostile session statements of one lease never reach the next, in every pool mode", "[isolation][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    Project p;
    isolation_tenants(p, {"a", "b"});
    p.set("database.pool_mode", mode);
    p.set("database.pool_size", "1");
    p.set("database.max_pools", "1");  // per-tenant: b's pool gets a's backend as a spare
    p.write_manifest();
    check_every_hostile_statement(p, mode);
}

TEST_CASE("hostile session statements never reach the next lease behind PgBouncer in transaction mode",
          "[isolation][pgbouncer][pg]") {
    Project p;
    isolation_tenants(p, {"a", "b"});
    PgBouncer bouncer({"transaction", 1, 50});
    p.set("database.url", bouncer.url_through(p.url()));
    p.set("database.pool_mode", "transaction");
    p.set("database.pool_size", "1");
    p.write_manifest();
    check_every_hostile_statement(p, "transaction behind PgBouncer");
}

TEST_CASE("a transaction kept past its lease never lends its connection to another lease", "[isolation][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    Project p;
    isolation_tenants(p, {"a", "b"});
    p.set("database.pool_mode", mode);
    p.set("database.pool_size", "1");
    p.set("database.max_pools", "1");
    p.write_manifest();
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    std::unique_ptr<pqxx::work> kept;
    {
        auto a = manager.tenant("a");
        kept = a.begin();
        kept->exec("INSERT INTO items VALUES ('kept-a')");
    }
    CHECK(manager.stats().connections_quarantined == 1);
    {
        auto b = manager.tenant("b");
        CHECK(owners(b) == "b");
    }
    kept->abort();
    kept.reset();
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.items") == "1");
    auto a = manager.tenant("a");
    CHECK(owners(a) == "a");
}

TEST_CASE("a transaction left open on a lease is rolled back when the lease ends", "[isolation][pg]") {
    Project p;
    isolation_tenants(p, {"a"});
    p.set("database.pool_mode", "shared");
    p.set("database.pool_size", "1");
    p.write_manifest();
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    {
        auto a = manager.tenant("a");
        raw(a, "BEGIN; INSERT INTO items VALUES ('left-open')");
    }
    CHECK(manager.stats().rollbacks_on_release == 1);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.items") == "1");
    CHECK(p.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND state LIKE 'idle in transaction%'") == "0");
}

TEST_CASE("a lease that outlives its Kernel refuses to work instead of touching freed memory", "[isolation][pg]") {
    Project p;
    isolation_tenants(p, {"a"});
    std::optional<mt::TenantLease> lease;
    {
        mt::Kernel kernel(p.manifest_input());
        mt::TenantManager manager(kernel);
        lease.emplace(manager.tenant("a"));
        CHECK(owners(*lease) == "a");
    }
    REQUIRE_THROWS_WITH(lease->query("SELECT 1"),
                        "the mt::Kernel this lease came from was destroyed; keep the Kernel alive longer than its "
                        "TenantManager and every lease");
    lease.reset();  // releasing after the Kernel is gone closes the connection quietly
}

TEST_CASE("statement_timeout from the manifest applies to every lease, whatever the last one set",
          "[isolation][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    Project p;
    isolation_tenants(p, {"a", "b"});
    p.set("database.pool_mode", mode);
    p.set("database.pool_size", "1");
    p.set("database.max_pools", "1");
    p.set("database.statement_timeout", "150ms");
    p.write_manifest();
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    {
        auto a = manager.tenant("a");
        CHECK(one(a, "SELECT current_setting('statement_timeout')") == "150ms");
        raw(a, "SET statement_timeout = 0");
    }
    auto b = manager.tenant("b");
    try {
        b.query("SELECT pg_sleep(5)");
        FAIL("pg_sleep(5) was not cancelled by statement_timeout");
    } catch (const pqxx::sql_error& e) {
        CHECK(e.sqlstate() == "57014");
    }
}
