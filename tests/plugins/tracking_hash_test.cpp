// tracking-hash (SPEC §6.2): the built plugin through the real loader and the kernel's wrapper —
// which layouts it claims, the table it creates, a record/list/remove round trip on a real
// PostgreSQL table (also in drizzle-multitenant's table and in an earlier mtenant's with a
// nullable `name` column), its list_query, and the capabilities it declares.
#include "plugins/tracking_support.hpp"
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <catch2/catch.hpp>

using namespace mt::test;

TEST_CASE("tracking-hash claims hash tables with timestamptz: detect scores on each layout", "[format]") {
    const LoadedFormat f("tracking-hash");
    const Layouts l;
    CHECK(f->detect(l.hash_multitenant) == 10);
    CHECK(f->detect(l.hash_mtenant) == 10);
    CHECK(f->detect(l.hash_legacy) == 10);
    // A required name is the name format's table; a bigint created_at is drizzle-kit's.
    CHECK(f->detect(l.name_mtenant) == 0);
    CHECK(f->detect(l.name_multitenant) == 0);
    CHECK(f->detect(l.drizzle_orm) == 0);
    CHECK(f->detect(l.drizzle_mtenant) == 0);
    CHECK(f->detect(l.drizzle_legacy) == 0);
    CHECK(f->detect(l.unrelated) == 0);
    CHECK(f->detect({}) == 0);
}

TEST_CASE("tracking-hash declares what it keeps per table, and its label", "[format]") {
    const LoadedFormat f("tracking-hash");
    const Layouts l;
    CHECK(f->label() == "hash");
    CHECK(f->identifies_by() == MT_IDENTIFIES_HASH);
    const auto created = f->capabilities();
    CHECK(created.declared);
    CHECK(created.keeps_hashes);
    CHECK(created.keeps_names);  // in migration_name
    CHECK_FALSE(created.found_by_name);
    CHECK_FALSE(created.journal_time);
    CHECK(f->capabilities(l.hash_mtenant).keeps_names);
    CHECK_FALSE(f->capabilities(l.hash_mtenant).found_by_name);
    // drizzle-multitenant's table keeps no names: an edit there is a missing migration plus an orphan.
    CHECK_FALSE(f->capabilities(l.hash_multitenant).keeps_names);
    CHECK(f->capabilities(l.hash_multitenant).keeps_hashes);
    // An earlier mtenant's `name` column: drizzle-multitenant reads such a table by name.
    CHECK(f->capabilities(l.hash_legacy).keeps_names);
    CHECK(f->capabilities(l.hash_legacy).found_by_name);
}

TEST_CASE("tracking-hash creates its table, records, lists and removes on PostgreSQL", "[format][pg]") {
    const LoadedFormat f("tracking-hash");
    const Scratch scratch;
    scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { f->create(sql, {"s", "__drizzle_migrations", {}}); });
    // Not `name`: drizzle-multitenant would take a table with a `name` column for its name format.
    CHECK(scratch.layout() == "id integer not null, hash text not null, created_at timestamp with time zone, "
                              "migration_name character varying(255)");
    const auto table = scratch.table();
    CHECK(f->detect(table.columns) == 10);

    const std::vector<mt::sdk::Record> records{{"0000_users", "aa11", 1700000000123, 1600000000000},
                                               {"0001_posts", "bb22", 1700000005000, std::nullopt}};
    scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { f->record(sql, table, records); });
    const std::string both = "0000_users|aa11|1700000000123\n0001_posts|bb22|1700000005000\n";
    CHECK(describe(scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { return f->list(sql, table); })) == both);
    CHECK(run_list_query(scratch, *f.format) == both);

    // Removed by hash, whatever name the record carries.
    scratch.in_transaction(
        [&](mt::SqlSession& sql, pqxx::work&) { f->remove(sql, table, {{"renamed", "aa11", std::nullopt, std::nullopt}}); });
    CHECK(run_list_query(scratch, *f.format) == "0001_posts|bb22|1700000005000\n");

    try {
        scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { f->record(sql, table, {{"0002_seed", std::nullopt, std::nullopt, std::nullopt}}); });
        FAIL("expected the record to be refused");
    } catch (const mt::OperationError& e) {
        CHECK(std::string(e.what()) == "tracking-hash: record: the hash format needs each migration's hash");
    }
    CHECK(scratch.db().scalar("SELECT count(*) FROM s.__drizzle_migrations") == "1");
}

TEST_CASE("tracking-hash works in drizzle-multitenant's table, which keeps no names", "[format][pg]") {
    const LoadedFormat f("tracking-hash");
    const Scratch scratch;
    scratch.db().exec("CREATE TABLE s.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL UNIQUE, "
                      "created_at timestamptz DEFAULT now())");
    const auto table = scratch.table();
    CHECK(f->detect(table.columns) == 10);
    scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) {
        f->record(sql, table, {{"0000_users", "aa11", 1700000000000, std::nullopt}});
    });
    CHECK(run_list_query(scratch, *f.format) == "-|aa11|1700000000000\n");
}

// Moved here from tracking_format_test.cpp: end to end through mtctl.
TEST_CASE("hash tables from earlier versions keep their nullable name column working", "[format][pg]") {
    Project p;
    p.migration("0000_users", "CREATE TABLE users (id serial PRIMARY KEY, email text);");
    p.migration("0001_posts", "CREATE TABLE posts (id serial PRIMARY KEY, user_id int REFERENCES users(id));");
    p.migration("0002_seed", "INSERT INTO users (email) VALUES ('x@example.com');");
    p.tenants({"a"});
    p.exec("CREATE TABLE tenant_a.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL UNIQUE, "
           "created_at timestamptz DEFAULT now(), name varchar(255))");
    const auto doc = run_json(p, "migrate --all");
    CHECK(doc["tenants"][0]["format"] == "hash");
    CHECK(doc["summary"]["migrations_applied"] == 3);
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM tenant_a.__drizzle_migrations") ==
          "0000_users,0001_posts,0002_seed");
    const auto status = run_json(p, "status");
    CHECK(status["tenants"][0]["state"] == "up-to-date");
    CHECK(status["tenants"][0]["applied"] == 3);
}
