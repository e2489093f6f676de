// Plugin loader and registry (SPEC §3.2, §3.3, §10): real fixture .so files, each refused at the
// stage the spec names, and the good one loaded, listed and used.
#include <mt/base/errors.hpp>
#include <mt/plugin_host/plugins.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include "support/pg.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

fs::path fixture(const std::string& file) { return fs::path(MT_FIXTURE_DIR) / file; }

mt::PluginRegistry fixture_registry() { return mt::PluginRegistry({fs::path(MT_FIXTURE_DIR)}); }

template <class F>
mt::PluginError plugin_error(F&& f) {
    try {
        f();
    } catch (const mt::PluginError& e) {
        return e;
    }
    FAIL("expected a PluginError");
    throw std::logic_error("unreachable");
}

mt::PluginError inspect_error(const std::string& file) {
    return plugin_error([&] { mt::inspect_plugin(fixture(file)); });
}

// Every refusal names the file it is about, in the message as well as in the field.
void check_names_file(const mt::PluginError& e, const std::string& file) {
    CHECK_THAT(e.file, Contains(file));
    CHECK_THAT(std::string(e.what()), Contains(file));
}

}  // namespace

TEST_CASE("a file that is not ELF is refused at inspect", "[loader]") {
    auto e = inspect_error("not-elf.so");
    CHECK(e.stage == "inspect");
    check_names_file(e, "not-elf.so");
    CHECK_THAT(e.reason, Contains("not a shared library"));
}

TEST_CASE("a missing file is refused at inspect", "[loader]") {
    auto e = inspect_error("no-such-file.so");
    CHECK(e.stage == "inspect");
    check_names_file(e, "no-such-file.so");
    CHECK_THAT(e.reason, Contains("no such file"));
}

TEST_CASE("a library without mt_plugin_entry_v1 is refused at inspect", "[loader]") {
    auto e = inspect_error("fixture-no-entry.so");
    CHECK(e.stage == "inspect");
    check_names_file(e, "fixture-no-entry.so");
    CHECK_THAT(e.reason, Contains("mt_plugin_entry_v1"));
}

TEST_CASE("a library with an unresolved symbol is refused at load, naming the symbol", "[loader]") {
    auto e = inspect_error("fixture-unresolved.so");
    CHECK(e.stage == "load");
    check_names_file(e, "fixture-unresolved.so");
    CHECK_THAT(e.reason, Contains("mt_fixture_symbol_nobody_defines"));
}

TEST_CASE("a plugin built for another ABI major is refused at abi", "[loader]") {
    auto e = inspect_error("fixture-abi-major.so");
    CHECK(e.stage == "abi");
    check_names_file(e, "fixture-abi-major.so");
    CHECK_THAT(e.reason, Contains("ABI 2.0"));
    CHECK_THAT(e.reason, Contains("ABI 1." + std::to_string(MT_ABI_MINOR)));
}

TEST_CASE("a plugin built for a newer ABI minor is refused at abi", "[loader]") {
    auto e = inspect_error("fixture-abi-minor.so");
    CHECK(e.stage == "abi");
    check_names_file(e, "fixture-abi-minor.so");
    CHECK_THAT(e.reason, Contains("ABI 1." + std::to_string(MT_ABI_MINOR + 1)));
    CHECK_THAT(e.reason, Contains("newer"));
}

TEST_CASE("a null or truncated descriptor is refused at abi", "[loader]") {
    auto null = inspect_error("fixture-null-descriptor.so");
    CHECK(null.stage == "abi");
    check_names_file(null, "fixture-null-descriptor.so");
    CHECK_THAT(null.reason, Contains("no descriptor"));

    auto small = inspect_error("fixture-small-descriptor.so");
    CHECK(small.stage == "abi");
    check_names_file(small, "fixture-small-descriptor.so");
    CHECK_THAT(small.reason, Contains("12 bytes"));
}

TEST_CASE("inspect_plugin reads the good plugin's descriptor without creating anything", "[loader]") {
    const auto info = mt::inspect_plugin(fixture("fixture-good.so"));
    CHECK(info.name == "fixture-good");
    CHECK(info.version == "1.2.3");
    CHECK(info.sdk_version == MT_SDK_VERSION);
    CHECK(info.abi_major == MT_ABI_MAJOR);
    CHECK(info.abi_minor == MT_ABI_MINOR);
    CHECK_FALSE(info.toolchain.empty());
    CHECK(info.file.filename() == "fixture-good.so");
    REQUIRE(info.factories.size() == 2);
    CHECK(info.factories[0].name == "fixture-discovery");
    CHECK(info.factories[0].kind == MT_KIND_TENANT_DISCOVERY);
    CHECK(info.factories[0].config_keys == std::vector<std::string>{"query", "server"});
    CHECK(info.factories[1].name == "fixture-retry");
    CHECK(info.factories[1].kind == MT_KIND_RETRY_POLICY);
    CHECK(info.factories[1].config_keys == std::vector<std::string>{"max_attempts", "delay"});
}

TEST_CASE("a stripped plugin (no .symtab) is still found by its dynamic symbol table", "[loader]") {
    const auto info = mt::inspect_plugin(fixture("fixture-stripped.so"));
    CHECK(info.name == "fixture-stripped");

    auto registry = fixture_registry();
    registry.load("fixture-stripped");
    mt::RetryPolicy retry(registry.create("stripped-retry", MT_KIND_RETRY_POLICY, {}));
    CHECK(retry.max_attempts() == 3);
}

TEST_CASE("the registry lists a loaded plugin with its kinds, version and ABI", "[loader]") {
    auto registry = fixture_registry();
    const auto& loaded = registry.load("fixture-good");
    CHECK(loaded.name == "fixture-good");
    CHECK(fs::equivalent(loaded.file, fixture("fixture-good.so")));

    REQUIRE(registry.plugins().size() == 1);
    const auto& info = registry.plugins().front();
    CHECK(info.version == "1.2.3");
    CHECK(info.abi_major == MT_ABI_MAJOR);
    CHECK(info.abi_minor == MT_ABI_MINOR);
    CHECK(registry.factories_of(MT_KIND_TENANT_DISCOVERY) == std::vector<std::string>{"fixture-discovery"});
    CHECK(registry.factories_of(MT_KIND_RETRY_POLICY) == std::vector<std::string>{"fixture-retry"});
    CHECK(registry.factories_of(MT_KIND_METRICS_SINK).empty());

    const auto* retry = registry.find_factory("fixture-retry");
    REQUIRE(retry != nullptr);
    CHECK(retry->kind == MT_KIND_RETRY_POLICY);
    CHECK(registry.find_factory("nope") == nullptr);

    const auto keys = registry.config_keys();
    CHECK(keys.at("fixture-retry") == std::set<std::string>{"max_attempts", "delay"});
    CHECK(keys.at("fixture-discovery") == std::set<std::string>{"query", "server"});
}

TEST_CASE("the registry finds lib<name>.so and takes a name with '/' as a path", "[loader]") {
    auto registry = fixture_registry();
    CHECK(registry.load("fixture-prefixed").file.filename() == "libfixture-prefixed.so");
    CHECK(registry.load(fixture("fixture-good.so").string()).name == "fixture-good");
    CHECK(registry.plugins().size() == 2);

    auto e = plugin_error([&] { registry.load(fixture("fixture-no-entry.so").string()); });
    CHECK(e.stage == "inspect");
}

TEST_CASE("a plugin that is nowhere is refused at inspect, listing the folders searched", "[loader]") {
    auto registry = fixture_registry();
    auto e = plugin_error([&] { registry.load("no-such-plugin"); });
    CHECK(e.stage == "inspect");
    CHECK(e.file == "no-such-plugin");
    CHECK_THAT(e.reason, Contains("not found in: "));
    CHECK_THAT(e.reason, Contains(MT_FIXTURE_DIR));
    CHECK_THAT(e.reason, Contains(mt::builtin_plugin_dir().string()));
}

TEST_CASE("the builtin plugin folder is beside the kernel library", "[loader]") {
    const auto dir = mt::builtin_plugin_dir();
    CHECK(dir.filename() == "plugins");
    CHECK(dir.parent_path().filename() == "mtenant");
    CHECK(fs::weakly_canonical(dir) == fs::weakly_canonical(MT_PLUGIN_DIR));
}

TEST_CASE("loading a plugin or a factory name twice is refused at load", "[loader]") {
    auto registry = fixture_registry();
    const auto first = registry.load("fixture-good").file.string();

    auto again = plugin_error([&] { registry.load("fixture-good"); });
    CHECK(again.stage == "load");
    CHECK_THAT(again.reason, Contains("fixture-good is already loaded from " + first));

    auto twin = plugin_error([&] { registry.load("fixture-good-twin"); });
    CHECK(twin.stage == "load");
    check_names_file(twin, "fixture-good-twin.so");
    CHECK_THAT(twin.reason, Contains("factory fixture-discovery is already registered by plugin fixture-good from " + first));

    // A refused load changes nothing.
    CHECK(registry.plugins().size() == 1);
    CHECK(registry.config_keys().size() == 2);
}

TEST_CASE("an instance outlives the registry that created it", "[loader]") {
    std::shared_ptr<mt::PluginInstance> instance;
    {
        auto registry = fixture_registry();
        registry.load("fixture-good");
        instance = registry.create("fixture-retry", MT_KIND_RETRY_POLICY, {{"max_attempts", "4"}});
    }
    REQUIRE(instance);
    CHECK(instance->name() == "fixture-retry");
    CHECK(instance->kind() == MT_KIND_RETRY_POLICY);
    CHECK(instance->file().filename() == "fixture-good.so");
    mt::RetryPolicy retry(instance);
    instance.reset();
    CHECK(retry.max_attempts() == 4);
    CHECK(retry.decide(mt::sdk::Failure{"08006", "connection lost", true, 2}) == std::chrono::milliseconds(200));
}

TEST_CASE("the typed RetryPolicy calls the plugin through its function table", "[loader]") {
    auto registry = fixture_registry();
    registry.load("fixture-good");

    mt::RetryPolicy defaults(registry.create("fixture-retry", MT_KIND_RETRY_POLICY, {}));
    CHECK(defaults.name() == "fixture-retry");
    CHECK(defaults.max_attempts() == 3);
    CHECK(defaults.decide({"40001", "serialization failure", false, 1}) == std::chrono::milliseconds(100));
    CHECK(defaults.decide({"40001", "serialization failure", false, 2}) == std::chrono::milliseconds(200));
    CHECK(defaults.decide({"40001", "serialization failure", false, 3}) == std::nullopt);

    mt::RetryPolicy tuned(registry.create("fixture-retry", MT_KIND_RETRY_POLICY, {{"max_attempts", "2"}, {"delay", "1s"}}));
    CHECK(tuned.max_attempts() == 2);
    CHECK(tuned.decide({"", "connection refused", true, 1}) == std::chrono::milliseconds(1000));
    CHECK(tuned.decide({"", "connection refused", true, 2}) == std::nullopt);
}

TEST_CASE("an unknown config key is refused at config", "[loader]") {
    auto registry = fixture_registry();
    registry.load("fixture-good");
    auto e = plugin_error([&] { registry.create("fixture-retry", MT_KIND_RETRY_POLICY, {{"max_atempts", "3"}}); });
    CHECK(e.stage == "config");
    check_names_file(e, "fixture-good.so");
    CHECK_THAT(e.reason, Contains("unknown key 'max_atempts' for fixture-retry"));
    CHECK_THAT(e.reason, Contains("max_attempts, delay"));
}

TEST_CASE("a config value the plugin refuses is reported at config with its message", "[loader]") {
    auto registry = fixture_registry();
    registry.load("fixture-good");
    registry.load("fixture-throws");

    auto refused = plugin_error([&] { registry.create("throws-config", MT_KIND_RETRY_POLICY, {{"level", "extreme"}}); });
    CHECK(refused.stage == "config");
    check_names_file(refused, "fixture-throws.so");
    CHECK_THAT(refused.reason, Contains("throws-config: level: must be low or high, got 'extreme'"));
    CHECK(registry.create("throws-config", MT_KIND_RETRY_POLICY, {{"level", "high"}}) != nullptr);

    // The SDK's typed getters refuse malformed values the same way.
    auto malformed = plugin_error([&] { registry.create("fixture-retry", MT_KIND_RETRY_POLICY, {{"max_attempts", "x"}}); });
    CHECK(malformed.stage == "config");
    CHECK_THAT(malformed.reason, Contains("max_attempts: expected an integer, got 'x'"));
}

TEST_CASE("a plugin that throws in create is reported at create with its message", "[loader]") {
    auto registry = fixture_registry();
    registry.load("fixture-throws");
    auto e = plugin_error([&] { registry.create("throws-create", MT_KIND_RETRY_POLICY, {}); });
    CHECK(e.stage == "create");
    check_names_file(e, "fixture-throws.so");
    CHECK_THAT(e.reason, Contains("constructor exploded on purpose"));

    auto none = plugin_error([&] { registry.create("throws-null-self", MT_KIND_RETRY_POLICY, {}); });
    CHECK(none.stage == "create");
    CHECK_THAT(none.reason, Contains("returned no object"));
}

TEST_CASE("creating a factory as the wrong kind is refused", "[loader]") {
    auto registry = fixture_registry();
    registry.load("fixture-good");
    auto e = plugin_error([&] { registry.create("fixture-retry", MT_KIND_TENANT_DISCOVERY, {}); });
    CHECK(e.stage == "config");
    check_names_file(e, "fixture-good.so");
    CHECK(e.reason == "fixture-retry is a retry_policy, expected tenant_discovery");

    auto wrapped = plugin_error([&] { mt::MetricsSink(registry.create("fixture-retry", MT_KIND_RETRY_POLICY, {})); });
    CHECK(wrapped.stage == "config");
    CHECK(wrapped.reason == "fixture-retry is a retry_policy, expected metrics_sink");

    auto unknown = plugin_error([&] { registry.create("retry-nope", MT_KIND_RETRY_POLICY, {}); });
    CHECK(unknown.stage == "config");
    CHECK_THAT(unknown.reason, Contains("no loaded plugin offers retry-nope"));
}

TEST_CASE("kinds have their spec names", "[loader]") {
    CHECK(mt::to_string(MT_KIND_TRACKING_FORMAT) == "tracking_format");
    CHECK(mt::to_string(MT_KIND_TENANT_DISCOVERY) == "tenant_discovery");
    CHECK(mt::to_string(MT_KIND_METRICS_SINK) == "metrics_sink");
    CHECK(mt::to_string(MT_KIND_RETRY_POLICY) == "retry_policy");
    CHECK(mt::to_string(MT_KIND_REQUEST_TENANT_EXTRACTOR) == "request_tenant_extractor");
}

TEST_CASE("a discovery plugin runs SQL through the host session and reports SQLSTATE", "[pg][loader-sql]") {
    mt::test::TempDatabase db;
    db.exec("CREATE TABLE tenants (id text PRIMARY KEY); INSERT INTO tenants VALUES ('x'), ('y')");
    auto registry = fixture_registry();
    registry.load("fixture-good");

    auto conn = db.connect();
    pqxx::work tx(conn);
    mt::SqlSession session(tx);

    mt::TenantDiscovery fixed(registry.create("fixture-discovery", MT_KIND_TENANT_DISCOVERY, {{"server", "eu1"}}));
    const auto abc = fixed.discover(session);
    REQUIRE(abc.size() == 3);
    CHECK(abc[0].id == "a");
    CHECK_FALSE(abc[0].server.has_value());
    CHECK(abc[2].id == "c");
    CHECK(abc[2].server == std::optional<std::string>("eu1"));

    mt::TenantDiscovery queried(registry.create("fixture-discovery", MT_KIND_TENANT_DISCOVERY,
                                                {{"query", "SELECT id FROM tenants ORDER BY id"}}));
    const auto xy = queried.discover(session);
    REQUIRE(xy.size() == 2);
    CHECK(xy[0].id == "x");
    CHECK(xy[1].id == "y");

    mt::TenantDiscovery broken(registry.create("fixture-discovery", MT_KIND_TENANT_DISCOVERY,
                                               {{"query", "SELECT id FROM no_such_table"}}));
    try {
        broken.discover(session);
        FAIL("expected an OperationError");
    } catch (const mt::OperationError& e) {
        CHECK(e.sqlstate == "42P01");
        CHECK_THAT(std::string(e.what()), Contains("no_such_table"));
    }
}
