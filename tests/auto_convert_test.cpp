// [migrations] auto_convert (issue 14): migrate converts a tracking table in another readable
// format than migrations.format first, in the transaction of the tenant's first migration, and
// status / doctor say which tables that will be; off by default. Lossless conversion: between the
// two timestamptz layouts (name, hash) every timestamp survives to the microsecond; only
// drizzle-kit's bigint created_at (epoch milliseconds) truncates to the millisecond.
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace mt::test;
using nlohmann::json;

namespace {

// Every tracking row as "id|name|hash|timestamp" lines in id order, whatever the layout, the
// timestamp as stored: a timestamptz to the microsecond (in UTC), drizzle-kit's bigint as is.
std::string rows_exact(const Project& p, const std::string& schema, int first_ids = 1000) {
    return p.scalar(
        "SELECT string_agg(concat_ws('|', j->>'id', coalesce(j->>'name', j->>'migration_name', '-'), "
        "coalesce(j->>'hash', '-'), CASE WHEN jsonb_typeof(j->'created_at') = 'number' THEN j->>'created_at' "
        "ELSE (coalesce(j->>'applied_at', j->>'created_at')::timestamptz AT TIME ZONE 'UTC')::text END), "
        "E'\\n' ORDER BY (j->>'id')::int) FROM (SELECT to_jsonb(t) AS j FROM " +
        schema + ".__drizzle_migrations t WHERE t.id <= " + std::to_string(first_ids) + ") s");
}

// Distinct microsecond timestamps per row (the 18:36:05.202792 among them), so that a
// rounding or a swap shows.
void microsecond_times(const Project& p, const std::string& schema, const std::string& column) {
    p.exec("UPDATE " + schema + ".__drizzle_migrations SET " + column +
           " = '2026-11-30 18:36:05.202792+00'::timestamptz + (id - 1) * interval '1 hour 0.000789 s'");
}

json check_named(const json& doctor, const std::string& name) {
    for (const auto& c : doctor["checks"])
        if (c["check"] == name) return c;
    FAIL("no check " << name << " in " << doctor.dump());
    return {};
}

}  // namespace

TEST_CASE("auto_convert is off by default and migrate refuses a table in another format as before", "[convert][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --all --migrations.default_format=hash");
    p.set("migrations.format", "name");
    const auto before = rows_exact(p, "tenant_a");

    const auto doc = run_json(p, "migrate --all", 1);
    const auto a = tenant_of(doc, "a");
    CHECK(a["outcome"] == "failed");
    CHECK(a["error"] == "tracking table \"tenant_a\".\"__drizzle_migrations\" is in a layout other than name; convert it with "
                        "mtctl convert-format or set migrations.format");
    CHECK(a["converted_from"].is_null());
    CHECK(doc["summary"]["converted"] == 0);
    CHECK(rows_exact(p, "tenant_a") == before);
    CHECK(columns_of(p, "tenant_a") ==
          "id integer, hash text, created_at timestamp with time zone, migration_name character varying");

    // status and doctor say the table is readable, in which format, and that migrate will not convert it.
    const auto status = run_json(p, "status");
    const auto sa = tenant_of(status, "a");
    CHECK(sa["state"] == "unknown-format");
    CHECK(sa["convert_from"] == "hash");
    CHECK(sa["would_convert"] == false);
    CHECK(sa["applied"] == 3);
    CHECK(sa["pending"] == 0);
    CHECK(status["summary"]["would_convert"] == 0);
    const auto text = p.mtctl("status");
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("note: a's tracking table is in the hash format; convert it with mtctl convert-format, or set "
                        "migrations.auto_convert = true") != std::string::npos);
    const auto doctor = run_json(p, "doctor");
    const auto c = check_named(doctor, "auto convert");
    CHECK(c["status"] == "warn");
    CHECK(c["detail"] == "1 tables in another readable format than name, which migrate refuses while "
                         "migrations.auto_convert = false: a (hash)");
    CHECK(c["hint"] == "set migrations.auto_convert = true (migrate converts them first), or run: mtctl convert-format "
                       "--to name --tenants a");

    // The key takes booleans only, and says where a bad one came from.
    const auto bad = p.mtctl("status --migrations.auto_convert=maybe");
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("migrations.auto_convert") != std::string::npos);
    // The environment variable turns it on as the manifest key and the flag do.
    const auto env = run("cd " + shell_quote(p.dir().string()) + " && MT_MIGRATIONS__AUTO_CONVERT=true " +
                         shell_quote(MT_MTCTL) + " --no-color --json status");
    INFO(env.err);
    REQUIRE(env.exit_code == 0);
    CHECK(tenant_of(json::parse(env.out), "a")["would_convert"] == true);
    CHECK(rows_exact(p, "tenant_a") == before);
}

TEST_CASE("auto_convert converts old-format tables and migrates them in one run, keeping every row", "[convert][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"h", "k", "n", "fresh"});
    run_json(p, "migrate --tenant h --migrations.default_format=hash");
    run_json(p, "migrate --tenant k --migrations.default_format=drizzle-kit");
    run_json(p, "migrate --tenant n --migrations.default_format=name");
    microsecond_times(p, "tenant_h", "created_at");
    const auto h_before = rows_exact(p, "tenant_h");
    const auto k_before = rows_exact(p, "tenant_k");
    const auto n_before = rows_exact(p, "tenant_n");
    REQUIRE(h_before.find("2026-11-30 18:36:05.202792") != std::string::npos);
    p.migration("0003_more", "ALTER TABLE users ADD COLUMN more int;");
    p.set("migrations.format", "name");
    p.set("migrations.auto_convert", "true");

    // status and doctor name the tables the next migrate converts; pending as read in their format.
    const auto status = run_json(p, "status");
    CHECK(status["summary"]["would_convert"] == 2);
    for (const auto& [id, from] : {std::pair{"h", "hash"}, std::pair{"k", "drizzle-kit"}}) {
        const auto t = tenant_of(status, id);
        CHECK(t["convert_from"] == from);
        CHECK(t["would_convert"] == true);
        CHECK(t["pending_migrations"] == json{"0003_more"});
    }
    CHECK(tenant_of(status, "n")["convert_from"].is_null());
    const auto doctor = run_json(p, "doctor");
    CHECK(check_named(doctor, "auto convert")["status"] == "ok");
    CHECK(check_named(doctor, "auto convert")["detail"] ==
          "2 tables the next migrate converts to the name format first, in the transaction of their first migration: "
          "h (hash), k (drizzle-kit)");
    CHECK(check_named(doctor, "tracking")["status"] == "ok");

    // A dry run says so and changes nothing.
    const auto dry = run_json(p, "migrate --all --dry-run");
    CHECK(tenant_of(dry, "h")["converted_from"] == "hash");
    CHECK(tenant_of(dry, "h")["outcome"] == "would-migrate");
    CHECK(tenant_of(dry, "h")["migrations"] == json{"0003_more"});
    CHECK(dry["summary"]["converted"] == 2);
    const auto dry_text = p.mtctl("migrate --all --dry-run");
    CHECK(dry_text.exit_code == 0);
    CHECK(dry_text.out.find("plan h: tracking table would be converted from the hash format to name "
                            "(migrations.auto_convert)") != std::string::npos);
    CHECK(rows_exact(p, "tenant_h") == h_before);
    CHECK(rows_exact(p, "tenant_k") == k_before);

    const auto doc = run_json(p, "migrate --all");
    CHECK(doc["summary"]["failed"] == 0);
    CHECK(doc["summary"]["converted"] == 2);
    CHECK(doc["summary"]["migrations_applied"] == 7);  // h, k, n: 0003_more; fresh: all four
    for (const auto& [id, from] : {std::pair{"h", "hash"}, std::pair{"k", "drizzle-kit"}}) {
        const auto t = tenant_of(doc, id);
        CHECK(t["outcome"] == "migrated");
        CHECK(t["converted_from"] == from);
        CHECK(t["format"] == "name");
        CHECK(t["migrations"] == json{"0003_more"});
    }
    CHECK(tenant_of(doc, "n")["converted_from"].is_null());
    CHECK(tenant_of(doc, "fresh")["converted_from"].is_null());
    for (const char* schema : {"tenant_h", "tenant_k", "tenant_n", "tenant_fresh"})
        CHECK(columns_of(p, schema) ==
              "id integer, name character varying, applied_at timestamp with time zone, hash text");
    // Every row kept: ids, names, hashes, and the hash table's timestamps to the microsecond.
    CHECK(rows_exact(p, "tenant_h", 3) == h_before);
    CHECK(rows_exact(p, "tenant_n", 3) == n_before);
    // drizzle-kit's created_at is epoch milliseconds: the same instant as a timestamptz.
    CHECK(p.scalar("SELECT string_agg(id || '|' || name || '|' || hash || '|' || "
                   "(extract(epoch FROM applied_at) * 1000)::bigint, E'\\n' ORDER BY id) "
                   "FROM tenant_k.__drizzle_migrations WHERE id <= 3") == k_before);
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM tenant_h.__drizzle_migrations") ==
          "0000_users,0001_posts,0002_seed,0003_more");
    CHECK(p.scalar("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'tenant_h' "
                   "AND table_name = 'users' AND column_name = 'more'") == "1");
    const auto after = run_json(p, "status");
    for (const auto& t : after["tenants"]) {
        CHECK(t["state"] == "up-to-date");
        CHECK(t["format"] == "name");
    }
    // Nothing left to convert: a rerun is a no-op.
    const auto again = run_json(p, "migrate --all");
    CHECK(again["summary"]["converted"] == 0);
    CHECK(again["summary"]["migrations_applied"] == 0);
}

TEST_CASE("a table converted by migrate reports it in the table output", "[convert][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --all --migrations.default_format=hash");
    p.migration("0003_more", "ALTER TABLE users ADD COLUMN more int;");
    const auto r = p.mtctl("migrate --all --migrations.format=name --migrations.auto_convert=true");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("conv a: tracking table converted from the hash format to name (migrations.auto_convert)\n") !=
          std::string::npos);
    CHECK(r.out.find("ok   a: 0003_more\n") != std::string::npos);
    CHECK(r.out.find("migrate: 1 tenants, 1 succeeded, 0 failed, 0 skipped; 1 migrations, 1 tracking tables converted in ") !=
          std::string::npos);
}

TEST_CASE("a failing migration rolls back the auto conversion with it", "[convert][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --all --migrations.default_format=hash");
    microsecond_times(p, "tenant_a", "created_at");
    const auto before = rows_exact(p, "tenant_a");
    const auto layout = columns_of(p, "tenant_a");
    p.migration("0003_broken", "ALTER TABLE no_such_table ADD COLUMN x int;");
    p.set("migrations.format", "name");
    p.set("migrations.auto_convert", "true");
    const auto transaction = GENERATE(std::string("per-migration"), std::string("per-tenant"));
    INFO("transaction = " << transaction);
    const auto doc = run_json(p, "migrate --all --migrations.transaction=" + transaction, 1);
    const auto a = tenant_of(doc, "a");
    CHECK(a["outcome"] == "failed");
    CHECK(a["failed_migration"] == "0003_broken");
    CHECK(a["error"] == "0003_broken.sql: ERROR:  relation \"no_such_table\" does not exist");
    CHECK(a["converted_from"].is_null());
    CHECK(a["format"] == "hash");
    CHECK(doc["summary"]["converted"] == 0);
    // Still the old table: same layout, same rows to the microsecond.
    CHECK(columns_of(p, "tenant_a") == layout);
    CHECK(rows_exact(p, "tenant_a") == before);
    CHECK(tenant_of(run_json(p, "status"), "a")["would_convert"] == true);
}

TEST_CASE("a conversion migrate cannot complete fails that tenant only and changes nothing", "[convert][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a", "b"});
    run_json(p, "migrate --all");  // name format
    // A record whose file is gone: the hash format needs its hash, which only the file gives.
    p.exec("INSERT INTO tenant_a.__drizzle_migrations (name) VALUES ('0007_deleted_file')");
    const auto before = rows_exact(p, "tenant_a");
    p.set("migrations.format", "hash");
    p.set("migrations.auto_convert", "true");
    const auto doc = run_json(p, "migrate --all", 1);
    const auto a = tenant_of(doc, "a");
    CHECK(a["outcome"] == "failed");
    const std::string error = a["error"];
    CHECK(error.rfind("migrations.auto_convert: converting \"tenant_a\".\"__drizzle_migrations\" from the name to the hash "
                      "format failed: record '0007_deleted_file' matches no file in ", 0) == 0);
    CHECK(error.find("restore the file, or remove the record with mtctl sync --clean-orphans, then convert again") !=
          std::string::npos);
    CHECK(a["format"] == "name");
    CHECK(rows_exact(p, "tenant_a") == before);
    const auto b = tenant_of(doc, "b");
    CHECK(b["outcome"] == "migrated");
    CHECK(b["converted_from"] == "name");
    CHECK(columns_of(p, "tenant_b") ==
          "id integer, hash text, created_at timestamp with time zone, migration_name character varying");
}

TEST_CASE("convert-format keeps timestamps to the microsecond between name and hash", "[convert][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"m", "d"});
    run_json(p, "migrate --tenant m");
    // drizzle-multitenant's own name layout (no hash column), also lossless.
    p.exec("CREATE TABLE tenant_d.__drizzle_migrations (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, "
           "applied_at timestamptz DEFAULT now())");
    run_json(p, "migrate --tenant d");
    microsecond_times(p, "tenant_m", "applied_at");
    microsecond_times(p, "tenant_d", "applied_at");
    const auto m_before = rows_exact(p, "tenant_m");
    const auto d_before = p.scalar("SELECT string_agg(id || '|' || name || '|' || (applied_at AT TIME ZONE 'UTC'), "
                                   "E'\\n' ORDER BY id) FROM tenant_d.__drizzle_migrations");
    REQUIRE(m_before.find("|2026-11-30 18:36:05.202792") != std::string::npos);
    for (const std::string to : {"hash", "name", "hash", "name"}) {
        INFO("to " << to);
        CHECK(run_json(p, "convert-format --all --to " + to)["summary"]["failed"] == 0);
        CHECK(rows_exact(p, "tenant_m") == m_before);
        CHECK(p.scalar("SELECT string_agg(id || '|' || coalesce(to_jsonb(t)->>'name', to_jsonb(t)->>'migration_name') || "
                       "'|' || (coalesce(to_jsonb(t)->>'applied_at', to_jsonb(t)->>'created_at')::timestamptz AT TIME "
                       "ZONE 'UTC'), E'\\n' ORDER BY id) FROM tenant_d.__drizzle_migrations t") == d_before);
    }
    // drizzle-kit stores epoch milliseconds: there the time is truncated to the millisecond (as
    // drizzle-orm's own rows are), and stays so on the way back.
    CHECK(run_json(p, "convert-format --tenant m --to drizzle-kit")["summary"]["failed"] == 0);
    CHECK(p.scalar("SELECT created_at FROM tenant_m.__drizzle_migrations WHERE id = 1") ==
          p.scalar("SELECT (extract(epoch FROM '2026-11-30 18:36:05.202+00'::timestamptz) * 1000)::bigint"));
    CHECK(run_json(p, "convert-format --tenant m --to hash")["summary"]["failed"] == 0);
    CHECK(p.scalar("SELECT created_at AT TIME ZONE 'UTC' FROM tenant_m.__drizzle_migrations WHERE id = 1") ==
          "2026-11-30 18:36:05.202");
}
