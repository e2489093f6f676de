// Exit codes and messages of the real mtctl (SPEC §7, §10): every documented error is checked at
// the command line, with its exact code (a crash, 134 or 139, fails every check here) and the
// words that say what was wrong, where and what to do. 2 = usage, manifest or plugin error with
// nothing changed; 3 = the database cannot be reached; 1 = failed for at least one tenant.
#include "support/mtctl_json.hpp"
#include "support/project.hpp"

#include <mt/base/errors.hpp>
#include <mt/sdk/abi.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <type_traits>
#include <vector>

using namespace mt::test;
using nlohmann::json;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A project whose tenants a and b exist, with one migration on disk and nothing applied yet.
void fleet(const Project& p) {
    p.migration("0000_items", "CREATE TABLE items (id serial PRIMARY KEY);");
    p.tenants({"a", "b"});
}

// Nothing was created: neither tenant has a tracking table or the migration's table.
void nothing_changed(const Project& p) {
    CHECK(p.scalar("SELECT count(*) FROM pg_tables WHERE schemaname IN ('tenant_a', 'tenant_b')") == "0");
}

// Runs mtctl and checks the exact exit code and that stderr holds every fragment.
RunResult expect(const Project& p, const std::string& args, int code, const std::vector<std::string>& in_stderr) {
    const auto r = p.mtctl(args);
    INFO("mtctl " << args << "\nexit " << r.exit_code << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == code);
    for (const auto& part : in_stderr) {
        INFO("expected in stderr: " << part);
        CHECK(has(r.err, part));
    }
    return r;
}

}  // namespace

TEST_CASE("each bad plugin named in the manifest exits 2 naming the file, the stage and the reason",
          "[exit][plugins][mtctl][pg]") {
    struct Bad {
        std::string load;    // what [plugins] load names
        std::string file;    // the file the message names
        std::string stage;   // inspect, load, abi
        std::string reason;  // the words of the reason
    };
    const std::string dir = fixture_dir().string() + "/";
    const std::string kernel_abi = std::to_string(MT_ABI_MAJOR) + "." + std::to_string(MT_ABI_MINOR);
    const std::vector<Bad> bad = {
        {"not-elf", dir + "not-elf.so", "inspect", "not a shared library (too short or not an ELF file)"},
        {"fixture-no-entry", dir + "fixture-no-entry.so", "inspect",
         "does not export mt_plugin_entry_v1: not an mtenant plugin"},
        // dlerror's own text names the file again.
        {"fixture-unresolved", dir + "fixture-unresolved.so", "load",
         dir + "fixture-unresolved.so: undefined symbol: mt_fixture_symbol_nobody_defines"},
        {"fixture-abi-major", dir + "fixture-abi-major.so", "abi",
         "built for plugin ABI 2.0, this kernel speaks ABI " + kernel_abi + " (major versions must match)"},
        {"fixture-abi-minor", dir + "fixture-abi-minor.so", "abi",
         "built for plugin ABI " + std::to_string(MT_ABI_MAJOR) + "." + std::to_string(MT_ABI_MINOR + 1) +
             ", newer than this kernel's ABI " + kernel_abi},
        {"fixture-null-descriptor", dir + "fixture-null-descriptor.so", "abi", "mt_plugin_entry_v1 returned no descriptor"},
        {"fixture-small-descriptor", dir + "fixture-small-descriptor.so", "abi", "descriptor is 12 bytes, expected at least"},
        {"no-such-plugin", "no-such-plugin", "inspect", "not found in: " + fixture_dir().string()},
    };
    Project p;
    fleet(p);
    p.set("plugins.path", fixture_dir().string());
    for (const auto& b : bad) {
        INFO("plugins.load names " << b.load);
        p.set("plugins.load", "tracking-name, discovery-sql, retry-exponential, " + b.load);
        const auto r = expect(p, "migrate --all", 2, {"mtctl: plugin " + b.file + ": " + b.stage + ": " + b.reason});
        CHECK(r.out.empty());
        // The same refusal from a read-only command and with --json (no half document on stdout).
        expect(p, "status", 2, {"mtctl: plugin " + b.file + ": " + b.stage + ": "});
        CHECK(p.mtctl("--json migrate --all").out.empty());
    }
    nothing_changed(p);
}

TEST_CASE("a plugin that refuses its config or throws in create exits 2 at the config or create stage",
          "[exit][plugins][mtctl][pg]") {
    Project p;
    fleet(p);
    const std::string file = fixture_dir().string() + "/fixture-throws.so";
    p.set("plugins.path", fixture_dir().string());
    p.set("plugins.load", "tracking-name, discovery-sql, retry-exponential, fixture-throws");
    SECTION("create throws") {
        p.set("roles.retry", "throws-create");
        expect(p, "migrate --all", 2, {"mtctl: plugin " + file + ": create: throws-create: constructor exploded on purpose"});
    }
    SECTION("create reports success without an object") {
        p.set("roles.retry", "throws-null-self");
        expect(p, "migrate --all", 2,
               {"mtctl: plugin " + file + ": create: throws-null-self: create reported success but returned no object"});
    }
    SECTION("the plugin refuses a config value") {
        p.set("roles.retry", "throws-config");
        p.set("plugin.throws-config.level", "extreme");
        expect(p, "migrate --all", 2,
               {"mtctl: plugin " + file + ": config: throws-config: level: must be low or high, got 'extreme'"});
    }
    nothing_changed(p);
}

TEST_CASE("an unknown key or a malformed value in multitenant.ini exits 2 naming the file, the key and what was expected",
          "[exit][manifest][mtctl][pg]") {
    struct Case {
        std::string key, value;
        std::string expected;  // after "<file>: <key>: "
    };
    const std::vector<Case> cases = {
        {"database.pool_sise", "10",
         "unknown key; [database] accepts url, pool_mode, pool_size, max_pools, pool_idle_timeout, connect_timeout, "
         "statement_timeout, application_name (did you mean pool_size?); fix or remove the line"},
        {"plugin.discovery-sql.querry", "SELECT 1", "unknown key; plugin 'discovery-sql' accepts query"},
        {"database.pool_size", "ten", "expected a whole number of at least 1 (for example 10), got 'ten'"},
        {"database.connect_timeout", "5 parsecs",
         "expected a duration: a whole number with ms, s, m or h (for example 5s, 250ms; 0 for none), got '5 parsecs'"},
        {"database.pool_mode", "sometimes", "expected one of per-tenant, shared, transaction, got 'sometimes'"},
        {"migrations.transaction", "per-moon", "expected one of per-migration, per-tenant"},
    };
    Project p;
    fleet(p);
    for (const auto& c : cases) {
        INFO(c.key << " = " << c.value);
        Project q(p.url());
        q.migration("0000_items", "CREATE TABLE items (id serial PRIMARY KEY);");
        q.set(c.key, c.value);
        expect(q, "migrate --all", 2, {"mtctl: ./multitenant.ini: " + c.key + ": " + c.expected});
        // -c names the file as given.
        const auto other = q.dir() / "other.ini";
        write_file(other, read_file(q.dir() / "multitenant.ini"));
        expect(q, "-c " + shell_quote(other.string()) + " status", 2, {"mtctl: " + other.string() + ": " + c.key + ": "});
    }
    // The same value from the environment or a flag names where it came from.
    expect(p, "status --database.pool_size=ten", 2, {"mtctl: command line: database.pool_size: expected a whole number"});
    const auto env = run("cd " + shell_quote(p.dir().string()) + " && MT_DATABASE__POOL_SIZE=ten " + shell_quote(MT_MTCTL) +
                         " status");
    CHECK(env.exit_code == 2);
    CHECK(has(env.err, "mtctl: environment (MT_DATABASE__POOL_SIZE): database.pool_size: expected a whole number"));
    nothing_changed(p);
}

TEST_CASE("a manifest without database.url, or no manifest at all, exits 2 and says how to set it",
          "[exit][manifest][mtctl][pg]") {
    Project p;
    fleet(p);
    write_file(p.dir() / "multitenant.ini", "[plugins]\nload = tracking-name, discovery-sql\n\n[roles]\ndiscovery = discovery-sql\n");
    for (const std::string command : {"status", "migrate --all", "tenant list", "doctor"}) {
        INFO(command);
        const auto r = p.mtctl(command);
        INFO("exit " << r.exit_code << "\nstdout: " << r.out << "\nstderr: " << r.err);
        if (command == "doctor") {
            // doctor reports the manifest check as failed (one line per check) and exits 1.
            CHECK(r.exit_code == 1);
            CHECK(has(r.out, "database.url: is required"));
        } else {
            CHECK(r.exit_code == 2);
            CHECK(has(r.err, "multitenant.ini: database.url: is required; set url in [database] (url = ${DATABASE_URL}), "
                             "export MT_DATABASE__URL, or pass --database.url=URL"));
        }
    }
    TempDir empty;
    const auto none = mtctl("status", empty.path());
    CHECK(none.exit_code == 2);
    CHECK(has(none.err, "mtctl: no manifest file: database.url: is required"));
    CHECK(has(none.err, "`mtctl init` writes a starter manifest"));
    const auto missing = p.mtctl("-c nothere.ini status");
    CHECK(missing.exit_code == 2);
    CHECK(has(missing.err, "mtctl: nothere.ini: -c/--config: no such file"));
    nothing_changed(p);
}

TEST_CASE("usage errors exit 2 and change nothing", "[exit][usage][mtctl][pg]") {
    Project p;
    fleet(p);
    expect(p, "bogus", 2, {"mtctl: unknown command 'bogus'", "usage: mtctl"});
    expect(p, "migrate", 2, {"mtctl: choose tenants with --all, --tenant ID or --tenants a,b,c"});
    expect(p, "migrate --all --tenant a", 2, {"mtctl: --all cannot be combined with --tenant/--tenants"});
    expect(p, "migrate --all --concurrency 0", 2, {"mtctl: --concurrency must be at least 1"});
    expect(p, "migrate --all --concurrency", 2,
           {"mtctl migrate: the required argument for option '--concurrency' is missing (see mtctl migrate --help)"});
    expect(p, "migrate --all --nosuchflag", 2, {"mtctl migrate: unrecognised option '--nosuchflag'"});
    expect(p, "migrate --tenant " + shell_quote("a b"), 2,
           {"mtctl: tenant id 'a b': does not match isolation.tenant_id_pattern"});
    expect(p, "convert-format --all --to yaml", 2, {"yaml"});
    expect(p, "tenant drop --id a", 2, {"add --force to confirm (nothing was dropped)"});
    expect(p, "seed --all --file nothere.sql", 2, {"mtctl: seed file nothere.sql cannot be read; nothing was run"});
    expect(p, "tenant", 2, {"tenant needs a subcommand: list, create, drop or clone"});
    const auto help = p.mtctl("--help");
    CHECK(help.exit_code == 0);
    CHECK(has(help.out, "exit codes: 0 success; 1 failed for at least one tenant"));
    CHECK(p.mtctl("").exit_code == 2);
    nothing_changed(p);
    CHECK(p.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_a'") == "1");
}

TEST_CASE("every command that talks to the database exits 3 when it cannot be reached, doctor and health report it and exit 1",
          "[exit][unreachable][mtctl][pg]") {
    Project p;
    fleet(p);
    write_file(p.dir() / "seed.sql", "SELECT 1;");
    // Nothing listens on port 1; one attempt, so the run is quick.
    const std::string url = "postgresql://postgres@127.0.0.1:1/nowhere";
    p.set("database.url", url);
    p.set("database.connect_timeout", "1s");
    p.set("plugin.retry-exponential.max_attempts", "1");
    const std::string refusal = "mtctl: cannot connect to " + url + ": connection to server at \"127.0.0.1\", port 1 failed";
    const std::string hint = "(check [database] url and that the server is running)";
    // Whole fleet and named tenants: a named tenant needs no discovery, so the first connection
    // is the command's own.
    const std::vector<std::string> commands = {
        "status",
        "status --tenant a",
        "status --shared",
        "migrate --all",
        "migrate --tenant a",
        "migrate --all --dry-run",
        "migrate --all --mark-applied",
        "migrate-shared",
        "migrate-shared --dry-run",
        "sync",
        "sync --tenant a --mark-missing --clean-orphans",
        "sync --dry-run --mark-missing",
        "convert-format --all --to hash",
        "convert-format --tenant a --to hash",
        "convert-format --tenant a --to hash --dry-run",
        "convert-format --shared --to hash",
        "migrate-tracking-format --tenant a --to hash",
        "diff",
        "diff --tenant a --tenant b",
        "seed --all --file seed.sql",
        "seed --tenant a --file seed.sql",
        "tenant list",
        "tenant create --id c",
        "tenant drop --id a --force",
        "tenant clone --from a --to c",
    };
    for (const auto& command : commands) {
        const auto r = expect(p, command, 3, {refusal, hint});
        CHECK(r.out.empty());
        // --json prints no document, not a half one; the message stays on stderr.
        const auto j = p.mtctl("--json " + command);
        INFO("--json " << command << "\nstdout: " << j.out << "\nstderr: " << j.err);
        CHECK(j.exit_code == 3);
        CHECK(j.out.empty());
        CHECK(has(j.err, refusal));
    }
    // doctor's job is to check the connection: it reports the failure and exits 1.
    const auto doctor = run_json(p, "doctor", 1);
    bool failed = false;
    for (const auto& c : doctor["checks"])
        if (c["check"] == "connection") {
            failed = c["status"] == "fail";
            CHECK(has(c["detail"].get<std::string>(), "cannot connect to " + url));
        }
    CHECK(failed);
    // health reports an unreachable server as unhealthy (exit 1), the error in the report.
    for (const std::string command : {"health", "health --all", "health --tenant a"}) {
        const auto r = p.mtctl(command);
        INFO(command << "\nexit " << r.exit_code << "\nstdout: " << r.out << "\nstderr: " << r.err);
        CHECK(r.exit_code == 1);
        CHECK(has(r.out, "cannot connect to " + url));
        CHECK(has(r.out, "UNHEALTHY"));
    }
    // A tenant routed to an extra server that cannot be reached: the same, for that server.
    p.set("database.url", p.url());
    p.set("servers.far.url", url);
    p.set("plugin.discovery-sql.query", "SELECT id, 'far' AS server FROM public.tenants ORDER BY id");
    for (const std::string command : {"status", "migrate --all", "seed --all --file seed.sql", "convert-format --all --to hash"})
        expect(p, command, 3, {refusal});
    nothing_changed(p);
}

TEST_CASE("a failure in one tenant exits 1 naming the tenant and the migration, and the others finish",
          "[exit][mtctl][pg]") {
    Project p;
    fleet(p);
    p.migration("0001_orders", "CREATE TABLE orders (id int);");
    p.exec("CREATE TABLE tenant_b.orders (id int)");  // b's 0001 fails: the table exists
    // One transaction per migration, so that b keeps 0000 (per-tenant, the default, keeps none).
    p.set("migrations.transaction", "per-migration");

    const auto r = expect(p, "migrate --all", 1,
                          {"FAIL b (tenant_b) at 0001_orders: 0001_orders.sql: ERROR:  relation \"orders\" already exists"});
    CHECK(has(r.out, "migrate: 2 tenants, 1 succeeded, 1 failed"));
    CHECK(p.scalar("SELECT count(*) FROM tenant_a.__drizzle_migrations") == "2");
    CHECK(p.scalar("SELECT string_agg(name, ',' ORDER BY id) FROM tenant_b.__drizzle_migrations") == "0000_items");
    const auto doc = run_json(p, "migrate --all", 1);
    CHECK(doc["tenants"][1]["outcome"] == "failed");
    CHECK(doc["tenants"][1]["failed_migration"] == "0001_orders");
    CHECK(doc["tenants"][1]["sqlstate"] == "42P07");

    SECTION("seed") {
        write_file(p.dir() / "seed.sql", "INSERT INTO orders VALUES (1);");
        p.exec("ALTER TABLE tenant_b.orders ADD CONSTRAINT positive CHECK (id < 0)");
        expect(p, "seed --all --file seed.sql", 1, {"FAIL b (tenant_b) [23514]:", "positive"});
        CHECK(p.scalar("SELECT count(*) FROM tenant_a.orders") == "1");
        CHECK(p.scalar("SELECT count(*) FROM tenant_b.orders") == "0");
    }
    SECTION("convert-format") {
        p.exec("INSERT INTO tenant_b.__drizzle_migrations (name) VALUES ('0009_gone')");
        expect(p, "convert-format --all --to hash", 1, {"FAIL b (tenant_b): ", "0009_gone"});
        CHECK(run_json(p, "status --tenant b")["tenants"][0]["format"] == "name");
    }
    SECTION("diff") {
        p.exec("DROP TABLE tenant_b.orders");
        run_json(p, "migrate --all");
        p.exec("ALTER TABLE tenant_b.items ADD COLUMN extra int");
        const auto d = p.mtctl("diff --reference a");
        INFO(d.out << d.err);
        CHECK(d.exit_code == 1);
        CHECK(has(d.out, "1 tenant drifted"));
    }
    SECTION("tenant create with a failing migration") {
        p.migration("0002_bad", "SELECT 1/0;");
        expect(p, "tenant create --id c", 1, {"mtctl: 0002_bad.sql: ERROR:  division by zero (tenant c not created)"});
        CHECK(p.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_c'") == "0");
    }
}

TEST_CASE("each error type carries its own exit code and runtime failures never exit 2", "[exit][errors]") {
    using mt::ExitCode;
    // No error without a code: the base cannot be thrown as it is.
    STATIC_REQUIRE_FALSE(std::is_constructible_v<mt::Error, std::string>);
    CHECK(mt::UsageError("x").exit_code() == ExitCode::usage);
    CHECK(mt::InputError("x").exit_code() == ExitCode::usage);
    CHECK(mt::ManifestError("multitenant.ini", "database.url", "x").exit_code() == ExitCode::usage);
    CHECK(mt::PluginError("p.so", "abi", "x").exit_code() == ExitCode::usage);
    CHECK(mt::TenantIdError("a b", "x").exit_code() == ExitCode::usage);
    CHECK(mt::MigrationFolderError("meta/_journal.json", "x").exit_code() == ExitCode::usage);
    CHECK(mt::DatabaseUnavailable("x").exit_code() == ExitCode::unreachable);
    CHECK(mt::OperationError("x", "42P07").exit_code() == ExitCode::failed);
    CHECK(mt::PoolTimeout("a", 2, 100).exit_code() == ExitCode::failed);
    CHECK(mt::OutcomeUnknown("a", "COMMIT", "x").exit_code() == ExitCode::failed);
    CHECK(mt::InvalidParameter("a", 1, "x").exit_code() == ExitCode::failed);
    CHECK(mt::LockTimeout("a", "x").exit_code() == ExitCode::failed);
    CHECK(mt::InternalError("x").exit_code() == ExitCode::failed);
    // A tenant id error keeps its reason apart, so nobody cuts it out of the message.
    const mt::TenantIdError id("a b", "does not match isolation.tenant_id_pattern");
    CHECK(std::string(id.what()) == "tenant id 'a b': does not match isolation.tenant_id_pattern");
    CHECK(id.reason == "does not match isolation.tenant_id_pattern");
}

TEST_CASE("mtctl --version prints the project version and the plugin ABI, as text and as JSON", "[exit][version][mtctl]") {
    const std::string abi = std::to_string(MT_ABI_MAJOR) + "." + std::to_string(MT_ABI_MINOR);
    // The generated header spells the one version of CMakeLists.txt in both forms.
    CHECK(std::string(MT_VERSION) == std::to_string(MT_VERSION_MAJOR) + "." + std::to_string(MT_VERSION_MINOR) + "." +
                                         std::to_string(MT_VERSION_PATCH));
    CHECK(std::string(MT_SDK_VERSION) == MT_VERSION);

    const auto text = mtctl("--version");
    INFO("stdout: " << text.out << "\nstderr: " << text.err);
    CHECK(text.exit_code == 0);
    CHECK(text.out == std::string("mtctl ") + MT_VERSION + " (plugin ABI " + abi + ")\n");
    CHECK(text.err.empty());

    for (const std::string args : {"--json --version", "--version --json"}) {
        const auto r = mtctl(args);
        INFO("mtctl " << args << "\nstdout: " << r.out << "\nstderr: " << r.err);
        CHECK(r.exit_code == 0);
        CHECK(json::parse(r.out) ==
              json{{"schema_version", 1}, {"version", MT_VERSION}, {"abi", abi}, {"abi_major", MT_ABI_MAJOR},
                   {"abi_minor", MT_ABI_MINOR}});
    }
    // After a command word it is that command's (unknown) option, not the global flag.
    const auto misplaced = mtctl("status --version");
    CHECK(misplaced.exit_code == 2);
    CHECK(has(misplaced.err, "mtctl status: unrecognised option '--version'"));
}

TEST_CASE("every plugin's descriptor carries the project version", "[exit][version][mtctl][pg]") {
    Project p;
    const auto doc = run_json(p, "plugins");
    REQUIRE(doc["plugins"].size() >= 3);
    for (const auto& plugin : doc["plugins"]) {
        INFO(plugin.dump());
        CHECK(plugin["version"] == MT_VERSION);
        CHECK(plugin["sdk_version"] == MT_SDK_VERSION);
    }
}

TEST_CASE("every --shared command without migrations.shared_dir exits 2 with the one message and changes nothing",
          "[exit][usage][mtctl][pg]") {
    Project p;
    fleet(p);
    p.set("migrations.shared_dir", "");
    for (const std::string command : {"status --shared", "sync --shared", "sync --shared --mark-missing",
                                      "convert-format --shared --to hash", "migrate-shared", "generate --name x --shared"}) {
        const auto r = expect(p, command, 2,
                              {"mtctl: migrations.shared_dir is not set: name the shared migrations folder in the manifest\n"});
        CHECK(r.out.empty());
    }
    CHECK(p.scalar("SELECT count(*) FROM pg_tables WHERE tablename = '__drizzle_migrations'") == "0");
    nothing_changed(p);
}
