// The three tracking formats together (SPEC §6.2): created, detected and used; auto on mixed
// fleets; convert-format round trips that leave tables every later command can use. What one
// format does alone is in tests/plugins/tracking_<format>_test.cpp.
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <mt/plugin_host/plugins.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>

using namespace mt::test;
using nlohmann::json;

namespace {

// Every tracking row of a schema as "id|name|hash|created_at" lines in id order, whatever the
// layout: created_at in epoch milliseconds (what the drizzle-kit layout can hold) from applied_at,
// a timestamptz created_at or drizzle-kit's bigint; "-" for a column the layout does not have.
// Timestamps to the whole millisecond, truncated as the tracking formats (and drizzle-orm's JS Dates) do.
std::string tracking_rows(const Project& p, const std::string& schema, bool with_hash = true) {
    return p.scalar(
        "SELECT string_agg(concat_ws('|', j->>'id', coalesce(j->>'name', j->>'migration_name', '-'), " +
        std::string(with_hash ? "coalesce(j->>'hash', '-')" : "'-'") +
        ", CASE WHEN jsonb_typeof(j->'created_at') = 'number' THEN j->>'created_at' "
        "  ELSE floor(extract(epoch FROM coalesce(j->>'applied_at', j->>'created_at')::timestamptz) * 1000)::bigint::text END), "
        "E'\\n' ORDER BY (j->>'id')::int) FROM (SELECT to_jsonb(t) AS j FROM " +
        schema + ".__drizzle_migrations t) s");
}

// The same with the timestamp as stored to the microsecond, for layouts that keep a timestamptz.
std::string tracking_rows_exact(const Project& p, const std::string& schema) {
    return p.scalar(
        "SELECT string_agg(concat_ws('|', j->>'id', coalesce(j->>'name', j->>'migration_name', '-'), coalesce(j->>'hash', '-'), "
        "(coalesce(j->>'applied_at', j->>'created_at')::timestamptz AT TIME ZONE 'UTC')::text), "
        "E'\\n' ORDER BY (j->>'id')::int) FROM (SELECT to_jsonb(t) AS j FROM " +
        schema + ".__drizzle_migrations t) s");
}

}  // namespace

TEST_CASE("each format's table is created, detected and used", "[format][pg]") {
    const auto [format, layout] = GENERATE(table<std::string, std::string>({
        {"name", "id integer, name character varying, applied_at timestamp with time zone, hash text"},
        // Not `name`: drizzle-multitenant would take a table with a `name` column for its name format.
        {"hash", "id integer, hash text, created_at timestamp with time zone, migration_name character varying"},
        {"drizzle-kit", "id integer, hash text, created_at bigint, migration_name character varying"},
    }));
    Project p;
    users_posts_seed_migrations(p);
    p.set("migrations.default_format", format);
    p.tenants({"a"});
    const auto doc = run_json(p, "migrate --all");
    CHECK(doc["tenants"][0]["format"] == format);
    CHECK(columns_of(p, "tenant_a") == layout);
    const auto status = run_json(p, "status");
    CHECK(status["tenants"][0]["format"] == format);
    CHECK(status["tenants"][0]["state"] == "up-to-date");
    CHECK(status["tenants"][0]["applied"] == 3);
    // A new migration is applied once, and recorded in the same format.
    p.migration("0003_more", "ALTER TABLE users ADD COLUMN name text;");
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 1);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "4");
}

TEST_CASE("format = auto detects each tenant's format on a mixed fleet", "[format][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"n", "h", "k"});
    // Tables as drizzle-multitenant and drizzle-orm create them (no extra columns).
    p.exec("CREATE TABLE tenant_n.__drizzle_migrations (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, "
           "applied_at timestamptz DEFAULT now())");
    p.exec("CREATE TABLE tenant_h.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL UNIQUE, "
           "created_at timestamptz DEFAULT now())");
    p.exec("CREATE TABLE tenant_k.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint)");
    p.exec("INSERT INTO tenant_n.__drizzle_migrations (name) VALUES ('0000_users')");
    p.exec("CREATE TABLE tenant_n.users (id serial PRIMARY KEY, email text)");
    const auto status = run_json(p, "status");
    CHECK(status["tenants"][0]["format"] == "hash");
    CHECK(status["tenants"][1]["format"] == "drizzle-kit");
    CHECK(status["tenants"][2]["format"] == "name");
    CHECK(status["tenants"][2]["pending"] == 2);
    run_json(p, "migrate --all");
    CHECK(p.scalar("SELECT count(*) FROM tenant_n.__drizzle_migrations") == "3");
    CHECK(p.scalar("SELECT count(*) FROM tenant_h.__drizzle_migrations") == "3");
    CHECK(p.scalar("SELECT count(*) FROM tenant_k.__drizzle_migrations") == "3");
    CHECK(p.scalar("SELECT count(*) FROM tenant_k.__drizzle_migrations WHERE created_at IS NULL") == "0");
}

TEST_CASE("a fixed format refuses a table of another layout and says how to convert", "[format][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --all");
    p.set("migrations.format", "hash");
    const auto doc = run_json(p, "migrate --all", 1);
    CHECK(doc["tenants"][0]["error"].get<std::string>().find("convert-format") != std::string::npos);
    // A fixed `name` format must refuse a hash table too (reading it as `name` would lose the hashes).
    p.set("migrations.format", "name");
    p.migration("0003_more", "CREATE TABLE more (id int);");
    p.tenants({"b"});
    p.set("migrations.format", "hash");
    run_json(p, "migrate --tenant b");
    p.set("migrations.format", "name");
    const auto named = run_json(p, "migrate --tenant b", 1);
    CHECK(named["tenants"][0]["error"].get<std::string>().find("convert-format") != std::string::npos);
    CHECK(p.scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'tenant_b' "
                   "AND table_name = 'more'") == "1");
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.__drizzle_migrations") == "4");
    const auto bad = p.mtctl("migrate --all --migrations.format=nosuch");
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("migrations.format") != std::string::npos);
}

TEST_CASE("convert-format round-trips name -> hash -> drizzle-kit -> name losslessly", "[format][convert][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a", "b"});
    run_json(p, "migrate --all");
    // b's ids have a hole and are not in file order: 0001_posts was recorded again last.
    p.exec("DELETE FROM tenant_b.__drizzle_migrations WHERE name = '0001_posts'");
    run_json(p, "migrate --all --mark-applied");
    // Timestamps with microseconds, distinct per row, so that a rounding or a swap shows.
    p.exec("UPDATE tenant_a.__drizzle_migrations SET applied_at = '2024-03-01 10:00:00.123456+00'::timestamptz + id * "
           "interval '1 hour 0.000789 s'");
    p.exec("UPDATE tenant_b.__drizzle_migrations SET applied_at = '2023-07-15 08:30:00.654321+00'::timestamptz - id * "
           "interval '1 day 0.000123 s'");
    const auto names = [&](const std::string& schema) {
        return p.scalar("SELECT string_agg(coalesce(to_jsonb(t)->>'name', to_jsonb(t)->>'migration_name'), ',' ORDER BY id) "
                        "FROM " + schema + ".__drizzle_migrations t");
    };
    REQUIRE(names("tenant_a") == "0000_users,0001_posts,0002_seed");
    REQUIRE(names("tenant_b") == "0000_users,0002_seed,0001_posts");
    REQUIRE(p.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM tenant_b.__drizzle_migrations") == "1,3,4");
    const std::map<std::string, std::string> original = {{"tenant_a", tracking_rows(p, "tenant_a")},
                                                         {"tenant_b", tracking_rows(p, "tenant_b")}};
    const std::map<std::string, std::string> exact = {{"tenant_a", tracking_rows_exact(p, "tenant_a")},
                                                      {"tenant_b", tracking_rows_exact(p, "tenant_b")}};
    CHECK(original.at("tenant_a").find("|-|") == std::string::npos);  // every row has its hash already

    const auto dry = run_json(p, "convert-format --all --to hash --dry-run");
    CHECK(dry["tenants"][0]["outcome"] == "would-migrate");
    CHECK(run_json(p, "status")["tenants"][0]["format"] == "name");
    for (const auto& [schema, rows] : exact) CHECK(tracking_rows_exact(p, schema) == rows);

    // Between the two timestamptz layouts nothing is lost, to the microsecond.
    for (const std::string to : {"hash", "name"}) {
        INFO("to " << to);
        CHECK(run_json(p, "convert-format --all --to " + to)["summary"]["failed"] == 0);
        for (const auto& [schema, rows] : exact) {
            INFO(schema);
            CHECK(tracking_rows_exact(p, schema) == rows);
        }
    }
    // Through drizzle-kit's bigint created_at, to the millisecond (what that layout holds).
    for (const std::string to : {"hash", "drizzle-kit", "name", "drizzle-kit", "hash", "name"}) {
        INFO("to " << to);
        const auto doc = run_json(p, "convert-format --all --to " + to);
        CHECK(doc["summary"]["failed"] == 0);
        const auto status = run_json(p, "status");
        for (const auto& t : status["tenants"]) {
            CHECK(t["format"] == to);
            CHECK(t["state"] == "up-to-date");
            CHECK(t["applied"] == 3);
            CHECK(t["orphans"] == 0);
        }
        for (const auto& [schema, rows] : original) {
            INFO(schema);
            CHECK(tracking_rows(p, schema) == rows);
        }
    }
    // The converted table works for every later command: a new migration applies once, and its
    // row takes the next id after the kept ones.
    p.migration("0003_after", "ALTER TABLE users ADD COLUMN after_convert int;");
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 2);
    CHECK(p.scalar("SELECT id FROM tenant_b.__drizzle_migrations WHERE name = '0003_after'") == "5");
    CHECK(run_json(p, "convert-format --all --to hash")["summary"]["failed"] == 0);
    p.migration("0004_after_hash", "ALTER TABLE users ADD COLUMN after_hash int;");
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 2);
    CHECK(run_json(p, "status")["tenants"][0]["applied"] == 5);
    CHECK(p.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM tenant_b.__drizzle_migrations") == "1,3,4,5,6");
}

TEST_CASE("converting a table drizzle-multitenant made keeps later migrations working", "[format][convert][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a"});
    // drizzle-multitenant's name layout, without mtenant's extra column.
    p.exec("CREATE TABLE tenant_a.__drizzle_migrations (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, "
           "applied_at timestamptz DEFAULT now())");
    run_json(p, "migrate --all");
    const auto before = tracking_rows(p, "tenant_a", false);
    const auto before_exact = p.scalar("SELECT string_agg(id || '|' || name || '|' || applied_at::text, ',' ORDER BY id) "
                                       "FROM tenant_a.__drizzle_migrations");
    run_json(p, "convert-format --all --from name --to hash");
    // Same ids, names and timestamps (to the microsecond: both layouts are timestamptz), and each
    // row's hash is its file's, the one drizzle-multitenant's table could not hold.
    CHECK(tracking_rows(p, "tenant_a", false) == before);
    CHECK(p.scalar("SELECT string_agg(id || '|' || migration_name || '|' || created_at::text, ',' ORDER BY id) "
                   "FROM tenant_a.__drizzle_migrations") == before_exact);
    Project reference;
    users_posts_seed_migrations(reference);
    reference.tenants({"r"});
    run_json(reference, "migrate --all");
    CHECK(p.scalar("SELECT string_agg(hash, ',' ORDER BY id) FROM tenant_a.__drizzle_migrations") ==
          reference.scalar("SELECT string_agg(hash, ',' ORDER BY id) FROM tenant_r.__drizzle_migrations"));
    p.migration("0003_more", "ALTER TABLE users ADD COLUMN more int;");
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 1);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "4");
}

TEST_CASE("convert-format refuses what it cannot do losslessly and changes nothing", "[format][convert][pg]") {
    Project p;
    users_posts_seed_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --all");
    p.exec("INSERT INTO tenant_a.__drizzle_migrations (name) VALUES ('0007_deleted_file')");
    const auto before = tracking_rows_exact(p, "tenant_a");
    const auto doc = run_json(p, "convert-format --all --to hash", 1);
    CHECK(tracking_rows_exact(p, "tenant_a") == before);
    CHECK(doc["tenants"][0]["error"].get<std::string>().find("0007_deleted_file") != std::string::npos);
    CHECK(run_json(p, "status")["tenants"][0]["format"] == "name");
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "4");
    // --from that does not match fails that tenant.
    CHECK(run_json(p, "convert-format --all --from hash --to drizzle-kit", 1)["summary"]["failed"] == 1);
    // An unknown format is a usage error before anything runs.
    CHECK(p.mtctl("convert-format --all --to yaml").exit_code == 2);
    CHECK(tracking_rows_exact(p, "tenant_a") == before);
}

TEST_CASE("a format that declares no capabilities gets them derived from identifies_by and its name", "[format]") {
    mt::PluginRegistry registry{{fixture_dir()}};
    registry.load("fixture-tracking-plain");
    const mt::TrackingFormat plain(registry.create("tracking-plain", MT_KIND_TRACKING_FORMAT, {}));
    CHECK(plain.label() == "plain");
    const auto c = plain.capabilities({{"hash", "text", true}});
    CHECK_FALSE(c.declared);
    CHECK(c.keeps_hashes);
    CHECK_FALSE(c.keeps_names);
    CHECK_FALSE(c.found_by_name);
    CHECK_FALSE(c.journal_time);
    const mt::TrackingFormat ledger(registry.create("ledger", MT_KIND_TRACKING_FORMAT, {}));
    CHECK(ledger.label() == "ledger");
    CHECK(ledger.capabilities().keeps_names);
    CHECK(ledger.capabilities().keeps_hashes);
    CHECK(ledger.capabilities().found_by_name);
    // The in-tree formats declare theirs.
    registry.load((plugin_dir() / "tracking-name.so").string());
    CHECK(mt::TrackingFormat(registry.create("tracking-name", MT_KIND_TRACKING_FORMAT, {})).capabilities().declared);
}
