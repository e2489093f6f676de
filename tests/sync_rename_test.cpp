// Renamed migrations (issue 14, item 4; docs/repair.md): a file renamed with unchanged content in a
// table that drizzle-multitenant reads by name is reported as `renamed old → new` by sync (table and
// JSON), re-recorded under the new name by --mark-missing (not deleted by --clean-orphans), and
// named by a warning of migrate, which does not run it again.
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <mt/tracking/migration_folder.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>

using namespace mt::test;
using nlohmann::json;

namespace {

void rename_posts(const Project& p) {
    std::filesystem::rename(p.dir() / "drizzle/tenant/0001_posts.sql", p.dir() / "drizzle/tenant/0001_articles.sql");
}

// Every tracking row of a tenant: id, name, hash and applied_at as PostgreSQL prints them.
std::string rename_rows(const Project& p, const std::string& id) {
    return p.scalar("SELECT string_agg(id || ' ' || name || ' ' || coalesce(hash, '-') || ' ' || applied_at::text, "
                    "' | ' ORDER BY id) FROM tenant_" + id + ".__drizzle_migrations");
}

std::string row_of(const Project& p, const std::string& id, const std::string& name) {
    return p.scalar("SELECT coalesce(hash, '-') || ' ' || applied_at::text FROM tenant_" + id +
                    ".__drizzle_migrations WHERE name = '" + name + "'");
}

const json kRenamed = json::array({json{{"from", "0001_posts"}, {"to", "0001_articles"}}});

}  // namespace

TEST_CASE("sync --status reports a renamed file as renamed old → new in the table and the JSON", "[sync][pg]") {
    // a and b: mtctl's name table (name and hash); h: drizzle-multitenant's hash table, which every
    // tool reads by hash, so the rename changes nothing there and nothing is reported.
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a", "b", "h"});
    p.exec("CREATE TABLE tenant_h.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL UNIQUE, "
           "created_at timestamptz DEFAULT now())");
    run_json(p, "migrate --all");
    rename_posts(p);

    const auto doc = run_json(p, "sync --status");
    for (const std::string id : {"a", "b"}) {
        const auto t = tenant_of(doc, id);
        INFO("tenant " << id);
        CHECK(t["format"] == "name");
        CHECK(t["in_sync"] == false);
        CHECK(t["outcome"] == "out-of-sync");
        CHECK(t["missing"].empty());
        CHECK(t["orphans"].empty());
        CHECK(t["edited"].empty());
        CHECK(t["renamed"] == kRenamed);
        CHECK(t["rewritten"].empty());
    }
    const auto h = tenant_of(doc, "h");
    CHECK(h["format"] == "hash");
    CHECK(h["in_sync"] == true);
    CHECK(h["renamed"].empty());
    CHECK(doc["summary"]["renamed"] == 2);
    CHECK(doc["summary"]["in_sync"] == 1);
    CHECK(doc["summary"]["out_of_sync"] == 2);
    CHECK(doc["summary"]["rewritten"] == 0);

    const auto text = p.mtctl("--no-color sync --status");
    INFO(text.out << text.err);
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("TENANT  SCHEMA    FORMAT       MISSING  ORPHANS  EDITED  RENAMED  OUTCOME\n"
                        "a       tenant_a  name         0        0        0       1        out-of-sync\n"
                        "  renamed: 0001_posts → 0001_articles (same content)\n"
                        "b       tenant_b  name         0        0        0       1        out-of-sync\n"
                        "  renamed: 0001_posts → 0001_articles (same content)\n") != std::string::npos);
    CHECK(text.out.find("sync: 3 tenants, 1 in sync, 2 out of sync (0 missing, 0 orphans, 0 edited, 2 renamed); ") !=
          std::string::npos);
    CHECK(text.out.find("tenant_h") == std::string::npos);
}

TEST_CASE("sync --mark-missing rewrites a renamed record's name, keeping its hash and timestamp", "[sync][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a", "b"});
    run_json(p, "migrate --all");
    const std::string hash = mt::sha256_hex(read_file(p.dir() / "drizzle/tenant/0001_posts.sql"));
    const std::string before = row_of(p, "a", "0001_posts");
    REQUIRE(before.rfind(hash + " ", 0) == 0);
    rename_posts(p);
    const std::string rows_b = rename_rows(p, "b");

    // --dry-run lists the rename and changes nothing.
    const std::string rows_a = rename_rows(p, "a");
    const auto preview = p.mtctl("--no-color sync --mark-missing --dry-run --tenant a");
    INFO(preview.out << preview.err);
    CHECK(preview.exit_code == 0);
    CHECK(preview.out.find("would-repair\n  renamed: 0001_posts → 0001_articles (same content)\n"
                           "  would rename:  0001_posts → 0001_articles\n") != std::string::npos);
    CHECK(preview.out.find("; would mark 0, clean 0, accept 0, rename 1 (1 tenants to repair, 0 failed); ") !=
          std::string::npos);
    const auto dry = run_json(p, "sync --mark-missing --dry-run --tenant a");
    CHECK(tenant_of(dry, "a")["outcome"] == "would-repair");
    CHECK(tenant_of(dry, "a")["rewritten"] == kRenamed);
    CHECK(rename_rows(p, "a") == rows_a);

    const auto fixed = run_json(p, "sync --mark-missing --tenant a");
    const auto a = tenant_of(fixed, "a");
    CHECK(a["outcome"] == "repaired");
    CHECK(a["renamed"] == kRenamed);
    CHECK(a["rewritten"] == kRenamed);
    CHECK(a["marked"].empty());
    CHECK(a["accepted"].empty());
    CHECK(fixed["summary"]["rewritten"] == 1);
    CHECK(fixed["summary"]["repaired"] == 1);
    // The row read back: the new name, the same hash and applied_at; the old name is gone.
    CHECK(row_of(p, "a", "0001_articles") == before);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations WHERE name = '0001_posts'") == "0");
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY name) FROM tenant_a.__drizzle_migrations") ==
          "0000_users,0001_articles,0002_seed");
    CHECK(rename_rows(p, "b") == rows_b);  // not selected

    const auto after = run_json(p, "sync --status");
    CHECK(tenant_of(after, "a")["in_sync"] == true);
    CHECK(tenant_of(after, "a")["renamed"].empty());
    CHECK(tenant_of(after, "b")["renamed"] == kRenamed);
    const auto text = p.mtctl("--no-color sync --mark-missing --tenant b");
    INFO(text.out << text.err);
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("repaired\n  renamed: 0001_posts → 0001_articles (same content)\n"
                        "  rename:  0001_posts → 0001_articles\n") != std::string::npos);
    CHECK(text.out.find("; marked 0, cleaned 0, accepted 0, renamed 1 (1 tenants repaired, 0 failed); ") !=
          std::string::npos);
    CHECK(run_json(p, "sync")["summary"]["in_sync"] == 2);
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 0);
}

TEST_CASE("sync --clean-orphans keeps a renamed record, and with --mark-missing renames it", "[sync][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --all");
    rename_posts(p);
    std::filesystem::remove(p.dir() / "drizzle/tenant/0002_seed.sql");  // a real orphan beside it

    const auto cleaned = run_json(p, "sync --clean-orphans");
    const auto a = tenant_of(cleaned, "a");
    CHECK(a["outcome"] == "repaired");
    REQUIRE(a["cleaned"].size() == 1);
    CHECK(a["cleaned"][0]["name"] == "0002_seed");
    CHECK(a["rewritten"].empty());
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM tenant_a.__drizzle_migrations") ==
          "0000_users,0001_posts");
    const auto still = tenant_of(run_json(p, "sync"), "a");
    CHECK(still["renamed"] == kRenamed);
    CHECK(still["orphans"].empty());

    // Both flags: the rename is rewritten (not accepted as an edit, not cleaned as an orphan).
    p.exec("INSERT INTO tenant_a.__drizzle_migrations (name) VALUES ('0009_gone')");
    const auto both = tenant_of(run_json(p, "sync --mark-missing --clean-orphans"), "a");
    CHECK(both["outcome"] == "repaired");
    CHECK(both["rewritten"] == kRenamed);
    CHECK(both["accepted"].empty());
    REQUIRE(both["cleaned"].size() == 1);
    CHECK(both["cleaned"][0]["name"] == "0009_gone");
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY name) FROM tenant_a.__drizzle_migrations") ==
          "0000_users,0001_articles");
    CHECK(tenant_of(run_json(p, "sync"), "a")["in_sync"] == true);
}

TEST_CASE("migrate warns about each renamed record and applies nothing", "[sync][migrate][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a", "b"});
    run_json(p, "migrate --all");
    rename_posts(p);
    const std::string rows_a = rename_rows(p, "a");

    const auto run = p.mtctl("--no-color migrate --all");
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    for (const std::string id : {"a", "b"})
        CHECK(run.err.find("[warning] tenant " + id + ": renamed 0001_posts → 0001_articles (same content): applied, "
                           "not run again; drizzle-multitenant reads \"tenant_" + id +
                           "\".\"__drizzle_migrations\" by name and would run it; rename the record with: "
                           "mtctl sync --mark-missing --tenant " + id + "\n") != std::string::npos);
    const auto doc = run_json(p, "migrate --all");
    CHECK(doc["summary"]["migrations_applied"] == 0);
    CHECK(tenant_of(doc, "a")["outcome"] == "up-to-date");
    CHECK(run_json(p, "migrate --all --dry-run")["summary"]["migrations_applied"] == 0);
    CHECK(rename_rows(p, "a") == rows_a);

    // Once the record is renamed, nothing to warn about.
    run_json(p, "sync --mark-missing");
    const auto quiet = p.mtctl("--no-color migrate --all");
    CHECK(quiet.exit_code == 0);
    CHECK(quiet.err.find("renamed") == std::string::npos);
}
