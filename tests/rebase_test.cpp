// Schema rebasing of tenant migrations (issue 13): the owned set from drizzle-kit snapshots and
// plain folders, the rewrite itself, and an unedited drizzle-kit 0.31 folder applied to a fleet.
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <mt/base/errors.hpp>
#include <mt/tracking/rebase.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <tuple>

using namespace mt::test;
namespace fs = std::filesystem;

namespace {

const fs::path kPublicFixture = fs::path(MT_SOURCE_DIR) / "tests/fixtures/drizzle-kit-public";

mt::Manifest::Migrations settings(const std::string& rebase = "auto", const std::string& template_schema = "public") {
    mt::Manifest::Migrations s;
    s.rebase = rebase == "auto" ? mt::RebaseMode::automatic : mt::RebaseMode::off;
    s.template_schema = template_schema;
    return s;
}

// A plan owning exactly these names in public.
mt::RebasePlan owning(std::initializer_list<std::string> names, const std::string& template_schema = "public") {
    mt::RebasePlan plan;
    plan.enabled = true;
    plan.template_schema = template_schema;
    plan.names = names;
    return plan;
}

std::string rebased(const std::string& sql, const mt::RebasePlan& plan, const std::string& schema = "tenant_a") {
    return mt::rebase_sql(sql, plan, schema);
}

std::string kinds_of(const mt::RebasePlan& plan, const std::string& name) {
    std::string out;
    for (const auto& o : plan.objects)
        if (o.name == name) out += (out.empty() ? "" : ",") + o.kind;
    return out;
}

}  // namespace

TEST_CASE("rebase: [migrations] rebase and template_schema: defaults, values, refusals", "[rebase][manifest]") {
    TempDir dir;
    const auto file = dir / "m.ini";
    auto load = [&](const std::string& migrations) {
        write_file(file, "[database]\nurl = postgresql://x/y\n[migrations]\n" + migrations);
        mt::ManifestInput in;
        in.file = file;
        in.use_environment = false;
        return mt::build_manifest(mt::read_settings(in), {});
    };
    const auto defaults = load("");
    CHECK(defaults.migrations.rebase == mt::RebaseMode::automatic);
    CHECK(defaults.migrations.template_schema == "public");
    const auto set = load("rebase = off\ntemplate_schema = app\n");
    CHECK(set.migrations.rebase == mt::RebaseMode::off);
    CHECK(set.migrations.template_schema == "app");
    for (const auto& [text, key, expected] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"rebase = on\n", "migrations.rebase", "auto or off"},
             {"template_schema =\n", "migrations.template_schema", "must not be empty"}}) {
        CAPTURE(text);
        try {
            load(text);
            FAIL("accepted");
        } catch (const mt::ManifestError& e) {
            CHECK(e.key == key);
            CHECK_THAT(e.what(), Catch::Contains(expected));
            CHECK_THAT(e.what(), Catch::Contains(file.string()));
        }
    }
}

TEST_CASE("rebase: a drizzle-kit folder owns the union of its snapshots' objects in the template schema",
          "[rebase]") {
    const auto folder = mt::read_migration_folder(kPublicFixture);
    const auto plan = mt::rebase_plan(folder, settings());
    CHECK(plan.enabled);
    CHECK(plan.template_schema == "public");
    CHECK(plan.names == std::set<std::string>{"invoice_seq", "notes", "notes_id_seq", "open_tasks", "priority",
                                              "projects", "projects_id_seq", "task_status", "tasks", "tasks_id_seq",
                                              "tasks_status_idx"});
    // notes was dropped in 0002 and is only in the older snapshots: still owned.
    CHECK(kinds_of(plan, "notes") == "table");
    CHECK(kinds_of(plan, "task_status") == "enum");
    CHECK(kinds_of(plan, "invoice_seq") == "sequence");
    CHECK(kinds_of(plan, "open_tasks") == "view");
    CHECK(kinds_of(plan, "tasks_status_idx") == "index");
    // A policy is listed, but policy names are never schema-qualified, so it rewrites nothing.
    CHECK(kinds_of(plan, "tasks_all") == "policy");
    CHECK_FALSE(plan.owns("tasks_all"));
    // The shared table is in no snapshot.
    CHECK_FALSE(plan.owns("plans"));
    CHECK(plan.reason == "drizzle-kit layout: owned objects from 3 snapshot(s) and the migrations' CREATE statements "
                         "in schema public");

    const auto off = mt::rebase_plan(folder, settings("off"));
    CHECK_FALSE(off.enabled);
    CHECK(off.reason == "migrations.rebase = off: migrations run as written");
    // With template schema app, no snapshot object is owned; the unqualified CREATE statements
    // still are (they land in whatever schema the folder is generated against).
    CHECK(mt::rebase_plan(folder, settings("auto", "app")).names ==
          std::set<std::string>{"notes", "projects", "tasks", "tasks_status_idx"});
}

TEST_CASE("rebase: the fixture's statements, rebased for a tenant", "[rebase]") {
    const auto folder = mt::read_migration_folder(kPublicFixture);
    const auto plan = mt::rebase_plan(folder, settings());
    const auto init = mt::rebased_statements(folder.migrations.at(0), plan, "tenant_a");
    REQUIRE(init.size() == folder.migrations.at(0).statements.size());
    CHECK(init[0] == "CREATE TYPE \"tenant_a\".\"priority\" AS ENUM('low', 'high');");
    CHECK(init[6] == "ALTER TABLE \"projects\" ADD CONSTRAINT \"projects_plan_id_plans_id_fk\" FOREIGN KEY "
                     "(\"plan_id\") REFERENCES \"public\".\"plans\"(\"id\") ON DELETE no action ON UPDATE no action;");
    CHECK(init[7] == "ALTER TABLE \"tasks\" ADD CONSTRAINT \"tasks_project_id_projects_id_fk\" FOREIGN KEY "
                     "(\"project_id\") REFERENCES \"tenant_a\".\"projects\"(\"id\") ON DELETE cascade ON UPDATE no action;");
    // CREATE TABLE "tasks" is unqualified in drizzle-kit's output: byte-identical.
    CHECK(init[4] == folder.migrations.at(0).statements[4]);
    const auto step2 = mt::rebased_statements(folder.migrations.at(1), plan, "tenant_a");
    CHECK(step2[0] == "ALTER TYPE \"tenant_a\".\"task_status\" ADD VALUE 'blocked';");
    CHECK(step2[1].starts_with("CREATE SEQUENCE \"tenant_a\".\"invoice_seq\" INCREMENT BY 1"));
    CHECK(step2[4] == "CREATE VIEW \"tenant_a\".\"open_tasks\" AS (select \"id\", \"title\", \"status\" from \"tasks\" "
                      "where \"tasks\".\"status\" = 'todo');");
    // `TO public` is the role, not a schema reference.
    CHECK(step2[5] == folder.migrations.at(1).statements[5]);
}

TEST_CASE("rebase: every quoting of an owned reference is rewritten, only the schema name's bytes", "[rebase]") {
    const auto plan = owning({"tasks", "Tasks Mixed"});
    CHECK(rebased("select * from public.tasks", plan) == "select * from \"tenant_a\".tasks");
    CHECK(rebased("select * from \"public\".\"tasks\"", plan) == "select * from \"tenant_a\".\"tasks\"");
    CHECK(rebased("select * from \"public\".tasks", plan) == "select * from \"tenant_a\".tasks");
    CHECK(rebased("select * from public.\"tasks\"", plan) == "select * from \"tenant_a\".\"tasks\"");
    // Unquoted names fold to lower case; quoted ones are exact.
    CHECK(rebased("select * from PUBLIC.TASKS", plan) == "select * from \"tenant_a\".TASKS");
    CHECK(rebased("select * from Public.\"Tasks Mixed\"", plan) == "select * from \"tenant_a\".\"Tasks Mixed\"");
    CHECK(rebased("select * from U&\"p\\0075blic\".tasks", plan) == "select * from \"tenant_a\".tasks");
    // White space and comments between the parts stay.
    CHECK(rebased("select * from public /* c */ . -- d\n tasks", plan) ==
          "select * from \"tenant_a\" /* c */ . -- d\n tasks");
    // schema.table.column
    CHECK(rebased("select public.tasks.id from public.tasks", plan) ==
          "select \"tenant_a\".tasks.id from \"tenant_a\".tasks");
    // A schema name that needs quoting is quoted through mt::quote_ident.
    CHECK(rebased("insert into public.tasks", plan, "tenant_A\"b") == "insert into \"tenant_A\"\"b\".tasks");
    // Glued to a closing quote, a new quote would merge two identifiers into one: a space keeps them apart.
    CHECK(rebased("select \"x\"public.tasks", plan) == "select \"x\" \"tenant_a\".tasks");
}

TEST_CASE("rebase: shared objects, literals, comments and function bodies stay byte-identical", "[rebase]") {
    const auto plan = owning({"tasks", "projects"});
    for (const std::string sql : {
             "ALTER TABLE \"projects\" ADD CONSTRAINT \"fk\" FOREIGN KEY (\"plan_id\") REFERENCES \"public\".\"plans\"(\"id\");",
             "select public.gen_random_uuid(), public.plans.id from public.plans",
             "select 'public.tasks', E'public.\\'tasks', $$public.tasks$$, U&'public.tasks'",
             "-- public.tasks\nselect 1 /* public.tasks /* public.tasks */ */",
             "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $fn$ select count(*) from public.tasks $fn$;",
             "CREATE POLICY \"p\" ON \"tasks\" AS PERMISSIVE FOR ALL TO public USING (true);",
             "select \"PUBLIC\".tasks, publicx.tasks, other.public.tasks, public.\"Tasks\", public . \"\"",
             "select nextval('public.tasks_id_seq'), x::public.tasks",  // a cast target is a reference: see below
         }) {
        CAPTURE(sql);
        if (sql.find("::public.tasks") != std::string::npos) {
            CHECK(rebased(sql, plan) == "select nextval('public.tasks_id_seq'), x::\"tenant_a\".tasks");
            continue;
        }
        CHECK(rebased(sql, plan) == sql);
    }
    // Asked for, function bodies are rebased too.
    mt::RebaseOptions bodies;
    bodies.function_bodies = true;
    CHECK(mt::rebase_sql("AS $fn$ select count(*) from public.tasks $fn$;", plan, "t", bodies) ==
          "AS $fn$ select count(*) from \"t\".tasks $fn$;");
    // A tenant schema equal to the template schema changes nothing.
    CHECK(rebased("select * from public.tasks", plan, "public") == "select * from public.tasks");
    // Off: nothing changes.
    auto off = plan;
    off.enabled = false;
    CHECK(rebased("select * from public.tasks", off) == "select * from public.tasks");
}

TEST_CASE("rebase: DO blocks run now and are rebased (drizzle-kit before 0.31 wrapped enums and FKs in them)",
          "[rebase]") {
    const auto plan = owning({"status", "projects"});
    const std::string sql = "DO $$ BEGIN\n CREATE TYPE \"public\".\"status\" AS ENUM('a', 'b');\nEXCEPTION\n"
                            " WHEN duplicate_object THEN null;\nEND $$;";
    CHECK(rebased(sql, plan) == "DO $$ BEGIN\n CREATE TYPE \"tenant_a\".\"status\" AS ENUM('a', 'b');\nEXCEPTION\n"
                                " WHEN duplicate_object THEN null;\nEND $$;");
    CHECK(rebased("do language plpgsql $x$ begin perform 1 from public.projects; end $x$", plan) ==
          "do language plpgsql $x$ begin perform 1 from \"tenant_a\".projects; end $x$");
    // A DO block inside a function body is part of the body: left alone.
    const std::string body = "CREATE FUNCTION f() RETURNS void AS $f$ BEGIN DO $$ BEGIN PERFORM 1 FROM public.projects; "
                             "END $$; END $f$ LANGUAGE plpgsql";
    CHECK(rebased(body, plan) == body);
}

TEST_CASE("rebase: references are reported as rewritten or kept, at their offsets", "[rebase]") {
    const auto plan = owning({"projects"});
    const std::string sql = "select 1 from public.projects join \"public\".\"plans\" using (id)";
    const auto r = mt::rebase_sql_detailed(sql, plan, "tenant_a");
    REQUIRE(r.references.size() == 2);
    CHECK(r.references[0].offset == sql.find("public.projects"));
    CHECK(r.references[0].name == "projects");
    CHECK(r.references[0].rewritten);
    CHECK(r.references[1].offset == sql.find("\"public\".\"plans\""));
    CHECK(r.references[1].name == "plans");
    CHECK_FALSE(r.references[1].rewritten);
}

TEST_CASE("rebase: rebasing twice equals rebasing once, and text without owned references is untouched",
          "[rebase]") {
    const auto folder = mt::read_migration_folder(kPublicFixture);
    const auto plan = mt::rebase_plan(folder, settings());
    for (const auto& m : folder.migrations)
        for (const auto& s : m.statements) {
            CAPTURE(s);
            const auto once = rebased(s, plan);
            CHECK(rebased(once, plan) == once);
            CHECK(mt::rebase_sql(s, owning({}), "tenant_a") == s);
        }
}

TEST_CASE("rebase: a plain folder owns what its CREATE statements make, unqualified or in the template schema",
          "[rebase]") {
    TempDir dir;
    write_file(dir / "0001_init.sql",
               "CREATE TABLE public.accounts (id int);\n"
               "CREATE TABLE IF NOT EXISTS \"Users\" (id int);\n"
               "CREATE UNLOGGED TABLE cache (k text);\n"
               "CREATE TEMP TABLE scratch (x int);\n"
               "CREATE TABLE audit.log (x int);\n"
               "CREATE OR REPLACE FUNCTION public.touch() RETURNS trigger AS $$ BEGIN CREATE TABLE public.inner_t(); END $$ "
               "LANGUAGE plpgsql;\n"
               "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_idx ON public.accounts (id);\n"
               "CREATE INDEX ON public.accounts (id);\n"
               "CREATE MATERIALIZED VIEW public.totals AS SELECT 1;\n"
               "CREATE DOMAIN public.email AS text;\n"
               "CREATE SEQUENCE counter;\n"
               "-- CREATE TABLE public.commented (x int);\n"
               "DO $$ BEGIN CREATE TYPE public.mood AS ENUM ('ok'); EXCEPTION WHEN duplicate_object THEN null; END $$;\n");
    const auto folder = mt::read_migration_folder(dir.path());
    REQUIRE(folder.layout == mt::FolderLayout::plain);
    const auto plan = mt::rebase_plan(folder, settings());
    CHECK(plan.enabled);
    CHECK(plan.names == std::set<std::string>{"Users", "accounts", "accounts_idx", "cache", "counter", "email", "mood",
                                              "totals", "touch"});
    CHECK(kinds_of(plan, "touch") == "function");
    CHECK(kinds_of(plan, "totals") == "materialized view");
    CHECK(kinds_of(plan, "mood") == "type");
    CHECK(plan.reason == "plain folder: owned objects from the migrations' CREATE statements in schema public "
                         "(unqualified or qualified with it)");
}

TEST_CASE("rebase: a snapshot that is not JSON is refused, naming the file, unless rebasing is off", "[rebase]") {
    TempDir dir;
    fs::copy(kPublicFixture, dir.path(), fs::copy_options::recursive);
    const auto folder = mt::read_migration_folder(dir.path());
    // Not JSON at all; and well-formed JSON whose number does not fit a double, which the parser
    // reports as out_of_range, not a parse error (it escaped as a json exception before).
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"{ not json", "regenerate it with drizzle-kit or set migrations.rebase = off"},
        {R"({"version":"7","tables":{},"x":1e999})", "number overflow parsing '1e999'"},
    };
    for (const auto& [text, reason] : cases) {
        INFO("snapshot: " << text);
        write_file(dir / "meta/0001_snapshot.json", text);
        try {
            mt::rebase_plan(folder, settings());
            FAIL("a malformed snapshot was accepted");
        } catch (const mt::MigrationFolderError& e) {
            const std::string what = e.what();
            CHECK_THAT(what, Catch::Contains((dir / "meta/0001_snapshot.json").string()));
            CHECK_THAT(what, Catch::Contains("malformed JSON"));
            CHECK_THAT(what, Catch::Contains(reason));
        }
    }
    CHECK_FALSE(mt::rebase_plan(folder, settings("off")).enabled);
}

TEST_CASE("rebase: the rewrite's cost per statement", "[rebase][bench]") {
    // The fixture's statements (drizzle-kit's own output) rebased many times: the figure the
    // issue's "< 2% of migrate --all" is judged against. Reported, and bounded loosely so that a
    // quadratic slip fails.
    const auto folder = mt::read_migration_folder(kPublicFixture);
    const auto plan = mt::rebase_plan(folder, settings());
    std::vector<std::string> statements;
    size_t bytes = 0;
    for (const auto& m : folder.migrations)
        for (const auto& s : m.statements) {
            statements.push_back(s);
            bytes += s.size();
        }
    constexpr int rounds = 2000;
    size_t sink = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < rounds; ++i)
        for (const auto& s : statements) sink += mt::rebase_sql(s, plan, "tenant_00042").size();
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    const double per_statement = us / (rounds * static_cast<double>(statements.size()));
    WARN("rebase: " << per_statement << " us per statement (" << statements.size() << " statements, "
                    << bytes / statements.size() << " bytes on average), " << sink << " bytes produced");
    CHECK(per_statement < 200.0);
}

TEST_CASE("rebase: an unedited drizzle-kit folder migrates a fleet with every object in the tenant's schema",
          "[rebase][migrate][pg]") {
    Project p;
    fs::copy(kPublicFixture, p.dir() / "drizzle/tenant", fs::copy_options::recursive);
    p.migration("0000_plans", "CREATE TABLE plans (id serial PRIMARY KEY, name text NOT NULL);", "drizzle/shared");
    p.set("migrations.default_format", "drizzle-kit");
    p.tenants({"a", "b", "c"});
    CHECK(run_json(p, "migrate-shared")["summary"]["succeeded"] == 1);
    const auto doc = run_json(p, "migrate --all");
    CHECK(doc["summary"]["succeeded"] == 3);
    CHECK(doc["summary"]["migrations_applied"] == 9);
    p.exec("INSERT INTO public.plans (name) VALUES ('free')");

    const auto folder = mt::read_migration_folder(p.dir() / "drizzle/tenant");
    for (const std::string schema : {"tenant_a", "tenant_b", "tenant_c"}) {
        CAPTURE(schema);
        const std::string in_schema = "'" + schema + "'::regnamespace";
        // Foreign keys: tenant tables point at the tenant's own tables, the shared one at public.plans.
        CHECK(p.scalar("SELECT string_agg(conrelid::regclass::text || ' -> ' || confrelid::regclass::text, ', ' "
                       "ORDER BY conname) FROM pg_constraint WHERE contype = 'f' AND connamespace = " + in_schema) ==
              schema + ".projects -> plans, " + schema + ".tasks -> " + schema + ".projects");
        CHECK(p.scalar("SELECT c.relnamespace::regnamespace::text FROM pg_constraint f JOIN pg_class c ON c.oid = "
                       "f.confrelid WHERE f.conname = 'projects_plan_id_plans_id_fk' AND f.connamespace = " + in_schema) ==
              "public");
        // Enums, with the value step 2 added, and the enum columns typed by the tenant's own enums.
        CHECK(p.scalar("SELECT string_agg(typname, ',' ORDER BY typname) FROM pg_type WHERE typtype = 'e' AND "
                       "typnamespace = " + in_schema) == "priority,task_status");
        CHECK(p.scalar("SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = '" +
                       schema + ".task_status'::regtype") == "todo,doing,done,blocked");
        CHECK(p.scalar("SELECT string_agg(DISTINCT t.typnamespace::regnamespace::text, ',') FROM pg_attribute a JOIN "
                       "pg_type t ON t.oid = a.atttypid WHERE a.attrelid = '" + schema +
                       ".tasks'::regclass AND a.attname IN ('status', 'priority')") == schema);
        // Sequences (the explicit one and the identity's), the view, the index, the policy.
        CHECK(p.scalar("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'S' AND "
                       "relnamespace = " + in_schema) == "__drizzle_migrations_id_seq,invoice_seq,projects_id_seq,tasks_id_seq");
        CHECK(p.scalar("SELECT string_agg(DISTINCT c.relnamespace::regnamespace::text, ',') FROM pg_rewrite r JOIN "
                       "pg_depend d ON d.objid = r.oid JOIN pg_class c ON c.oid = d.refobjid WHERE r.ev_class = '" +
                       schema + ".open_tasks'::regclass AND c.relname = 'tasks'") == schema);
        CHECK(p.scalar("SELECT count(*) FROM pg_policy WHERE polname = 'tasks_all' AND polrelid = '" + schema +
                       ".tasks'::regclass") == "1");
        CHECK(p.scalar("SELECT to_regclass('" + schema + ".notes')::text").empty());
        // Tracking: drizzle-orm's layout, the hash of the file on disk, the journal's when.
        CHECK(p.scalar("SELECT count(*) FROM " + schema + ".__drizzle_migrations") == "3");
        for (const auto& m : folder.migrations) {
            CAPTURE(m.name);
            CHECK(p.scalar("SELECT created_at FROM " + schema + ".__drizzle_migrations WHERE hash = '" +
                           mt::migration_hash(read_file(m.file)) + "'") == std::to_string(*m.when));
        }
        // The objects work: a task gets its tenant's sequence value and shows in its tenant's view only.
        p.exec("INSERT INTO " + schema + ".projects (name, plan_id) VALUES ('p', 1)");
        p.exec("INSERT INTO " + schema + ".tasks (project_id, title) VALUES (1, '" + schema + "')");
        CHECK(p.scalar("SELECT invoice_no FROM " + schema + ".tasks") == "1000");
        CHECK(p.scalar("SELECT string_agg(title, ',') FROM " + schema + ".open_tasks") == schema);
    }
    // Nothing of the tenant folder landed in public.
    CHECK(p.scalar("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname IN "
                   "('projects', 'tasks', 'notes', 'open_tasks', 'invoice_seq', 'tasks_id_seq', 'projects_id_seq', "
                   "'tasks_status_idx')") == "0");
    CHECK(p.scalar("SELECT count(*) FROM pg_type WHERE typtype = 'e' AND typnamespace = 'public'::regnamespace") == "0");
    // A plan that does not exist in public.plans is refused by the tenant's FK.
    CHECK_THROWS_AS(p.exec("INSERT INTO tenant_a.projects (name, plan_id) VALUES ('x', 99)"),
                    pqxx::foreign_key_violation);
    CHECK(run_json(p, "migrate --all")["summary"]["migrations_applied"] == 0);
}

TEST_CASE("rebase: with migrations.rebase = off the same folder fails as written", "[rebase][migrate][pg]") {
    Project p;
    fs::copy(kPublicFixture, p.dir() / "drizzle/tenant", fs::copy_options::recursive);
    p.migration("0000_plans", "CREATE TABLE plans (id serial PRIMARY KEY, name text NOT NULL);", "drizzle/shared");
    p.set("migrations.rebase", "off");
    p.tenants({"a"});
    run_json(p, "migrate-shared");
    const auto doc = run_json(p, "migrate --all", 1);
    CHECK(doc["tenants"][0]["outcome"] == "failed");
    CHECK(doc["tenants"][0]["failed_migration"] == "0000_init");
    CHECK_THAT(doc["tenants"][0]["error"].get<std::string>(),
               Catch::Contains("0000_init.sql: ERROR:  relation \"public.tasks\" does not exist"));
}

TEST_CASE("rebase: migrate --dry-run shows the first tenant's SQL as it would run, rebased, and counts the rest",
          "[rebase][migrate][pg]") {
    Project p;
    fs::copy(kPublicFixture, p.dir() / "drizzle/tenant", fs::copy_options::recursive);
    p.migration("0000_plans", "CREATE TABLE plans (id serial PRIMARY KEY, name text NOT NULL);", "drizzle/shared");
    p.tenants({"a", "b", "c"});
    run_json(p, "migrate-shared");

    const auto doc = run_json(p, "migrate --all --dry-run");
    CHECK(doc["summary"]["migrations_applied"] == 0);
    const auto& preview = doc["preview"];
    CHECK(preview["tenant"] == "a");
    CHECK(preview["schema"] == "tenant_a");
    CHECK(preview["rebased"] == true);
    CHECK(preview["other_tenants"] == 2);
    REQUIRE(preview["migrations"].size() == 3);
    CHECK(preview["migrations"][0]["migration"] == "0000_init");
    const auto& first = preview["migrations"][0]["statements"];
    CHECK(first[0] == "CREATE TYPE \"tenant_a\".\"priority\" AS ENUM('low', 'high');");
    std::string all;
    for (const auto& step : preview["migrations"])
        for (const auto& s : step["statements"]) all += s.get<std::string>() + "\n";
    CHECK_THAT(all, Catch::Contains("REFERENCES \"tenant_a\".\"projects\"(\"id\")"));
    CHECK_THAT(all, Catch::Contains("REFERENCES \"public\".\"plans\"(\"id\")"));  // shared: as written
    CHECK_THAT(all, !Catch::Contains("\"public\".\"task_status\""));
    // Nothing ran: no tenant has a tracking table or a type yet.
    CHECK(p.scalar("SELECT count(*) FROM pg_type WHERE typname = 'task_status'") == "0");

    // The same for people: the first tenant in full, the others as a count.
    const auto text = p.mtctl("migrate --all --dry-run");
    CHECK(text.exit_code == 0);
    CHECK_THAT(text.out, Catch::Contains("-- SQL for a (tenant_a), as it would run; rebased: "));
    CHECK_THAT(text.out, Catch::Contains("CREATE TYPE \"tenant_a\".\"task_status\" AS ENUM('todo', 'doing', 'done');"));
    CHECK_THAT(text.out, Catch::Contains("-- … and 2 more tenants: the same migrations, in each tenant's own schema"));
    CHECK_THAT(text.out, !Catch::Contains("tenant_b\".\"priority"));

    // The shared folder is never rebased, and says so.
    const auto shared = run_json(p, "migrate-shared --dry-run");
    CHECK(shared.find("preview") == shared.end());  // nothing pending there
}

TEST_CASE("rebase: doctor lists the owned objects and the shared references, and warns about a reference to nothing",
          "[rebase][doctor][pg]") {
    Project p;
    fs::copy(kPublicFixture, p.dir() / "drizzle/tenant", fs::copy_options::recursive);
    p.migration("0000_plans", "CREATE TABLE plans (id serial PRIMARY KEY, name text NOT NULL);", "drizzle/shared");
    p.tenants({"a"});
    const auto rebase_check = [&] {
        const auto r = p.mtctl("--json doctor");
        INFO("stdout: " << r.out << "\nstderr: " << r.err);
        const auto doc = nlohmann::json::parse(r.out);
        for (const auto& c : doc["checks"])
            if (c["check"] == "rebase") return c;
        FAIL("no rebase check in " << r.out);
        return nlohmann::json{};
    };
    // plans is not applied yet, but the shared folder creates it: no warning.
    auto c = rebase_check();
    CHECK(c["status"] == "ok");
    const std::string detail = c["detail"];
    CHECK_THAT(detail, Catch::StartsWith("on ("));
    CHECK_THAT(detail, Catch::Contains("task_status"));
    CHECK_THAT(detail, Catch::Contains("shared references kept: public.plans"));

    // A reference to a shared object nobody creates: a typo or a missing shared migration.
    std::ofstream(p.dir() / "drizzle/tenant/0002_drop_notes.sql", std::ios::app)
        << "\n--> statement-breakpoint\nALTER TABLE \"public\".\"projects\" ADD COLUMN \"region_id\" integer "
           "REFERENCES \"public\".\"regoins\"(\"id\");";
    c = rebase_check();
    CHECK(c["status"] == "warn");
    CHECK_THAT(c["detail"].get<std::string>(),
               Catch::Contains("referenced but neither in schema public nor created by either folder: public.regoins"));
    CHECK_THAT(c["hint"].get<std::string>(), Catch::Contains("mtctl migrate-shared"));
}
