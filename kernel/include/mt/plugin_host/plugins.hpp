// Plugin loader and registry (SPEC §3.2, §3.3). Boost.DLL underneath; C ABI at the boundary.
#pragma once

#include <mt/sdk/abi.h>
#include <mt/sdk/plugin.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mt {

class SqlSession;

std::string to_string(mt_kind kind);  // "tracking_format", "tenant_discovery", ...

struct FactoryInfo {
    mt_kind kind{};
    std::string name;
    std::vector<std::string> config_keys;
};

struct PluginInfo {
    std::filesystem::path file;
    std::string name;
    std::string version;
    std::string sdk_version;
    std::string toolchain;
    uint32_t abi_major = 0;
    uint32_t abi_minor = 0;           // the minor the plugin was built with
    uint32_t abi_required_minor = 0;  // the minor it requires of the host (abi.h, "Compatibility")
    bool has_note = false;            // the file carries .note.mtenant (ABI 1.1+), read before loading
    uint32_t note_kinds = 0;          // the note's kinds: bit (1u << kind) per kind offered
    std::vector<FactoryInfo> factories;
};

// Reads a file's descriptor without creating anything: checks the entry symbol in the file's ELF
// dynamic symbol table and its .note.mtenant (ABI major, required minor) before any plugin code
// runs, loads rtld_now|rtld_local, calls the entry, copies the descriptor up to the size it declares
// and checks the ABI. A file without the note (built against ABI 1.0 headers) is checked after
// loading only. Throws PluginError(file, stage, reason), stage being one of inspect, load, abi.
PluginInfo inspect_plugin(const std::filesystem::path& file);

// The folder the kernel looks in by itself: <dir of libmtenant_runtime.so>/mtenant/plugins.
std::filesystem::path builtin_plugin_dir();

namespace detail {
struct Library;  // a loaded library plus its descriptor; shared by every object created from it
}

// One live object made by a factory. Holds its library (declared first, destroyed last), so the
// code it runs stays mapped for as long as the object lives, whatever happened to the registry.
// host_context is whatever host->ctx points to (the instance's logger); it lives as long as the object.
class PluginInstance {
public:
    PluginInstance(std::shared_ptr<detail::Library> library, const mt_factory* factory, std::string name,
                   void* self, std::unique_ptr<mt_host> host, std::shared_ptr<void> host_context = {});
    ~PluginInstance();
    PluginInstance(const PluginInstance&) = delete;
    PluginInstance& operator=(const PluginInstance&) = delete;

    const std::string& name() const { return name_; }
    mt_kind kind() const;
    const void* vtable() const;
    void* self() const { return self_; }
    const std::filesystem::path& file() const;
    // The ABI minor the plugin was built with: which layouts and fields it knows (abi.h).
    uint32_t abi_minor() const;

private:
    std::shared_ptr<detail::Library> library_;
    const mt_factory* factory_;
    std::string name_;
    void* self_;
    std::unique_ptr<mt_host> host_;
    std::shared_ptr<void> host_context_;
};

// ---- typed views of instances (kernel side of each kind) ---------------------------------
// Each checks the instance's kind (PluginError "config" otherwise) and that the plugin's function
// table is large enough for the function called. A failed tracking or discovery call throws
// OperationError carrying the SQLSTATE when the failure came from the server; other kinds throw Error.

// A tracking table as the kernel found it (columns empty when it does not exist yet).
struct TrackingTable {
    std::string schema;
    std::string name;
    std::vector<sdk::Column> columns;
};

// What a format keeps in one tracking table: declared by the plugin (ABI 1.1) or, for a plugin
// without the capabilities call, derived from identifies_by.
struct TrackingCapabilities {
    bool keeps_names = false;
    bool keeps_hashes = false;
    bool journal_time = false;   // the row's timestamp is the drizzle-kit journal's `when`
    bool found_by_name = false;  // tools sharing the table find migrations by name (renames show)
    bool declared = false;       // false: derived by the kernel
};

// ABI 1.2: how a format's records are read from one table by COPY instead of list_query, as the
// plugin declared it and the kernel checked it against the table's columns (every named column
// exists, once, with a type the kernel decodes).
struct TrackingCopyRead {
    std::string order;       // smallint/integer/bigint: rows ascending by it, NULLs last
    std::string name;        // text/varchar, or empty: NULL in every row
    std::string hash;        // text/varchar, or empty
    std::string created_at;  // or empty
    bool created_at_timestamp = false;  // timestamp(tz): floor(epoch ms); else integer milliseconds
};

class TrackingFormat {
public:
    explicit TrackingFormat(std::shared_ptr<PluginInstance> instance);
    const std::string& name() const { return instance_->name(); }
    int detect(const std::vector<sdk::Column>& columns) const;
    void create(SqlSession& sql, const TrackingTable& table) const;
    std::vector<sdk::Record> list(SqlSession& sql, const TrackingTable& table) const;
    void record(SqlSession& sql, const TrackingTable& table, const std::vector<sdk::Record>& records) const;
    void remove(SqlSession& sql, const TrackingTable& table, const std::vector<sdk::Record>& records) const;
    std::string list_query() const;
    uint32_t identifies_by() const;
    // What it keeps in a table with these columns (empty: a table its create() would make).
    TrackingCapabilities capabilities(const std::vector<sdk::Column>& columns = {}) const;
    // Its short name ("name"), as shown and as accepted in migrations.format and --to / --from.
    std::string label() const;
    // The COPY read of an existing table with these columns; nullopt when the plugin declares none
    // (1.1 and older, or not for this table) or declares one the columns do not fit.
    std::optional<TrackingCopyRead> copy_read(const std::vector<sdk::Column>& columns) const;

private:
    struct Described {
        TrackingCapabilities capabilities;
        std::string label;
        std::optional<TrackingCopyRead> copy;  // as declared, not yet checked
    };
    Described describe(const std::vector<sdk::Column>& columns) const;

    std::shared_ptr<PluginInstance> instance_;
    const mt_tracking_format_vtable* vt_;
};

class TenantDiscovery {
public:
    explicit TenantDiscovery(std::shared_ptr<PluginInstance> instance);
    const std::string& name() const { return instance_->name(); }
    std::vector<sdk::DiscoveredTenant> discover(SqlSession& sql) const;
    // The same, each tenant handed to on_tenant as the plugin finds it (no list in between).
    void discover(SqlSession& sql, const std::function<void(sdk::DiscoveredTenant&&)>& on_tenant) const;

private:
    std::shared_ptr<PluginInstance> instance_;
    const mt_tenant_discovery_vtable* vt_;
};

class MetricsSink {
public:
    explicit MetricsSink(std::shared_ptr<PluginInstance> instance);
    const std::string& name() const { return instance_->name(); }
    void on_event(const mt_event& event) const noexcept;
    std::string render() const;  // empty for sinks that cannot render

private:
    std::shared_ptr<PluginInstance> instance_;
    const mt_metrics_sink_vtable* vt_;
};

class RetryPolicy {
public:
    explicit RetryPolicy(std::shared_ptr<PluginInstance> instance);
    const std::string& name() const { return instance_->name(); }
    std::optional<std::chrono::milliseconds> decide(const sdk::Failure& failure) const;
    int max_attempts() const;

private:
    std::shared_ptr<PluginInstance> instance_;
    const mt_retry_policy_vtable* vt_;
};

struct ExtractOutcome {
    mt_extract_result result = MT_EXTRACT_NONE;
    std::string tenant_id;  // FOUND
    std::string error;      // ERROR
};

class RequestTenantExtractor {
public:
    explicit RequestTenantExtractor(std::shared_ptr<PluginInstance> instance);
    const std::string& name() const { return instance_->name(); }
    ExtractOutcome extract(const mt_request_view& request) const;

private:
    std::shared_ptr<PluginInstance> instance_;
    const mt_request_tenant_extractor_vtable* vt_;
};

// ---- registry ----------------------------------------------------------------------------

class PluginRegistry {
public:
    // search: the [plugins] path folders; builtin_plugin_dir() is searched after them.
    explicit PluginRegistry(std::vector<std::filesystem::path> search);
    ~PluginRegistry();
    PluginRegistry(const PluginRegistry&) = delete;
    PluginRegistry& operator=(const PluginRegistry&) = delete;

    // Finds "<name>.so" / "lib<name>.so" in the search folders (or takes a path containing '/'),
    // inspects and loads it, and registers its factories. A plugin or factory name already
    // registered is refused. Throws PluginError. The reference (like find_factory's pointer) stays
    // valid for the registry's lifetime.
    const PluginInfo& load(const std::string& name_or_path);

    const std::vector<PluginInfo>& plugins() const { return infos_; }
    // factory name -> accepted config keys (what [plugin.NAME] may hold).
    std::map<std::string, std::set<std::string>> config_keys() const;
    const FactoryInfo* find_factory(const std::string& name) const;
    // Names of factories of one kind, in load order.
    std::vector<std::string> factories_of(mt_kind kind) const;

    // Creates an instance of factory `name`, which must be of kind `expected`. Throws
    // PluginError with stage "config" (config refused) or "create" (create failed / threw).
    // The host's log goes to spdlog under the instance's name.
    std::shared_ptr<PluginInstance> create(const std::string& name, mt_kind expected,
                                           const std::map<std::string, std::string>& config) const;

private:
    std::vector<std::filesystem::path> search_;
    std::vector<PluginInfo> infos_;
    std::deque<PluginInfo> stable_infos_;  // same as infos_, at addresses that never move
    std::map<std::string, std::pair<std::shared_ptr<detail::Library>, const mt_factory*>> factories_;
    std::vector<std::shared_ptr<detail::Library>> libraries_;
};

}  // namespace mt
