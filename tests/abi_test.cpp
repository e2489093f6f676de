// The plugin ABI's growth rules (abi.h, "How structs grow", "Compatibility"): the layout of every
// struct pinned for x86_64, plugins built against the ABI 1.0 header that shipped and against a
// future minor (the next one) loading and working with this kernel, a plugin requiring a newer minor refused from its
// ELF note before any of its code runs, and the SDK's reads and guards at the boundary.
#include <mt/base/errors.hpp>
#include <mt/plugin_host/plugins.hpp>
#include <mt/plugin_host/sql_session.hpp>
#include <mt/sdk/abi.h>
#include <mt/sdk/plugin.hpp>

#include "support/pg.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

// ---- layout: every offset a 1.0 binary relies on stays where 1.0 put it; 1.1 fields follow ----
#if defined(__x86_64__) && defined(__linux__)
#define MT_LAYOUT(T, member, offset) static_assert(offsetof(T, member) == (offset), #T "." #member " moved")
#define MT_SIZE(T, size) static_assert(sizeof(T) == (size), "sizeof(" #T ") changed")

// Frozen value types.
MT_SIZE(mt_str, 16);
MT_LAYOUT(mt_str, size, 8);
MT_SIZE(mt_config_entry, 32);
MT_LAYOUT(mt_config_entry, value, 16);
MT_SIZE(mt_config, 16);
MT_LAYOUT(mt_config, count, 8);
MT_SIZE(mt_column, 40);
MT_LAYOUT(mt_column, type, 16);
MT_LAYOUT(mt_column, not_null, 32);
MT_SIZE(mt_migration_record, 48);
MT_LAYOUT(mt_migration_record, hash, 16);
MT_LAYOUT(mt_migration_record, created_at_ms, 32);
MT_LAYOUT(mt_migration_record, when_ms, 40);
MT_SIZE(mt_table, 48);
MT_LAYOUT(mt_table, name, 16);
MT_LAYOUT(mt_table, columns, 32);
MT_LAYOUT(mt_table, ncolumns, 40);
MT_SIZE(mt_header, 32);
MT_LAYOUT(mt_header, value, 16);
MT_SIZE(mt_failure, 40);
MT_LAYOUT(mt_failure, message, 16);
MT_LAYOUT(mt_failure, is_connection, 32);
MT_LAYOUT(mt_failure, attempt, 36);

// mt_error: frozen up to size (1.0 is 24 bytes), sqlstate appended in 1.1.
MT_LAYOUT(mt_error, data, 0);
MT_LAYOUT(mt_error, capacity, 8);
MT_LAYOUT(mt_error, size, 16);
MT_LAYOUT(mt_error, sqlstate, 24);
MT_SIZE(mt_error, 32);

// Host services (1.0: mt_sql 32, mt_host 24 bytes).
MT_LAYOUT(mt_sql, struct_size, 0);
MT_LAYOUT(mt_sql, ctx, 8);
MT_LAYOUT(mt_sql, exec, 16);
MT_LAYOUT(mt_sql, quote_ident, 24);
MT_LAYOUT(mt_sql, abi_minor, 32);
MT_SIZE(mt_sql, 40);
MT_LAYOUT(mt_host, struct_size, 0);
MT_LAYOUT(mt_host, ctx, 8);
MT_LAYOUT(mt_host, log, 16);
MT_LAYOUT(mt_host, abi_minor, 24);
MT_SIZE(mt_host, 32);

// Vtables. The tracking format's grows at its end (capabilities, 1.1), so only its 1.0 part is pinned.
MT_LAYOUT(mt_tracking_format_vtable, struct_size, 0);
MT_LAYOUT(mt_tracking_format_vtable, detect, 8);
MT_LAYOUT(mt_tracking_format_vtable, create, 16);
MT_LAYOUT(mt_tracking_format_vtable, list, 24);
MT_LAYOUT(mt_tracking_format_vtable, record, 32);
MT_LAYOUT(mt_tracking_format_vtable, remove, 40);
MT_LAYOUT(mt_tracking_format_vtable, list_query, 48);
MT_LAYOUT(mt_tracking_format_vtable, identifies_by, 56);
static_assert(sizeof(mt_tracking_format_vtable) >= 64);
MT_LAYOUT(mt_tenant_discovery_vtable, discover, 8);
MT_SIZE(mt_tenant_discovery_vtable, 16);
MT_LAYOUT(mt_metrics_sink_vtable, on_event, 8);
MT_LAYOUT(mt_metrics_sink_vtable, render, 16);
MT_SIZE(mt_metrics_sink_vtable, 24);
MT_LAYOUT(mt_retry_policy_vtable, decide, 8);
MT_LAYOUT(mt_retry_policy_vtable, max_attempts, 16);
MT_SIZE(mt_retry_policy_vtable, 24);
MT_LAYOUT(mt_request_tenant_extractor_vtable, extract, 8);
MT_SIZE(mt_request_tenant_extractor_vtable, 16);

// mt_event: 176 bytes in 1.0; pending, tenants, drift_groups are 1.1.
MT_LAYOUT(mt_event, struct_size, 0);
MT_LAYOUT(mt_event, type, 4);
MT_LAYOUT(mt_event, tenant, 8);
MT_LAYOUT(mt_event, schema, 24);
MT_LAYOUT(mt_event, statement, 40);
MT_LAYOUT(mt_event, reason, 56);
MT_LAYOUT(mt_event, error, 72);
MT_LAYOUT(mt_event, name, 88);
MT_LAYOUT(mt_event, duration_s, 104);
MT_LAYOUT(mt_event, ok, 112);
MT_LAYOUT(mt_event, attempt, 116);
MT_LAYOUT(mt_event, max_attempts, 120);
MT_LAYOUT(mt_event, delay_s, 128);
MT_LAYOUT(mt_event, active, 136);
MT_LAYOUT(mt_event, idle, 144);
MT_LAYOUT(mt_event, waiting, 152);
MT_LAYOUT(mt_event, pools_active, 160);
MT_LAYOUT(mt_event, pools_max, 168);
MT_LAYOUT(mt_event, pending, 176);
MT_LAYOUT(mt_event, tenants, 184);
MT_LAYOUT(mt_event, drift_groups, 192);
MT_SIZE(mt_event, 200);

MT_LAYOUT(mt_request_view, struct_size, 0);
MT_LAYOUT(mt_request_view, method, 8);
MT_LAYOUT(mt_request_view, path, 24);
MT_LAYOUT(mt_request_view, host, 40);
MT_LAYOUT(mt_request_view, query, 56);
MT_LAYOUT(mt_request_view, headers, 72);
MT_LAYOUT(mt_request_view, nheaders, 80);
MT_SIZE(mt_request_view, 88);

// Factories and the descriptor (1.0 descriptor: 96 bytes).
MT_LAYOUT(mt_factory, struct_size, 0);
MT_LAYOUT(mt_factory, kind, 4);
MT_LAYOUT(mt_factory, name, 8);
MT_LAYOUT(mt_factory, config_keys, 24);
MT_LAYOUT(mt_factory, nconfig_keys, 32);
MT_LAYOUT(mt_factory, create, 40);
MT_LAYOUT(mt_factory, destroy, 48);
MT_LAYOUT(mt_factory, vtable, 56);
MT_SIZE(mt_factory, 64);
MT_LAYOUT(mt_plugin_descriptor, struct_size, 0);
MT_LAYOUT(mt_plugin_descriptor, abi_major, 4);
MT_LAYOUT(mt_plugin_descriptor, abi_minor, 8);
MT_LAYOUT(mt_plugin_descriptor, name, 16);
MT_LAYOUT(mt_plugin_descriptor, version, 32);
MT_LAYOUT(mt_plugin_descriptor, sdk_version, 48);
MT_LAYOUT(mt_plugin_descriptor, toolchain, 64);
MT_LAYOUT(mt_plugin_descriptor, factories, 80);
MT_LAYOUT(mt_plugin_descriptor, nfactories, 88);
MT_LAYOUT(mt_plugin_descriptor, abi_built_minor, 96);
MT_SIZE(mt_plugin_descriptor, 104);

// Tracking-format capabilities: 24 bytes in 1.1; the COPY read (1.2) follows.
MT_LAYOUT(mt_tracking_capabilities, struct_size, 0);
MT_LAYOUT(mt_tracking_capabilities, keeps, 4);
MT_LAYOUT(mt_tracking_capabilities, label, 8);
MT_LAYOUT(mt_tracking_capabilities, copy_order, 24);
MT_LAYOUT(mt_tracking_capabilities, copy_name, 40);
MT_LAYOUT(mt_tracking_capabilities, copy_hash, 56);
MT_LAYOUT(mt_tracking_capabilities, copy_created_at, 72);
MT_LAYOUT(mt_tracking_capabilities, copy_created_at_unit, 88);
MT_SIZE(mt_tracking_capabilities, 96);

// The note, as it lies in the file.
MT_LAYOUT(mt_plugin_note, magic, 0);
MT_LAYOUT(mt_plugin_note, note_size, 4);
MT_LAYOUT(mt_plugin_note, abi_major, 8);
MT_LAYOUT(mt_plugin_note, abi_built_minor, 12);
MT_LAYOUT(mt_plugin_note, abi_required_minor, 16);
MT_LAYOUT(mt_plugin_note, kinds, 20);
MT_SIZE(mt_plugin_note, 24);
MT_LAYOUT(mt_plugin_note_record, name, 12);
MT_LAYOUT(mt_plugin_note_record, note, 20);
MT_SIZE(mt_plugin_note_record, 44);
static_assert(sizeof(MT_NOTE_NAME) == 8, "the note's owner name fills its 4-byte-padded field exactly");
#endif

namespace {

fs::path fixture_file(const std::string& file) { return fs::path(MT_FIXTURE_DIR) / file; }

mt::PluginError plugin_error(const std::string& file) {
    try {
        mt::inspect_plugin(fixture_file(file));
    } catch (const mt::PluginError& e) {
        return e;
    }
    FAIL("expected a PluginError for " << file);
    throw std::logic_error("unreachable");
}

mt_event event_of(mt_event_type type, const char* tenant) {
    mt_event e{};
    e.struct_size = sizeof(mt_event);
    e.type = type;
    e.tenant = mt_str{tenant, std::strlen(tenant)};
    return e;
}

mt_request_view request(const char* path, const mt_header* headers, size_t n) {
    mt_request_view r{};
    r.struct_size = sizeof r;
    r.method = mt::sdk::str("GET");
    r.path = mt_str{path, std::strlen(path)};
    r.headers = headers;
    r.nheaders = n;
    return r;
}

constexpr uint32_t bit(mt_kind k) { return 1u << static_cast<uint32_t>(k); }

}  // namespace

TEST_CASE("a C plugin built against the ABI 1.0 header loads without a note and works", "[abi][loader]") {
    const auto info = mt::inspect_plugin(fixture_file("fixture-abi10.so"));
    CHECK(info.name == "fixture-abi10");
    CHECK_FALSE(info.has_note);
    CHECK(info.abi_major == 1);
    CHECK(info.abi_minor == 0);
    CHECK(info.abi_required_minor == 0);
    REQUIRE(info.factories.size() == 2);
    CHECK(info.factories[1].name == "abi10-extractor");

    mt::PluginRegistry registry({});
    registry.load(fixture_file("fixture-abi10.so").string());
    mt::MetricsSink sink(registry.create("abi10-sink", MT_KIND_METRICS_SINK, {}));
    mt_event stats = event_of(MT_EVENT_POOL_STATS, "acme");
    stats.pools_max = 5;
    stats.pending = 1000;  // a 1.1 field the 1.0 sink cannot see
    sink.on_event(stats);
    sink.on_event(event_of(MT_EVENT_FLEET, "globex"));  // a 1.1 type: received, and ignored by its code
    CHECK(sink.render() == "abi10 events=2 last_type=8 last_tenant=globex pools_max_sum=5\n");

    mt::RequestTenantExtractor extractor(registry.create("abi10-extractor", MT_KIND_REQUEST_TENANT_EXTRACTOR, {}));
    const mt_header found[] = {{mt::sdk::str("Accept"), mt::sdk::str("*/*")}, {mt::sdk::str("X-Tenant"), mt::sdk::str("acme")}};
    const auto ok = extractor.extract(request("/", found, 2));
    CHECK(ok.result == MT_EXTRACT_FOUND);
    CHECK(ok.tenant_id == "acme");
    const mt_header empty[] = {{mt::sdk::str("X-Tenant"), mt::sdk::str("")}};
    const auto bad = extractor.extract(request("/", empty, 1));
    CHECK(bad.result == MT_EXTRACT_ERROR);
    CHECK(bad.error == "empty or oversized X-Tenant");
    CHECK(extractor.extract(request("/", nullptr, 0)).result == MT_EXTRACT_NONE);
}

TEST_CASE("a plugin built against the next ABI minor that requires 1.1 loads and its extra fields are ignored",
          "[abi][loader]") {
    const auto info = mt::inspect_plugin(fixture_file("fixture-abinext.so"));
    CHECK(info.name == "fixture-abinext");
    CHECK(info.has_note);
    CHECK(info.note_kinds == (bit(MT_KIND_METRICS_SINK) | bit(MT_KIND_REQUEST_TENANT_EXTRACTOR)));
    CHECK(info.abi_minor == MT_ABI_MINOR + 1);
    CHECK(info.abi_required_minor == 1);
    // Stepped by the factories' declared 88 bytes: by this kernel's 64 the second would be garbage.
    REQUIRE(info.factories.size() == 2);
    CHECK(info.factories[0].name == "abinext-sink");
    CHECK(info.factories[1].name == "abinext-extractor");
    CHECK(info.factories[1].kind == MT_KIND_REQUEST_TENANT_EXTRACTOR);

    mt::PluginRegistry registry({});
    registry.load(fixture_file("fixture-abinext.so").string());
    mt::MetricsSink sink(registry.create("abinext-sink", MT_KIND_METRICS_SINK, {}));
    mt_event fleet = event_of(MT_EVENT_FLEET, "acme");
    fleet.pending = 3;
    sink.on_event(fleet);
    sink.on_event(fleet);
    CHECK(sink.render() == "abinext events=2 last_type=8 pending_sum=6 queue_depth_sum=0 event_size=" +
                               std::to_string(sizeof(mt_event)) + "\n");

    mt::RequestTenantExtractor extractor(registry.create("abinext-extractor", MT_KIND_REQUEST_TENANT_EXTRACTOR, {}));
    const auto found = extractor.extract(request("/t/acme/orders", nullptr, 0));
    CHECK(found.result == MT_EXTRACT_FOUND);
    CHECK(found.tenant_id == "acme");
}

TEST_CASE("a plugin requiring the next ABI minor is refused at abi from its note, before any of its code runs", "[abi][loader]") {
    ::unsetenv("MT_FIXTURE_ABINEXT_LOADED");
    const auto e = plugin_error("fixture-abinext-requires-next.so");
    CHECK(e.stage == "abi");
    CHECK_THAT(e.file, Contains("fixture-abinext-requires-next.so"));
    const std::string ours = std::to_string(MT_ABI_MINOR), next = std::to_string(MT_ABI_MINOR + 1);
    CHECK(e.reason == "built for plugin ABI 1." + next + ", newer than this kernel's ABI 1." + ours +
                          ": it requires minor " + next + ", this kernel supports up to minor " + ours +
                          "; upgrade mtenant, or rebuild the plugin requiring at most minor " + ours);
    CHECK(std::getenv("MT_FIXTURE_ABINEXT_LOADED") == nullptr);
}

TEST_CASE("a plugin whose note names another ABI major is refused at abi before any of its code runs", "[abi][loader]") {
    ::unsetenv("MT_FIXTURE_ABINEXT_LOADED");
    const auto e = plugin_error("fixture-abinext-major-2.so");
    CHECK(e.stage == "abi");
    CHECK_THAT(e.file, Contains("fixture-abinext-major-2.so"));
    CHECK_THAT(e.reason, Contains("built for plugin ABI 2." + std::to_string(MT_ABI_MINOR + 1) + ", this kernel speaks ABI 1." + std::to_string(MT_ABI_MINOR)));
    CHECK(std::getenv("MT_FIXTURE_ABINEXT_LOADED") == nullptr);
}

TEST_CASE("a malformed note is refused at inspect, a note contradicting the descriptor at abi", "[abi][loader]") {
    ::unsetenv("MT_FIXTURE_ABINEXT_LOADED");
    const auto magic = plugin_error("fixture-abinext-bad-magic.so");
    CHECK(magic.stage == "inspect");
    CHECK(magic.reason == "its .note.mtenant does not start with the mtenant magic: rebuild the plugin with the SDK");
    CHECK(std::getenv("MT_FIXTURE_ABINEXT_LOADED") == nullptr);

    const auto disagrees = plugin_error("fixture-abinext-disagrees.so");
    CHECK(disagrees.stage == "abi");
    CHECK(disagrees.reason ==
          "its .note.mtenant says ABI 1." + std::to_string(MT_ABI_MINOR + 1) + " requiring 1.1, its descriptor ABI 1." +
              std::to_string(MT_ABI_MINOR + 1) + " requiring 1.0: rebuild the plugin (the two "
          "are written by one MT_PLUGIN line)");
}

TEST_CASE("an SDK plugin carries a note matching its descriptor: built with this minor, requiring 0", "[abi][loader]") {
    const auto info = mt::inspect_plugin(fixture_file("fixture-good.so"));
    CHECK(info.has_note);
    CHECK(info.abi_minor == MT_ABI_MINOR);
    CHECK(info.abi_required_minor == 0);
    CHECK(info.note_kinds == (bit(MT_KIND_TENANT_DISCOVERY) | bit(MT_KIND_RETRY_POLICY)));
}

TEST_CASE("mtctl plugins inspect shows the note, or says the plugin has none", "[abi][mtctl]") {
    const auto with = mt::test::mtctl("plugins inspect " + mt::test::shell_quote(fixture_file("fixture-abinext.so").string()));
    CHECK(with.exit_code == 0);
    CHECK_THAT(with.out, Contains("  ABI 1." + std::to_string(MT_ABI_MINOR + 1) + " (requires 1.1), SDK " MT_SDK_VERSION
                                  ", built with hand-written C against the next ABI minor\n"));
    CHECK_THAT(with.out, Contains("  .note.mtenant: checked before loading; kinds metrics_sink,request_tenant_extractor\n"));

    const auto without = mt::test::mtctl("plugins inspect " + mt::test::shell_quote(fixture_file("fixture-abi10.so").string()));
    CHECK(without.exit_code == 0);
    CHECK_THAT(without.out, Contains("  ABI 1.0 (requires 1.0)"));
    CHECK_THAT(without.out, Contains("  no .note.mtenant (built against ABI 1.0 headers): checked after loading\n"));

    const auto refused =
        mt::test::mtctl("plugins inspect " + mt::test::shell_quote(fixture_file("fixture-abinext-requires-next.so").string()));
    CHECK(refused.exit_code == 2);
    CHECK_THAT(refused.err, Contains("fixture-abinext-requires-next.so: abi: built for plugin ABI 1." + std::to_string(MT_ABI_MINOR + 1) + ", newer than"));
}

// ---- the SDK side of the boundary -----------------------------------------------------------

namespace {

struct SeenSink final : mt::sdk::MetricsSink {
    mt_event last{};
    void on_event(const mt_event& e) override { last = e; }
};

struct ThrowingFormat final : mt::sdk::TrackingFormat {
    int detect(const std::vector<mt::sdk::Column>&) override { return 0; }
    void create(mt::sdk::Sql&, const mt::sdk::Table&) override {}
    std::string_view list_query() const override { throw std::runtime_error("no query"); }
    uint32_t identifies_by() const override { throw 42; }
    void record(mt::sdk::Sql&, const mt::sdk::Table&, const std::vector<mt::sdk::Record>&) override {}
    void remove(mt::sdk::Sql&, const mt::sdk::Table&, const std::vector<mt::sdk::Record>&) override {}
};

}  // namespace

TEST_CASE("the SDK reads a kernel struct only up to the size its writer declared", "[abi][sdk]") {
    // An event from a 1.0 kernel: 176 bytes; what lies after it is not the sink's to read.
    alignas(mt_event) unsigned char bytes[sizeof(mt_event)];
    std::memset(bytes, 0x7f, sizeof bytes);
    mt_event older = event_of(MT_EVENT_POOL_STATS, "acme");
    older.struct_size = offsetof(mt_event, pending);
    older.pools_max = 9;
    std::memcpy(bytes, &older, offsetof(mt_event, pending));
    SeenSink sink;
    mt::sdk::detail::SinkThunks<SeenSink>::on_event(&sink, reinterpret_cast<const mt_event*>(bytes));
    CHECK(sink.last.pools_max == 9);
    CHECK(sink.last.pending == 0);
    CHECK(sink.last.tenants == 0);
    CHECK(sink.last.drift_groups == 0);

    // A 1.0 host: no abi_minor, so the plugin treats it as 1.0.
    alignas(mt_host) unsigned char host_bytes[sizeof(mt_host)];
    std::memset(host_bytes, 0x7f, sizeof host_bytes);
    const uint32_t host_1_0 = offsetof(mt_host, abi_minor);
    std::memcpy(host_bytes, &host_1_0, sizeof host_1_0);
    CHECK(mt::sdk::Host(reinterpret_cast<const mt_host*>(host_bytes), "p").abi_minor() == 0);
}

namespace {

struct CopyingFormat final : mt::sdk::TrackingFormat {
    int detect(const std::vector<mt::sdk::Column>&) override { return 1; }
    void create(mt::sdk::Sql&, const mt::sdk::Table&) override {}
    std::string_view list_query() const override { return "SELECT name, NULL, NULL FROM {table} t ORDER BY t.n"; }
    uint32_t identifies_by() const override { return MT_IDENTIFIES_NAME; }
    mt::sdk::TrackingCapabilities capabilities(const mt::sdk::Table&) const {
        return {MT_TRACKING_KEEPS_NAMES, "copying", {"n", "name", "", "", 0}};
    }
    void record(mt::sdk::Sql&, const mt::sdk::Table&, const std::vector<mt::sdk::Record>&) override {}
    void remove(mt::sdk::Sql&, const mt::sdk::Table&, const std::vector<mt::sdk::Record>&) override {}
};

}  // namespace

TEST_CASE("the capabilities thunk writes the COPY read only into a kernel struct that has room for it", "[abi][sdk]") {
    CopyingFormat format;
    using Thunks = mt::sdk::detail::TrackingThunks<CopyingFormat>;
    const mt_table table{};
    mt::sdk::ErrorBuffer eb;

    // A 1.1 kernel's struct (24 bytes): keeps and label, nothing after them.
    alignas(mt_tracking_capabilities) unsigned char bytes[sizeof(mt_tracking_capabilities)];
    std::memset(bytes, 0x7f, sizeof bytes);
    const uint32_t size_1_1 = offsetof(mt_tracking_capabilities, copy_order);
    std::memcpy(bytes, &size_1_1, sizeof size_1_1);
    REQUIRE(Thunks::capabilities(&format, &table, reinterpret_cast<mt_tracking_capabilities*>(bytes), &eb.err) == MT_OK);
    mt_tracking_capabilities older;
    std::memcpy(&older, bytes, sizeof older);
    CHECK(older.keeps == MT_TRACKING_KEEPS_NAMES);
    CHECK(mt::sdk::view(older.label) == "copying");
    for (size_t i = size_1_1; i < sizeof bytes; ++i) CHECK(bytes[i] == 0x7f);

    // This kernel's: the COPY read too.
    mt_tracking_capabilities current{};
    current.struct_size = sizeof current;
    REQUIRE(Thunks::capabilities(&format, &table, &current, &eb.err) == MT_OK);
    CHECK(mt::sdk::view(current.copy_order) == "n");
    CHECK(mt::sdk::view(current.copy_name) == "name");
    CHECK(current.copy_hash.size == 0);
    CHECK(current.copy_created_at.size == 0);
}

TEST_CASE("list_query and identifies_by thunks catch what the plugin throws", "[abi][sdk]") {
    ThrowingFormat format;
    using Thunks = mt::sdk::detail::TrackingThunks<ThrowingFormat>;
    const mt_str query = Thunks::list_query(&format);
    CHECK(query.data == nullptr);
    CHECK(query.size == 0);
    CHECK(Thunks::identifies_by(&format) == 0u);
}

TEST_CASE("the SQLSTATE travels in mt_error.sqlstate, and the 1.0 message prefix is read by one rule", "[abi][sdk]") {
    using mt::sdk::detail::legacy_sqlstate;
    CHECK(legacy_sqlstate("SQLSTATE 42P01: ERROR:  relation \"x\" does not exist") == "42P01");
    CHECK(legacy_sqlstate("SQLSTATE 42p01: lower case is not a SQLSTATE") == "");
    CHECK(legacy_sqlstate("SQLSTATE 42P01 no colon") == "");
    CHECK(legacy_sqlstate("ERROR: SQLSTATE 42P01: not at the start") == "");

    mt::sdk::ErrorBuffer eb;
    auto fails = [] { throw mt::sdk::SqlError("SQLSTATE 23505: duplicate", "23505"); };
    CHECK(mt::sdk::detail::guarded(&eb.err, fails, 1) == MT_SQL_ERROR);
    CHECK(std::string(eb.err.sqlstate) == "23505");
    CHECK(eb.message() == "SQLSTATE 23505: duplicate");

    mt::sdk::ErrorBuffer old_host;  // a 1.0 host's buffer has no sqlstate field: left untouched
    CHECK(mt::sdk::detail::guarded(&old_host.err, fails, 0) == MT_SQL_ERROR);
    CHECK(std::string(old_host.err.sqlstate).empty());
}

TEST_CASE("host exec fills sqlstate only for a 1.1 caller and stops a throwing row callback at the boundary",
          "[abi][pg]") {
    mt::test::TempDatabase db;
    auto conn = db.connect();
    pqxx::nontransaction tx(conn);
    mt::SqlSession session(tx);
    const char* bad = "SELECT * FROM no_such_table";
    const mt_str sql{bad, std::strlen(bad)};

    mt::sdk::ErrorBuffer current;
    const mt_sql* api = session.c_api_for(1);
    CHECK(api->abi_minor == MT_ABI_MINOR);
    CHECK(api->exec(api->ctx, sql, nullptr, 0, nullptr, nullptr, &current.err) == MT_SQL_ERROR);
    CHECK(std::string(current.err.sqlstate) == "42P01");
    CHECK_THAT(std::string(current.message()), Contains("SQLSTATE 42P01: "));

    // A 1.0 plugin's buffer is 24 bytes: the host writes nothing after it.
    struct OldBuffer {
        char* data;
        size_t capacity;
        size_t size;
        char after[8];
    };
    char text[256] = {};
    OldBuffer old{text, sizeof text, 0, {'g', 'u', 'a', 'r', 'd', '!', '!', '\0'}};
    static_assert(offsetof(OldBuffer, after) == offsetof(mt_error, sqlstate));
    const mt_sql* api_1_0 = session.c_api_for(0);
    CHECK(api_1_0->exec(api_1_0->ctx, sql, nullptr, 0, nullptr, nullptr, reinterpret_cast<mt_error*>(&old)) ==
          MT_SQL_ERROR);
    CHECK(std::string(old.after) == "guard!!");
    CHECK(mt::sdk::detail::legacy_sqlstate(std::string(text, old.size)) == "42P01");

    const char* rows = "SELECT 1 UNION ALL SELECT 2";
    mt::sdk::ErrorBuffer thrown;
    auto throwing_row = [](void*, size_t, const mt_str*) -> int { throw std::runtime_error("row refused"); };
    CHECK(api->exec(api->ctx, mt_str{rows, std::strlen(rows)}, nullptr, 0, throwing_row, nullptr, &thrown.err) == MT_ERROR);
    CHECK(thrown.message() == "the plugin's row callback threw an exception into the host: row refused");
}
