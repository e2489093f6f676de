// mtctl seed against a real PostgreSQL (SPEC §7): one transaction per tenant, a per-tenant report,
// exit 1 when any tenant failed.
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace mt::test;
using nlohmann::json;

namespace {

void plans_migration(const Project& p) {
    p.migration("0000_items", "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL UNIQUE, plan text);");
    p.exec("CREATE TABLE IF NOT EXISTS public.plans (code text PRIMARY KEY); INSERT INTO public.plans VALUES ('pro')");
}

}  // namespace

TEST_CASE("seed runs the file in each selected tenant with tenant then shared on the search_path", "[seed][pg]") {
    Project p;
    plans_migration(p);
    p.tenants({"a", "b", "c"});
    run_json(p, "migrate --all");
    write_file(p.dir() / "seed.sql",
               "\xEF\xBB\xBFINSERT INTO items (name, plan) SELECT 'starter', code FROM plans;\n"
               "INSERT INTO items (name) VALUES ('second');\n");
    const auto doc = run_json(p, "seed --file seed.sql --tenants a,b --concurrency 2");
    CHECK(doc["command"] == "seed");
    CHECK(doc["summary"]["total"] == 2);
    CHECK(doc["summary"]["succeeded"] == 2);
    CHECK(doc["summary"]["failed"] == 0);
    CHECK(doc["tenants"][0]["id"] == "a");
    CHECK(doc["tenants"][0]["outcome"] == "ok");
    CHECK(p.scalar("SELECT string_agg(name || ':' || coalesce(plan, '-'), ',' ORDER BY id) FROM tenant_a.items") ==
          "starter:pro,second:-");
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.items") == "2");
    CHECK(p.scalar("SELECT count(*) FROM tenant_c.items") == "0");
    // Nothing leaked into the shared schema.
    CHECK(p.scalar("SELECT to_regclass('public.items')::text").empty());

    const auto human = p.mtctl("seed --file seed.sql --tenant c");
    CHECK(human.exit_code == 0);
    CHECK(human.out.find("1 tenants, 1 succeeded, 0 failed") != std::string::npos);
}

TEST_CASE("seed with one tenant failing reports it with its SQLSTATE, rolls it back and exits 1", "[seed][pg]") {
    Project p;
    plans_migration(p);
    p.tenants({"a", "b", "c", "gone"});
    run_json(p, "migrate --tenants a,b,c");
    p.exec("DROP SCHEMA tenant_gone");
    // b already has 'x': its second statement violates the unique constraint after the first ran.
    p.exec("INSERT INTO tenant_b.items (name) VALUES ('x')");
    write_file(p.dir() / "seed.sql", "INSERT INTO items (name) VALUES ('first');\nINSERT INTO items (name) VALUES ('x');\n");
    const auto doc = run_json(p, "seed --file seed.sql --all", 1);
    CHECK(doc["summary"]["total"] == 4);
    CHECK(doc["summary"]["succeeded"] == 2);
    CHECK(doc["summary"]["failed"] == 2);
    const auto& b = doc["tenants"][1];
    CHECK(b["id"] == "b");
    CHECK(b["outcome"] == "failed");
    CHECK(b["sqlstate"] == "23505");
    CHECK(b["error"].get<std::string>().find("items_name_key") != std::string::npos);
    const auto& gone = doc["tenants"][3];
    CHECK(gone["outcome"] == "failed");
    CHECK(gone["error"].get<std::string>().find("mtctl tenant create --id gone") != std::string::npos);
    // b's transaction rolled back as a whole: 'first' is not there; the others have both rows.
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM tenant_b.items") == "x");
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.items") == "2");
    CHECK(p.scalar("SELECT count(*) FROM tenant_c.items") == "2");
    CHECK_FALSE(p.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_gone'") == "1");

    const auto human = p.mtctl("seed --file seed.sql --tenant b");
    CHECK(human.exit_code == 1);
    CHECK(human.err.find("FAIL b (tenant_b) [23505]") != std::string::npos);
}

TEST_CASE("seed refuses a missing or empty file and transaction control, changing nothing", "[seed][pg]") {
    Project p;
    plans_migration(p);
    p.tenants({"a"});
    run_json(p, "migrate --all");
    const auto missing = p.mtctl("seed --file nope.sql --all");
    CHECK(missing.exit_code == 2);
    CHECK(missing.err.find("nope.sql") != std::string::npos);
    write_file(p.dir() / "empty.sql", "  \n");
    CHECK(p.mtctl("seed --file empty.sql --all").exit_code == 2);
    CHECK(p.mtctl("seed --file empty.sql").exit_code == 2);  // no tenant selection

    for (const char* control : {"COMMIT", "end", "Rollback", "BEGIN", "start transaction", "ABORT",
                                "PREPARE TRANSACTION 'x'"}) {
        INFO(control);
        write_file(p.dir() / "control.sql", std::string("INSERT INTO items (name) VALUES ('early');\n/* a comment */ ") +
                                                control + ";\nINSERT INTO items (name) VALUES ('late');");
        const auto r = p.mtctl("seed --file control.sql --all");
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("transaction control") != std::string::npos);
    }
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.items") == "0");
}

TEST_CASE("seed accepts BEGIN and COMMIT that are not transaction control", "[seed][pg]") {
    Project p;
    plans_migration(p);
    p.tenants({"a"});
    run_json(p, "migrate --all");
    // DO blocks, strings, comments, quoted identifiers, savepoints and a BEGIN ATOMIC body.
    write_file(p.dir() / "seed.sql", R"sql(-- COMMIT; in a comment
DO $$ BEGIN INSERT INTO items (name) VALUES ('from do'); END $$;
INSERT INTO items (name) VALUES ('BEGIN; COMMIT;'), (E'it\'s; END');
SAVEPOINT s; INSERT INTO items (name) VALUES ('rolled back'); ROLLBACK TO SAVEPOINT s; RELEASE s;
CREATE FUNCTION item_count() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM items; END;
CREATE TABLE "commit" (x int);
/* ROLLBACK; /* nested */ still a comment */
INSERT INTO items (name) SELECT 'count ' || item_count();
)sql");
    run_json(p, "seed --file seed.sql --all");
    CHECK(p.scalar("SELECT string_agg(name, '|' ORDER BY id) FROM tenant_a.items") ==
          "from do|BEGIN; COMMIT;|it's; END|count 3");
}
