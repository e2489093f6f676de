#include "support/pg.hpp"

#include <mt/base/errors.hpp>
#include <mt/context/manifest.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <unistd.h>

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

// Sets (or unsets) one environment variable for the scope of a test, restoring it afterwards.
class ScopedVar {
public:
    ScopedVar(std::string name, const char* value) : name_(std::move(name)) {
        if (const char* old = std::getenv(name_.c_str())) old_ = std::string(old);
        if (value) ::setenv(name_.c_str(), value, 1);
        else ::unsetenv(name_.c_str());
    }
    ~ScopedVar() {
        if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
        else ::unsetenv(name_.c_str());
    }
    ScopedVar(const ScopedVar&) = delete;
    ScopedVar& operator=(const ScopedVar&) = delete;

private:
    std::string name_;
    std::optional<std::string> old_;
};

// Unsets every MT_*__* variable and MT_CONFIG the surrounding environment might carry, so a test
// sees only the variables it sets itself.
class CleanManifestEnv {
public:
    CleanManifestEnv() {
        std::vector<std::string> names{"MT_CONFIG"};
        for (char** e = environ; e && *e; ++e) {
            std::string entry(*e);
            std::string name = entry.substr(0, entry.find('='));
            if (name.rfind("MT_", 0) == 0 && name.find("__") != std::string::npos) names.push_back(name);
        }
        for (const auto& n : names) unset_.push_back(std::make_unique<ScopedVar>(n, nullptr));
    }

private:
    std::vector<std::unique_ptr<ScopedVar>> unset_;
};

// Runs the test body in `dir`, returning to the previous working directory afterwards.
class ScopedCwd {
public:
    explicit ScopedCwd(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
    ~ScopedCwd() { fs::current_path(old_); }

private:
    fs::path old_;
};

const std::map<std::string, std::set<std::string>> in_tree_keys = {
    {"tracking-name", {}},
    {"tracking-hash", {}},
    {"tracking-drizzle-kit", {}},
    {"discovery-sql", {"query"}},
    {"retry-exponential", {"max_attempts", "initial_delay", "max_delay", "multiplier", "jitter"}},
};

mt::ManifestInput file_only(const fs::path& file, std::vector<std::string> overrides = {}) {
    mt::ManifestInput in;
    in.file = file;
    in.overrides = std::move(overrides);
    in.use_environment = false;
    return in;
}

mt::Manifest load(const mt::ManifestInput& in) { return mt::build_manifest(mt::read_settings(in), in_tree_keys); }

// The ManifestError a manifest text raises, through both passes.
mt::ManifestError error_of(const fs::path& file, const std::string& text, std::vector<std::string> overrides = {}) {
    mt::test::write_file(file, text);
    try {
        load(file_only(file, std::move(overrides)));
    } catch (const mt::ManifestError& e) {
        return e;
    }
    FAIL("expected a ManifestError for:\n" << text);
    throw std::logic_error("unreachable");
}

const std::string url_only = "[database]\nurl = postgresql://localhost/app\n";

}  // namespace

TEST_CASE("manifest: every fixed key is parsed", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "multitenant.ini";
    mt::test::write_file(file, R"(
[database]
url = postgresql://app@db/app   # trailing comment
pool_mode = transaction
pool_size = 7
max_pools = 3
pool_idle_timeout = 0
connect_timeout = 250ms
application_name = billing

[isolation]
schema_template = t_{id}_data
shared_schema = common
tenant_id_pattern = ^[a-z]+$

[migrations]
tenant_dir = db/tenant
shared_dir = /abs/shared
table = tracking
shared_table = shared_tracking
format = hash
default_format = drizzle-kit
concurrency = 32
lock_timeout = 2m
transaction = per-tenant
fail_fast = yes

[plugins]
path = plugins, /opt/mt/plugins
load = tracking-name, discovery-sql ,retry-exponential

[roles]
discovery = discovery-sql
retry = retry-exponential
sinks = log-debug, metrics-prometheus
extractor = extract-header, extract-path

[plugin.discovery-sql]
query = SELECT id FROM public.tenants WHERE active

[plugin.retry-exponential]
max_attempts = 5
jitter = false

[servers.eu1]
url = postgresql://app@db-eu1/app
)");
    const auto m = load(file_only(file));
    CHECK(m.file == file);
    CHECK(m.base_dir == dir.path());
    CHECK(m.database.url == "postgresql://app@db/app");
    CHECK(m.database.pool_mode == mt::PoolMode::transaction);
    CHECK(m.database.pool_size == 7);
    CHECK(m.database.max_pools == 3);
    CHECK(m.database.pool_idle_timeout == 0ms);
    CHECK(m.database.connect_timeout == 250ms);
    CHECK(m.database.application_name == "billing");
    CHECK(m.isolation.schema_template == "t_{id}_data");
    CHECK(m.isolation.shared_schema == "common");
    CHECK(m.isolation.tenant_id_pattern == "^[a-z]+$");
    CHECK(m.migrations.tenant_dir == dir.path() / "db/tenant");
    REQUIRE(m.migrations.shared_dir);
    CHECK(*m.migrations.shared_dir == "/abs/shared");
    CHECK(m.migrations.table == "tracking");
    CHECK(m.migrations.shared_table == "shared_tracking");
    CHECK(m.migrations.format == "hash");
    CHECK(m.migrations.default_format == "drizzle-kit");
    CHECK(m.migrations.concurrency == 32);
    CHECK(m.migrations.lock_timeout == 2min);
    CHECK(m.migrations.transaction == mt::TransactionMode::per_tenant);
    CHECK(m.migrations.fail_fast);
    CHECK(m.plugins.path == std::vector<fs::path>{dir.path() / "plugins", "/opt/mt/plugins"});
    CHECK(m.plugins.load == std::vector<std::string>{"tracking-name", "discovery-sql", "retry-exponential"});
    CHECK(m.roles.discovery == "discovery-sql");
    CHECK(m.roles.retry == "retry-exponential");
    CHECK(m.roles.sinks == std::vector<std::string>{"log-debug", "metrics-prometheus"});
    CHECK(m.roles.extractor == std::vector<std::string>{"extract-header", "extract-path"});
    CHECK(m.plugin_config.at("discovery-sql").at("query") == "SELECT id FROM public.tenants WHERE active");
    CHECK(m.plugin_config.at("retry-exponential") ==
          std::map<std::string, std::string>{{"max_attempts", "5"}, {"jitter", "false"}});
    CHECK(m.servers == std::map<std::string, std::string>{{"eu1", "postgresql://app@db-eu1/app"}});
}

TEST_CASE("manifest: keys left out keep the defaults of SPEC §4", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    mt::test::write_file(file, url_only);
    const auto m = load(file_only(file));
    const mt::Manifest d;
    CHECK(m.database.pool_mode == mt::PoolMode::per_tenant);
    CHECK(m.database.pool_size == 10);
    CHECK(m.database.max_pools == 50);
    CHECK(m.database.pool_idle_timeout == 1h);
    CHECK(m.database.connect_timeout == 5s);
    CHECK(m.database.application_name == "mtenant");
    CHECK(m.isolation.schema_template == d.isolation.schema_template);
    CHECK(m.isolation.shared_schema == "public");
    CHECK(m.isolation.tenant_id_pattern == d.isolation.tenant_id_pattern);
    CHECK(m.migrations.tenant_dir == dir.path() / "drizzle/tenant");
    CHECK_FALSE(m.migrations.shared_dir);
    CHECK(m.migrations.table == "__drizzle_migrations");
    CHECK(m.migrations.format == "auto");
    CHECK(m.migrations.default_format == "name");
    CHECK(m.migrations.concurrency == 10);
    CHECK(m.migrations.lock_timeout == 10s);
    CHECK(m.migrations.transaction == mt::TransactionMode::per_tenant);
    CHECK_FALSE(m.migrations.fail_fast);
    CHECK(m.plugins.path.empty());
    CHECK(m.plugin_config.empty());
    CHECK(m.servers.empty());
}

TEST_CASE("manifest: a flag beats the environment, which beats the file, which beats the default", "[manifest]") {
    CleanManifestEnv clean;
    mt::test::TempDir dir;
    const auto file = dir / "multitenant.ini";
    mt::test::write_file(file, "[database]\nurl = postgresql://file/app\npool_size = 11\nmax_pools = 12\n"
                               "connect_timeout = 13s\n");
    ScopedVar pool_size("MT_DATABASE__POOL_SIZE", "21");
    ScopedVar max_pools("MT_DATABASE__MAX_POOLS", "22");
    ScopedVar app("MT_DATABASE__APPLICATION_NAME", "from-env");

    mt::ManifestInput in;
    in.file = file;
    in.overrides = {"--database.pool_size=31", "database.application_name=from-flag"};
    const auto raw = mt::read_settings(in);
    CHECK(raw.entries.at("database.pool_size").source == "command line");
    CHECK(raw.entries.at("database.max_pools").source == "environment (MT_DATABASE__MAX_POOLS)");
    CHECK(raw.entries.at("database.connect_timeout").source == file.string());
    CHECK(raw.get("database.max_pools") == "22");
    const auto m = mt::build_manifest(raw, in_tree_keys);
    CHECK(m.database.pool_size == 31);             // flag over environment and file
    CHECK(m.database.max_pools == 22);             // environment over file
    CHECK(m.database.connect_timeout == 13s);      // file over default
    CHECK(m.database.pool_idle_timeout == 1h);     // default
    CHECK(m.database.application_name == "from-flag");
    CHECK(m.database.url == "postgresql://file/app");

    SECTION("use_environment = false ignores MT_* variables") {
        in.use_environment = false;
        const auto m2 = load(in);
        CHECK(m2.database.max_pools == 12);
    }
}

TEST_CASE("manifest: ${NAME} is replaced by the environment variable", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    ScopedVar url("MT_TEST_MANIFEST_URL", "postgresql://secret@db/app");
    ScopedVar host("MT_TEST_MANIFEST_HOST", "db-eu1");
    mt::test::write_file(file, "[database]\nurl = ${MT_TEST_MANIFEST_URL}\napplication_name = a$${b}c\n"
                               "[servers.eu1]\nurl = postgresql://${MT_TEST_MANIFEST_HOST}:${MT_TEST_MANIFEST_HOST}/x\n");
    const auto m = load(file_only(file));
    CHECK(m.database.url == "postgresql://secret@db/app");
    CHECK(m.database.application_name == "a${b}c");
    CHECK(m.servers.at("eu1") == "postgresql://db-eu1:db-eu1/x");
}

TEST_CASE("manifest: an undefined ${NAME} names the file, the key and the variable", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    ScopedVar unset("MT_TEST_MANIFEST_UNDEFINED", nullptr);
    const auto e = error_of(file, "[database]\nurl = ${MT_TEST_MANIFEST_UNDEFINED}\n");
    CHECK(e.source == file.string());
    CHECK(e.key == "database.url");
    CHECK_THAT(e.what(), Contains("MT_TEST_MANIFEST_UNDEFINED") && Contains("not set") && Contains("export"));

    const auto unterminated = error_of(file, "[database]\nurl = ${DATABASE_URL\n");
    CHECK(unterminated.key == "database.url");
    CHECK_THAT(unterminated.what(), Contains("unterminated"));
}

TEST_CASE("manifest: malformed values say what was expected", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    struct Case {
        std::string section, key, value, expected;
    };
    const std::vector<Case> cases = {
        {"database", "pool_size", "0", "at least 1"},
        {"database", "pool_size", "ten", "whole number"},
        {"database", "pool_size", "10.5", "whole number"},
        {"database", "max_pools", "-3", "at least 1"},
        {"migrations", "concurrency", "0", "at least 1"},
        {"migrations", "concurrency", "99999999999999", "whole number"},
        {"database", "pool_idle_timeout", "1d", "ms, s, m or h"},
        {"database", "connect_timeout", "five", "duration"},
        {"database", "connect_timeout", "-5s", "duration"},
        {"migrations", "lock_timeout", "10 s", "duration"},
        {"migrations", "lock_timeout", "99999999999999h", "duration"},
        {"database", "pool_mode", "pertenant", "per-tenant, shared, transaction"},
        {"migrations", "transaction", "always", "per-migration, per-tenant"},
        {"migrations", "fail_fast", "maybe", "true or false"},
        {"isolation", "schema_template", "tenant_", "{id}"},
        {"isolation", "tenant_id_pattern", "([a-z", "regular expression"},
        {"isolation", "shared_schema", "", "must not be empty"},
        {"migrations", "tenant_dir", "", "must not be empty"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.section, c.key, c.value);
        std::string text = c.section == "database" ? "[database]\nurl = x\n" + c.key + " = " + c.value + "\n"
                                                   : url_only + "[" + c.section + "]\n" + c.key + " = " + c.value + "\n";
        const auto e = error_of(file, text);
        CHECK(e.source == file.string());
        CHECK(e.key == c.section + "." + c.key);
        CHECK_THAT(e.what(), Contains(c.expected));
        CHECK_THAT(e.what(), Contains(file.string()));
    }
}

TEST_CASE("manifest: booleans and durations accept their spellings", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    for (const auto& [text, expected] : std::vector<std::pair<std::string, bool>>{
             {"true", true}, {"yes", true}, {"on", true}, {"1", true},
             {"false", false}, {"no", false}, {"off", false}, {"0", false}}) {
        mt::test::write_file(file, url_only + "[migrations]\nfail_fast = " + text + "\n");
        CHECK(load(file_only(file)).migrations.fail_fast == expected);
    }
    CHECK(mt::parse_duration("250ms") == 250ms);
    CHECK(mt::parse_duration("5s") == 5s);
    CHECK(mt::parse_duration("2m") == 2min);
    CHECK(mt::parse_duration("1h") == 1h);
    CHECK(mt::parse_duration(" 0 ") == 0ms);
    CHECK(mt::parse_duration("1500") == 1500ms);  // a bare number is milliseconds, as in the SDK
    CHECK_THROWS_AS(mt::parse_duration(""), std::invalid_argument);
    CHECK_THROWS_AS(mt::parse_duration("s"), std::invalid_argument);
    CHECK_THROWS_AS(mt::parse_duration("3d"), std::invalid_argument);
    CHECK_THROWS_AS(mt::parse_duration("99999999999999999999999h"), std::invalid_argument);
}

TEST_CASE("manifest: an unknown key lists what the section accepts", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    const auto e = error_of(file, url_only + "pool_sise = 10\n");
    CHECK(e.source == file.string());
    CHECK(e.key == "database.pool_sise");
    CHECK_THAT(e.what(), Contains("unknown key") && Contains("pool_mode, pool_size, max_pools") &&
                             Contains("did you mean pool_size?") && Contains("remove the line"));
}

TEST_CASE("manifest: an unknown section lists the sections", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    const auto e = error_of(file, url_only + "[databse]\npool_size = 3\n");
    CHECK(e.key == "databse.pool_size");
    CHECK_THAT(e.what(), Contains("unknown section [databse]") && Contains("[plugin.NAME]") &&
                             Contains("did you mean database?"));

    const auto plural = error_of(file, url_only + "[plugins.discovery-sql]\nquery = SELECT 1\n");
    CHECK_THAT(plural.what(), Contains("did you mean plugin.discovery-sql?"));

    const auto bare = error_of(file, url_only + "[plugin]\nquery = SELECT 1\n");
    CHECK_THAT(bare.what(), Contains("[plugin.NAME]"));

    const auto outside = error_of(file, "query = SELECT 1\n" + url_only);
    CHECK(outside.key == "query");
    CHECK_THAT(outside.what(), Contains("outside any section"));
}

TEST_CASE("manifest: [plugin.NAME] takes only the keys factory NAME declares", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";

    const auto unknown_key = error_of(file, url_only + "[plugin.discovery-sql]\nquerry = SELECT 1\n");
    CHECK(unknown_key.key == "plugin.discovery-sql.querry");
    CHECK_THAT(unknown_key.what(), Contains("accepts query") && Contains("did you mean query?"));

    const auto no_keys = error_of(file, url_only + "[plugin.tracking-name]\ntable = x\n");
    CHECK_THAT(no_keys.what(), Contains("takes no configuration"));

    const auto unknown_plugin = error_of(file, url_only + "[plugin.discovery-sq]\nquery = SELECT 1\n");
    CHECK(unknown_plugin.key == "plugin.discovery-sq.query");
    CHECK_THAT(unknown_plugin.what(), Contains("unknown plugin 'discovery-sq'") && Contains("retry-exponential") &&
                                          Contains("did you mean discovery-sql?") && Contains("[plugins] load"));

    const auto server_key = error_of(file, url_only + "[servers.eu1]\nhost = db-eu1\n");
    CHECK(server_key.key == "servers.eu1.host");
    CHECK_THAT(server_key.what(), Contains("only url"));
}

TEST_CASE("manifest: database.url is required", "[manifest]") {
    CleanManifestEnv clean;
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    const auto e = error_of(file, "[database]\npool_size = 3\n");
    CHECK(e.source == file.string());
    CHECK(e.key == "database.url");
    CHECK_THAT(e.what(), Contains("is required") && Contains("MT_DATABASE__URL") && Contains("--database.url"));

    const auto empty = error_of(file, "[database]\nurl =\n");
    CHECK_THAT(empty.what(), Contains("must not be empty"));

    SECTION("given only by the environment, it is enough") {
        ScopedVar url("MT_DATABASE__URL", "postgresql://env/app");
        mt::test::write_file(file, "");
        mt::ManifestInput in;
        in.file = file;
        CHECK(load(in).database.url == "postgresql://env/app");
    }
}

TEST_CASE("manifest: a named file must exist, the default one may be absent", "[manifest]") {
    CleanManifestEnv clean;
    mt::test::TempDir dir;
    const auto missing = dir / "nope.ini";

    try {
        mt::read_settings(file_only(missing));
        FAIL("a missing -c file was accepted");
    } catch (const mt::ManifestError& e) {
        CHECK(e.source == missing.string());
        CHECK(e.key == "-c/--config");
        CHECK_THAT(e.what(), Contains("no such file") && Contains("mtctl init"));
    }

    {
        ScopedVar config("MT_CONFIG", missing.c_str());
        mt::ManifestInput in;
        try {
            mt::read_settings(in);
            FAIL("a missing MT_CONFIG file was accepted");
        } catch (const mt::ManifestError& e) {
            CHECK(e.key == "MT_CONFIG");
            CHECK_THAT(e.what(), Contains("no such file"));
        }
    }

    {
        ScopedCwd cwd(dir.path());
        mt::ManifestInput in;
        in.overrides = {"--database.url=postgresql://flag/app", "--migrations.tenant_dir=t"};
        const auto raw = mt::read_settings(in);
        CHECK_FALSE(raw.file);
        CHECK(raw.base_dir == fs::current_path());
        const auto m = mt::build_manifest(raw, in_tree_keys);
        CHECK(m.database.url == "postgresql://flag/app");
        CHECK(m.migrations.tenant_dir == fs::current_path() / "t");
    }

    SECTION("./multitenant.ini is read when present, and MT_CONFIG names another") {
        mt::test::write_file(dir / "multitenant.ini", "[database]\nurl = postgresql://default/app\n");
        mt::test::write_file(dir / "other.ini", "[database]\nurl = postgresql://other/app\n");
        ScopedCwd cwd(dir.path());
        mt::ManifestInput in;
        CHECK(load(in).database.url == "postgresql://default/app");
        ScopedVar config("MT_CONFIG", (dir / "other.ini").c_str());
        CHECK(load(in).database.url == "postgresql://other/app");
        in.file = dir / "multitenant.ini";  // -c beats MT_CONFIG
        CHECK(load(in).database.url == "postgresql://default/app");
    }

    SECTION("a directory is not a manifest") {
        CHECK_THROWS_AS(mt::read_settings(file_only(dir.path())), mt::ManifestError);
    }
}

TEST_CASE("manifest: MT_SECTION__KEY variables map to keys", "[manifest]") {
    CleanManifestEnv clean;
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    ScopedVar url("MT_DATABASE__URL", "postgresql://env/app");
    ScopedVar pool_mode("MT_DATABASE__POOL_MODE", "shared");
    ScopedVar tenant_dir("MT_MIGRATIONS__TENANT_DIR", "rel/tenant");
    ScopedVar query("MT_PLUGIN_DISCOVERY_SQL__QUERY", "SELECT id FROM env_tenants");
    ScopedVar delay("MT_PLUGIN_RETRY_EXPONENTIAL__MAX_DELAY", "9s");
    ScopedVar server("MT_SERVERS_EU1__URL", "postgresql://env-eu1/app");

    SECTION("a plugin key the file names is matched in pass 1") {
        mt::test::write_file(file, "[plugin.discovery-sql]\nquery = SELECT 1\n");
        mt::ManifestInput in;
        in.file = file;
        const auto raw = mt::read_settings(in);
        CHECK(raw.get("database.url") == "postgresql://env/app");
        CHECK(raw.get("plugin.discovery-sql.query") == "SELECT id FROM env_tenants");
        CHECK(raw.entries.at("plugin.discovery-sql.query").source ==
              "environment (MT_PLUGIN_DISCOVERY_SQL__QUERY)");
        const auto m = mt::build_manifest(raw, in_tree_keys);
        CHECK(m.database.pool_mode == mt::PoolMode::shared);
        CHECK(m.plugin_config.at("discovery-sql").at("query") == "SELECT id FROM env_tenants");
        CHECK(m.plugin_config.at("retry-exponential").at("max_delay") == "9s");
        CHECK(m.servers.at("eu1") == "postgresql://env-eu1/app");
        // A path from the environment is relative to the working directory, not the file.
        CHECK(m.migrations.tenant_dir == fs::current_path() / "rel/tenant");
    }

    SECTION("a plugin key only the plugin declares is matched in pass 2") {
        mt::test::write_file(file, "");
        mt::ManifestInput in;
        in.file = file;
        const auto raw = mt::read_settings(in);
        CHECK_FALSE(raw.get("plugin.discovery-sql.query"));
        CHECK(raw.pending_environment.size() == 3);
        const auto m = mt::build_manifest(raw, in_tree_keys);
        CHECK(m.plugin_config.at("discovery-sql").at("query") == "SELECT id FROM env_tenants");

        SECTION("and a flag still beats it") {
            in.overrides = {"--plugin.discovery-sql.query=SELECT 'flag'"};
            const auto m2 = load(in);
            CHECK(m2.plugin_config.at("discovery-sql").at("query") == "SELECT 'flag'");
        }
    }

    SECTION("a variable that matches no key is an error naming the variable") {
        ScopedVar typo("MT_DATABASE__POOLSIZE", "3");
        mt::test::write_file(file, "");
        mt::ManifestInput in;
        in.file = file;
        try {
            load(in);
            FAIL("MT_DATABASE__POOLSIZE was accepted");
        } catch (const mt::ManifestError& e) {
            CHECK(e.source == "environment (MT_DATABASE__POOLSIZE)");
            CHECK(e.key == "database.poolsize");
            CHECK_THAT(e.what(), Contains("did you mean pool_size?") && Contains("unset the variable"));
        }
    }

    SECTION("a plugin variable no loaded plugin declares is an error listing plugin keys") {
        ScopedVar unknown("MT_PLUGIN_DISCOVERY_SQL__QUERRY", "x");
        mt::test::write_file(file, "");
        mt::ManifestInput in;
        in.file = file;
        try {
            load(in);
            FAIL("MT_PLUGIN_DISCOVERY_SQL__QUERRY was accepted");
        } catch (const mt::ManifestError& e) {
            CHECK(e.source == "environment (MT_PLUGIN_DISCOVERY_SQL__QUERRY)");
            CHECK_THAT(e.what(), Contains("plugin.discovery-sql.query"));
        }
    }

    SECTION("malformed values from the environment name the variable") {
        ScopedVar bad("MT_MIGRATIONS__CONCURRENCY", "lots");
        mt::test::write_file(file, "");
        mt::ManifestInput in;
        in.file = file;
        try {
            load(in);
            FAIL("concurrency=lots was accepted");
        } catch (const mt::ManifestError& e) {
            CHECK(e.source == "environment (MT_MIGRATIONS__CONCURRENCY)");
            CHECK(e.key == "migrations.concurrency");
            CHECK_THAT(e.what(), Contains("whole number"));
        }
    }
}

TEST_CASE("manifest: --section.key=value flags override and are checked", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    mt::test::write_file(file, url_only + "[plugins]\npath = in-file\n");
    const auto m = load(file_only(file, {"--migrations.concurrency=4", "migrations.fail_fast=on",
                                         "--plugins.load=tracking-name,discovery-sql",
                                         "--plugin.discovery-sql.query=SELECT id FROM t WHERE a = 1",
                                         "--servers.eu2.url=postgresql://eu2/app", "--migrations.tenant_dir=flag/t"}));
    CHECK(m.migrations.concurrency == 4);
    CHECK(m.migrations.fail_fast);
    CHECK(m.plugins.load == std::vector<std::string>{"tracking-name", "discovery-sql"});
    CHECK(m.plugin_config.at("discovery-sql").at("query") == "SELECT id FROM t WHERE a = 1");  // '=' in value kept
    CHECK(m.servers.at("eu2") == "postgresql://eu2/app");
    CHECK(m.plugins.path == std::vector<fs::path>{dir.path() / "in-file"});  // file path: relative to the file
    CHECK(m.migrations.tenant_dir == fs::current_path() / "flag/t");        // flag path: relative to the cwd

    for (const std::string bad : {"--verbose", "--pool_size=3", "--database.=3", "--=3", "--.url=x"}) {
        CAPTURE(bad);
        try {
            mt::read_settings(file_only(file, {bad}));
            FAIL("accepted " << bad);
        } catch (const mt::ManifestError& e) {
            CHECK(e.source == "command line");
            CHECK(e.key == bad);
            CHECK_THAT(e.what(), Contains("--section.key=value"));
        }
    }

    const auto unknown = error_of(file, url_only, {"--database.poolsize=3"});
    CHECK(unknown.source == "command line");
    CHECK(unknown.key == "database.poolsize");
    CHECK_THAT(unknown.what(), Contains("fix or drop the flag"));

    const auto malformed = error_of(file, url_only, {"--database.pool_mode=pooled"});
    CHECK(malformed.source == "command line");
    CHECK_THAT(malformed.what(), Contains("per-tenant, shared, transaction"));
}

TEST_CASE("manifest: file syntax errors name the line", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "m.ini";
    const auto no_equals = error_of(file, "[database]\n# comment\nurl postgresql://x\n");
    CHECK(no_equals.source == file.string());
    CHECK(no_equals.key == "line 3");
    CHECK_THAT(no_equals.what(), Contains("key = value"));

    const auto header = error_of(file, "[database\nurl = x\n");
    CHECK(header.key == "line 1");

    const auto twice = error_of(file, "[database]\nurl = a\nurl = b\n");
    CHECK(twice.key == "database.url");
    CHECK_THAT(twice.what(), Contains("twice"));

    mt::test::write_file(file, "[database]\r\nurl = postgresql://crlf/app\r\npool_size = 4 # four\r\n");
    const auto crlf = load(file_only(file));
    CHECK(crlf.database.url == "postgresql://crlf/app");
    CHECK(crlf.database.pool_size == 4);
}

TEST_CASE("manifest: relative paths in the file resolve against its folder", "[manifest]") {
    mt::test::TempDir dir;
    const auto file = dir / "conf/multitenant.ini";
    mt::test::write_file(file, url_only + "[migrations]\ntenant_dir = ../db/tenant\nshared_dir = db/shared\n"
                                          "[plugins]\npath = ./p1, /abs/p2\n");
    const auto m = load(file_only(file));
    CHECK(m.base_dir == dir.path() / "conf");
    CHECK(m.migrations.tenant_dir == dir.path() / "db/tenant");
    CHECK(*m.migrations.shared_dir == dir.path() / "conf/db/shared");
    CHECK(m.plugins.path == std::vector<fs::path>{dir.path() / "conf/p1", "/abs/p2"});
}

TEST_CASE("manifest: the starter manifest parses back to the defaults", "[manifest]") {
    CleanManifestEnv clean;
    ScopedVar url("DATABASE_URL", "postgresql://starter/app");
    mt::test::TempDir dir;
    const auto file = dir / "multitenant.ini";
    const std::string text = mt::starter_manifest();
    for (const auto& key : mt::fixed_manifest_keys()) {
        CAPTURE(key);
        const std::string name = key.substr(key.find('.') + 1);
        const std::string section = "[" + key.substr(0, key.find('.')) + "]";
        const size_t at = text.find("\n" + name + " =", text.find(section));
        const size_t commented = text.find("\n# " + name + " =", text.find(section));
        CHECK((at != std::string::npos || commented != std::string::npos));
    }
    mt::test::write_file(file, text);

    mt::ManifestInput in;
    in.file = file;
    const auto m = load(in);
    const mt::Manifest d;
    CHECK(m.database.url == "postgresql://starter/app");
    CHECK(m.database.pool_mode == d.database.pool_mode);
    CHECK(m.database.pool_size == d.database.pool_size);
    CHECK(m.database.max_pools == d.database.max_pools);
    CHECK(m.database.pool_idle_timeout == d.database.pool_idle_timeout);
    CHECK(m.database.connect_timeout == d.database.connect_timeout);
    CHECK(m.database.application_name == d.database.application_name);
    CHECK(m.isolation.schema_template == d.isolation.schema_template);
    CHECK(m.isolation.shared_schema == d.isolation.shared_schema);
    CHECK(m.isolation.tenant_id_pattern == d.isolation.tenant_id_pattern);
    CHECK(m.migrations.tenant_dir == dir.path() / d.migrations.tenant_dir);
    // The one key the starter sets beyond the defaults: `mtctl init` also creates drizzle/shared.
    REQUIRE(m.migrations.shared_dir);
    CHECK(*m.migrations.shared_dir == dir.path() / "drizzle/shared");
    CHECK(m.migrations.table == d.migrations.table);
    CHECK(m.migrations.shared_table == d.migrations.shared_table);
    CHECK(m.migrations.format == d.migrations.format);
    CHECK(m.migrations.default_format == d.migrations.default_format);
    CHECK(m.migrations.concurrency == d.migrations.concurrency);
    CHECK(m.migrations.lock_timeout == d.migrations.lock_timeout);
    CHECK(m.migrations.transaction == d.migrations.transaction);
    CHECK(m.migrations.fail_fast == d.migrations.fail_fast);
    CHECK(m.plugins.path.empty());
    CHECK(m.plugins.load == std::vector<std::string>{"tracking-name", "tracking-hash", "tracking-drizzle-kit",
                                                     "discovery-sql", "retry-exponential"});
    CHECK(m.roles.discovery == "discovery-sql");
    CHECK(m.roles.retry == "retry-exponential");
    CHECK(m.roles.sinks.empty());
    CHECK(m.roles.extractor.empty());
    CHECK(m.plugin_config.at("discovery-sql").at("query") == "SELECT id FROM public.tenants ORDER BY id");
    CHECK(m.servers.empty());
}

TEST_CASE("manifest: enums print as the manifest spells them", "[manifest]") {
    CHECK(mt::to_string(mt::PoolMode::per_tenant) == "per-tenant");
    CHECK(mt::to_string(mt::PoolMode::shared) == "shared");
    CHECK(mt::to_string(mt::PoolMode::transaction) == "transaction");
    CHECK(mt::to_string(mt::TransactionMode::per_migration) == "per-migration");
    CHECK(mt::to_string(mt::TransactionMode::per_tenant) == "per-tenant");
}

TEST_CASE("manifest: RawSettings lists split on commas", "[manifest]") {
    mt::RawSettings raw;
    raw.entries["plugins.load"] = {" a, b ,,c ", "command line"};
    CHECK(raw.get_list("plugins.load") == std::vector<std::string>{"a", "b", "c"});
    CHECK(raw.get_list("roles.sinks").empty());
    CHECK_FALSE(raw.get("roles.sinks"));
}
