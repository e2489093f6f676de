// mtctl doctor (SPEC §7, §9): every check both passing and failing, and the transaction-mode
// pooler probe against a direct server and a real PgBouncer in transaction mode.
#include "support/pgbouncer.hpp"
#include "support/project.hpp"

#include <mt/fleet/doctor.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace mt::test;
using nlohmann::json;

namespace {

json doctor(const Project& p, int expected_exit, const std::string& flags = "") {
    const auto r = p.mtctl("--json " + flags + " doctor");
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == expected_exit);
    return json::parse(r.out);
}

// The named check's object; fails the test when the report has no such check.
json check(const json& report, const std::string& name) {
    for (const auto& c : report["checks"])
        if (c["check"] == name) return c;
    FAIL("no check named " << name << " in " << report.dump(2));
    return {};
}

std::string status(const json& report, const std::string& name) { return check(report, name)["status"]; }

bool contains(const json& c, const std::string& text) {
    return c.dump().find(text) != std::string::npos;
}

// A project every check passes on: two migrated tenants, pools sized well under max_connections.
void healthy(Project& p) {
    p.set("database.max_pools", "2");
    p.migration("0000_users", "CREATE TABLE users (id serial PRIMARY KEY);");
    p.migration("0001_users_email", "ALTER TABLE users ADD COLUMN email text;");
    p.tenants({"a", "b"});
    REQUIRE(p.mtctl("migrate --all").exit_code == 0);
}

}  // namespace

TEST_CASE("doctor passes every check on a healthy project", "[doctor][pg]") {
    Project p;
    healthy(p);
    const auto report = doctor(p, 0);
    CHECK(report["ok"] == true);
    for (const char* name : {"manifest", "plugins", "tenant folder", "shared folder", "connection", "server version",
                             "discovery", "tenant schemas", "orphan schemas", "tracking", "pool sizing", "pooler"}) {
        INFO(name << ": " << check(report, name).dump());
        CHECK(status(report, name) == "ok");
    }
    CHECK(contains(check(report, "tracking"), "name: 2"));
    CHECK(contains(check(report, "pool sizing"), "4 × max_pools 2"));
    CHECK(contains(check(report, "pooler"), "session state persists"));

    // The human rendering: one line per check.
    const auto r = p.mtctl("doctor");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("ok   pooler") != std::string::npos);
}

TEST_CASE("doctor fails the manifest check and skips the rest on an invalid manifest", "[doctor][pg]") {
    Project p;
    p.set("database.no_such_key", "1");
    const auto report = doctor(p, 1);
    CHECK(status(report, "manifest") == "fail");
    CHECK(contains(check(report, "manifest"), "no_such_key"));
    CHECK(status(report, "connection") == "skip");
    CHECK(status(report, "pooler") == "skip");
}

TEST_CASE("doctor fails the plugins check when a plugin is refused", "[doctor][pg]") {
    Project p;
    p.set("plugins.load", "tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, no-such-plugin");
    const auto report = doctor(p, 1);
    CHECK(status(report, "manifest") == "ok");
    CHECK(status(report, "plugins") == "fail");
    CHECK(contains(check(report, "plugins"), "no-such-plugin"));
    CHECK(status(report, "discovery") == "skip");
}

TEST_CASE("doctor checks the folders and their journal", "[doctor][pg]") {
    Project p;
    healthy(p);
    SECTION("a malformed journal fails") {
        write_file(p.dir() / "drizzle/shared/meta/_journal.json", "{ not json");
        const auto report = doctor(p, 1);
        CHECK(status(report, "shared folder") == "fail");
        CHECK(contains(check(report, "shared folder"), "_journal.json"));
        CHECK(status(report, "tenant folder") == "ok");
    }
    SECTION("a missing folder fails") {
        std::filesystem::remove_all(p.dir() / "drizzle/tenant");
        const auto report = doctor(p, 1);
        CHECK(status(report, "tenant folder") == "fail");
        // The formats are still counted without the folder.
        CHECK(status(report, "tracking") == "ok");
    }
    SECTION("files the journal does not list, and `when` going backwards, warn") {
        write_file(p.dir() / "drizzle/shared/meta/_journal.json", R"({
  "version": "7",
  "dialect": "postgresql",
  "entries": [
    { "idx": 0, "version": "7", "when": 1700000000000, "tag": "0000_a", "breakpoints": true },
    { "idx": 1, "version": "7", "when": 1600000000000, "tag": "0001_b", "breakpoints": true }
  ]
})");
        p.migration("0000_a", "SELECT 1;", "drizzle/shared");
        p.migration("0001_b", "SELECT 1;", "drizzle/shared");
        p.migration("0002_stray", "SELECT 1;", "drizzle/shared");
        const auto report = doctor(p, 0);
        const auto c = check(report, "shared folder");
        CHECK(c["status"] == "warn");
        CHECK(contains(c, "0002_stray.sql"));
        CHECK(contains(c, "0001_b"));
        CHECK(contains(c, "drizzle-orm"));
    }
    SECTION("a plain file without a number warns") {
        p.migration("seed", "SELECT 1;");
        const auto report = doctor(p, 0);
        CHECK(status(report, "tenant folder") == "warn");
        CHECK(contains(check(report, "tenant folder"), "seed.sql"));
    }
}

TEST_CASE("doctor fails the connection check when the server cannot be reached", "[doctor][pg]") {
    Project p;
    p.set("database.url", "postgresql://postgres@127.0.0.1:1/nowhere");
    p.set("database.connect_timeout", "1s");
    const auto report = doctor(p, 1);
    CHECK(status(report, "connection") == "fail");
    CHECK(status(report, "discovery") == "skip");
    CHECK(status(report, "pooler") == "skip");
    CHECK(contains(check(report, "connection"), "cannot connect to postgresql://postgres@127.0.0.1:1/nowhere"));
}

TEST_CASE("doctor connects with a password it never prints, and fails a wrong one without printing it",
          "[doctor][secrets][pg]") {
    // Password authentication for real: without the password the server refuses the role, so a
    // passing connection check proves the URL's password was used.
    PrivateServer server;
    const std::string password = "Dr7pw-Kq3vZ";
    server.add_password_role("doctor_user", password);
    {
        pqxx::connection admin(server.admin_url());
        pqxx::nontransaction tx(admin);
        tx.exec0("CREATE DATABASE app");
    }
    const std::string host = "127.0.0.1:" + std::to_string(server.port());
    Project p("postgresql://doctor_user:" + password + "@" + host + "/app");
    healthy(p);
    const auto no_password = [&](const std::string& what, const std::string& text, const std::string& secret) {
        INFO(what << ":\n" << text);
        CHECK(text.find(secret) == std::string::npos);
    };

    const auto report = doctor(p, 0);
    CHECK(status(report, "connection") == "ok");
    CHECK(contains(check(report, "connection"), "postgresql://doctor_user:***@" + host + "/app"));
    CHECK(status(report, "discovery") == "ok");
    no_password("doctor --json", report.dump(), password);
    const auto human = p.mtctl("doctor");
    CHECK(human.exit_code == 0);
    CHECK(human.out.find("postgresql://doctor_user:***@" + host + "/app") != std::string::npos);
    no_password("doctor stdout", human.out, password);
    no_password("doctor stderr", human.err, password);

    const std::string wrong = "Wr0ng-Xv8pQ";
    p.set("database.url", "postgresql://doctor_user:" + wrong + "@" + host + "/app");
    p.set("database.connect_timeout", "2s");
    const auto refused = doctor(p, 1);
    CHECK(status(refused, "connection") == "fail");
    CHECK(contains(check(refused, "connection"), "password authentication failed for user \\\"doctor_user\\\""));
    CHECK(contains(check(refused, "connection"), "postgresql://doctor_user:***@" + host + "/app"));
    no_password("doctor --json, wrong password", refused.dump(), wrong);
    const auto refused_human = p.mtctl("doctor");
    CHECK(refused_human.exit_code == 1);
    no_password("doctor stdout, wrong password", refused_human.out, wrong);
    no_password("doctor stderr, wrong password", refused_human.err, wrong);
}

TEST_CASE("doctor fails an unreachable extra server", "[doctor][pg]") {
    Project p;
    healthy(p);
    p.set("servers.eu1.url", "postgresql://postgres@127.0.0.1:1/nowhere");
    p.set("database.connect_timeout", "1s");
    const auto report = doctor(p, 1);
    CHECK(status(report, "connection") == "ok");
    CHECK(status(report, "server eu1") == "fail");
}

TEST_CASE("doctor warns below PostgreSQL 12", "[doctor]") {
    CHECK(mt::server_version_check(110022, "11.22").status == mt::CheckStatus::warn);
    CHECK(mt::server_version_check(120000, "12.0").status == mt::CheckStatus::ok);
    CHECK(mt::server_version_check(150020, "15.20").status == mt::CheckStatus::ok);
}

TEST_CASE("doctor fails discovery that errors and warns when it finds no tenant", "[doctor][pg]") {
    Project p;
    healthy(p);
    SECTION("failing query") {
        p.set("plugin.discovery-sql.query", "SELECT id FROM public.no_such_table");
        const auto report = doctor(p, 1);
        CHECK(status(report, "discovery") == "fail");
        CHECK(contains(check(report, "discovery"), "no_such_table"));
        CHECK(status(report, "tracking") == "skip");
    }
    SECTION("no tenants") {
        p.exec("DELETE FROM public.tenants; DROP SCHEMA tenant_a CASCADE; DROP SCHEMA tenant_b CASCADE");
        const auto report = doctor(p, 0);
        CHECK(status(report, "discovery") == "warn");
    }
}

TEST_CASE("doctor fails tenants without a schema and warns on schemas without a tenant", "[doctor][pg]") {
    Project p;
    healthy(p);
    p.tenants({"ghost"}, false);
    p.exec("CREATE SCHEMA tenant_zombie; CREATE SCHEMA unrelated");
    const auto report = doctor(p, 1);
    const auto missing = check(report, "tenant schemas");
    CHECK(missing["status"] == "fail");
    CHECK(contains(missing, "ghost (tenant_ghost)"));
    CHECK(contains(missing, "mtctl tenant create --id ID"));
    const auto orphans = check(report, "orphan schemas");
    CHECK(orphans["status"] == "warn");
    CHECK(contains(orphans, "tenant_zombie"));
    CHECK_FALSE(contains(orphans, "unrelated"));
    CHECK_FALSE(contains(orphans, "tenant_a"));
}

TEST_CASE("doctor warns on tracking tables in an unknown or unconfigured format", "[doctor][pg]") {
    Project p;
    healthy(p);
    SECTION("a layout no loaded format recognises") {
        p.tenants({"odd"});
        p.exec("CREATE TABLE tenant_odd.__drizzle_migrations (whatever int)");
        const auto report = doctor(p, 0);
        const auto c = check(report, "tracking");
        CHECK(c["status"] == "warn");
        CHECK(contains(c, "odd"));
        CHECK(contains(c, "name: 2"));
    }
    SECTION("mixed formats when migrations.format is fixed") {
        REQUIRE(p.mtctl("convert-format --to drizzle-kit --tenant b").exit_code == 0);
        const auto ok = doctor(p, 0);
        CHECK(status(ok, "tracking") == "ok");  // format = auto reads both
        CHECK(contains(check(ok, "tracking"), "drizzle-kit: 1"));
        CHECK(contains(check(ok, "tracking"), "name: 1"));
        p.set("migrations.format", "drizzle-kit");
        const auto report = doctor(p, 0);
        const auto c = check(report, "tracking");
        CHECK(c["status"] == "warn");
        CHECK(contains(c, "not in the drizzle-kit format: a"));
        CHECK(contains(c, "convert-format --to drizzle-kit"));
    }
}

TEST_CASE("doctor warns when the pools can exceed max_connections", "[doctor][pg]") {
    Project p;
    healthy(p);
    p.set("database.max_pools", "100000");
    const auto report = doctor(p, 0);
    const auto c = check(report, "pool sizing");
    CHECK(c["status"] == "warn");
    CHECK(contains(c, "max_connections"));

    mt::Manifest m;
    m.database.pool_size = 10;
    m.database.max_pools = 50;
    m.migrations.concurrency = 10;
    CHECK(mt::pool_sizing_check(m, 100, 3).status == mt::CheckStatus::warn);  // 510 > 97
    m.database.pool_mode = mt::PoolMode::shared;
    CHECK(mt::pool_sizing_check(m, 100, 3).status == mt::CheckStatus::ok);  // 20 <= 97
    m.database.pool_mode = mt::PoolMode::transaction;
    CHECK(mt::pool_sizing_check(m, 20, 3).status == mt::CheckStatus::warn);  // 20 > 17
}

TEST_CASE("the pooler probe finds no transaction pooler on a direct connection", "[doctor][pg]") {
    TempDatabase db;
    auto a = db.connect();
    auto b = db.connect();
    const auto probe = mt::probe_transaction_pooler(a, b);
    CHECK_FALSE(probe.transaction_pooling);
    CHECK(probe.evidence.find("persists") != std::string::npos);

    const mt::PoolerProbe found{true, "test"};
    CHECK(mt::pooler_check(found, mt::PoolMode::per_tenant, false).status == mt::CheckStatus::fail);
    CHECK(mt::pooler_check(found, mt::PoolMode::shared, false).status == mt::CheckStatus::fail);
    CHECK(mt::pooler_check(found, mt::PoolMode::transaction, false).status == mt::CheckStatus::ok);
    CHECK(mt::pooler_check(found, mt::PoolMode::transaction, true).status == mt::CheckStatus::warn);
    CHECK(mt::pooler_check(probe, mt::PoolMode::per_tenant, true).status == mt::CheckStatus::ok);
}

TEST_CASE("doctor detects PgBouncer in transaction mode and says whether pool_mode is safe", "[doctor][pg][pgbouncer]") {
    Project p;
    healthy(p);
    PgBouncer bouncer({"transaction"});
    const std::string url = bouncer.url_through(p.url());
    {
        pqxx::connection a(url), b(url);
        CHECK(mt::probe_transaction_pooler(a, b).transaction_pooling);
    }
    p.set("database.url", url);
    const auto unsafe = doctor(p, 1);
    const auto c = check(unsafe, "pooler");
    CHECK(c["status"] == "fail");
    CHECK(contains(c, "transaction-mode pooler detected"));
    CHECK(contains(c, "pool_mode = transaction"));
    CHECK(status(unsafe, "discovery") == "ok");

    p.set("database.pool_mode", "transaction");
    const auto safe = doctor(p, 0);
    CHECK(status(safe, "pooler") == "ok");
    CHECK(contains(check(safe, "pooler"), "safe"));
}

TEST_CASE("the pooler probe sees PgBouncer in session mode as safe", "[doctor][pg][pgbouncer]") {
    Project p;
    PgBouncer bouncer({"session"});
    const std::string url = bouncer.url_through(p.url());
    pqxx::connection a(url), b(url);
    CHECK_FALSE(mt::probe_transaction_pooler(a, b).transaction_pooling);
}
