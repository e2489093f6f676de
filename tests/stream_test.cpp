// Streamed output of the fleet-wide commands (issue 14, item 5): status, sync, diff and migrate
// write each tenant's row or JSON element as soon as it is final, and --json stays one document
// (schema_version, then the tenants, then the summary). Order: discovery order (migrate hands a
// tenant on once it and every tenant before it are final); diff by group, each group's tenants in
// discovery order.
#include "support/blocked_backend.hpp"
#include "support/daemon.hpp"
#include "support/mtctl_json.hpp"
#include "support/project.hpp"
#include "support/wait.hpp"

#include <mt/tracking/status.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <vector>

using namespace mt::test;
using nlohmann::json;

namespace {

const std::string kStreamApplication = "mtctl-stream-test";

std::string tenant_id(int n) {
    char id[8];
    std::snprintf(id, sizeof id, "t%02d", n);
    return id;
}

// 30 tenants t01…t30, discovered in descending order (so that discovery order is not sorted
// order), all migrated; then t05 loses its schema, t10 gets a record of a file that is gone (an
// orphan) and t15 loses the record of 0002_seed (behind).
void thirty_tenants(Project& p) {
    users_posts_seed_migrations(p);
    p.set("plugin.discovery-sql.query", "SELECT id FROM public.tenants ORDER BY id DESC");
    std::vector<std::string> ids;
    for (int n = 1; n <= 30; ++n) ids.push_back(tenant_id(n));
    p.tenants(ids);
    run_json(p, "migrate --all");
    p.exec("DROP SCHEMA tenant_t05 CASCADE");
    p.exec("INSERT INTO tenant_t10.__drizzle_migrations (name) VALUES ('0009_gone')");
    p.exec("DELETE FROM tenant_t15.__drizzle_migrations WHERE name = '0002_seed'");
}

// Discovery order: t30 down to t01.
std::vector<std::string> discovery_order() {
    std::vector<std::string> ids;
    for (int n = 30; n >= 1; --n) ids.push_back(tenant_id(n));
    return ids;
}

std::vector<std::string> element_ids(const json& elements) {
    std::vector<std::string> ids;
    for (const auto& e : elements) ids.push_back(e["id"].get<std::string>());
    return ids;
}

json element_of(const json& doc, const std::string& id) {
    for (const auto& t : doc["tenants"])
        if (t["id"] == id) return t;
    FAIL("tenant " << id << " is not in the document");
    return {};
}

// The raw text of a streamed document: schema_version is its first key.
void starts_with_schema_version(const std::string& text) {
    INFO(text.substr(0, 200));
    CHECK(text.rfind("{\n  \"schema_version\": 1,\n", 0) == 0);
}

}  // namespace

TEST_CASE("status --json streams one document: every tenant in discovery order, then the summary", "[stream][pg]") {
    Project p;
    thirty_tenants(p);
    const auto r = p.mtctl("--json status");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    starts_with_schema_version(r.out);
    const auto doc = json::parse(r.out);
    CHECK(doc["schema_version"] == 1);
    CHECK(element_ids(doc["tenants"]) == discovery_order());
    CHECK(element_of(doc, "t05")["state"] == "missing-schema");
    CHECK(element_of(doc, "t10")["orphans"] == 1);
    CHECK(element_of(doc, "t10")["orphan_records"][0]["name"] == "0009_gone");
    CHECK(element_of(doc, "t15")["state"] == "behind");
    CHECK(element_of(doc, "t15")["pending_migrations"] == json::array({"0002_seed"}));
    CHECK(element_of(doc, "t30")["applied"] == 3);
    CHECK(doc["summary"]["total"] == 30);
    CHECK(doc["summary"]["migrations"] == 3);
    CHECK(doc["summary"]["up-to-date"] == 28);
    CHECK(doc["summary"]["behind"] == 1);
    CHECK(doc["summary"]["missing-schema"] == 1);
    CHECK(doc["summary"]["no-table"] == 0);

    // The table: columns sized before the first row, rows in discovery order.
    const auto text = p.mtctl("--no-color status");
    INFO(text.out);
    REQUIRE(text.exit_code == 0);
    CHECK(text.out.rfind("TENANT  SCHEMA      FORMAT       APPLIED  PENDING  ORPHANS  STATE\n"
                         "t30     tenant_t30  name         3        0        0        up-to-date\n"
                         "t29     tenant_t29  name         3        0        0        up-to-date\n",
                         0) == 0);
    CHECK(text.out.find("t05     tenant_t05  name         0        3        0        missing-schema\n") !=
          std::string::npos);
    CHECK(text.out.find("t06 ") < text.out.find("t05 "));
    CHECK(text.out.find("30 tenants, 3 migrations: 1 behind, 1 missing-schema, 0 no-table, 0 unknown-format, "
                        "28 up-to-date\n") != std::string::npos);
}

TEST_CASE("sync --json streams one document in discovery order, with a failed repair among the tenants",
          "[stream][sync][pg]") {
    Project p;
    thirty_tenants(p);
    const auto r = p.mtctl("--json sync --status");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    starts_with_schema_version(r.out);
    const auto status = json::parse(r.out);
    CHECK(status["command"] == "sync");
    CHECK(status["mode"]["mark_missing"] == false);
    CHECK(element_ids(status["tenants"]) == discovery_order());
    CHECK(element_of(status, "t05")["missing"].size() == 3);
    CHECK(element_of(status, "t10")["orphans"][0]["name"] == "0009_gone");
    CHECK(element_of(status, "t15")["missing"] == json::array({"0002_seed"}));
    CHECK(status["summary"]["total"] == 30);
    CHECK(status["summary"]["in_sync"] == 27);
    CHECK(status["summary"]["out_of_sync"] == 3);
    CHECK(status["summary"]["missing"] == 4);
    CHECK(status["summary"]["orphans"] == 1);

    // A repair: t05 cannot be repaired (no schema), t15 is; the order stays discovery order.
    const auto fixed = run_json(p, "sync --mark-missing", 1);
    CHECK(element_ids(fixed["tenants"]) == discovery_order());
    CHECK(element_of(fixed, "t05")["outcome"] == "failed");
    CHECK(element_of(fixed, "t05")["error"].get<std::string>().find("mtctl tenant create --id t05") !=
          std::string::npos);
    CHECK(element_of(fixed, "t15")["outcome"] == "repaired");
    CHECK(element_of(fixed, "t15")["marked"] == json::array({"0002_seed"}));
    CHECK(fixed["summary"]["failed"] == 1);
    CHECK(fixed["summary"]["repaired"] == 1);
    CHECK(fixed["summary"]["marked"] == 1);

    // The table: a row per tenant with something to say, its details under it.
    const auto text = p.mtctl("--no-color sync");
    INFO(text.out << text.err);
    REQUIRE(text.exit_code == 0);
    CHECK(text.out.find("TENANT  SCHEMA      FORMAT       MISSING  ORPHANS  EDITED  RENAMED  OUTCOME\n"
                        "t10     tenant_t10  name         0        1        0       0        out-of-sync\n"
                        "  orphan:  0009_gone\n"
                        "t05     tenant_t05  name         3        0        0       0        out-of-sync\n"
                        "  missing: 0000_users, 0001_posts, 0002_seed\n") != std::string::npos);
}

TEST_CASE("migrate --json streams one document in discovery order, with failed and migrated tenants among them",
          "[stream][migrate][pg]") {
    Project p;
    thirty_tenants(p);
    const auto doc = run_json(p, "migrate --all", 1);
    CHECK(element_ids(doc["tenants"]) == discovery_order());
    CHECK(element_of(doc, "t05")["outcome"] == "failed");
    CHECK(element_of(doc, "t15")["outcome"] == "migrated");
    CHECK(element_of(doc, "t15")["migrations"] == json::array({"0002_seed"}));
    CHECK(element_of(doc, "t30")["outcome"] == "up-to-date");
    CHECK(doc["command"] == "migrate");
    CHECK(doc["dry_run"] == false);
    CHECK(doc["summary"]["total"] == 30);
    CHECK(doc["summary"]["succeeded"] == 29);
    CHECK(doc["summary"]["failed"] == 1);
    CHECK(doc["summary"]["migrations_applied"] == 1);

    // Nothing pending and --mark-applied: the same document shape, every tenant once.
    p.exec("DELETE FROM tenant_t20.__drizzle_migrations WHERE name = '0002_seed'");
    const auto raw = p.mtctl("--json migrate --all --mark-applied");
    INFO(raw.out << raw.err);
    REQUIRE(raw.exit_code == 1);
    starts_with_schema_version(raw.out);
    const auto marked = json::parse(raw.out);
    CHECK(element_ids(marked["tenants"]) == discovery_order());
    CHECK(element_of(marked, "t20")["outcome"] == "migrated");
    CHECK(element_of(marked, "t20")["migrations"] == json::array({"0002_seed"}));
    CHECK(marked["summary"]["migrations_applied"] == 1);
    CHECK(p.scalar("SELECT count(*) FROM tenant_t20.__drizzle_migrations") == "3");
    // The run ledger got every tenant's outcome although no list of them was kept.
    const auto run = marked["summary"]["run_id"].get<int64_t>();
    CHECK(p.scalar("SELECT string_agg(outcome || ':' || n, ',' ORDER BY outcome) FROM (SELECT outcome, count(*) n FROM "
                   "public.mt_run_tenants WHERE run_id = " + std::to_string(run) + " GROUP BY outcome) x") ==
          "failed:1,migrated:1,up-to-date:28");

    // A dry run builds its preview from the streamed results.
    p.exec("DELETE FROM tenant_t25.__drizzle_migrations WHERE name = '0002_seed'");
    const auto plan = run_json(p, "migrate --all --dry-run", 1);
    CHECK(element_of(plan, "t25")["outcome"] == "would-migrate");
    CHECK(plan["preview"]["tenant"] == "t25");
    CHECK(plan["preview"]["other_tenants"] == 0);
}

TEST_CASE("diff --json lists each group's tenants in discovery order and the tenants without a schema",
          "[stream][diff][pg]") {
    Project p;
    thirty_tenants(p);
    p.exec("CREATE TABLE tenant_t20.extra (id int)");
    p.exec("CREATE TABLE tenant_t03.extra (id int)");
    const auto r = p.mtctl("--json diff");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 1);
    starts_with_schema_version(r.out);
    const auto doc = json::parse(r.out);
    CHECK(doc["identical"] == false);
    CHECK(doc["reference"]["id"] == "t30");
    REQUIRE(doc["groups"].size() == 2);
    auto reference = discovery_order();
    std::erase_if(reference, [](const std::string& id) { return id == "t20" || id == "t03" || id == "t05"; });
    CHECK(doc["groups"][0]["reference"] == true);
    CHECK(doc["groups"][0]["size"] == 27);
    CHECK(doc["groups"][0]["tenants"] == json(reference));
    CHECK(doc["groups"][1]["tenants"] == json::array({"t20", "t03"}));
    CHECK(doc["groups"][1]["size"] == 2);
    CHECK(doc["groups"][1]["differences"][0]["table"] == "extra");
    CHECK(doc["groups"][1]["differences"][0]["change"] == "extra");
    REQUIRE(doc["missing_schemas"].size() == 1);
    CHECK(doc["missing_schemas"][0]["id"] == "t05");
    CHECK(doc["summary"]["tenants"] == 30);
    CHECK(doc["summary"]["groups"] == 2);
    CHECK(doc["summary"]["drifted"] == 3);
    CHECK(doc["summary"]["missing_schemas"] == 1);
}

TEST_CASE("migrate prints the tenants it finished while a later one still waits for a lock", "[stream][migrate][pg]") {
    Project p;
    p.set("database.application_name", kStreamApplication);
    p.set("migrations.lock_timeout", "60s");
    p.migration("0000_accounts", "CREATE TABLE accounts (id int);");
    p.tenants({"a", "b", "c"});
    run_json(p, "migrate --all");
    p.migration("0001_note", "ALTER TABLE accounts ADD COLUMN note text;");
    HeldTableLock app(p.url(), "tenant_c", "accounts", "ACCESS SHARE");
    Daemon run(shell_quote(MT_MTCTL) + " --no-color --no-progress --json migrate --all --concurrency 1", p.dir());
    Observer db(p.url());
    db.wait_for_blocked(run, kStreamApplication, app.pid(), "ALTER TABLE accounts ADD COLUMN note");
    // c's migration waits: a's and b's elements are on stdout already, the document is still open.
    wait_until([&] { return run.out().find("\"id\": \"b\"") != std::string::npos; }, "b's element on stdout");
    const std::string partial = run.out();
    INFO(partial);
    starts_with_schema_version(partial);
    CHECK(partial.find("\"id\": \"a\"") != std::string::npos);
    CHECK(partial.find("\"id\": \"c\"") == std::string::npos);
    CHECK(partial.find("\"summary\"") == std::string::npos);
    app.release();
    REQUIRE(run.wait() == 0);
    const auto doc = json::parse(run.out());
    CHECK(element_ids(doc["tenants"]) == std::vector<std::string>{"a", "b", "c"});
    CHECK(doc["summary"]["migrations_applied"] == 3);
}

TEST_CASE("status prints the first batch of tenants while a tenant of the next batch waits for a lock",
          "[stream][pg]") {
    // One tenant more than a batch: the last one is read in the second batch.
    const size_t n = mt::kStatusBatch + 1;
    char last[8], before_last[8];
    std::snprintf(last, sizeof last, "t%04zu", n);
    std::snprintf(before_last, sizeof before_last, "t%04zu", n - 1);
    Project p;
    p.set("database.application_name", kStreamApplication);
    p.migration("0000_accounts", "CREATE TABLE accounts (id int);");
    p.exec("CREATE TABLE public.tenants (id text PRIMARY KEY)");
    p.exec("DO $$ BEGIN FOR n IN 1.." + std::to_string(n) + " LOOP "
           "EXECUTE format('CREATE SCHEMA %I', 'tenant_t' || lpad(n::text, 4, '0')); "
           "EXECUTE format('CREATE TABLE %I.__drizzle_migrations (id serial PRIMARY KEY, name varchar(255) NOT NULL "
           "UNIQUE, applied_at timestamptz DEFAULT now(), hash text)', 'tenant_t' || lpad(n::text, 4, '0')); "
           "INSERT INTO public.tenants VALUES ('t' || lpad(n::text, 4, '0')); END LOOP; END $$");
    for (const std::string mode : {"--json status", "status"}) {
        INFO(mode);
        HeldTableLock app(p.url(), std::string("tenant_") + last, "__drizzle_migrations", "ACCESS EXCLUSIVE");
        Daemon run(shell_quote(MT_MTCTL) + " --no-color --no-progress " + mode, p.dir());
        Observer db(p.url());
        db.wait_for_blocked(run, kStreamApplication, app.pid(), "__drizzle_migrations");
        // The first batch is on stdout (a pipe, not a terminal) while the second waits.
        const std::string marker = mode == "status" ? std::string(before_last) + "   tenant_" + before_last
                                                    : std::string("\"id\": \"") + before_last + "\"";
        wait_until([&] { return run.out().find(marker) != std::string::npos; }, "the first batch on stdout");
        const std::string partial = run.out();
        CHECK(partial.find("t0001") != std::string::npos);
        CHECK(partial.find(last) == std::string::npos);
        app.release();
        REQUIRE(run.wait() == 0);
        if (mode == "status") {
            CHECK(run.out().find(std::string(last) + "   tenant_" + last +
                                 "  name         0        1        0        behind\n") != std::string::npos);
            CHECK(run.out().find(std::to_string(n) + " tenants, 1 migrations: " + std::to_string(n) + " behind") !=
                  std::string::npos);
        } else {
            const auto doc = json::parse(run.out());
            CHECK(doc["tenants"].size() == n);
            CHECK(doc["tenants"][n - 1]["id"] == last);
            CHECK(doc["summary"]["behind"] == n);
        }
        // This run's backends are gone before the next run looks for a blocked one.
        wait_until([&] { return p.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                                         kStreamApplication + "'") == "0"; },
                   "mtctl's backends to end");
    }
}
