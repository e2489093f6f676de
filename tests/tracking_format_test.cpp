// The three tracking formats (SPEC §6.2): created, detected and used; auto on mixed fleets;
// convert-format round trips that leave tables every later command can use.
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace mt::test;
using nlohmann::json;

namespace {

void three_migrations(const Project& p) {
    p.migration("0000_users", "CREATE TABLE users (id serial PRIMARY KEY, email text);");
    p.migration("0001_posts", "CREATE TABLE posts (id serial PRIMARY KEY, user_id int REFERENCES users(id));");
    p.migration("0002_seed", "INSERT INTO users (email) VALUES ('x@example.com');");
}

std::string columns_of(const Project& p, const std::string& schema) {
    return p.scalar("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
                    "FROM information_schema.columns WHERE table_schema = '" + schema +
                    "' AND table_name = '__drizzle_migrations'");
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
    three_migrations(p);
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
    three_migrations(p);
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
    three_migrations(p);
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

TEST_CASE("drizzle-kit folders keep the journal's when in the drizzle-kit format", "[format][pg]") {
    Project p;
    write_file(p.dir() / "drizzle/tenant/meta/_journal.json",
               R"({"version":"7","dialect":"postgresql","entries":[)"
               R"({"idx":0,"version":"7","when":1700000000000,"tag":"0000_first","breakpoints":true},)"
               R"({"idx":1,"version":"7","when":1700000001000,"tag":"0001_second","breakpoints":true}]})");
    p.migration("0000_first", "CREATE TABLE a (id int);\n--> statement-breakpoint\nCREATE TABLE b (id int);");
    p.migration("0001_second", "CREATE TABLE c (id int);");
    p.set("migrations.default_format", "drizzle-kit");
    p.tenants({"t"});
    run_json(p, "migrate --all");
    CHECK(p.scalar("SELECT string_agg(created_at::text, ',' ORDER BY id) FROM tenant_t.__drizzle_migrations") ==
          "1700000000000,1700000001000");
    CHECK(p.scalar("SELECT to_regclass('tenant_t.b')::text") == "tenant_t.b");
}

TEST_CASE("convert-format round-trips name -> hash -> drizzle-kit -> name losslessly", "[format][convert][pg]") {
    Project p;
    three_migrations(p);
    p.tenants({"a", "b"});
    run_json(p, "migrate --all");
    const auto names = [&](const std::string& schema) {
        return p.scalar("SELECT string_agg(coalesce(to_jsonb(t)->>'name', to_jsonb(t)->>'migration_name'), ',' ORDER BY id) "
                        "FROM " + schema + ".__drizzle_migrations t");
    };
    const std::string expected = "0000_users,0001_posts,0002_seed";
    REQUIRE(names("tenant_a") == expected);

    const auto dry = run_json(p, "convert-format --all --to hash --dry-run");
    CHECK(dry["tenants"][0]["outcome"] == "would-migrate");
    CHECK(run_json(p, "status")["tenants"][0]["format"] == "name");

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
        CHECK(names("tenant_a") == expected);
    }
    // The converted table works for every later command: a new migration applies once.
    p.migration("0003_after", "ALTER TABLE users ADD COLUMN after_convert int;");
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 2);
    CHECK(run_json(p, "convert-format --all --to hash")["summary"]["failed"] == 0);
    p.migration("0004_after_hash", "ALTER TABLE users ADD COLUMN after_hash int;");
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 2);
    CHECK(run_json(p, "status")["tenants"][0]["applied"] == 5);
}

TEST_CASE("converting a table drizzle-multitenant made keeps later migrations working", "[format][convert][pg]") {
    Project p;
    three_migrations(p);
    p.tenants({"a"});
    // drizzle-multitenant's name layout, without mtenant's extra column.
    p.exec("CREATE TABLE tenant_a.__drizzle_migrations (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, "
           "applied_at timestamptz DEFAULT now())");
    run_json(p, "migrate --all");
    run_json(p, "convert-format --all --from name --to hash");
    p.migration("0003_more", "ALTER TABLE users ADD COLUMN more int;");
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 1);
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "4");
}

TEST_CASE("convert-format refuses what it cannot do losslessly and changes nothing", "[format][convert][pg]") {
    Project p;
    three_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --all");
    p.exec("INSERT INTO tenant_a.__drizzle_migrations (name) VALUES ('0007_deleted_file')");
    const auto doc = run_json(p, "convert-format --all --to hash", 1);
    CHECK(doc["tenants"][0]["error"].get<std::string>().find("0007_deleted_file") != std::string::npos);
    CHECK(run_json(p, "status")["tenants"][0]["format"] == "name");
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "4");
    // --from that does not match fails that tenant.
    CHECK(run_json(p, "convert-format --all --from hash --to drizzle-kit", 1)["summary"]["failed"] == 1);
    // An unknown format is a usage error before anything runs.
    CHECK(p.mtctl("convert-format --all --to yaml").exit_code == 2);
}

TEST_CASE("hash and drizzle-kit tables from earlier versions keep their nullable name column working", "[format][pg]") {
    const auto [format, ddl] = GENERATE(table<std::string, std::string>({
        {"hash", "CREATE TABLE tenant_a.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL UNIQUE, "
                 "created_at timestamptz DEFAULT now(), name varchar(255))"},
        {"drizzle-kit", "CREATE TABLE tenant_a.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, "
                        "created_at bigint, name varchar(255))"},
    }));
    Project p;
    three_migrations(p);
    p.tenants({"a"});
    p.exec(ddl);
    const auto doc = run_json(p, "migrate --all");
    CHECK(doc["tenants"][0]["format"] == format);
    CHECK(doc["summary"]["migrations_applied"] == 3);
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM tenant_a.__drizzle_migrations") ==
          "0000_users,0001_posts,0002_seed");
    const auto status = run_json(p, "status");
    CHECK(status["tenants"][0]["state"] == "up-to-date");
    CHECK(status["tenants"][0]["applied"] == 3);
}
