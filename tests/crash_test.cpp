// Faults injected at a known point of a migration run (SPEC §6.3: a crash or kill at any moment
// leaves every tenant before or after each migration, and a rerun finishes the job).
//
// The test holds a lock on a table of tenant_c2 that migration 0001 (or the no-transaction 0003)
// needs; with --concurrency 1 and tenants taken in id order, mtctl has then finished c0 and c1,
// waits inside c2's migration, and has not started c3..c5. The test sees that wait in
// pg_stat_activity before it injects the fault, so every count below is exact.
#include "support/blocked_backend.hpp"
#include "support/daemon.hpp"
#include "support/project.hpp"
#include "support/wait.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>

using namespace mt::test;
using nlohmann::json;

namespace {

// How the test finds mtctl's backend in pg_stat_activity.
const std::string kApplication = "mtctl-fault-test";
const std::vector<std::string> kTenants = {"c0", "c1", "c2", "c3", "c4", "c5"};
const std::string kNoteStatement = "ALTER TABLE accounts ADD COLUMN note";
const std::string kIndexStatement = "CREATE INDEX CONCURRENTLY IF NOT EXISTS events_kind_idx";
const std::vector<std::string> kTransactional = {"0000_log", "0001_note", "0002_step"};
const std::vector<std::string> kWithIndex = {"0000_log", "0001_note", "0002_step", "0003_kind_idx"};

std::string schema_of(const std::string& id) { return "tenant_" + id; }

// Every tenant already has accounts and events tables (the application's data) when the run
// starts, so the test can lock one in tenant_c2 before mtctl gets there: accounts stops 0001,
// events stops 0003. Each migration leaves a row in log: a migration applied twice breaks log's
// primary key, one applied in part shows as a row without its record or the reverse.
void fleet(Project& p, bool with_index) {
    p.set("database.application_name", kApplication);
    // The test's lock, not lock_timeout, ends mtctl's wait: the fault comes first.
    p.set("migrations.lock_timeout", "10m");
    // One transaction per migration: the fault lands between a tenant's committed migrations and
    // its next one, the case with the most states to get right (per-tenant, the default, has two).
    p.set("migrations.transaction", "per-migration");
    p.migration("0000_log",
                "CREATE TABLE log (step int PRIMARY KEY);\n--> statement-breakpoint\nINSERT INTO log VALUES (0);");
    p.migration("0001_note",
                kNoteStatement + " text;\n--> statement-breakpoint\nINSERT INTO log VALUES (1);");
    p.migration("0002_step", "INSERT INTO log VALUES (2);");
    if (with_index) p.migration("0003_kind_idx", "-- mt:no-transaction\n" + kIndexStatement + " ON events (kind);");
    p.tenants(kTenants);
    for (const auto& id : kTenants)
        p.exec("CREATE TABLE " + schema_of(id) + ".accounts (id int PRIMARY KEY); INSERT INTO " + schema_of(id) +
               ".accounts VALUES (1); CREATE TABLE " + schema_of(id) + ".events (id int PRIMARY KEY, kind text);");
}

// What the tenant's schema says was applied, migration by migration, next to what its tracking
// table records. Objects: 0000 = log exists with row 0; 0001 = column note and row 1; 0002 = row 2;
// 0003 = a valid events_kind_idx.
struct TenantState {
    bool tracking_table = false;
    std::vector<std::string> recorded;
    std::vector<std::string> by_objects;
    std::string index;  // "", "valid" or "invalid"
};

TenantState state_of(Observer& db, const std::string& id) {
    const std::string schema = schema_of(id);
    TenantState s;
    s.tracking_table = !db.query("SELECT to_regclass($1)", schema + ".__drizzle_migrations")[0][0].is_null();
    if (s.tracking_table)
        for (const auto& row : db.query("SELECT name FROM " + schema + ".__drizzle_migrations ORDER BY id"))
            s.recorded.push_back(row[0].as<std::string>());
    const bool log = !db.query("SELECT to_regclass($1)", schema + ".log")[0][0].is_null();
    std::vector<int> steps;
    if (log)
        for (const auto& row : db.query("SELECT step FROM " + schema + ".log ORDER BY step"))
            steps.push_back(row[0].as<int>());
    const bool note = !db.query("SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND "
                                "table_name = 'accounts' AND column_name = 'note'",
                                schema)
                           .empty();
    const auto idx = db.query(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'events_kind_idx'",
        schema);
    if (!idx.empty()) s.index = idx[0][0].as<bool>() ? "valid" : "invalid";
    auto has = [&](int step) { return std::find(steps.begin(), steps.end(), step) != steps.end(); };
    if (log && has(0)) s.by_objects.push_back("0000_log");
    if (note && has(1)) s.by_objects.push_back("0001_note");
    if (has(2)) s.by_objects.push_back("0002_step");
    if (s.index == "valid") s.by_objects.push_back("0003_kind_idx");
    // Rows that no applied migration explains (a half-applied one) make the two lists differ.
    if (steps.size() != (log && has(0) ? 1u : 0u) + (note && has(1)) + has(2)) s.by_objects.push_back("<stray log rows>");
    if (note && !has(1)) s.by_objects.push_back("<note column without its log row>");
    return s;
}

// Exactly the first `n` of `names` applied, by record and by objects; an untouched tenant
// (n == -1) has no tracking table at all.
void check_tenant(Observer& db, const std::string& id, int n, const std::vector<std::string>& names) {
    const auto s = state_of(db, id);
    INFO("tenant " << id);
    if (n < 0) {
        CHECK_FALSE(s.tracking_table);
        CHECK(s.by_objects.empty());
        return;
    }
    const std::vector<std::string> expected(names.begin(), names.begin() + n);
    CHECK(s.tracking_table);
    CHECK(s.recorded == expected);
    CHECK(s.by_objects == expected);
}

// c0, c1 done; c2 stopped just before `next` (its index in names); c3..c5 untouched.
void check_mid_run(Observer& db, int next, const std::vector<std::string>& names) {
    check_tenant(db, "c0", static_cast<int>(names.size()), names);
    check_tenant(db, "c1", static_cast<int>(names.size()), names);
    check_tenant(db, "c2", next, names);
    for (const char* id : {"c3", "c4", "c5"}) check_tenant(db, id, -1, names);
}

void check_all_done(Observer& db, const std::vector<std::string>& names) {
    for (const auto& id : kTenants) check_tenant(db, id, static_cast<int>(names.size()), names);
}

Daemon start_migrate(const Project& p, const std::string& flags = "") {
    return Daemon(shell_quote(MT_MTCTL) + " --no-color --no-progress --json migrate --all --concurrency 1" + flags,
                  p.dir());
}

// A PrivateServer with a database "app", for the tests that crash it. Test servers run with
// synchronous_commit off, which lets a crash lose the last commits; here a commit must survive
// the crash the test injects, as on a production server.
std::string app_database(const PrivateServer& server) {
    pqxx::connection admin(server.admin_url());
    pqxx::nontransaction tx(admin);
    tx.exec0("CREATE DATABASE app");
    tx.exec0("ALTER DATABASE app SET synchronous_commit = on");
    return server.url_for("app");
}

json document(Daemon& run) {
    INFO("stdout: " << run.out() << "\nstderr: " << run.err());
    REQUIRE_FALSE(run.out().empty());
    return json::parse(run.out());
}

json tenant_entry(const json& doc, const std::string& id) {
    for (const auto& t : doc["tenants"])
        if (t["id"] == id) return t;
    FAIL("tenant " << id << " is not in the report");
    return {};
}

// A rerun after the fault applies exactly what was missing and exits 0.
void rerun_completes(const Project& p, Observer& db, int missing, const std::vector<std::string>& names) {
    const auto rerun = p.mtctl("--json migrate --all");
    INFO("rerun: exit " << rerun.exit_code << "\nstdout: " << rerun.out << "\nstderr: " << rerun.err);
    REQUIRE(rerun.exit_code == 0);
    const auto doc = json::parse(rerun.out);
    CHECK(doc["summary"]["migrations_applied"] == missing);
    CHECK(doc["summary"]["failed"] == 0);
    check_all_done(db, names);
}

}  // namespace

TEST_CASE("kill -9 of mtctl while a migration waits inside its transaction leaves every tenant before or after it",
          "[migrate][crash][pg][serial]") {
    Project p;
    fleet(p, false);
    Observer db(p.url());
    HeldTableLock app(p.url(), "tenant_c2", "accounts", "ACCESS SHARE");
    Daemon run = start_migrate(p);
    const int backend = db.wait_for_blocked(run, kApplication, app.pid(), kNoteStatement);

    check_mid_run(db, 1, kTransactional);
    // The tenant's migration lock is a transaction-level one held by the waiting backend, and the
    // locks of c0 and c1 (same connection) are gone.
    CHECK(db.tenant_locks_of(backend) == std::pair<std::string, int>{"tenant_c2", 1});

    CHECK(run.stop(SIGKILL) == 128 + SIGKILL);
    // Let the orphaned backend take the lock, finish its statement, find its client gone and roll
    // back: the worst moment for a transaction that was about to commit.
    app.release();
    db.wait_until_gone(backend);
    check_mid_run(db, 1, kTransactional);

    rerun_completes(p, db, 2 + 3 * 3, kTransactional);
}

TEST_CASE("a PostgreSQL crash and restart while a migration waits inside its transaction is retried to completion",
          "[migrate][crash][pg][serial]") {
    PrivateServer server;
    Project p(app_database(server));
    // Elapsed time matters here and only here: the server must be back before the retries run out.
    // The budget (40 attempts, 100 ms doubling to at most 500 ms: about 19 s, more with connect's
    // own retries) is ten times a crash recovery plus start on a busy 2-core machine (under 2 s).
    p.set("plugin.retry-exponential.max_attempts", "40");
    p.set("plugin.retry-exponential.initial_delay", "100ms");
    p.set("plugin.retry-exponential.max_delay", "500ms");
    fleet(p, false);
    std::optional<Observer> db(std::in_place, p.url());
    HeldTableLock app(p.url(), "tenant_c2", "accounts", "ACCESS SHARE");
    Daemon run = start_migrate(p);
    db->wait_for_blocked(run, kApplication, app.pid(), kNoteStatement);
    check_mid_run(*db, 1, kTransactional);

    server.crash();
    app.release();  // its connection died with the server, and the lock with it
    server.start();
    REQUIRE(run.wait() == 0);
    const auto doc = document(run);
    CHECK(doc["summary"]["migrations_applied"] == 6 * 3);
    CHECK(doc["summary"]["failed"] == 0);
    // c2's first migration counted once, its other two after the reconnect.
    CHECK(tenant_entry(doc, "c2")["migrations"] == json(kTransactional));
    db.emplace(p.url());
    check_all_done(*db, kTransactional);

    rerun_completes(p, *db, 0, kTransactional);
}

TEST_CASE("a PostgreSQL crash inside a migration with retries off and --fail-fast fails that tenant with exit 1",
          "[migrate][crash][pg][serial]") {
    PrivateServer server;
    Project p(app_database(server));
    p.set("plugin.retry-exponential.max_attempts", "1");
    fleet(p, false);
    std::optional<Observer> db(std::in_place, p.url());
    HeldTableLock app(p.url(), "tenant_c2", "accounts", "ACCESS SHARE");
    Daemon run = start_migrate(p, " --fail-fast");
    db->wait_for_blocked(run, kApplication, app.pid(), kNoteStatement);

    server.crash();
    app.release();
    // Whether mtctl notices before or after the restart, c2's one attempt is lost and the rest is skipped.
    server.start();
    REQUIRE(run.wait() == 1);
    const auto doc = document(run);
    CHECK(doc["summary"]["succeeded"] == 2);
    CHECK(doc["summary"]["failed"] == 1);
    CHECK(doc["summary"]["skipped"] == 3);
    // c0 and c1's three each, and c2's 0000_log, committed before its failure.
    CHECK(doc["summary"]["migrations_applied"] == 2 * 3 + 1);
    const auto c2 = tenant_entry(doc, "c2");
    CHECK(c2["outcome"] == "failed");
    CHECK(c2["failed_migration"] == "0001_note");
    CHECK(c2["migrations"] == json({"0000_log"}));
    // What follows "FAIL c2 …: " is libpqxx 6.4's text for a connection that broke mid-query
    // ("Could not obtain client encoding: not connected."): the server's own message is lost.
    CHECK(run.err().find("FAIL c2 (tenant_c2) at 0001_note: ") != std::string::npos);
    db.emplace(p.url());
    check_mid_run(*db, 1, kTransactional);

    rerun_completes(p, *db, 2 + 3 * 3, kTransactional);
}

TEST_CASE("pg_terminate_backend of mtctl's backend inside a migration is retried on a new connection",
          "[migrate][crash][pg][serial]") {
    Project p;
    fleet(p, false);
    Observer db(p.url());
    HeldTableLock app(p.url(), "tenant_c2", "accounts", "ACCESS SHARE");
    Daemon run = start_migrate(p);
    const int first = db.wait_for_blocked(run, kApplication, app.pid(), kNoteStatement);

    REQUIRE(db.query("SELECT pg_terminate_backend($1)", first)[0][0].as<bool>());
    // The retry lands in the same migration on another backend, and nothing moved meanwhile.
    const int second = db.wait_for_blocked(run, kApplication, app.pid(), kNoteStatement, first);
    CHECK(second != first);
    check_mid_run(db, 1, kTransactional);

    app.release();
    REQUIRE(run.wait() == 0);
    const auto doc = document(run);
    CHECK(doc["summary"]["migrations_applied"] == 6 * 3);
    CHECK(tenant_entry(doc, "c2")["migrations"] == json(kTransactional));
    check_all_done(db, kTransactional);
    rerun_completes(p, db, 0, kTransactional);
}

TEST_CASE("pg_terminate_backend inside a migration with retries off fails that tenant with exit 1 and no other",
          "[migrate][crash][pg][serial]") {
    Project p;
    p.set("plugin.retry-exponential.max_attempts", "1");
    fleet(p, false);
    Observer db(p.url());
    HeldTableLock app(p.url(), "tenant_c2", "accounts", "ACCESS SHARE");
    Daemon run = start_migrate(p);
    const int backend = db.wait_for_blocked(run, kApplication, app.pid(), kNoteStatement);

    REQUIRE(db.query("SELECT pg_terminate_backend($1)", backend)[0][0].as<bool>());
    REQUIRE(run.wait() == 1);
    const auto doc = document(run);
    CHECK(doc["summary"]["succeeded"] == 5);
    CHECK(doc["summary"]["failed"] == 1);
    CHECK(doc["summary"]["migrations_applied"] == 5 * 3 + 1);  // c2's 0000_log counts: it committed
    const auto c2 = tenant_entry(doc, "c2");
    CHECK(c2["outcome"] == "failed");
    CHECK(c2["failed_migration"] == "0001_note");
    CHECK(c2["migrations"] == json({"0000_log"}));
    // The text after the prefix is libpqxx 6.4's (see the crash test above).
    CHECK(run.err().find("FAIL c2 (tenant_c2) at 0001_note: ") != std::string::npos);
    for (const char* id : {"c0", "c1", "c3", "c4", "c5"}) check_tenant(db, id, 3, kTransactional);
    check_tenant(db, "c2", 1, kTransactional);

    app.release();
    rerun_completes(p, db, 2, kTransactional);
}

TEST_CASE("a -- mt:no-transaction migration terminated inside CREATE INDEX CONCURRENTLY is recorded only once valid",
          "[migrate][crash][pg][serial]") {
    Project p;
    fleet(p, true);
    Observer db(p.url());
    // An open write transaction on the table: CREATE INDEX CONCURRENTLY has created its (invalid)
    // index by then and waits for that transaction to end before it builds it.
    HeldTableLock app(p.url(), "tenant_c2", "events", "ROW EXCLUSIVE");
    Daemon run = start_migrate(p);
    const int first = db.wait_for_blocked(run, kApplication, app.pid(), kIndexStatement);

    check_mid_run(db, 3, kWithIndex);
    CHECK(state_of(db, "c2").index == "invalid");
    // Outside any transaction only the session-level migration lock can be held: c2's, not c0's
    // or c1's (served before on the same connection).
    CHECK(db.tenant_locks_of(first) == std::pair<std::string, int>{"tenant_c2", 1});

    // Cancelled, it leaves its invalid index behind, which IF NOT EXISTS would skip on the retry.
    // The retry, on another connection, drops it first (and waits for the same transaction).
    REQUIRE(db.query("SELECT pg_terminate_backend($1)", first)[0][0].as<bool>());
    const int second = db.wait_for_blocked(run, kApplication, app.pid(), "DROP INDEX CONCURRENTLY IF EXISTS", first);
    CHECK(db.tenant_locks_of(second) == std::pair<std::string, int>{"tenant_c2", 1});
    check_mid_run(db, 3, kWithIndex);

    app.release();
    REQUIRE(run.wait() == 0);
    CHECK(run.err().find("[warning] tenant c2: dropping invalid index \"tenant_c2\".\"events_kind_idx\" left by "
                         "an interrupted run of 0003_kind_idx.sql") != std::string::npos);
    const auto doc = document(run);
    CHECK(doc["summary"]["migrations_applied"] == 6 * 4);
    CHECK(tenant_entry(doc, "c2")["migrations"] == json(kWithIndex));
    check_all_done(db, kWithIndex);
    rerun_completes(p, db, 0, kWithIndex);
}

TEST_CASE("kill -9 of mtctl inside a -- mt:no-transaction migration leaves it unrecorded until a rerun finishes it",
          "[migrate][crash][pg][serial]") {
    Project p;
    fleet(p, true);
    Observer db(p.url());
    HeldTableLock app(p.url(), "tenant_c2", "events", "ROW EXCLUSIVE");
    Daemon run = start_migrate(p);
    const int backend = db.wait_for_blocked(run, kApplication, app.pid(), kIndexStatement);

    CHECK(run.stop(SIGKILL) == 128 + SIGKILL);
    // The orphaned backend goes on with the index once the lock is gone; nobody is left to record it.
    app.release();
    db.wait_until_gone(backend);
    const auto c2 = state_of(db, "c2");
    CHECK(c2.recorded == std::vector<std::string>(kWithIndex.begin(), kWithIndex.begin() + 3));
    for (const char* id : {"c0", "c1"}) check_tenant(db, id, 4, kWithIndex);
    for (const char* id : {"c3", "c4", "c5"}) check_tenant(db, id, -1, kWithIndex);

    // The file is idempotent (IF NOT EXISTS), as the engine asks of such files: the rerun records it once.
    rerun_completes(p, db, 1 + 3 * 4, kWithIndex);
}
