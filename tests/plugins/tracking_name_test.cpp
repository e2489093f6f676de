// tracking-name (SPEC §6.2): the built plugin through the real loader and the kernel's wrapper —
// which layouts it claims, the table it creates, a record/list/remove round trip on a real
// PostgreSQL table (also in drizzle-multitenant's own table, which has no hash column), its
// list_query, and the capabilities it declares instead of the kernel guessing from column names.
#include "plugins/tracking_support.hpp"

#include <catch2/catch.hpp>

using namespace mt::test;

TEST_CASE("tracking-name claims name tables: detect scores on each layout", "[format]") {
    const LoadedFormat f("tracking-name");
    const Layouts l;
    CHECK(f->detect(l.name_multitenant) == 10);
    CHECK(f->detect(l.name_mtenant) == 10);
    // A nullable name column only weakly: those are earlier hash / drizzle-kit tables, whose formats score 10.
    CHECK(f->detect(l.hash_legacy) == 1);
    CHECK(f->detect(l.drizzle_legacy) == 1);
    CHECK(f->detect(l.hash_multitenant) == 0);
    CHECK(f->detect(l.hash_mtenant) == 0);
    CHECK(f->detect(l.drizzle_orm) == 0);
    CHECK(f->detect(l.drizzle_mtenant) == 0);
    CHECK(f->detect(l.unrelated) == 0);
    CHECK(f->detect({}) == 0);
}

TEST_CASE("tracking-name declares what it keeps per table, and its label", "[format]") {
    const LoadedFormat f("tracking-name");
    const Layouts l;
    CHECK(f->label() == "name");
    for (const auto* columns : {&l.name_mtenant, static_cast<const std::vector<mt::sdk::Column>*>(nullptr)}) {
        const auto c = columns ? f->capabilities(*columns) : f->capabilities();
        CHECK(c.declared);
        CHECK(c.keeps_names);
        CHECK(c.keeps_hashes);
        CHECK(c.found_by_name);
        CHECK_FALSE(c.journal_time);
    }
    // drizzle-multitenant's table has no hash column: an edited file cannot be seen there.
    const auto c = f->capabilities(l.name_multitenant);
    CHECK(c.keeps_names);
    CHECK_FALSE(c.keeps_hashes);
    CHECK(c.found_by_name);
    CHECK(f->identifies_by() == MT_IDENTIFIES_NAME);
}

TEST_CASE("tracking-name creates its table, records, lists and removes on PostgreSQL", "[format][pg]") {
    const LoadedFormat f("tracking-name");
    const Scratch scratch;
    scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { f->create(sql, {"s", "__drizzle_migrations", {}}); });
    CHECK(scratch.layout() ==
          "id integer not null, name character varying(255) not null, applied_at timestamp with time zone, hash text");
    const auto table = scratch.table();
    CHECK(f->detect(table.columns) == 10);

    // created_at_ms is kept to the millisecond; when_ms is not this format's business.
    const std::vector<mt::sdk::Record> records{{"0000_users", "aa11", 1700000000123, 1600000000000},
                                               {"0001_posts", "bb22", 1700000005000, std::nullopt}};
    scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { f->record(sql, table, records); });
    const std::string both = "0000_users|aa11|1700000000123\n0001_posts|bb22|1700000005000\n";
    CHECK(describe(scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { return f->list(sql, table); })) == both);
    CHECK(run_list_query(scratch, *f.format) == both);

    // Removed by name, whatever hash the record carries.
    scratch.in_transaction(
        [&](mt::SqlSession& sql, pqxx::work&) { f->remove(sql, table, {{"0000_users", std::nullopt, std::nullopt, std::nullopt}}); });
    CHECK(run_list_query(scratch, *f.format) == "0001_posts|bb22|1700000005000\n");

    // A record without a name is refused, and nothing is written.
    try {
        scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) { f->record(sql, table, {{std::nullopt, "cc33", std::nullopt, std::nullopt}}); });
        FAIL("expected the record to be refused");
    } catch (const mt::OperationError& e) {
        CHECK(std::string(e.what()) == "tracking-name: record: the name format needs each migration's name");
    }
    CHECK(scratch.db().scalar("SELECT count(*) FROM s.__drizzle_migrations") == "1");
}

TEST_CASE("tracking-name works in drizzle-multitenant's table, which has no hash column", "[format][pg]") {
    const LoadedFormat f("tracking-name");
    const Scratch scratch;
    scratch.db().exec("CREATE TABLE s.__drizzle_migrations (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, "
                      "applied_at timestamptz DEFAULT now())");
    const auto table = scratch.table();
    CHECK(f->detect(table.columns) == 10);
    CHECK_FALSE(f->capabilities(table.columns).keeps_hashes);
    scratch.in_transaction([&](mt::SqlSession& sql, pqxx::work&) {
        f->record(sql, table, {{"0000_users", "aa11", 1700000000000, std::nullopt}});
    });
    CHECK(run_list_query(scratch, *f.format) == "0000_users|-|1700000000000\n");
}
