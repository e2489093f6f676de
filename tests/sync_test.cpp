// mtctl sync (SPEC §7, docs/repair.md): missing, orphan and edited migrations in each tracking
// format; --mark-missing and --clean-orphans alone and together, under the migrate lock; --dry-run.
#include "support/mtctl_json.hpp"
#include "support/project.hpp"
#include "support/wait.hpp"

#include <mt/tracking/migration_folder.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

using namespace mt::test;
using nlohmann::json;

namespace {

const std::string kUsers = "CREATE TABLE users (id serial PRIMARY KEY, email text);";
const std::string kPosts = "CREATE TABLE posts (id serial PRIMARY KEY, user_id int REFERENCES users(id));";
const std::string kSyncSeed = "INSERT INTO users (email) VALUES ('x@example.com');";

void three_migrations(const Project& p) {
    p.migration("0000_users", kUsers);
    p.migration("0001_posts", kPosts);
    p.migration("0002_seed", kSyncSeed);
}

// The same three as a drizzle-kit folder (meta/_journal.json with `when`).
void three_journal_migrations(const Project& p) {
    write_file(p.dir() / "drizzle/tenant/meta/_journal.json",
               R"({"version":"7","dialect":"postgresql","entries":[)"
               R"({"idx":0,"version":"7","when":1700000000000,"tag":"0000_users","breakpoints":true},)"
               R"({"idx":1,"version":"7","when":1700000001000,"tag":"0001_posts","breakpoints":true},)"
               R"({"idx":2,"version":"7","when":1700000002000,"tag":"0002_seed","breakpoints":true}]})");
    three_migrations(p);
}

// Tracking tables exactly as the reference tools create them (no mtenant extra columns).
const std::string kMultitenantName =
    "CREATE TABLE tenant_a.__drizzle_migrations (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, "
    "applied_at timestamptz DEFAULT now())";
const std::string kMultitenantHash =
    "CREATE TABLE tenant_a.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL UNIQUE, "
    "created_at timestamptz DEFAULT now())";
const std::string kDrizzleOrm =
    "CREATE TABLE tenant_a.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint)";

std::string rows(const Project& p, const std::string& schema = "tenant_a") {
    return p.scalar("SELECT string_agg(coalesce(to_jsonb(t)->>'name', to_jsonb(t)->>'migration_name', '-') || ':' || "
                    "coalesce(to_jsonb(t)->>'hash', '-'), "
                    "',' ORDER BY id) FROM " + schema + ".__drizzle_migrations t");
}

std::string hash_of(const Project& p, const std::string& name) {
    return mt::sha256_hex(read_file(p.dir() / "drizzle/tenant" / (name + ".sql")));
}

void psql(const Project& p, const std::string& sql) {
    const auto r = run("psql -X -q -v ON_ERROR_STOP=1 " + shell_quote(p.url()) + " -c " + shell_quote(sql));
    INFO("psql: " << r.err);
    REQUIRE(r.exit_code == 0);
}

}  // namespace

TEST_CASE("sync --status on an untouched fleet: every tenant in sync, exit 0", "[sync][pg]") {
    Project p;
    three_migrations(p);
    p.tenants({"a", "b"});
    run_json(p, "migrate --all");
    const auto doc = run_json(p, "sync");
    CHECK(doc["summary"]["total"] == 2);
    CHECK(doc["summary"]["in_sync"] == 2);
    CHECK(doc["summary"]["out_of_sync"] == 0);
    CHECK(doc["tenants"][0]["outcome"] == "in-sync");
    CHECK(doc["tenants"][0]["edits_detectable"] == true);
    CHECK(run_json(p, "sync --status --tenant b")["tenants"].size() == 1);
    // Human output names the outcome and exits 0.
    const auto text = p.mtctl("sync");
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("2 in sync") != std::string::npos);
}

TEST_CASE("sync: a renamed file in a name table is one missing migration and one orphan", "[sync][pg]") {
    Project p;
    three_migrations(p);
    p.tenants({"a"});
    p.exec(kMultitenantName);
    run_json(p, "migrate --all");
    std::filesystem::rename(p.dir() / "drizzle/tenant/0001_posts.sql", p.dir() / "drizzle/tenant/0001_articles.sql");
    const auto doc = run_json(p, "sync");  // drift alone exits 0: the JSON says what is out of sync
    const auto t = tenant_of(doc, "a");
    CHECK(t["in_sync"] == false);
    CHECK(t["outcome"] == "out-of-sync");
    CHECK(t["missing"] == json::array({"0001_articles"}));
    REQUIRE(t["orphans"].size() == 1);
    CHECK(t["orphans"][0]["name"] == "0001_posts");
    CHECK(t["edited"].empty());
    // Repair both sides at once: the tracking table then matches the folder.
    const auto fixed = run_json(p, "sync --mark-missing --clean-orphans");
    CHECK(tenant_of(fixed, "a")["outcome"] == "repaired");
    CHECK(tenant_of(fixed, "a")["marked"] == json::array({"0001_articles"}));
    CHECK(rows(p) == "0000_users:-,0002_seed:-,0001_articles:-");
    CHECK(tenant_of(run_json(p, "sync"), "a")["in_sync"] == true);
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 0);
}

TEST_CASE("sync: a renamed file with unchanged content stays applied where the table keeps hashes", "[sync][pg]") {
    // Applied for mtctl (by hash). drizzle-multitenant reads a table with a `name` column by name,
    // so there sync reports the rename and --mark-missing re-records it under the new name; hash
    // tables (name in migration_name) it reads by hash, as mtctl does: nothing to report.
    const auto format = GENERATE(as<std::string>{}, "name", "hash", "drizzle-kit");
    Project p;
    three_migrations(p);
    p.set("migrations.default_format", format);
    p.tenants({"a"});
    run_json(p, "migrate --all");
    const std::string hash = hash_of(p, "0001_posts");
    std::filesystem::rename(p.dir() / "drizzle/tenant/0001_posts.sql", p.dir() / "drizzle/tenant/0001_articles.sql");
    const auto doc = run_json(p, "sync");
    const auto t = tenant_of(doc, "a");
    CHECK(t["format"] == format);
    CHECK(t["missing"].empty());
    CHECK(t["orphans"].empty());
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 0);
    if (format != "name") {
        CHECK(t["in_sync"] == true);
        CHECK(t["renamed"].empty());
        CHECK(doc["summary"]["renamed"] == 0);
        return;
    }
    CHECK(t["in_sync"] == false);
    CHECK(t["renamed"] == json::array({json{{"from", "0001_posts"}, {"to", "0001_articles"}}}));
    CHECK(doc["summary"]["renamed"] == 1);
    CHECK(run_json(p, "sync --clean-orphans")["summary"]["rewritten"] == 0);
    const auto fixed = run_json(p, "sync --mark-missing");
    CHECK(tenant_of(fixed, "a")["outcome"] == "repaired");
    CHECK(tenant_of(fixed, "a")["rewritten"] == t["renamed"]);
    CHECK(rows(p).find("0001_articles:" + hash) != std::string::npos);
    CHECK(rows(p).find("0001_posts") == std::string::npos);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "3");
    CHECK(tenant_of(run_json(p, "sync"), "a")["in_sync"] == true);
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 0);
}

TEST_CASE("sync: a deleted file leaves an orphan record in every format", "[sync][pg]") {
    const auto format = GENERATE(as<std::string>{}, "name", "hash", "drizzle-kit");
    Project p;
    three_migrations(p);
    p.set("migrations.default_format", format);
    p.tenants({"a", "b"});
    run_json(p, "migrate --all");
    const std::string seed_hash = hash_of(p, "0002_seed");
    std::filesystem::remove(p.dir() / "drizzle/tenant/0002_seed.sql");
    const auto doc = run_json(p, "sync");
    CHECK(doc["summary"]["out_of_sync"] == 2);
    CHECK(doc["summary"]["orphans"] == 2);
    const auto t = tenant_of(doc, "a");
    CHECK(t["format"] == format);
    CHECK(t["missing"].empty());
    REQUIRE(t["orphans"].size() == 1);
    CHECK(t["orphans"][0]["name"] == "0002_seed");
    if (format != "name") CHECK(t["orphans"][0]["hash"] == seed_hash);

    // --clean-orphans deletes exactly that record, in the selected tenant only.
    const auto cleaned = run_json(p, "sync --clean-orphans --tenant a");
    CHECK(cleaned["summary"]["cleaned"] == 1);
    CHECK(tenant_of(cleaned, "a")["cleaned"][0]["name"] == "0002_seed");
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "2");
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.__drizzle_migrations") == "3");
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.users") == "1");  // the data stays: only tracking changes
    const auto after = run_json(p, "sync");
    CHECK(tenant_of(after, "a")["in_sync"] == true);
    CHECK(tenant_of(after, "b")["in_sync"] == false);
}

TEST_CASE("sync: an edited file is one edited migration where the record carries name and hash", "[sync][pg]") {
    // mtenant's tables keep both: name tables a hash column, hash and drizzle-kit tables a migration_name column.
    const auto format = GENERATE(as<std::string>{}, "name", "hash", "drizzle-kit");
    Project p;
    three_migrations(p);
    p.set("migrations.default_format", format);
    p.tenants({"a"});
    run_json(p, "migrate --all");
    const std::string old_hash = hash_of(p, "0001_posts");
    p.migration("0001_posts", kPosts + "\n-- reviewed\n");
    const std::string new_hash = hash_of(p, "0001_posts");
    const auto t = tenant_of(run_json(p, "sync"), "a");
    CHECK(t["edits_detectable"] == true);
    CHECK(t["missing"].empty());
    CHECK(t["orphans"].empty());
    REQUIRE(t["edited"].size() == 1);
    CHECK(t["edited"][0]["name"] == "0001_posts");
    CHECK(t["edited"][0]["recorded_hash"] == old_hash);
    CHECK(t["edited"][0]["file_hash"] == new_hash);
    CHECK(t["edited"][0]["matched_by"] == "name");
    // An edited migration is applied: migrate does not run it again.
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 0);

    // Either flag alone leaves it alone; both accept the edit (the record takes the file's hash).
    CHECK(run_json(p, "sync --clean-orphans")["summary"]["accepted"] == 0);
    CHECK(run_json(p, "sync --mark-missing")["summary"]["accepted"] == 0);
    CHECK(rows(p).find(old_hash) != std::string::npos);
    const auto accepted = run_json(p, "sync --mark-missing --clean-orphans");
    CHECK(tenant_of(accepted, "a")["accepted"] == json::array({"0001_posts"}));
    CHECK(rows(p).find(new_hash) != std::string::npos);
    CHECK(rows(p).find(old_hash) == std::string::npos);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "3");
    CHECK(tenant_of(run_json(p, "sync"), "a")["in_sync"] == true);
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 0);
}

TEST_CASE("sync: an edited file in a drizzle-orm table pairs by the journal's when", "[sync][pg]") {
    Project p;
    three_journal_migrations(p);
    p.tenants({"a"});
    p.exec(kDrizzleOrm);  // drizzle-orm's layout: no name column
    run_json(p, "migrate --all");
    REQUIRE(p.scalar("SELECT string_agg(created_at::text, ',' ORDER BY id) FROM tenant_a.__drizzle_migrations") ==
            "1700000000000,1700000001000,1700000002000");
    const std::string old_hash = hash_of(p, "0001_posts");
    p.migration("0001_posts", kPosts + "\n-- reviewed\n");
    const auto t = tenant_of(run_json(p, "sync"), "a");
    CHECK(t["format"] == "drizzle-kit");
    CHECK(t["edits_detectable"] == true);
    CHECK(t["missing"].empty());
    CHECK(t["orphans"].empty());
    REQUIRE(t["edited"].size() == 1);
    CHECK(t["edited"][0]["name"] == "0001_posts");
    CHECK(t["edited"][0]["recorded_hash"] == old_hash);
    CHECK(t["edited"][0]["matched_by"] == "journal-when");
    // --clean-orphans alone must not delete the paired record (the migration would look pending).
    run_json(p, "sync --clean-orphans");
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "3");
    // Both flags accept it, keeping created_at = when so drizzle-orm still sees it as applied.
    run_json(p, "sync --mark-missing --clean-orphans");
    CHECK(p.scalar("SELECT created_at FROM tenant_a.__drizzle_migrations WHERE hash = '" + hash_of(p, "0001_posts") +
                   "'") == "1700000001000");
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "3");
    CHECK(tenant_of(run_json(p, "sync"), "a")["in_sync"] == true);
}

TEST_CASE("sync: where the table keeps too little, an edit is documented as undetectable", "[sync][pg]") {
    SECTION("drizzle-multitenant's name table (no hash column): nothing to see") {
        Project p;
        three_migrations(p);
        p.tenants({"a"});
        p.exec(kMultitenantName);
        run_json(p, "migrate --all");
        p.migration("0001_posts", kPosts + "\n-- reviewed\n");
        const auto t = tenant_of(run_json(p, "sync"), "a");
        CHECK(t["format"] == "name");
        CHECK(t["edits_detectable"] == false);
        CHECK(t["in_sync"] == true);
        CHECK(p.mtctl("sync").out.find("too little to detect edited files") != std::string::npos);
    }
    SECTION("drizzle-multitenant's hash table (no names, apply-time timestamps): missing plus orphan") {
        Project p;
        three_migrations(p);
        p.tenants({"a"});
        p.exec(kMultitenantHash);
        run_json(p, "migrate --all");
        p.migration("0001_posts", kPosts + "\n-- reviewed\n");
        const auto t = tenant_of(run_json(p, "sync"), "a");
        CHECK(t["format"] == "hash");
        CHECK(t["edits_detectable"] == false);
        CHECK(t["edited"].empty());
        CHECK(t["missing"] == json::array({"0001_posts"}));
        CHECK(t["orphans"].size() == 1);
        CHECK(t["orphans"][0]["name"].is_null());
    }
    SECTION("drizzle-orm's table with a plain folder (no journal when): missing plus orphan") {
        Project p;
        three_migrations(p);
        p.tenants({"a"});
        p.exec(kDrizzleOrm);
        run_json(p, "migrate --all");
        p.migration("0001_posts", kPosts + "\n-- reviewed\n");
        const auto t = tenant_of(run_json(p, "sync"), "a");
        CHECK(t["format"] == "drizzle-kit");
        CHECK(t["edits_detectable"] == false);
        CHECK(t["missing"] == json::array({"0001_posts"}));
        CHECK(t["orphans"].size() == 1);
    }
}

TEST_CASE("sync: migrations applied by hand with psql (table and tracking row) are not missing", "[sync][pg]") {
    const auto format = GENERATE(as<std::string>{}, "name", "hash", "drizzle-kit");
    Project p;
    three_migrations(p);
    p.set("migrations.default_format", format);
    p.tenants({"a"});
    run_json(p, "migrate --all --to 0000_users");
    CHECK(tenant_of(run_json(p, "sync"), "a")["missing"] == json::array({"0001_posts", "0002_seed"}));
    // What an operator does by hand: run the SQL, then insert the tracking row the format expects.
    psql(p, "SET search_path = tenant_a; " + kPosts);
    if (format == "name")
        psql(p, "INSERT INTO tenant_a.__drizzle_migrations (name) VALUES ('0001_posts')");
    else if (format == "hash")
        psql(p, "INSERT INTO tenant_a.__drizzle_migrations (hash) VALUES ('" + hash_of(p, "0001_posts") + "')");
    else
        psql(p, "INSERT INTO tenant_a.__drizzle_migrations (hash, created_at) VALUES ('" + hash_of(p, "0001_posts") +
                    "', 1700000001000)");
    const auto t = tenant_of(run_json(p, "sync"), "a");
    CHECK(t["format"] == format);
    CHECK(t["missing"] == json::array({"0002_seed"}));
    CHECK(t["orphans"].empty());
    CHECK(t["edited"].empty());
    // And migrate applies only what is left.
    CHECK(run_json(p, "migrate --all")["tenants"][0]["migrations"] == json::array({"0002_seed"}));
}

TEST_CASE("sync --mark-missing records without executing, creating the table where needed", "[sync][pg]") {
    Project p;
    three_migrations(p);
    p.tenants({"a", "b"});
    run_json(p, "migrate --tenant a --to 0001_posts");
    // b has no tracking table yet: all three are missing.
    const auto doc = run_json(p, "sync --mark-missing");
    CHECK(tenant_of(doc, "a")["marked"] == json::array({"0002_seed"}));
    CHECK(tenant_of(doc, "b")["marked"] == json::array({"0000_users", "0001_posts", "0002_seed"}));
    CHECK(tenant_of(doc, "b")["outcome"] == "repaired");
    CHECK(doc["summary"]["marked"] == 4);
    CHECK(doc["summary"]["repaired"] == 2);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.users") == "0");  // 0002_seed not executed
    CHECK(p.scalar("SELECT to_regclass('tenant_b.users')::text").empty());
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.__drizzle_migrations") == "3");
    CHECK(run_json(p, "sync")["summary"]["in_sync"] == 2);
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 0);
    // Nothing left to do: a rerun changes nothing.
    CHECK(run_json(p, "sync --mark-missing")["summary"]["marked"] == 0);
}

TEST_CASE("sync --mark-missing --clean-orphans together, and each alone, touch only their part", "[sync][pg]") {
    Project p;
    three_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --all --to 0001_posts");
    p.exec("INSERT INTO tenant_a.__drizzle_migrations (name) VALUES ('0009_gone')");
    // --clean-orphans alone: the orphan goes, the missing migration stays missing.
    SECTION("alone") {
        const auto doc = run_json(p, "sync --clean-orphans");
        CHECK(tenant_of(doc, "a")["cleaned"].size() == 1);
        CHECK(tenant_of(doc, "a")["marked"].empty());
        CHECK(rows(p).find("0009_gone") == std::string::npos);
        CHECK(tenant_of(run_json(p, "sync"), "a")["missing"] == json::array({"0002_seed"}));
        const auto marked = run_json(p, "sync --mark-missing");
        CHECK(tenant_of(marked, "a")["marked"] == json::array({"0002_seed"}));
        CHECK(tenant_of(marked, "a")["cleaned"].empty());
    }
    SECTION("together") {
        const auto doc = run_json(p, "sync --mark-missing --clean-orphans");
        CHECK(tenant_of(doc, "a")["cleaned"][0]["name"] == "0009_gone");
        CHECK(tenant_of(doc, "a")["marked"] == json::array({"0002_seed"}));
    }
    CHECK(tenant_of(run_json(p, "sync"), "a")["in_sync"] == true);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "3");
}

TEST_CASE("sync --dry-run changes nothing and says what it would do", "[sync][pg]") {
    Project p;
    three_migrations(p);
    p.tenants({"a", "b"});
    run_json(p, "migrate --tenant a --to 0001_posts");
    p.exec("INSERT INTO tenant_a.__drizzle_migrations (name) VALUES ('0009_gone')");
    const std::string before = rows(p);
    const auto doc = run_json(p, "sync --mark-missing --clean-orphans --dry-run");
    CHECK(doc["mode"]["dry_run"] == true);
    CHECK(tenant_of(doc, "a")["outcome"] == "would-repair");
    CHECK(tenant_of(doc, "a")["marked"] == json::array({"0002_seed"}));
    CHECK(tenant_of(doc, "a")["cleaned"][0]["name"] == "0009_gone");
    CHECK(tenant_of(doc, "b")["outcome"] == "would-repair");
    CHECK(rows(p) == before);
    // b's table would be created; with --dry-run it is not.
    CHECK(p.scalar("SELECT to_regclass('tenant_b.__drizzle_migrations')::text").empty());
    const auto text = p.mtctl("sync --mark-missing --clean-orphans --dry-run");
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("would mark") != std::string::npos);
    CHECK(rows(p) == before);
}

TEST_CASE("sync repairs under migrate's advisory lock and re-reads the table under it", "[sync][pg]") {
    Project p;
    three_migrations(p);
    p.set("migrations.default_format", "drizzle-kit");  // no unique constraint: a double record would show
    p.tenants({"a"});
    run_json(p, "migrate --all --to 0001_posts");
    // Hold tenant_a's migrate lock, as a running migrate does.
    pqxx::connection holder(p.url());
    pqxx::work lock(holder);
    lock.exec("SELECT pg_advisory_xact_lock(hashtext(current_database()), hashtext('tenant_a'))");
    RunResult result;
    std::thread repair([&] { result = p.mtctl("--json sync --mark-missing"); });
    // A CHECK, not a FAIL: the thread must still be joined below.
    CHECK(poll_until([&] {
        return p.scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND wait_event = 'advisory' AND datname = current_database()") == "1";
    }));
    // Meanwhile the lock holder records the missing migration itself, then releases the lock.
    lock.exec("INSERT INTO tenant_a.__drizzle_migrations (hash, created_at) VALUES ('" + hash_of(p, "0002_seed") +
              "', 1)");
    lock.commit();
    repair.join();
    INFO(result.out << result.err);
    REQUIRE(result.exit_code == 0);
    const auto doc = json::parse(result.out);
    // The repair saw the table as it was under the lock: nothing left to mark, nothing recorded twice.
    CHECK(tenant_of(doc, "a")["outcome"] == "in-sync");
    CHECK(tenant_of(doc, "a")["marked"].empty());
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "3");
}

TEST_CASE("sync: a tenant that cannot be repaired fails alone, and --status with a repair flag is refused", "[sync][pg]") {
    Project p;
    three_migrations(p);
    p.tenants({"a", "b"});
    p.exec("DROP SCHEMA tenant_b");
    const auto status = run_json(p, "sync");
    CHECK(tenant_of(status, "b")["state"] == "missing-schema");
    const auto doc = run_json(p, "sync --mark-missing", 1);
    CHECK(tenant_of(doc, "a")["outcome"] == "repaired");
    CHECK(tenant_of(doc, "b")["outcome"] == "failed");
    CHECK(tenant_of(doc, "b")["error"].get<std::string>().find("mtctl tenant create --id b") != std::string::npos);
    const auto refused = p.mtctl("sync --status --mark-missing");
    CHECK(refused.exit_code == 2);
    CHECK(refused.err.find("--status") != std::string::npos);
}

TEST_CASE("sync --shared compares the shared schema's table with the shared folder", "[sync][pg]") {
    Project p;
    p.migration("0000_plans", "CREATE TABLE plans (id int);", "drizzle/shared");
    p.migration("0001_more", "ALTER TABLE plans ADD COLUMN name text;", "drizzle/shared");
    run_json(p, "migrate-shared --mark-applied");
    std::filesystem::remove(p.dir() / "drizzle/shared/0001_more.sql");
    const auto doc = run_json(p, "sync --shared");
    REQUIRE(doc["tenants"].size() == 1);
    CHECK(doc["tenants"][0]["schema"] == "public");
    CHECK(doc["tenants"][0]["orphans"][0]["name"] == "0001_more");
}

TEST_CASE("migrate refuses to re-run an edited file in a table that keeps no names", "[sync][migrate][pg]") {
    Project p;
    three_migrations(p);
    p.tenants({"a"});
    p.exec(kMultitenantHash);  // drizzle-multitenant's hash table: hash only, apply-time timestamps
    run_json(p, "migrate --all");
    p.migration("0001_posts", kPosts + "\n-- reviewed\n");
    // The edited file looks pending; running it would fail here (posts exists) or, for a data
    // migration, apply it twice. migrate refuses the tenant, says how to look, and changes nothing.
    const auto doc = run_json(p, "migrate --all", 1);
    const auto error = tenant_of(doc, "a")["error"].get<std::string>();
    INFO(error);
    CHECK(error.find("mtctl sync --tenant a") != std::string::npos);
    CHECK(error.find("--mark-missing --clean-orphans") != std::string::npos);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "3");
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.users") == "1");
    // Accepting the edit (both flags) makes the fleet migrate cleanly again.
    run_json(p, "sync --mark-missing --clean-orphans");
    const auto after = run_json(p, "migrate --all");
    CHECK(tenant_of(after, "a")["outcome"] == "up-to-date");
}
