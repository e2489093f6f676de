// mtctl tenant clone against a real PostgreSQL (SPEC §7): replay to the source's point, exact
// tracking, data in foreign-key order with sequences past the copied ids, all or nothing.
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace mt::test;
using nlohmann::json;

namespace {

std::string tracked_names(const Project& p, const std::string& schema) {
    return p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM " + schema + ".__drizzle_migrations");
}

void simple_migrations(const Project& p) {
    p.migration("0000_users", "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);");
    p.migration("0001_orders",
                "CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), total int);");
    p.migration("0002_seed", "INSERT INTO users (email) VALUES ('seed@example.com');");
    p.migration("0003_users_name", "ALTER TABLE users ADD COLUMN name text;");
    p.migration("0004_orders_idx", "CREATE INDEX orders_user_idx ON orders (user_id);");
}

// Tables whose alphabetical order is not their dependency order, identity, serial, bigserial and
// generated columns, a self reference, a data migration and an audit trigger.
void rich_migrations(const Project& p) {
    p.migration("0000_accounts",
                "CREATE TABLE accounts (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL,\n"
                "  name_upper text GENERATED ALWAYS AS (upper(name)) STORED);");
    p.migration("0001_projects",
                "CREATE TABLE projects (id serial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts(id), title text);");
    p.migration("0002_assignments",
                "CREATE TABLE assignments (id bigserial PRIMARY KEY, project_id int NOT NULL REFERENCES projects(id),"
                " who text);\n"
                "CREATE TABLE nodes (id serial PRIMARY KEY, parent_id int REFERENCES nodes(id));");
    p.migration("0003_seed", "INSERT INTO accounts (name) VALUES ('seeded');");
    p.migration("0004_audit",
                "CREATE TABLE audit (id serial PRIMARY KEY, what text);\n"
                "CREATE FUNCTION log_project() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                "BEGIN INSERT INTO audit (what) VALUES ('project ' || NEW.id); RETURN NEW; END $$;\n"
                "CREATE TRIGGER projects_audit AFTER INSERT ON projects FOR EACH ROW EXECUTE FUNCTION log_project();");
}

std::string table_rows(const Project& p, const std::string& schema, const std::string& table, const std::string& columns) {
    return p.scalar("SELECT string_agg(concat_ws(':', " + columns + "), ',' ORDER BY id) FROM " + schema + "." + table);
}

}  // namespace

TEST_CASE("tenant clone replays exactly the source's migrations and a later migrate works", "[clone][pg]") {
    Project p;
    simple_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --tenant a --to 0002_seed");
    p.exec("INSERT INTO tenant_a.users (email) VALUES ('x@example.com')");

    const auto doc = run_json(p, "tenant clone --from a --to b");
    CHECK(doc["to"]["schema"] == "tenant_b");
    CHECK(doc["format"] == "name");
    CHECK(doc["migrations"] == json::array({"0000_users", "0001_orders", "0002_seed"}));
    CHECK(doc["with_data"] == false);
    CHECK(tracked_names(p, "tenant_b") == "0000_users,0001_orders,0002_seed");
    // Without --with-data the rows are the ones the replayed migrations wrote.
    CHECK(table_rows(p, "tenant_b", "users", "id, email") == "1:seed@example.com");

    const auto status = run_json(p, "status --tenant b");
    CHECK(status["tenants"][0]["state"] == "behind");
    CHECK(status["tenants"][0]["pending_migrations"] == json::array({"0003_users_name", "0004_orders_idx"}));
    const auto migrated = run_json(p, "migrate --tenant b");
    CHECK(migrated["tenants"][0]["outcome"] == "migrated");
    CHECK(migrated["tenants"][0]["migrations"] == json::array({"0003_users_name", "0004_orders_idx"}));
    CHECK(tracked_names(p, "tenant_b") == "0000_users,0001_orders,0002_seed,0003_users_name,0004_orders_idx");
    CHECK(p.scalar("SELECT to_regclass('tenant_b.orders_user_idx')::text") == "tenant_b.orders_user_idx");
    // The source is untouched.
    CHECK(tracked_names(p, "tenant_a") == "0000_users,0001_orders,0002_seed");
}

TEST_CASE("tenant clone keeps a hole in the source's applied set and writes the source's format", "[clone][pg]") {
    Project p;
    simple_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --tenant a");
    p.exec("DELETE FROM tenant_a.__drizzle_migrations WHERE name = '0004_orders_idx'; DROP INDEX tenant_a.orders_user_idx");
    run_json(p, "convert-format --to drizzle-kit --tenant a");

    const auto doc = run_json(p, "tenant clone --from a --to b");
    CHECK(doc["format"] == "drizzle-kit");
    CHECK(doc["migrations"].size() == 4);
    const auto status = run_json(p, "status --tenants a,b");
    CHECK(status["tenants"][1]["format"] == "drizzle-kit");
    CHECK(status["tenants"][1]["applied"] == 4);
    CHECK(status["tenants"][1]["pending_migrations"] == status["tenants"][0]["pending_migrations"]);
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.__drizzle_migrations") == "4");
    run_json(p, "migrate --tenant b");
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.__drizzle_migrations") == "5");
    CHECK(p.scalar("SELECT to_regclass('tenant_b.orders_user_idx')::text") == "tenant_b.orders_user_idx");
}

TEST_CASE("tenant clone --with-data copies rows in foreign-key order with sequences past them", "[clone][pg]") {
    Project p;
    rich_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --tenant a");
    p.exec("SET search_path = tenant_a;"
           "INSERT INTO accounts (name) VALUES ('acme'), ('gone');"
           "DELETE FROM accounts WHERE name = 'gone';"
           "INSERT INTO projects (account_id, title) VALUES (1, 'p1'), (2, 'p2');"
           "INSERT INTO projects (id, account_id, title) VALUES (100, 2, 'explicit');"
           "INSERT INTO assignments (project_id, who) VALUES (1, 'ann'), (100, 'bob');"
           "INSERT INTO nodes (id, parent_id) VALUES (1, NULL), (2, 1), (3, 2);"
           "ALTER SEQUENCE nodes_id_seq RESTART WITH 4;");

    const auto doc = run_json(p, "tenant clone --from a --to b --with-data");
    CHECK(doc["with_data"] == true);
    CHECK(doc["atomic"] == true);
    std::vector<std::string> order;
    for (const auto& t : doc["tables"]) order.push_back(t["table"]);
    auto pos = [&](const std::string& t) { return std::find(order.begin(), order.end(), t) - order.begin(); };
    REQUIRE(order.size() == 5);  // accounts, assignments, audit, nodes, projects; not the tracking table
    CHECK(pos("accounts") < pos("projects"));
    CHECK(pos("projects") < pos("assignments"));
    CHECK(doc["rows"] == 2 + 3 + 2 + 3 + 3);

    for (const auto& [table, columns] : std::vector<std::pair<std::string, std::string>>{
             {"accounts", "id, name, name_upper"},
             {"projects", "id, account_id, title"},
             {"assignments", "id, project_id, who"},
             {"nodes", "id, parent_id"},
             {"audit", "id, what"}}) {
        INFO(table);
        CHECK(table_rows(p, "tenant_b", table, columns) == table_rows(p, "tenant_a", table, columns));
    }
    // The data migration's row was replaced by the source's rows, not added to them.
    CHECK(table_rows(p, "tenant_b", "accounts", "id, name") == "1:seeded,2:acme");
    // The copy did not fire the audit trigger: audit holds exactly the source's three rows.
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.audit") == "3");
    // The tracking table was written by the replay, once.
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.__drizzle_migrations") == "5");

    // Sequences: identity at the source's value (3, past the deleted row), serial past the
    // explicit id 100, triggers enabled again.
    p.exec("SET search_path = tenant_b;"
           "INSERT INTO accounts (name) VALUES ('new');"
           "INSERT INTO projects (account_id, title) VALUES (1, 'next');"
           "INSERT INTO assignments (project_id, who) VALUES (1, 'cy');"
           "INSERT INTO nodes (parent_id) VALUES (3);");
    CHECK(p.scalar("SELECT id FROM tenant_b.accounts WHERE name = 'new'") == "4");
    CHECK(p.scalar("SELECT name_upper FROM tenant_b.accounts WHERE name = 'new'") == "NEW");
    CHECK(p.scalar("SELECT id FROM tenant_b.projects WHERE title = 'next'") == "101");
    CHECK(p.scalar("SELECT id FROM tenant_b.assignments WHERE who = 'cy'") == "3");
    CHECK(p.scalar("SELECT max(id) FROM tenant_b.nodes") == "4");
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.audit") == "4");
    // The source's sequences did not move.
    CHECK(p.scalar("SELECT last_value FROM tenant_a.projects_id_seq") == "2");
}

TEST_CASE("tenant clone that fails while copying leaves no target schema", "[clone][pg]") {
    Project p;
    p.migration("0000_items", "CREATE TABLE items (id serial PRIMARY KEY, qty int);");
    p.migration("0001_items_check", "ALTER TABLE items ADD CONSTRAINT qty_positive CHECK (qty > 0) NOT VALID;");
    p.migration("0002_notes", "CREATE TABLE notes (id serial PRIMARY KEY, body text);");
    p.tenants({"a"});
    run_json(p, "migrate --tenant a --to 0000_items");
    // Rows written before the NOT VALID constraint: the source keeps them, a copy cannot insert them.
    p.exec("INSERT INTO tenant_a.items (qty) VALUES (5), (-1)");
    run_json(p, "migrate --tenant a");
    p.exec("INSERT INTO tenant_a.notes (body) VALUES ('hello')");

    const auto r = p.mtctl("tenant clone --from a --to b --with-data");
    INFO(r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("items") != std::string::npos);
    CHECK(r.err.find("qty_positive") != std::string::npos);
    CHECK(r.err.find("not created") != std::string::npos);
    CHECK_FALSE(schema_exists(p, "tenant_b"));
    // The locks were released: the structure-only clone works right after.
    run_json(p, "tenant clone --from a --to b");
    CHECK(schema_exists(p, "tenant_b"));
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.items") == "0");
}

TEST_CASE("tenant clone that fails while replaying leaves no target schema", "[clone][pg]") {
    Project p;
    simple_migrations(p);
    p.tenants({"a"});
    run_json(p, "migrate --tenant a");
    // The file changed after a applied it; replaying it now fails.
    p.migration("0003_users_name", "ALTER TABLE users ADD COLUMN name text; SELECT 1/0;");
    const auto r = p.mtctl("--json tenant clone --from a --to b");
    INFO(r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("0003_users_name.sql") != std::string::npos);
    CHECK(r.err.find("division by zero") != std::string::npos);
    CHECK_FALSE(schema_exists(p, "tenant_b"));
}

TEST_CASE("tenant clone refuses a missing source, an existing target and orphan records", "[clone][pg]") {
    Project p;
    simple_migrations(p);
    p.tenants({"a", "c"});
    run_json(p, "migrate --tenants a,c");

    auto missing = p.mtctl("tenant clone --from nope --to b");
    CHECK(missing.exit_code == 1);
    CHECK(missing.err.find("tenant nope does not exist") != std::string::npos);
    CHECK_FALSE(schema_exists(p, "tenant_b"));

    auto exists = p.mtctl("tenant clone --from a --to c");
    CHECK(exists.exit_code == 1);
    CHECK(exists.err.find("tenant c already exists") != std::string::npos);
    CHECK(tracked_names(p, "tenant_c") == tracked_names(p, "tenant_a"));

    auto same = p.mtctl("tenant clone --from a --to a");
    CHECK(same.exit_code == 2);

    auto bad_id = p.mtctl("tenant clone --from a --to 'x\"; DROP SCHEMA tenant_a; --'");
    CHECK(bad_id.exit_code == 2);
    CHECK(schema_exists(p, "tenant_a"));

    p.exec("INSERT INTO tenant_a.__drizzle_migrations (name) VALUES ('0009_deleted_file')");
    auto orphan = p.mtctl("tenant clone --from a --to b");
    CHECK(orphan.exit_code == 1);
    CHECK(orphan.err.find("0009_deleted_file") != std::string::npos);
    CHECK(orphan.err.find("sync --clean-orphans") != std::string::npos);
    CHECK_FALSE(schema_exists(p, "tenant_b"));
}

TEST_CASE("tenant clone with a no-transaction migration runs in steps and still cleans up", "[clone][pg]") {
    Project p;
    p.migration("0000_items", "CREATE TABLE items (id serial PRIMARY KEY, qty int);");
    p.migration("0001_items_idx", "-- mt:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_qty_idx ON items (qty);");
    p.migration("0002_items_check", "ALTER TABLE items ADD CONSTRAINT qty_positive CHECK (qty > 0) NOT VALID;");
    p.tenants({"a"});
    run_json(p, "migrate --tenant a");
    p.exec("INSERT INTO tenant_a.items (qty) VALUES (1), (2)");

    const auto doc = run_json(p, "tenant clone --from a --to b --with-data");
    CHECK(doc["atomic"] == false);
    CHECK(tracked_names(p, "tenant_b") == "0000_items,0001_items_idx,0002_items_check");
    CHECK(p.scalar("SELECT to_regclass('tenant_b.items_qty_idx')::text") == "tenant_b.items_qty_idx");
    CHECK(table_rows(p, "tenant_b", "items", "id, qty") == "1:1,2:2");
    run_json(p, "migrate --tenant b");

    p.exec("ALTER TABLE tenant_a.items DROP CONSTRAINT qty_positive; INSERT INTO tenant_a.items (qty) VALUES (-5);"
           "ALTER TABLE tenant_a.items ADD CONSTRAINT qty_positive CHECK (qty > 0) NOT VALID");
    const auto r = p.mtctl("tenant clone --from a --to c --with-data");
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("qty_positive") != std::string::npos);
    CHECK_FALSE(schema_exists(p, "tenant_c"));
}

TEST_CASE("tenant clone --with-data fills partitioned tables through their parent and inheritance children once",
          "[clone][pg]") {
    Project p;
    p.migration("0000_events",
                "CREATE TABLE events (id bigint GENERATED BY DEFAULT AS IDENTITY, at date NOT NULL, what text,\n"
                "  PRIMARY KEY (id, at)) PARTITION BY RANGE (at);\n"
                "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n"
                "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');\n"
                "CREATE TABLE event_log (n serial PRIMARY KEY);\n"
                "CREATE FUNCTION log_event() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                "BEGIN INSERT INTO event_log DEFAULT VALUES; RETURN NEW; END $$;\n"
                "CREATE TRIGGER events_log AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION log_event();\n"
                "CREATE TABLE base (id int, note text);\n"
                "CREATE TABLE child (extra int) INHERITS (base);");
    p.tenants({"a"});
    run_json(p, "migrate --tenant a");
    p.exec("SET search_path = tenant_a;"
           "INSERT INTO events (at, what) VALUES ('2024-05-01', 'x'), ('2025-02-01', 'y');"
           "INSERT INTO base VALUES (1, 'base'); INSERT INTO child VALUES (2, 'child', 7);");

    const auto doc = run_json(p, "tenant clone --from a --to b --with-data");
    std::vector<std::string> tables;
    for (const auto& t : doc["tables"]) tables.push_back(t["table"]);
    CHECK(std::find(tables.begin(), tables.end(), "events") != tables.end());
    CHECK(std::find(tables.begin(), tables.end(), "events_2024") == tables.end());
    CHECK(table_rows(p, "tenant_b", "events", "id, at, what") == table_rows(p, "tenant_a", "events", "id, at, what"));
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.events_2025") == "1");
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.event_log") == "2");  // copied, not fired again
    CHECK(p.scalar("SELECT string_agg(id || ':' || note, ',' ORDER BY id) FROM tenant_b.base") == "1:base,2:child");
    CHECK(p.scalar("SELECT count(*) FROM ONLY tenant_b.base") == "1");
    // The trigger fires again after the copy, also on the partitions.
    p.exec("SET search_path = tenant_b; INSERT INTO events (at, what) VALUES ('2025-03-01', 'z')");
    CHECK(p.scalar("SELECT count(*) FROM tenant_b.event_log") == "3");
    CHECK(p.scalar("SELECT max(id) FROM tenant_b.events") == "3");
}
