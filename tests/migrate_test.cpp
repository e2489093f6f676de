// mtctl migrate / status / tenant create / drop against a real PostgreSQL (SPEC §6, §7).
#include "support/blocked_backend.hpp"
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <thread>

using namespace mt::test;
using nlohmann::json;

namespace {

// Six migrations like the benchmark's: tables, a FK, an index, an ALTER, a data backfill.
void six_migrations(const Project& p) {
    p.migration("0000_users", "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);");
    p.migration("0001_orders",
                "CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), total int);");
    p.migration("0002_orders_user_idx", "CREATE INDEX orders_user_idx ON orders (user_id);");
    p.migration("0003_users_name", "ALTER TABLE users ADD COLUMN name text;");
    p.migration("0004_seed", "INSERT INTO users (email) VALUES ('a@example.com'), ('b@example.com');");
    p.migration("0005_backfill", "UPDATE users SET name = split_part(email, '@', 1);");
}

std::string count(const Project& p, const std::string& table) { return p.scalar("SELECT count(*) FROM " + table); }

// Rows in a tenant's tracking table; "0" when the table does not exist (it is created in the same
// transaction as the first migration, so a failure rolls it back too).
std::string tracked(const Project& p, const std::string& schema) {
    if (p.scalar("SELECT to_regclass('" + schema + ".__drizzle_migrations')::text").empty()) return "0";
    return count(p, schema + ".__drizzle_migrations");
}

// Every table, column and index in the database, and the tracking rows: "byte for byte" enough.
std::string catalog_snapshot(const Project& p) {
    return p.scalar(
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
        " SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text AS x FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
        "   AND n.nspname NOT LIKE 'pg_toast%'"
        " UNION ALL SELECT nspname FROM pg_namespace) s");
}

// catalog_snapshot plus what a side effect could change without adding a relation: every
// column (type, nullability, default), every table's rows and every sequence's position.
std::string full_snapshot(const Project& p) {
    return catalog_snapshot(p) + "\n" +
           p.scalar(
               "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
               " SELECT n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)"
               "   || CASE WHEN a.attnotnull THEN ' not null' ELSE ' null' END"
               "   || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') AS x"
               " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
               " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
               " WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v')"
               "   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
               " UNION ALL SELECT t.schemaname || '.' || t.tablename || ' rows: ' ||"
               "   query_to_xml(format('SELECT * FROM %I.%I ORDER BY 1', t.schemaname, t.tablename), true, false, '')::text"
               " FROM pg_tables t WHERE t.schemaname NOT IN ('pg_catalog', 'information_schema')"
               " UNION ALL SELECT schemaname || '.' || sequencename || ' at ' || coalesce(last_value::text, 'start')"
               " FROM pg_sequences) s");
}

}  // namespace

TEST_CASE("migrate --all applies every pending migration in each tenant schema", "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"acme", "globex", "initech"});
    const auto doc = run_json(p, "migrate --all");
    CHECK(doc["summary"]["total"] == 3);
    CHECK(doc["summary"]["succeeded"] == 3);
    CHECK(doc["summary"]["failed"] == 0);
    CHECK(doc["summary"]["migrations_applied"] == 18);
    for (const char* s : {"tenant_acme", "tenant_globex", "tenant_initech"}) {
        CHECK(count(p, std::string(s) + ".__drizzle_migrations") == "6");
        CHECK(p.scalar(std::string("SELECT string_agg(name, ',' ORDER BY id) FROM ") + s + ".users") == "a,b");
    }
    // Nothing pending: a rerun changes nothing.
    const auto again = run_json(p, "migrate --all");
    CHECK(again["summary"]["migrations_applied"] == 0);
    CHECK(again["tenants"][0]["outcome"] == "up-to-date");
    CHECK(count(p, "tenant_acme.users") == "2");
}

TEST_CASE("status reports each tenant's format, applied, pending, orphans and state", "[migrate][status][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"a", "b", "c"});
    p.exec("DROP SCHEMA tenant_c");
    run_json(p, "migrate --tenant a");
    const auto doc = run_json(p, "status");
    REQUIRE(doc["tenants"].size() == 3);
    CHECK(doc["tenants"][0]["state"] == "up-to-date");
    CHECK(doc["tenants"][0]["applied"] == 6);
    CHECK(doc["tenants"][0]["format"] == "name");
    CHECK(doc["tenants"][1]["state"] == "no-table");
    CHECK(doc["tenants"][1]["pending"] == 6);
    CHECK(doc["tenants"][2]["state"] == "missing-schema");
    CHECK(doc["summary"]["up-to-date"] == 1);

    // Pending is the full set, not "newer than the last one": a hole in the middle is pending.
    p.exec("DELETE FROM tenant_a.__drizzle_migrations WHERE name = '0002_orders_user_idx'");
    p.exec("INSERT INTO tenant_a.__drizzle_migrations (name) VALUES ('0009_gone')");
    const auto holes = run_json(p, "status --tenant a");
    CHECK(holes["tenants"][0]["state"] == "behind");
    CHECK(holes["tenants"][0]["pending_migrations"] == json::array({"0002_orders_user_idx"}));
    CHECK(holes["tenants"][0]["orphans"] == 1);
    CHECK(holes["tenants"][0]["orphan_records"][0]["name"] == "0009_gone");
}

TEST_CASE("migrate of a tenant without a schema fails that tenant and says how to create it", "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"a", "b"});
    p.exec("DROP SCHEMA tenant_b");
    const auto doc = run_json(p, "migrate --all", 1);
    CHECK(doc["tenants"][0]["outcome"] == "migrated");
    CHECK(doc["tenants"][1]["outcome"] == "failed");
    CHECK(doc["tenants"][1]["error"].get<std::string>().find("mtctl tenant create --id b") != std::string::npos);
}

TEST_CASE("migrate --dry-run has no side effect at all", "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"a", "b"});
    const auto before = catalog_snapshot(p);
    const auto doc = run_json(p, "migrate --all --dry-run");
    CHECK(doc["dry_run"] == true);
    CHECK(doc["tenants"][0]["outcome"] == "would-migrate");
    CHECK(doc["tenants"][0]["migrations"].size() == 6);
    CHECK(catalog_snapshot(p) == before);
    CHECK(p.scalar("SELECT to_regclass('tenant_a.__drizzle_migrations')::text").empty());
}

TEST_CASE("migrate --dry-run changes no column, row or sequence on a partly migrated fleet", "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"done", "half", "ahead", "fresh"});
    run_json(p, "migrate --tenant done");
    run_json(p, "migrate --tenant half --to 0002_orders_user_idx");
    // ahead: every migration plus one recorded from a newer release (its file is not here yet).
    run_json(p, "migrate --tenant ahead");
    p.exec("INSERT INTO tenant_ahead.__drizzle_migrations (name) VALUES ('0009_from_the_future')");
    p.exec("INSERT INTO tenant_half.users (email) VALUES ('kept@example.com')");
    const auto before = full_snapshot(p);
    REQUIRE(before.find("tenant_half.__drizzle_migrations rows:") != std::string::npos);
    REQUIRE(before.find("tenant_half.users.email text not null") != std::string::npos);
    REQUIRE(before.find("kept@example.com") != std::string::npos);

    const auto doc = run_json(p, "migrate --all --dry-run");
    CHECK(doc["dry_run"] == true);
    std::map<std::string, json> by_id;
    for (const auto& t : doc["tenants"]) by_id[t["id"].get<std::string>()] = t;
    CHECK(by_id["done"]["outcome"] == "up-to-date");
    CHECK(by_id["ahead"]["outcome"] == "up-to-date");
    CHECK(by_id["half"]["outcome"] == "would-migrate");
    CHECK(by_id["half"]["migrations"] == json::array({"0003_users_name", "0004_seed", "0005_backfill"}));
    CHECK(by_id["fresh"]["outcome"] == "would-migrate");
    CHECK(by_id["fresh"]["migrations"].size() == 6);
    CHECK(full_snapshot(p) == before);
    // Also through the other paths that plan before acting.
    run_json(p, "migrate --all --dry-run --to 0004_seed");
    run_json(p, "migrate --all --dry-run --mark-applied");
    CHECK(full_snapshot(p) == before);
    // The snapshot sees what a real run changes.
    run_json(p, "migrate --tenant half");
    CHECK(full_snapshot(p) != before);
}

TEST_CASE("migrate --mark-applied records pending migrations without executing them", "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"a"});
    const auto doc = run_json(p, "migrate --all --mark-applied");
    CHECK(doc["tenants"][0]["migrations"].size() == 6);
    CHECK(count(p, "tenant_a.__drizzle_migrations") == "6");
    CHECK(p.scalar("SELECT to_regclass('tenant_a.users')::text").empty());
}

TEST_CASE("migrate --to NAME stops after that migration, an unknown name changes nothing", "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"a"});
    const auto bad = p.mtctl("migrate --all --to 0099_nope");
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("0099_nope") != std::string::npos);
    CHECK(p.scalar("SELECT to_regclass('tenant_a.__drizzle_migrations')::text").empty());
    run_json(p, "migrate --all --to 0001_orders");
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM tenant_a.__drizzle_migrations") ==
          "0000_users,0001_orders");
}

TEST_CASE("a failing migration rolls back with its tracking row and other tenants continue", "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"a", "b", "c"});
    // Tenant b already has a users table, so its first migration fails.
    p.exec("CREATE TABLE tenant_b.users (x int)");
    const auto doc = run_json(p, "migrate --all", 1);
    CHECK(doc["summary"]["failed"] == 1);
    CHECK(doc["summary"]["succeeded"] == 2);
    const auto& b = doc["tenants"][1];
    CHECK(b["outcome"] == "failed");
    CHECK(b["failed_migration"] == "0000_users");
    CHECK(b["sqlstate"] == "42P07");
    CHECK(b["error"].get<std::string>().find("0000_users.sql") != std::string::npos);
    CHECK(tracked(p, "tenant_b") == "0");
    CHECK(count(p, "tenant_c.__drizzle_migrations") == "6");
}

TEST_CASE("transaction = per-migration: a failure stops that tenant at the failing migration, keeping the ones before",
          "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.migration("0003_users_name", "ALTER TABLE users ADD COLUMN name text; SELECT 1/0;");
    p.set("migrations.transaction", "per-migration");
    p.tenants({"a"});
    const auto doc = run_json(p, "migrate --all", 1);
    CHECK(doc["tenants"][0]["failed_migration"] == "0003_users_name");
    CHECK(doc["tenants"][0]["sqlstate"] == "22012");
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM tenant_a.__drizzle_migrations") ==
          "0000_users,0001_orders,0002_orders_user_idx");
    CHECK(p.scalar("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'tenant_a' "
                   "AND table_name = 'users' AND column_name = 'name'") == "0");
}

TEST_CASE("transaction = per-tenant (the default) applies a tenant's migrations all or nothing", "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.migration("0005_backfill", "UPDATE users SET name = 1/0;");
    p.tenants({"a"});
    run_json(p, "migrate --all", 1);
    CHECK(p.scalar("SELECT to_regclass('tenant_a.users')::text").empty());
    CHECK(tracked(p, "tenant_a") == "0");
}

TEST_CASE("migrate --fail-fast stops starting tenants after the first failure", "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"a", "b", "c", "d"});
    p.exec("CREATE TABLE tenant_a.users (x int)");
    const auto doc = run_json(p, "migrate --all --fail-fast --concurrency 1", 1);
    CHECK(doc["summary"]["failed"] == 1);
    CHECK(doc["summary"]["skipped"] == 3);
    CHECK(tracked(p, "tenant_d") == "0");
}

TEST_CASE("two migrate runs at once apply every migration exactly once", "[migrate][concurrency][pg]") {
    Project p;
    six_migrations(p);
    p.migration("0006_slow", "SELECT pg_sleep(0.05); INSERT INTO users (email) VALUES ('c@example.com');");
    std::vector<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.push_back("t" + std::to_string(i));
    p.tenants(ids);
    RunResult r1, r2;
    std::thread first([&] { r1 = p.mtctl("migrate --all --concurrency 3"); });
    std::thread second([&] { r2 = p.mtctl("migrate --all --concurrency 3"); });
    first.join();
    second.join();
    INFO(r1.err << r2.err);
    CHECK(r1.exit_code == 0);
    CHECK(r2.exit_code == 0);
    for (const auto& id : ids) {
        CHECK(count(p, "tenant_" + id + ".__drizzle_migrations") == "7");
        CHECK(count(p, "tenant_" + id + ".users") == "3");
    }
}

TEST_CASE("tenant ids with quotes, semicolons, spaces or 64+ bytes are refused before any SQL", "[migrate][ids][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"a"});
    const auto before = catalog_snapshot(p);
    for (const std::string& bad : std::vector<std::string>{"a\"b", "x; DROP SCHEMA public CASCADE", "has space", std::string(64, 'x'), "",
                                  "tenant'--", "../etc"}) {
        const auto r = p.mtctl("migrate --tenant " + shell_quote(bad));
        INFO(bad << " -> " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("tenant id") != std::string::npos);
        const auto c = p.mtctl("tenant create --id " + shell_quote(bad));
        CHECK(c.exit_code == 2);
    }
    CHECK(catalog_snapshot(p) == before);
}

TEST_CASE("mixed-case tenant ids get their own schema", "[migrate][ids][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"Acme", "acme"});
    run_json(p, "migrate --all");
    CHECK(count(p, "\"tenant_Acme\".users") == "2");
    CHECK(count(p, "tenant_acme.users") == "2");
    CHECK(p.scalar("SELECT to_regclass('public.users')::text").empty());  // nothing leaked into public
}

TEST_CASE("tenant create applies every migration and rolls the schema back when one fails", "[tenant][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({});
    const auto ok = run_json(p, "tenant create --id newco");
    CHECK(ok["migrations"].size() == 6);
    CHECK(count(p, "tenant_newco.__drizzle_migrations") == "6");
    const auto dup = p.mtctl("tenant create --id newco");
    CHECK(dup.exit_code == 1);
    CHECK(dup.err.find("already exists") != std::string::npos);

    p.migration("0006_broken", "SELECT * FROM no_such_table;");
    const auto bad = p.mtctl("tenant create --id broken");
    CHECK(bad.exit_code == 1);
    CHECK(bad.err.find("0006_broken") != std::string::npos);
    CHECK(p.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_broken'") == "0");
}

TEST_CASE("tenant create rolls back with no-transaction migrations too", "[tenant][pg]") {
    Project p;
    six_migrations(p);
    p.migration("0006_concurrent_idx", "-- mt:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);");
    p.migration("0007_broken", "SELECT * FROM no_such_table;");
    p.tenants({});
    const auto bad = p.mtctl("tenant create --id broken");
    CHECK(bad.exit_code == 1);
    CHECK(p.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_broken'") == "0");
}

TEST_CASE("a -- mt:no-transaction migration runs outside a transaction (CREATE INDEX CONCURRENTLY)", "[migrate][pg]") {
    Project p;
    six_migrations(p);
    p.migration("0006_concurrent_idx",
                "-- mt:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);");
    p.tenants({"a", "b"});
    const auto doc = run_json(p, "migrate --all");
    CHECK(doc["summary"]["migrations_applied"] == 14);
    CHECK(p.scalar("SELECT count(*) FROM pg_indexes WHERE schemaname = 'tenant_b' AND indexname = 'users_email_idx'") == "1");
    CHECK(count(p, "tenant_b.__drizzle_migrations") == "7");
}

TEST_CASE("inside a -- mt:no-transaction migration mtctl holds that tenant's session-level lock and no other",
          "[migrate][locks][pg][serial]") {
    Project p;
    p.set("database.application_name", "mtctl-lock-test");
    p.set("migrations.lock_timeout", "10m");  // the test's lock ends the wait, not lock_timeout
    six_migrations(p);
    p.tenants({"a", "b"});
    run_json(p, "migrate --all");
    p.migration("0006_concurrent_idx",
                "-- mt:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);");
    // An application's open write transaction on b's users: CREATE INDEX CONCURRENTLY waits for it
    // to end, so mtctl is paused inside b's file, after a's on the same connection.
    Observer db(p.url());
    HeldTableLock app(p.url(), "tenant_b", "users", "ROW EXCLUSIVE");
    Daemon run(shell_quote(MT_MTCTL) + " --no-color --no-progress --json migrate --all --concurrency 1", p.dir());
    const int backend = db.wait_for_blocked(run, "mtctl-lock-test", app.pid(), "CREATE INDEX CONCURRENTLY");
    // No transaction is open around CREATE INDEX CONCURRENTLY, so the one advisory lock held is the
    // session-level one: b's; a's was released, not left to the end of the session.
    CHECK(db.tenant_locks_of(backend) == std::pair<std::string, int>{"tenant_b", 1});
    CHECK(count(p, "tenant_a.__drizzle_migrations") == "7");
    CHECK(count(p, "tenant_b.__drizzle_migrations") == "6");

    app.release();
    REQUIRE(run.wait() == 0);
    CHECK(json::parse(run.out())["summary"]["migrations_applied"] == 2);
    CHECK(count(p, "tenant_b.__drizzle_migrations") == "7");
}

TEST_CASE("tenant drop refuses without --force and drops with it", "[tenant][pg]") {
    Project p;
    six_migrations(p);
    p.tenants({"a"});
    const auto refused = p.mtctl("tenant drop --id a");
    CHECK(refused.exit_code == 2);
    CHECK(refused.err.find("--force") != std::string::npos);
    CHECK(p.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_a'") == "1");
    CHECK(p.mtctl("tenant drop --id a --force").exit_code == 0);
    CHECK(p.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_a'") == "0");
    CHECK(p.mtctl("tenant drop --id a --force").exit_code == 1);
}

TEST_CASE("migrate-shared applies the shared folder to the shared schema with its own table", "[migrate][shared][pg]") {
    Project p;
    p.migration("0000_plans", "CREATE TABLE plans (id serial PRIMARY KEY, name text);", "drizzle/shared");
    p.set("migrations.shared_table", "__shared_migrations");
    p.tenants({});
    const auto dry = run_json(p, "migrate-shared --dry-run");
    CHECK(dry["tenants"][0]["outcome"] == "would-migrate");
    CHECK(p.scalar("SELECT to_regclass('public.plans')::text").empty());
    run_json(p, "migrate-shared");
    CHECK(p.scalar("SELECT to_regclass('public.plans')::text") == "plans");
    CHECK(count(p, "public.__shared_migrations") == "1");
    const auto status = run_json(p, "status --shared");
    CHECK(status["tenants"][0]["state"] == "up-to-date");
}

TEST_CASE("migrate without a tenant selection is a usage error", "[migrate][cli][pg]") {
    Project p;
    const auto r = p.mtctl("migrate");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--all") != std::string::npos);
}

TEST_CASE("an unreachable database exits 3", "[migrate][cli]") {
    TempDir dir;
    write_file(dir / "multitenant.ini",
               "[database]\nurl = postgresql://nobody@127.0.0.1:1/none\nconnect_timeout = 1s\n"
               "[plugins]\nload = tracking-name, discovery-sql\n[roles]\ndiscovery = discovery-sql\n");
    write_file(dir / "drizzle/tenant/0000_a.sql", "SELECT 1;");
    const auto r = mtctl("migrate --all", dir.path());
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("cannot connect") != std::string::npos);
}
