// The COPY read of tracking tables (ABI 1.2, issue 14 item 5): fleet-wide reads take each tenant's
// records by `COPY table (columns) TO STDOUT (FORMAT binary)` where the format declares which raw
// columns its list_query computes from. The guarantee: what status reads by COPY is exactly what
// the format's list_query gives, row for row and in its order, whatever the values (NULLs, names
// with tabs, newlines and backslashes, timestamps before 1970 and to the microsecond, ids out of
// physical order), whatever the session's DateStyle and TimeZone, and whatever the table looks like:
// a table COPY would read differently (child tables, a partitioned table, columns of other types)
// is read by list_query instead. A table holding infinity fails with a message naming it.
#include "plugins/tracking_support.hpp"
#include "support/project.hpp"

#include <mt/base/ident.hpp>
#include <mt/fleet/command_results.hpp>
#include <mt/fleet/commands.hpp>

#include <catch2/catch.hpp>

#include <regex>
#include <string>
#include <vector>

using namespace mt::test;
using Catch::Matchers::Contains;

namespace {

// The tracking table of tenant_<id>, created with this layout, and the format that reads it.
struct Layout {
    std::string label;
    std::string format;      // plugin name
    std::string create;      // CREATE TABLE … {t}
    std::string name_column; // where the name goes ("" : none)
    std::string time_type;   // "timestamp" or "bigint"
    bool hash = true;
};

const std::vector<Layout>& layouts() {
    static const std::vector<Layout> all = {
        {"name (drizzle-multitenant)", "tracking-name",
         "CREATE TABLE {t} (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, applied_at timestamptz DEFAULT now())",
         "name", "timestamp", false},
        {"name (mtenant)", "tracking-name",
         "CREATE TABLE {t} (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, applied_at timestamptz DEFAULT now(), "
         "hash text)",
         "name", "timestamp"},
        {"hash (drizzle-multitenant)", "tracking-hash",
         "CREATE TABLE {t} (id serial PRIMARY KEY, hash text NOT NULL, created_at timestamptz DEFAULT now())", "",
         "timestamp"},
        {"hash (mtenant)", "tracking-hash",
         "CREATE TABLE {t} (id serial PRIMARY KEY, hash text NOT NULL, created_at timestamptz DEFAULT now(), "
         "migration_name varchar(255))",
         "migration_name", "timestamp"},
        {"hash (earlier mtenant)", "tracking-hash",
         "CREATE TABLE {t} (id serial PRIMARY KEY, hash text NOT NULL, created_at timestamptz DEFAULT now(), name varchar(255))",
         "name", "timestamp"},
        {"drizzle-kit (drizzle-orm)", "tracking-drizzle-kit",
         "CREATE TABLE {t} (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint)", "", "bigint"},
        {"drizzle-kit (mtenant)", "tracking-drizzle-kit",
         "CREATE TABLE {t} (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint, migration_name varchar(255))",
         "migration_name", "bigint"},
        {"drizzle-kit (earlier mtenant)", "tracking-drizzle-kit",
         "CREATE TABLE {t} (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint, name varchar(255))", "name",
         "bigint"},
    };
    return all;
}

std::string table_of(const std::string& id) { return "tenant_" + id + ".__drizzle_migrations"; }

std::string replaced(std::string text, const std::string& what, const std::string& with) {
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + with.size()))
        text.replace(at, what.size(), with);
    return text;
}

// Rows meant to break a decoder: ids out of physical order, a NULL time, names with the bytes text
// COPY escapes, times before 1970 (floor, not truncation), before 2000 (binary's epoch), to the
// microsecond, and a NULL hash where the layout allows one.
void hostile_rows(const Project& p, const Layout& l, const std::string& id) {
    const std::string t = table_of(id);
    p.exec(replaced(l.create, "{t}", t));
    const bool ts = l.time_type == "timestamp";
    const std::string time_column = l.label.rfind("name", 0) == 0 ? "applied_at" : "created_at";
    const std::vector<std::pair<std::string, std::optional<std::string>>> rows = {
        {"3", ts ? "2026-11-30 18:36:05.202792+00" : "1764527765202"},
        {"1", ts ? "1969-12-31 23:59:59.9995+00" : "-5"},
        {"7", std::nullopt},
        {"2", ts ? "1900-01-01 00:00:00.000001+00" : "0"},
        {"5", ts ? "2000-01-01 00:00:00+00" : "946684800000"},
        {"4", ts ? "1999-12-31 23:59:59.999999+00" : "9223372036854775807"},
    };
    int n = 0;
    for (const auto& [row_id, time] : rows) {
        ++n;
        const std::string name = n == 2 ? "tab\there" : n == 3 ? "new\nline" : n == 4 ? "back\\slash \"q\" 'a'"
                                 : n == 5 ? "\u00fcn\u00efc\u00f8d\u00e9 0005_\u2713" : "000" + std::to_string(n) + "_plain";
        const std::optional<std::string> hash = (n == 6 && l.hash && l.name_column == "name" && l.format == "tracking-name")
                                                    ? std::nullopt
                                                    : std::optional<std::string>("h" + std::to_string(n));
        std::string columns = "id, " + time_column, values = "$1::int, $2::" + std::string(ts ? "timestamptz" : "bigint");
        mt::SqlParams params{row_id, time};
        if (!l.name_column.empty()) {
            columns += ", " + l.name_column;
            params.push_back(name);
            values += ", $" + std::to_string(params.size());
        }
        if (l.hash) {
            columns += ", hash";
            params.push_back(hash);
            values += ", $" + std::to_string(params.size());
        }
        p.exec("INSERT INTO " + t + " (" + columns + ") VALUES (" + values + ")", params);
    }
}

// The format's list_query run by hand on tenant_<id>'s table: "name|hash|ms" per row.
std::string by_list_query(const Project& p, const std::string& format, const std::string& id) {
    LoadedFormat f(format);
    const std::string q = replaced(f->list_query(), "{table}", table_of(id));
    pqxx::connection c(p.url());
    pqxx::work tx(c);
    std::string out;
    for (const auto& row : tx.exec(q))
        out += std::string(row[0].is_null() ? "-" : row[0].c_str()) + "|" + (row[1].is_null() ? "-" : row[1].c_str()) +
               "|" + (row[2].is_null() ? "-" : row[2].c_str()) + "\n";
    return out;
}

// What fleet status read for each tenant, in discovery order.
std::vector<std::string> by_status(const Project& p, const std::vector<std::string>& ids) {
    const auto result = mt::command::status(p.manifest_input(), mt::command::Scope{mt::TenantSelection{false, ids}, false});
    std::vector<std::string> out;
    for (const auto& st : result.fleet.tenants) out.push_back(describe(st.records));
    return out;
}

}  // namespace

TEST_CASE("status reads every in-tree layout exactly as its list_query does, hostile values included", "[copy][pg]") {
    Project p;
    std::vector<std::string> ids;
    for (size_t i = 0; i < layouts().size(); ++i) ids.push_back("l" + std::to_string(i));
    p.tenants(ids);
    for (size_t i = 0; i < layouts().size(); ++i) hostile_rows(p, layouts()[i], ids[i]);

    const auto read = by_status(p, ids);
    REQUIRE(read.size() == ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
        INFO(layouts()[i].label);
        const std::string expected = by_list_query(p, layouts()[i].format, ids[i]);
        CHECK(read[i] == expected);
        // The values themselves, not only their agreement: sorted by id, floor before 1970.
        if (layouts()[i].time_type == "timestamp") {
            CHECK_THAT(expected, Contains("|-1\n"));               // 1969-12-31 23:59:59.9995 → -1 ms (floor)
            CHECK_THAT(expected, Contains("|-2208988800000\n"));   // 1900-01-01 00:00:00.000001
            CHECK_THAT(expected, Contains("|946684799999\n"));     // 1999-12-31 23:59:59.999999
            CHECK_THAT(expected, Contains("|1796063765202\n"));    // 2026-11-30 18:36:05.202792 → .202
        } else {
            CHECK_THAT(expected, Contains("|-5\n"));
            CHECK_THAT(expected, Contains("|9223372036854775807\n"));
        }
    }
    // Sorted by id (1, 2, 3, 4, 5, 7), not in insertion order (3, 1, 7, 2, 5, 4).
    CHECK(read[1] == "tab\there|h2|-1\nback\\slash \"q\" 'a'|h4|-2208988800000\n0001_plain|h1|1796063765202\n"
                     "0006_plain|-|946684799999\n\u00fcn\u00efc\u00f8d\u00e9 0005_\u2713|h5|946684800000\nnew\nline|h3|-\n");
}

TEST_CASE("the COPY read does not depend on the session's DateStyle, TimeZone or IntervalStyle", "[copy][pg]") {
    Project p;
    p.tenants({"a"});
    hostile_rows(p, layouts()[1], "a");
    const std::string expected = by_list_query(p, "tracking-name", "a");
    const std::string database = p.scalar("SELECT current_database()");
    p.exec("ALTER DATABASE " + mt::quote_ident(database) +
           " SET DateStyle = 'SQL, DMY'; ALTER DATABASE " + mt::quote_ident(database) +
           " SET TimeZone = 'Pacific/Chatham'; ALTER DATABASE " + mt::quote_ident(database) +
           " SET IntervalStyle = 'sql_standard'");
    CHECK(p.scalar("SELECT current_setting('TimeZone')") == "Pacific/Chatham");
    CHECK(by_status(p, {"a"}) == std::vector<std::string>{expected});
    CHECK(by_list_query(p, "tracking-name", "a") == expected);
}

TEST_CASE("status uses COPY: a reader allowed only the declared columns reads what list_query could not", "[copy][pg]") {
    // Column privileges tell the two reads apart: list_query reads the whole row (to_jsonb(t)), so a
    // role granted only id, name, applied_at and hash cannot run it; COPY of those columns it can.
    Project p;
    p.tenants({"a"});
    hostile_rows(p, layouts()[1], "a");
    const std::string expected = by_list_query(p, "tracking-name", "a");
    p.exec("ALTER TABLE " + table_of("a") + " ADD COLUMN secret text DEFAULT 'x'");
    const std::string role = p.scalar("SELECT current_database()") + "_copy_reader";
    p.exec("CREATE ROLE " + mt::quote_ident(role) + " LOGIN");
    p.exec("GRANT USAGE ON SCHEMA public, tenant_a TO " + mt::quote_ident(role) + "; GRANT SELECT ON public.tenants TO " +
           mt::quote_ident(role) + "; GRANT SELECT (id, name, applied_at, hash) ON " + table_of("a") + " TO " +
           mt::quote_ident(role));
    const std::string as_reader = std::regex_replace(p.url(), std::regex("//[^@/]*@"), "//" + role + "@");
    REQUIRE(as_reader != p.url());

    const Project reader(as_reader);
    CHECK(by_status(reader, {"a"}) == std::vector<std::string>{expected});
    pqxx::connection c(as_reader);
    pqxx::work tx(c);
    CHECK_THROWS_WITH(tx.exec("SELECT to_jsonb(t) FROM " + table_of("a") + " t"), Contains("permission denied"));
    tx.abort();
    p.exec("DROP OWNED BY " + mt::quote_ident(role) + "; DROP ROLE " + mt::quote_ident(role));
}

TEST_CASE("tables COPY would read differently are read by list_query", "[copy][pg]") {
    Project p;
    p.tenants({"child", "part", "chr", "ts", "plain"});
    // A child table: SELECT reads its rows too, COPY of the parent would not.
    hostile_rows(p, layouts()[1], "child");
    p.exec("CREATE TABLE tenant_child.extra () INHERITS (tenant_child.__drizzle_migrations)");
    p.exec("INSERT INTO tenant_child.extra (id, name, applied_at, hash) VALUES (9, '0009_child', '2026-01-01+00', 'h9')");
    // A partitioned table: COPY cannot read it at all.
    p.exec("CREATE TABLE tenant_part.__drizzle_migrations (id serial, name varchar(255) NOT NULL, "
           "applied_at timestamptz DEFAULT now(), hash text, PRIMARY KEY (id)) PARTITION BY RANGE (id)");
    p.exec("CREATE TABLE tenant_part.p1 PARTITION OF tenant_part.__drizzle_migrations FOR VALUES FROM (1) TO (100)");
    p.exec("INSERT INTO tenant_part.__drizzle_migrations (id, name, applied_at, hash) VALUES "
           "(2, 'b', '2026-01-02+00', 'hb'), (1, 'a', '2026-01-01+00', 'ha')");
    // char(n): list_query's cast drops the padding that COPY would keep.
    p.exec("CREATE TABLE tenant_chr.__drizzle_migrations (id serial PRIMARY KEY, hash char(8) NOT NULL, "
           "created_at timestamptz, migration_name varchar(255))");
    p.exec("INSERT INTO tenant_chr.__drizzle_migrations (hash, created_at, migration_name) VALUES ('abc', '2026-01-01+00', 'x')");
    // timestamp without time zone and timestamp(0): read by COPY, the same values.
    p.exec("CREATE TABLE tenant_ts.__drizzle_migrations (id bigserial PRIMARY KEY, name text NOT NULL, "
           "applied_at timestamp(0) without time zone, hash varchar(64))");
    p.exec("INSERT INTO tenant_ts.__drizzle_migrations (name, applied_at, hash) VALUES ('t', '1960-05-05 12:00:01', 'ht')");
    hostile_rows(p, layouts()[0], "plain");

    const auto read = by_status(p, {"child", "part", "chr", "ts", "plain"});
    REQUIRE(read.size() == 5);
    CHECK(read[0] == by_list_query(p, "tracking-name", "child"));
    CHECK_THAT(read[0], Contains("0009_child|h9|1767225600000\n"));
    CHECK(read[1] == "a|ha|1767225600000\nb|hb|1767312000000\n");
    CHECK(read[1] == by_list_query(p, "tracking-name", "part"));
    CHECK(read[2] == "x|abc|1767225600000\n");
    CHECK(read[2] == by_list_query(p, "tracking-hash", "chr"));
    CHECK(read[3] == "t|ht|-304775999000\n");
    CHECK(read[3] == by_list_query(p, "tracking-name", "ts"));
    CHECK(read[4] == by_list_query(p, "tracking-name", "plain"));
}

TEST_CASE("a tracking table holding infinity fails the read with a message naming it", "[copy][pg]") {
    Project p;
    p.tenants({"a"});
    hostile_rows(p, layouts()[1], "a");
    p.exec("UPDATE " + table_of("a") + " SET applied_at = '-infinity' WHERE id = 3");
    const auto r = p.mtctl("status");
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Contains("\"tenant_a\".\"__drizzle_migrations\".\"applied_at\" holds infinity, which is no time a "
                               "migration was applied at"));
}

TEST_CASE("a fleet of several batches mixing COPY and list_query reads reads every tenant right", "[copy][pg]") {
    // 260 tenants: more than one batch of 250 (two readers, one snapshot) and more than one COPY
    // query; every 13th table has a child table and is read by list_query in the same batch.
    Project p;
    std::vector<std::string> ids;
    for (int i = 1; i <= 260; ++i) ids.push_back("m" + std::to_string(i));
    p.tenants(ids);
    p.exec("DO $$ BEGIN FOR i IN 1..260 LOOP "
           "EXECUTE format('CREATE TABLE %I.__drizzle_migrations (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, "
           "applied_at timestamptz DEFAULT now(), hash text)', 'tenant_m' || i); "
           "EXECUTE format('INSERT INTO %I.__drizzle_migrations (name, applied_at, hash) "
           "SELECT ''000'' || g || ''_m'', timestamptz ''2026-11-30 00:00:00.000999+00'' + g * interval ''1 s'' + $1 * interval ''1 ms'', "
           "md5(g::text || $1) FROM generate_series(1, 1 + mod($1, 5)) g', 'tenant_m' || i) USING i; "
           "IF i % 13 = 0 THEN EXECUTE format('CREATE TABLE %I.child () INHERITS (%I.__drizzle_migrations)', "
           "'tenant_m' || i, 'tenant_m' || i); END IF; END LOOP; END $$");
    const auto read = by_status(p, ids);
    REQUIRE(read.size() == ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
        INFO(ids[i]);
        CHECK(read[i] == by_list_query(p, "tracking-name", ids[i]));
        CHECK(std::count(read[i].begin(), read[i].end(), '\n') == static_cast<long>(1 + (i + 1) % 5));
    }
}
