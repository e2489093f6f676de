// discovery-sql (SPEC §5): the built plugin through the real loader — the query it refuses, its
// default query, the optional server column, and the failures it reports with the exact message
// (a NULL id, a query without columns, a server error with its SQLSTATE) against a real database.
#include "plugins/discovery_support.hpp"

#include <catch2/catch.hpp>

using namespace mt::test;

TEST_CASE("discovery-sql refuses an empty query", "[discovery]") {
    const LoadedDiscovery loaded("discovery-sql");
    for (const std::string query : {"", "  \n\t"}) {
        const auto e = loaded.refusal({{"query", query}});
        CHECK(e.stage == "config");
        CHECK(e.reason == "discovery-sql: query: must not be empty");
    }
    CHECK(loaded.refusal({{"sql", "SELECT 1"}}).reason == "unknown key 'sql' for discovery-sql (accepted: query)");
}

TEST_CASE("discovery-sql runs its query: the default, and one with a server column", "[discovery][pg]") {
    const LoadedDiscovery loaded("discovery-sql");
    const TempDatabase db;
    db.exec("CREATE TABLE public.tenants (id text PRIMARY KEY, server text); "
            "INSERT INTO public.tenants VALUES ('globex', 'replica'), ('acme', NULL), ('initech', '')");
    // Default: SELECT id FROM public.tenants ORDER BY id.
    CHECK(discovered(loaded.create(), db) == "acme,globex,initech");
    // A NULL or empty second column is the default server.
    CHECK(discovered(loaded.create({{"query", "SELECT id, server FROM public.tenants ORDER BY id DESC"}}), db) ==
          "initech,globex@replica,acme");
}

TEST_CASE("discovery-sql reports a bad result or a failed query, naming the plugin", "[discovery][pg]") {
    const LoadedDiscovery loaded("discovery-sql");
    const TempDatabase db;
    const auto failure = [&](const std::string& query) {
        try {
            discovered(loaded.create({{"query", query}}), db);
        } catch (const mt::OperationError& e) {
            return std::make_pair(std::string(e.what()), e.sqlstate);
        }
        FAIL("expected discovery to fail for " << query);
        return std::make_pair(std::string(), std::string());
    };
    CHECK(failure("SELECT NULL::text") ==
          std::make_pair(std::string("discovery-sql: discover: the discovery query returned a NULL tenant id"), std::string()));
    CHECK(failure("SELECT FROM generate_series(1, 1)") ==
          std::make_pair(std::string("discovery-sql: discover: the discovery query returned no columns; it must return "
                                     "the tenant id first"),
                         std::string()));
    const auto [message, sqlstate] = failure("SELECT id FROM no_such_table");
    CHECK(sqlstate == "42P01");
    CHECK_THAT(message, Catch::Matchers::Contains("relation \"no_such_table\" does not exist"));
}
