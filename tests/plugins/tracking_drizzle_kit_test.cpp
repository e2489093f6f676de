// tracking-drizzle-kit (SPEC §6.2): the built plugin through the real loader and the kernel's
// wrapper — which layouts it claims, the table it creates, a record/list/remove round trip on a
// real PostgreSQL table (also in drizzle-orm's own table), the journal's `when` kept as
// created_at, its list_query, and the capabilities it declares.
#include "plugins/tracking_support.hpp"
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <catch2/catch.hpp>

using namespace mt::test;

TEST_CASE("tracking-drizzle-kit claims hash tables with a bigint created_at: detect scores on each layout", "[format]") {
    const LoadedFormat f("tracking-drizzle-kit");
    const Layouts l;
    CHECK(f->detect(l.drizzle_orm) == 10);
    CHECK(f->detect(l.drizzle_mtenant) == 10);
    CHECK(f->detect(l.drizzle_legacy) == 10);
    CHECK(f->detect(l.hash_multitenant) == 0);
    CHECK(f->detect(l.hash_mtenant) == 0);
    CHECK(f->detect(l.hash_legacy) == 0);
    CHECK(f->detect(l.name_multitenant) == 0);
    CHECK(f->detect(l.name_mtenant) == 0);
    CHECK(f->detect(l.unrelated) == 0);
    CHECK(f->detect({}) == 0);
    // A required name is the name format's, whatever else the table has.
    auto named = l.drizzle_orm;
    named.push_back(col("name", "character varying(255)", true));
    CHECK(f->detect(named) == 0);
}

TEST_CASE("tracking-drizzle-kit declares what it keeps per table, and its label", "[format]") {
    const LoadedFormat f("tracking-drizzle-kit");
    const Layouts l;
    CHECK(f->label() == "drizzle-kit");
    CHECK(f->identifies_by() == MT_IDENTIFIES_HASH);
    const auto created = f->capabilities();
    CHECK(created.declared);
    CHECK(created.keeps_hashes);
    CHECK(created.keeps_names);  // in migration_name
    CHECK(created.journal_time);
    CHECK_FALSE(created.found_by_name);
    // drizzle-orm's own table keeps no names: only the journal's `when` pairs an edited file.
    const auto orm = f->capabilities(l.drizzle_orm);
    CHECK_FALSE(orm.keeps_names);
    CHECK(orm.keeps_hashes);
    CHECK(orm.journal_time);
    CHECK(f->capabilities(l.drizzle_legacy).found_by_name);
}

TEST_CASE("tracking-drizzle-kit creates its table, records, lists and removes on PostgreSQL", "[format][pg]") {
    const LoadedFormat f("tracking-drizzle-kit");
    const Scratch scratch;
    scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { f->create(sql, {"s", "__drizzle_migrations", {}}); });
    CHECK(scratch.layout() ==
          "id integer not null, hash text not null, created_at bigint, migration_name character varying(255)");
    const auto table = scratch.table();
    CHECK(f->detect(table.columns) == 10);

    // created_at is the journal's when where there is one (what drizzle-orm compares), else the record's time.
    const std::vector<mt::sdk::Record> records{{"0000_users", "aa11", 1700000000123, 1600000000000},
                                               {"0001_posts", "bb22", 1700000005000, std::nullopt}};
    scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { f->record(sql, table, records); });
    const std::string both = "0000_users|aa11|1600000000000\n0001_posts|bb22|1700000005000\n";
    CHECK(describe(scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { return f->list(sql, table); })) == both);
    CHECK(run_list_query(scratch, *f.format) == both);

    scratch.in_transaction(
        [&](mt::SqlSession& sql, pqxx::work&) { f->remove(sql, table, {{std::nullopt, "aa11", std::nullopt, std::nullopt}}); });
    CHECK(run_list_query(scratch, *f.format) == "0001_posts|bb22|1700000005000\n");

    try {
        scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { f->record(sql, table, {{"0002_seed", std::nullopt, std::nullopt, std::nullopt}}); });
        FAIL("expected the record to be refused");
    } catch (const mt::OperationError& e) {
        CHECK(std::string(e.what()) == "tracking-drizzle-kit: record: the drizzle-kit format needs each migration's hash");
    }
    CHECK(scratch.db().scalar("SELECT count(*) FROM s.__drizzle_migrations") == "1");
}

TEST_CASE("tracking-drizzle-kit works in drizzle-orm's own table, which keeps no names", "[format][pg]") {
    const LoadedFormat f("tracking-drizzle-kit");
    const Scratch scratch;
    scratch.db().exec("CREATE TABLE s.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint)");
    const auto table = scratch.table();
    CHECK(f->detect(table.columns) == 10);
    scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) {
        f->record(sql, table, {{"0000_users", "aa11", std::nullopt, 1700000000000}});
    });
    CHECK(run_list_query(scratch, *f.format) == "-|aa11|1700000000000\n");
}

// Moved here from tracking_format_test.cpp: end to end through mtctl.
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

TEST_CASE("drizzle-kit tables from earlier versions keep their nullable name column working", "[format][pg]") {
    Project p;
    p.migration("0000_users", "CREATE TABLE users (id serial PRIMARY KEY, email text);");
    p.migration("0001_posts", "CREATE TABLE posts (id serial PRIMARY KEY, user_id int REFERENCES users(id));");
    p.migration("0002_seed", "INSERT INTO users (email) VALUES ('x@example.com');");
    p.tenants({"a"});
    p.exec("CREATE TABLE tenant_a.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, "
           "created_at bigint, name varchar(255))");
    const auto doc = run_json(p, "migrate --all");
    CHECK(doc["tenants"][0]["format"] == "drizzle-kit");
    CHECK(doc["summary"]["migrations_applied"] == 3);
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM tenant_a.__drizzle_migrations") ==
          "0000_users,0001_posts,0002_seed");
    const auto status = run_json(p, "status");
    CHECK(status["tenants"][0]["state"] == "up-to-date");
    CHECK(status["tenants"][0]["applied"] == 3);
}
