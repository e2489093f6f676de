// What a lease promises besides isolation (issue 10 items 1, 2, 6): a write is never sent twice
// by a retry (a connection lost after sending surfaces as mt::OutcomeUnknown), a session the
// server closed while pooled is replaced before anything is sent, transaction(fn) replays the
// whole transaction after a serialization failure, and a value PostgreSQL cannot hold is refused
// before anything is sent.
#include "support/project.hpp"
#include "support/tcp_proxy.hpp"

#include <mt/base/errors.hpp>
#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>
#include <mt/plugin_host/sql_session.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <thread>

using namespace mt::test;

namespace {

void tenant_with_items(const Project& p, const std::string& id) {
    p.tenants({id});
    p.exec("CREATE TABLE " + mt::quote_qualified("tenant_" + id, "items") + " (owner text)");
}

// Waits (with a deadline) until `condition_sql` returns "t" on the project's database.
void wait_for(const Project& p, const std::string& condition_sql) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (p.scalar(condition_sql) != "t") {
        if (std::chrono::steady_clock::now() > deadline) FAIL("timed out waiting for: " << condition_sql);
        std::this_thread::yield();
    }
}

}  // namespace

TEST_CASE("a write whose connection breaks after it was sent throws OutcomeUnknown and is not sent again",
          "[lease][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    const bool with_params = GENERATE(false, true);
    INFO(mode << (with_params ? " with parameters" : " without parameters"));
    Project p;
    tenant_with_items(p, "a");
    // The connection dies between client and server without the server knowing: the client sees
    // EOF after sending, the server goes on and (in autocommit) commits.
    TcpProxy proxy("127.0.0.1", std::stoi(p.scalar("SELECT current_setting('port')")));
    p.set("database.url", proxy.url_through(p.url()));
    p.set("database.pool_mode", mode);
    p.set("database.pool_size", "1");
    p.set("plugin.retry-exponential.max_attempts", "5");
    p.set("plugin.retry-exponential.initial_delay", "1ms");
    p.write_manifest();
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    auto lease = manager.tenant("a");
    lease.query("SELECT 1");
    const auto opened = manager.stats().connections_opened;
    // The statement waits on an advisory lock the test holds, so the cut lands while it runs
    // however slow the machine (a pg_sleep window could close first).
    pqxx::connection holder(p.url());
    pqxx::work held(holder);
    held.exec("SELECT pg_advisory_xact_lock(7100)");
    const std::string statement = with_params ? "INSERT INTO items SELECT $1 FROM pg_advisory_xact_lock(7100)"
                                              : "INSERT INTO items SELECT 'w' FROM pg_advisory_xact_lock(7100)";
    std::optional<mt::OutcomeUnknown> caught;
    std::string other_error;
    std::thread writer([&] {
        try {
            lease.query(statement, with_params ? mt::SqlParams{std::string("w")} : mt::SqlParams{});
        } catch (const mt::OutcomeUnknown& e) {
            caught = e;
        } catch (const std::exception& e) {
            other_error = e.what();
        }
    });
    const std::string waiting = "SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = current_database() "
                                "AND state = 'active' AND wait_event_type = 'Lock' "
                                "AND query LIKE '%FROM pg_advisory_xact_lock(7100)%' AND pid <> pg_backend_pid()";
    wait_for(p, waiting);
    proxy.cut();
    writer.join();
    held.commit();  // the server's statement goes on without its client
    CHECK(other_error.empty());
    REQUIRE(caught.has_value());
    CHECK(caught->tenant == "a");
    CHECK(caught->statement == statement);
    CHECK(caught->exit_code() == mt::ExitCode::failed);
    CHECK(std::string(caught->what()).rfind("connection lost after the statement was sent (tenant a); it may or may not "
                                            "have run: ", 0) == 0);
    // Not re-sent: no connection was opened for a retry; the server ran the statement once.
    CHECK(manager.stats().connections_opened == opened);
    wait_for(p, "SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
                "AND query LIKE '%FROM pg_advisory_xact_lock(7100)%' AND pid <> pg_backend_pid()");
    // Autocommit statements committed on the server; in transaction mode a parameterised statement
    // runs inside BEGIN … COMMIT, and the server rolls it back when the client is gone.
    const std::string expected = mode == "transaction" && with_params ? "0" : "1";
    wait_for(p, "SELECT count(*) = " + expected + " FROM tenant_a.items WHERE owner = 'w'");
    // The lease itself recovers on its next statement.
    CHECK(std::string(lease.query("SELECT current_schema()")[0][0].c_str()) == "tenant_a");
}

TEST_CASE("a pooled session the server closed is replaced before the next lease sends anything", "[lease][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    Project p;
    tenant_with_items(p, "a");
    p.set("database.pool_mode", mode);
    p.set("database.pool_size", "1");
    p.write_manifest();
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    std::string pid;
    {
        auto lease = manager.tenant("a");
        pid = lease.query("SELECT pg_backend_pid()::text")[0][0].c_str();
    }
    CHECK(p.scalar("SELECT pg_terminate_backend(" + pid + ")") == "t");
    wait_for(p, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = " + pid);
    auto lease = manager.tenant("a");
    lease.query("INSERT INTO items VALUES ($1)", {std::string("once")});
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.items WHERE owner = 'once'") == "1");
    CHECK(manager.stats().connections_opened == 2);
}

TEST_CASE("transaction(fn) replays the whole transaction after a serialization failure", "[lease][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    Project p;
    tenant_with_items(p, "a");
    p.set("database.pool_mode", mode);
    p.set("plugin.retry-exponential.initial_delay", "1ms");
    p.write_manifest();
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    auto lease = manager.tenant("a");
    int calls = 0;
    lease.transaction([&](pqxx::work& tx) {
        ++calls;
        tx.exec("INSERT INTO items VALUES ('replayed')");
        if (calls == 1) tx.exec("DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '40001'; END $$");
    });
    CHECK(calls == 2);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.items WHERE owner = 'replayed'") == "1");
}

TEST_CASE("a unique violation is never retried", "[lease][pg]") {
    Project p;
    tenant_with_items(p, "a");
    p.exec("ALTER TABLE tenant_a.items ADD UNIQUE (owner)");
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    auto lease = manager.tenant("a");
    lease.query("INSERT INTO items VALUES ('x')");
    int calls = 0;
    try {
        lease.transaction([&](pqxx::work& tx) {
            ++calls;
            tx.exec("INSERT INTO items VALUES ('x')");
        });
        FAIL("the duplicate insert succeeded");
    } catch (const pqxx::sql_error& e) {
        CHECK(e.sqlstate() == "23505");
    }
    CHECK(calls == 1);
}

TEST_CASE("parameters PostgreSQL cannot hold as text are refused before anything is sent", "[lease][values][pg]") {
    const std::string mode = GENERATE("per-tenant", "shared", "transaction");
    Project p;
    tenant_with_items(p, "a");
    p.set("database.pool_mode", mode);
    p.write_manifest();
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);
    auto lease = manager.tenant("a");
    const auto before = manager.stats();

    const std::string with_nul("x\0y", 3);
    REQUIRE_THROWS_MATCHES(
        lease.query("INSERT INTO items VALUES ($1), ($2)", {std::string("fine"), with_nul}), mt::InvalidParameter,
        Catch::Message("parameter $2 for tenant a: contains a NUL byte at offset 1, which PostgreSQL text cannot hold; "
                       "nothing was sent (send bytes as bytea, or strip the NUL)"));
    REQUIRE_THROWS_MATCHES(
        lease.query("INSERT INTO items VALUES ($1)", {std::string("caf\xC3", 4)}), mt::InvalidParameter,
        Catch::Message("parameter $1 for tenant a: is not valid UTF-8 (byte offset 3); nothing was sent (fix the value's "
                       "encoding)"));
    // Overlong encodings and UTF-16 surrogates are invalid UTF-8 too.
    CHECK_THROWS_AS(lease.query("SELECT $1", {std::string("\xC0\xAF")}), mt::InvalidParameter);
    CHECK_THROWS_AS(lease.query("SELECT $1", {std::string("\xED\xA0\x80")}), mt::InvalidParameter);
    const char injected[] = "SELECT 1\0; DROP TABLE items";
    CHECK_THROWS_AS(lease.query(std::string(injected, sizeof injected - 1)), mt::Error);
    // Valid multi-byte text and NULL pass unchanged.
    lease.query("INSERT INTO items VALUES ($1), ($2)", {std::string("\xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9"), std::nullopt});
    CHECK(p.scalar("SELECT owner FROM tenant_a.items WHERE owner IS NOT NULL") == "\xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9");
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.items") == "2");
    CHECK(manager.stats().connections_opened == before.connections_opened);

    // The SDK's host SQL service (what plugins use) refuses the same way.
    auto conn = pqxx::connection(p.url());
    pqxx::work tx(conn);
    mt::SqlSession session(tx);
    CHECK_THROWS_AS(session.exec("SELECT $1", {with_nul}), mt::InvalidParameter);
}
