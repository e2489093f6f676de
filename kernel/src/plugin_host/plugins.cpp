#include <mt/base/errors.hpp>
#include <mt/plugin_host/plugins.hpp>
#include <mt/plugin_host/sql_session.hpp>

#include "plugin_host/plugin_inspect.hpp"

#include <boost/dll/shared_library.hpp>
#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <dlfcn.h>
#include <elf.h>
#include <exception>
#include <fstream>
#include <iterator>
#include <link.h>

namespace mt {

namespace fs = std::filesystem;

namespace detail {

struct Library {
    fs::path file;
    boost::dll::shared_library library;
    const mt_plugin_descriptor* descriptor = nullptr;
};

}  // namespace detail

namespace {

using detail::Library;

std::string join(const std::vector<std::string>& items, const char* separator = ", ") {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

std::string abi_text(uint32_t major, uint32_t minor) { return std::to_string(major) + "." + std::to_string(minor); }

// A host-owned buffer for the messages a plugin writes back; lives on the caller's stack.
class ErrorText {
public:
    ErrorText() = default;
    ErrorText(const ErrorText&) = delete;
    ErrorText& operator=(const ErrorText&) = delete;

    mt_error* get() { return &err_; }
    std::string message() const {
        // Trust size only as far as the buffer goes; a plugin that forgot to set it still wrote a C string.
        const size_t n = err_.size > 0 ? std::min(err_.size, data_.size() - 1) : ::strnlen(data_.data(), data_.size() - 1);
        return std::string(data_.data(), n);
    }
    std::string message_or(const std::string& fallback) const {
        std::string m = message();
        return m.empty() ? fallback : m;
    }

private:
    std::array<char, 4096> data_{};
    mt_error err_{data_.data(), data_.size(), 0};
};

// ---- inspect ------------------------------------------------------------------------------

// What a file's bytes say about the entry symbol, read without running any of its code.
enum class EntryExport { not_elf, foreign, absent, present };

// The dynamic symbol table is what dlsym searches (and what `strip` leaves), so it alone decides.
// Every offset and size is checked against the file: the file may be anything. Boost.DLL's
// library_info was used before and is not: Boost 1.74 trusts the file's offsets and sizes
// (reads past its buffers, allocates what a section header claims; found by
// tests/fuzz/plugin_file.cpp).
EntryExport entry_export(const fs::path& file, std::string_view symbol) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw PluginError(file.string(), "inspect", "cannot be read");
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto fits = [&](uint64_t offset, uint64_t size) { return offset <= bytes.size() && size <= bytes.size() - offset; };
    auto read = [&](auto& out, uint64_t offset) {
        if (!fits(offset, sizeof out)) return false;
        std::memcpy(&out, bytes.data() + offset, sizeof out);
        return true;
    };
    ElfW(Ehdr) header{};
    if (!read(header, 0) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) return EntryExport::not_elf;
    if (header.e_ident[EI_CLASS] != (sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32)) return EntryExport::foreign;
    if (header.e_shentsize != sizeof(ElfW(Shdr))) return EntryExport::absent;
    for (uint64_t i = 0; i < header.e_shnum; ++i) {
        ElfW(Shdr) table{};
        if (!read(table, header.e_shoff + i * sizeof(ElfW(Shdr))) || table.sh_type != SHT_DYNSYM) continue;
        // ELF allows one dynamic symbol table; reading only the first keeps a hostile file linear.
        ElfW(Shdr) names{};
        if (table.sh_link >= header.e_shnum || !read(names, header.e_shoff + table.sh_link * sizeof(ElfW(Shdr))) ||
            !fits(names.sh_offset, names.sh_size))
            return EntryExport::absent;
        for (uint64_t off = 0; off + sizeof(ElfW(Sym)) <= table.sh_size; off += sizeof(ElfW(Sym))) {
            ElfW(Sym) sym{};
            if (!read(sym, table.sh_offset + off)) return EntryExport::absent;
            if (sym.st_shndx == SHN_UNDEF || ELF64_ST_VISIBILITY(sym.st_other) != STV_DEFAULT) continue;
            const auto bind = ELF64_ST_BIND(sym.st_info);
            if ((bind != STB_GLOBAL && bind != STB_WEAK) || sym.st_name >= names.sh_size) continue;
            const char* name = bytes.data() + names.sh_offset + sym.st_name;
            const size_t room = names.sh_size - sym.st_name;
            if (std::string_view(name, ::strnlen(name, room)) == symbol) return EntryExport::present;
        }
        return EntryExport::absent;
    }
    return EntryExport::absent;
}

}  // namespace

void detail::check_entry_symbol(const fs::path& file) {
    const std::string where = file.string();
    std::error_code ec;
    if (!fs::exists(file, ec)) throw PluginError(where, "inspect", "no such file");
    if (!fs::is_regular_file(file, ec)) throw PluginError(where, "inspect", "not a regular file");
    switch (entry_export(file, MT_ENTRY_SYMBOL)) {
        case EntryExport::present: return;
        case EntryExport::not_elf:
            throw PluginError(where, "inspect", "not a shared library (too short or not an ELF file)");
        case EntryExport::foreign:
            throw PluginError(where, "inspect",
                              std::string("not a shared library for this system (ELF class is not ") +
                                  (sizeof(void*) == 8 ? "64" : "32") + "-bit)");
        case EntryExport::absent: break;
    }
    throw PluginError(where, "inspect",
                      "does not export " MT_ENTRY_SYMBOL ": not an mtenant plugin (a plugin declares itself with "
                      "MT_PLUGIN(...) from <mt/sdk/plugin.hpp>)");
}

namespace {

// dlopen's own words are the useful part of Boost's message.
std::string dlopen_reason(const std::exception& e) {
    const std::string what = e.what();
    const std::string marker = "(dlerror system message: ";
    const auto start = what.find(marker);
    const auto end = what.rfind(')');
    if (start == std::string::npos || end == std::string::npos || end < start + marker.size()) return what;
    return what.substr(start + marker.size(), end - start - marker.size());
}

void check_descriptor(const std::string& where, const mt_plugin_descriptor* d) {
    if (!d) throw PluginError(where, "abi", MT_ENTRY_SYMBOL " returned no descriptor (the plugin failed to describe itself)");
    constexpr size_t version_end = offsetof(mt_plugin_descriptor, abi_minor) + sizeof(uint32_t);
    constexpr size_t full = offsetof(mt_plugin_descriptor, nfactories) + sizeof(size_t);
    if (d->struct_size < version_end)
        throw PluginError(where, "abi", "descriptor is " + std::to_string(d->struct_size) + " bytes, expected at least " +
                                            std::to_string(full));
    const std::string theirs = abi_text(d->abi_major, d->abi_minor);
    const std::string ours = abi_text(MT_ABI_MAJOR, MT_ABI_MINOR);
    if (d->abi_major != MT_ABI_MAJOR)
        throw PluginError(where, "abi",
                          "built for plugin ABI " + theirs + ", this kernel speaks ABI " + ours +
                              " (major versions must match): rebuild the plugin against SDK " MT_SDK_VERSION);
    if (d->abi_minor > MT_ABI_MINOR)
        throw PluginError(where, "abi",
                          "built for plugin ABI " + theirs + ", newer than this kernel's ABI " + ours +
                              ": upgrade mtenant or rebuild the plugin against SDK " MT_SDK_VERSION);
    if (d->struct_size < full)
        throw PluginError(where, "abi", "descriptor is " + std::to_string(d->struct_size) + " bytes, expected at least " +
                                            std::to_string(full));
    if (sdk::view(d->name).empty()) throw PluginError(where, "abi", "descriptor has no plugin name");
    if (d->nfactories > 0 && !d->factories) throw PluginError(where, "abi", "descriptor lists factories but has no array");
    std::set<std::string_view> names;
    for (size_t i = 0; i < d->nfactories; ++i) {
        const mt_factory& f = d->factories[i];
        const std::string which = "factory #" + std::to_string(i);
        if (f.struct_size < sizeof(mt_factory))
            throw PluginError(where, "abi", which + " is " + std::to_string(f.struct_size) + " bytes, expected " +
                                                std::to_string(sizeof(mt_factory)));
        // A C plugin may store any int in the enum field; reading it as mt_kind first would be
        // undefined behaviour for a value outside the enum (found by tests/fuzz/plugin_descriptor.cpp).
        int32_t kind = 0;
        static_assert(sizeof kind == sizeof f.kind);
        std::memcpy(&kind, &f.kind, sizeof kind);
        if (kind < MT_KIND_TRACKING_FORMAT || kind > MT_KIND_REQUEST_TENANT_EXTRACTOR)
            throw PluginError(where, "abi", which + " has unknown kind " + std::to_string(kind));
        if (sdk::view(f.name).empty()) throw PluginError(where, "abi", which + " has no name");
        if (!f.create || !f.destroy || !f.vtable)
            throw PluginError(where, "abi", "factory " + std::string(sdk::view(f.name)) +
                                                " lacks create, destroy or its function table");
        if (f.nconfig_keys > 0 && !f.config_keys)
            throw PluginError(where, "abi",
                              "factory " + std::string(sdk::view(f.name)) + " lists config keys but has no array");
        if (!names.insert(sdk::view(f.name)).second)
            throw PluginError(where, "abi", "factory " + std::string(sdk::view(f.name)) + " is declared twice");
    }
}

// Inspect, load and handshake: the three stages before anything is created.
std::shared_ptr<Library> open_library(const fs::path& given) {
    std::error_code ec;
    fs::path file = fs::absolute(given, ec).lexically_normal();
    if (ec) file = given;
    const std::string where = file.string();
    detail::check_entry_symbol(file);

    auto lib = std::make_shared<Library>();
    lib->file = file;
    try {
        lib->library.load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        throw PluginError(where, "load", dlopen_reason(e));
    }
    mt_plugin_entry_fn entry = nullptr;
    try {
        entry = &lib->library.get<const mt_plugin_descriptor*()>(MT_ENTRY_SYMBOL);
    } catch (const std::exception& e) {
        throw PluginError(where, "load", std::string("cannot resolve " MT_ENTRY_SYMBOL ": ") + dlopen_reason(e));
    }
    try {
        lib->descriptor = entry();
    } catch (...) {
        throw PluginError(where, "abi", MT_ENTRY_SYMBOL " threw an exception across the C boundary");
    }
    check_descriptor(where, lib->descriptor);
    return lib;
}

PluginInfo describe(const Library& lib) {
    const mt_plugin_descriptor& d = *lib.descriptor;
    PluginInfo info;
    info.file = lib.file;
    info.name = sdk::view(d.name);
    info.version = sdk::view(d.version);
    info.sdk_version = sdk::view(d.sdk_version);
    info.toolchain = sdk::view(d.toolchain);
    info.abi_major = d.abi_major;
    info.abi_minor = d.abi_minor;
    for (size_t i = 0; i < d.nfactories; ++i) {
        const mt_factory& f = d.factories[i];
        FactoryInfo fi;
        fi.kind = f.kind;
        fi.name = sdk::view(f.name);
        for (size_t k = 0; k < f.nconfig_keys; ++k) fi.config_keys.emplace_back(sdk::view(f.config_keys[k]));
        info.factories.push_back(std::move(fi));
    }
    return info;
}

// ---- host services ------------------------------------------------------------------------

spdlog::level::level_enum to_spdlog(mt_log_level level) {
    switch (level) {
        case MT_LOG_TRACE: return spdlog::level::trace;
        case MT_LOG_DEBUG: return spdlog::level::debug;
        case MT_LOG_INFO: return spdlog::level::info;
        case MT_LOG_WARN: return spdlog::level::warn;
        case MT_LOG_ERROR: return spdlog::level::err;
    }
    return spdlog::level::info;
}

// Called from plugin code: nothing may escape.
void host_log(void* ctx, mt_log_level level, mt_str plugin, mt_str message) noexcept {
    try {
        auto* logger = static_cast<spdlog::logger*>(ctx);
        const std::string_view from = sdk::view(plugin);
        if (from.empty() || from == logger->name())
            logger->log(to_spdlog(level), "{}", sdk::view(message));
        else
            logger->log(to_spdlog(level), "[{}] {}", from, sdk::view(message));
    } catch (...) {
    }
}

// A logger named after the instance: one configured by the application if it exists, else one
// writing where the default logger writes.
std::shared_ptr<spdlog::logger> instance_logger(const std::string& name) {
    if (auto existing = spdlog::get(name)) return existing;
    auto fallback = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>(name, fallback->sinks().begin(), fallback->sinks().end());
    logger->set_level(fallback->level());
    return logger;
}

// ---- typed views --------------------------------------------------------------------------

template <class Vtable>
const Vtable* checked_vtable(const std::shared_ptr<PluginInstance>& instance, mt_kind expected) {
    if (!instance) throw InternalError("no plugin instance given for a " + to_string(expected));
    const std::string where = instance->file().string();
    if (instance->kind() != expected)
        throw PluginError(where, "config",
                          instance->name() + " is a " + to_string(instance->kind()) + ", expected " + to_string(expected));
    const auto* vt = static_cast<const Vtable*>(instance->vtable());
    if (!vt || vt->struct_size < sizeof(uint32_t))
        throw PluginError(where, "abi", instance->name() + " has no " + to_string(expected) + " function table");
    return vt;
}

// The function a table holds at `member`, or null when the table is too short to have it (an older
// plugin) or leaves it empty.
template <class Vtable, class Fn>
Fn function_of(const Vtable* vt, Fn Vtable::*member) {
    const auto offset = static_cast<size_t>(reinterpret_cast<const char*>(&(vt->*member)) - reinterpret_cast<const char*>(vt));
    if (vt->struct_size < offset + sizeof(Fn)) return nullptr;
    return vt->*member;
}

template <class Vtable, class Fn>
Fn required(const PluginInstance& instance, const Vtable* vt, Fn Vtable::*member, const char* what) {
    Fn fn = function_of(vt, member);
    if (!fn)
        throw PluginError(instance.file().string(), "abi",
                          instance.name() + " (" + to_string(instance.kind()) + ") does not provide " + what);
    return fn;
}

std::string sqlstate_prefix(const std::string& message) {
    // The host writes server errors as "SQLSTATE xxxxx: ...".
    if (message.size() < 16 || message.compare(0, 9, "SQLSTATE ") != 0 || message.compare(14, 2, ": ") != 0) return {};
    const std::string state = message.substr(9, 5);
    const bool valid = std::all_of(state.begin(), state.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
    });
    return valid ? state : std::string();
}

[[noreturn]] void throw_operation(const PluginInstance& instance, const char* what, const ErrorText& err) {
    const std::string message = err.message_or("failed without a message");
    throw OperationError(instance.name() + ": " + what + ": " + message, sqlstate_prefix(message));
}

// Callbacks run inside plugin calls; an exception must not unwind through plugin frames, so it is
// parked here and rethrown once the plugin has returned.
struct Parked {
    std::exception_ptr error;
    void rethrow_if_any() const {
        if (error) std::rethrow_exception(error);
    }
};

mt_migration_record to_c(const sdk::Record& r) {
    return mt_migration_record{sdk::str_opt(r.name), sdk::str_opt(r.hash), r.created_at_ms.value_or(-1),
                               r.when_ms.value_or(-1)};
}

std::vector<mt_migration_record> to_c(const std::vector<sdk::Record>& records) {
    std::vector<mt_migration_record> out;
    out.reserve(records.size());
    for (const auto& r : records) out.push_back(to_c(r));
    return out;
}

std::vector<mt_column> to_c(const std::vector<sdk::Column>& columns) {
    std::vector<mt_column> out;
    out.reserve(columns.size());
    for (const auto& col : columns)
        out.push_back(mt_column{sdk::str(std::string_view(col.name)), sdk::str(std::string_view(col.type)),
                                col.not_null ? 1 : 0});
    return out;
}

// The C view of a TrackingTable, valid while the table lives.
class TableView {
public:
    explicit TableView(const TrackingTable& table)
        : columns_(to_c(table.columns)),
          table_{sdk::str(std::string_view(table.schema)), sdk::str(std::string_view(table.name)), columns_.data(),
                 columns_.size()} {}
    const mt_table* get() const { return &table_; }

private:
    std::vector<mt_column> columns_;
    mt_table table_;
};

}  // namespace

std::string to_string(mt_kind kind) {
    switch (kind) {
        case MT_KIND_TRACKING_FORMAT: return "tracking_format";
        case MT_KIND_TENANT_DISCOVERY: return "tenant_discovery";
        case MT_KIND_METRICS_SINK: return "metrics_sink";
        case MT_KIND_RETRY_POLICY: return "retry_policy";
        case MT_KIND_REQUEST_TENANT_EXTRACTOR: return "request_tenant_extractor";
    }
    return "unknown kind " + std::to_string(static_cast<int>(kind));
}

PluginInfo inspect_plugin(const fs::path& file) { return describe(*open_library(file)); }

namespace {
const int kernel_anchor = 0;  // an address inside libmtenant_kernel.so, for dladdr
}

fs::path builtin_plugin_dir() {
    Dl_info info{};
    if (::dladdr(&kernel_anchor, &info) == 0 || !info.dli_fname || !*info.dli_fname) return {};
    std::error_code ec;
    fs::path lib = fs::absolute(info.dli_fname, ec);
    if (ec) lib = info.dli_fname;
    return lib.lexically_normal().parent_path() / "mtenant" / "plugins";
}

// ---- PluginInstance -----------------------------------------------------------------------

PluginInstance::PluginInstance(std::shared_ptr<detail::Library> library, const mt_factory* factory, std::string name,
                               void* self, std::unique_ptr<mt_host> host, std::shared_ptr<void> host_context)
    : library_(std::move(library)),
      factory_(factory),
      name_(std::move(name)),
      self_(self),
      host_(std::move(host)),
      host_context_(std::move(host_context)) {}

PluginInstance::~PluginInstance() {
    // The object goes first; the host it was lent and the library (first member) after it.
    if (self_ && factory_ && factory_->destroy) factory_->destroy(self_);
}

mt_kind PluginInstance::kind() const { return factory_->kind; }
const void* PluginInstance::vtable() const { return factory_->vtable; }
const fs::path& PluginInstance::file() const { return library_->file; }

// ---- TrackingFormat -----------------------------------------------------------------------

TrackingFormat::TrackingFormat(std::shared_ptr<PluginInstance> instance)
    : instance_(std::move(instance)),
      vt_(checked_vtable<mt_tracking_format_vtable>(instance_, MT_KIND_TRACKING_FORMAT)) {}

int TrackingFormat::detect(const std::vector<sdk::Column>& columns) const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::detect, "detect");
    const auto c = to_c(columns);
    int score = 0;
    ErrorText err;
    if (fn(instance_->self(), c.data(), c.size(), &score, err.get()) != MT_OK) throw_operation(*instance_, "detect", err);
    return score;
}

void TrackingFormat::create(SqlSession& sql, const TrackingTable& table) const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::create, "create");
    const TableView t(table);
    ErrorText err;
    if (fn(instance_->self(), sql.c_api(), t.get(), err.get()) != MT_OK)
        throw_operation(*instance_, "create tracking table", err);
}

std::vector<sdk::Record> TrackingFormat::list(SqlSession& sql, const TrackingTable& table) const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::list, "list");
    struct Collected : Parked {
        std::vector<sdk::Record> records;
    } collected;
    auto on_record = [](void* user, const mt_migration_record* r) noexcept -> int {
        auto* out = static_cast<Collected*>(user);
        try {
            out->records.push_back(sdk::detail::to_records(r, 1).front());
            return 0;
        } catch (...) {
            out->error = std::current_exception();
            return 1;
        }
    };
    const TableView t(table);
    ErrorText err;
    const mt_status st = fn(instance_->self(), sql.c_api(), t.get(), on_record, &collected, err.get());
    collected.rethrow_if_any();
    if (st != MT_OK) throw_operation(*instance_, "list", err);
    return std::move(collected.records);
}

void TrackingFormat::record(SqlSession& sql, const TrackingTable& table, const std::vector<sdk::Record>& records) const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::record, "record");
    const TableView t(table);
    const auto c = to_c(records);
    ErrorText err;
    if (fn(instance_->self(), sql.c_api(), t.get(), c.data(), c.size(), err.get()) != MT_OK)
        throw_operation(*instance_, "record", err);
}

void TrackingFormat::remove(SqlSession& sql, const TrackingTable& table, const std::vector<sdk::Record>& records) const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::remove, "remove");
    const TableView t(table);
    const auto c = to_c(records);
    ErrorText err;
    if (fn(instance_->self(), sql.c_api(), t.get(), c.data(), c.size(), err.get()) != MT_OK)
        throw_operation(*instance_, "remove", err);
}

std::string TrackingFormat::list_query() const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::list_query, "list_query");
    return std::string(sdk::view(fn(instance_->self())));
}

uint32_t TrackingFormat::identifies_by() const {
    auto fn = required(*instance_, vt_, &mt_tracking_format_vtable::identifies_by, "identifies_by");
    return fn(instance_->self());
}

// ---- TenantDiscovery ----------------------------------------------------------------------

TenantDiscovery::TenantDiscovery(std::shared_ptr<PluginInstance> instance)
    : instance_(std::move(instance)),
      vt_(checked_vtable<mt_tenant_discovery_vtable>(instance_, MT_KIND_TENANT_DISCOVERY)) {}

std::vector<sdk::DiscoveredTenant> TenantDiscovery::discover(SqlSession& sql) const {
    auto fn = required(*instance_, vt_, &mt_tenant_discovery_vtable::discover, "discover");
    struct Collected : Parked {
        std::vector<sdk::DiscoveredTenant> tenants;
    } collected;
    auto on_tenant = [](void* user, mt_str id, mt_str server) noexcept -> int {
        auto* out = static_cast<Collected*>(user);
        try {
            out->tenants.push_back(sdk::DiscoveredTenant{std::string(sdk::view(id)), sdk::opt(server)});
            return 0;
        } catch (...) {
            out->error = std::current_exception();
            return 1;
        }
    };
    ErrorText err;
    const mt_status st = fn(instance_->self(), sql.c_api(), on_tenant, &collected, err.get());
    collected.rethrow_if_any();
    if (st != MT_OK) throw_operation(*instance_, "discover", err);
    return std::move(collected.tenants);
}

// ---- MetricsSink --------------------------------------------------------------------------

MetricsSink::MetricsSink(std::shared_ptr<PluginInstance> instance)
    : instance_(std::move(instance)), vt_(checked_vtable<mt_metrics_sink_vtable>(instance_, MT_KIND_METRICS_SINK)) {}

void MetricsSink::on_event(const mt_event& event) const noexcept {
    if (auto fn = function_of(vt_, &mt_metrics_sink_vtable::on_event)) fn(instance_->self(), &event);
}

std::string MetricsSink::render() const {
    auto fn = function_of(vt_, &mt_metrics_sink_vtable::render);
    if (!fn) return {};
    struct Collected : Parked {
        std::string text;
    } collected;
    auto on_chunk = [](void* user, mt_str chunk) noexcept -> int {
        auto* out = static_cast<Collected*>(user);
        try {
            out->text.append(sdk::view(chunk));
            return 0;
        } catch (...) {
            out->error = std::current_exception();
            return 1;
        }
    };
    ErrorText err;
    const mt_status st = fn(instance_->self(), on_chunk, &collected, err.get());
    collected.rethrow_if_any();
    if (st != MT_OK) throw OperationError(instance_->name() + ": render: " + err.message_or("failed without a message"));
    return std::move(collected.text);
}

// ---- RetryPolicy --------------------------------------------------------------------------

RetryPolicy::RetryPolicy(std::shared_ptr<PluginInstance> instance)
    : instance_(std::move(instance)), vt_(checked_vtable<mt_retry_policy_vtable>(instance_, MT_KIND_RETRY_POLICY)) {}

std::optional<std::chrono::milliseconds> RetryPolicy::decide(const sdk::Failure& failure) const {
    auto fn = required(*instance_, vt_, &mt_retry_policy_vtable::decide, "decide");
    const mt_failure f{sdk::str(std::string_view(failure.sqlstate)), sdk::str(std::string_view(failure.message)),
                       failure.is_connection ? 1 : 0, failure.attempt};
    int retry = 0;
    int64_t delay_ms = 0;
    fn(instance_->self(), &f, &retry, &delay_ms);
    if (!retry) return std::nullopt;
    return std::chrono::milliseconds(std::max<int64_t>(delay_ms, 0));
}

int RetryPolicy::max_attempts() const {
    auto fn = required(*instance_, vt_, &mt_retry_policy_vtable::max_attempts, "max_attempts");
    return fn(instance_->self());
}

// ---- RequestTenantExtractor ---------------------------------------------------------------

RequestTenantExtractor::RequestTenantExtractor(std::shared_ptr<PluginInstance> instance)
    : instance_(std::move(instance)),
      vt_(checked_vtable<mt_request_tenant_extractor_vtable>(instance_, MT_KIND_REQUEST_TENANT_EXTRACTOR)) {}

ExtractOutcome RequestTenantExtractor::extract(const mt_request_view& request) const {
    auto fn = required(*instance_, vt_, &mt_request_tenant_extractor_vtable::extract, "extract");
    std::array<char, 1024> id{};
    size_t size = 0;
    ErrorText err;
    ExtractOutcome out;
    out.result = fn(instance_->self(), &request, id.data(), id.size(), &size, err.get());
    switch (out.result) {
        case MT_EXTRACT_FOUND: out.tenant_id.assign(id.data(), std::min(size, id.size() - 1)); break;
        case MT_EXTRACT_NONE: break;
        case MT_EXTRACT_ERROR: out.error = err.message_or("malformed request"); break;
        default:
            out.error = instance_->name() + " returned unknown extract result " + std::to_string(static_cast<int>(out.result));
            out.result = MT_EXTRACT_ERROR;
    }
    return out;
}

// ---- PluginRegistry -----------------------------------------------------------------------

PluginRegistry::PluginRegistry(std::vector<fs::path> search) : search_(std::move(search)) {}

PluginRegistry::~PluginRegistry() = default;

const PluginInfo& PluginRegistry::load(const std::string& name_or_path) {
    fs::path file;
    if (name_or_path.find('/') != std::string::npos) {
        file = name_or_path;
    } else {
        std::vector<fs::path> folders = search_;
        folders.push_back(builtin_plugin_dir());
        std::vector<std::string> searched;
        for (const auto& folder : folders) {
            if (folder.empty()) continue;
            searched.push_back(folder.string());
            for (const auto& candidate : {name_or_path + ".so", "lib" + name_or_path + ".so"}) {
                std::error_code ec;
                if (fs::exists(folder / candidate, ec)) {
                    file = folder / candidate;
                    break;
                }
            }
            if (!file.empty()) break;
        }
        if (file.empty()) throw PluginError(name_or_path, "inspect", "not found in: " + join(searched));
    }

    auto lib = open_library(file);
    PluginInfo info = describe(*lib);
    const std::string where = file.string();
    for (const auto& other : infos_)
        if (other.name == info.name)
            throw PluginError(where, "load", "plugin " + info.name + " is already loaded from " + other.file.string());
    for (const auto& f : info.factories) {
        auto it = factories_.find(f.name);
        if (it != factories_.end())
            throw PluginError(where, "load",
                              "factory " + f.name + " is already registered by plugin " +
                                  std::string(sdk::view(it->second.first->descriptor->name)) + " from " +
                                  it->second.first->file.string());
    }

    const mt_plugin_descriptor& d = *lib->descriptor;
    for (size_t i = 0; i < d.nfactories; ++i)
        factories_.emplace(std::string(sdk::view(d.factories[i].name)), std::make_pair(lib, &d.factories[i]));
    libraries_.push_back(lib);
    infos_.push_back(info);
    stable_infos_.push_back(std::move(info));
    return stable_infos_.back();
}

std::map<std::string, std::set<std::string>> PluginRegistry::config_keys() const {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& info : infos_)
        for (const auto& f : info.factories) out[f.name].insert(f.config_keys.begin(), f.config_keys.end());
    return out;
}

const FactoryInfo* PluginRegistry::find_factory(const std::string& name) const {
    for (const auto& info : stable_infos_)
        for (const auto& f : info.factories)
            if (f.name == name) return &f;
    return nullptr;
}

std::vector<std::string> PluginRegistry::factories_of(mt_kind kind) const {
    std::vector<std::string> out;
    for (const auto& info : infos_)
        for (const auto& f : info.factories)
            if (f.kind == kind) out.push_back(f.name);
    return out;
}

std::shared_ptr<PluginInstance> PluginRegistry::create(const std::string& name, mt_kind expected,
                                                       const std::map<std::string, std::string>& config) const {
    auto it = factories_.find(name);
    if (it == factories_.end()) {
        std::vector<std::string> known;
        for (const auto& [factory_name, entry] : factories_) known.push_back(factory_name);
        throw PluginError(name, "config",
                          "no loaded plugin offers " + name + " (loaded: " + (known.empty() ? "none" : join(known)) +
                              "); add its plugin to [plugins] load");
    }
    const auto& [lib, factory] = it->second;
    const std::string where = lib->file.string();
    if (factory->kind != expected)
        throw PluginError(where, "config", name + " is a " + to_string(factory->kind) + ", expected " + to_string(expected));

    std::vector<std::string> accepted;
    for (size_t k = 0; k < factory->nconfig_keys; ++k) accepted.emplace_back(sdk::view(factory->config_keys[k]));
    for (const auto& [key, value] : config)
        if (std::find(accepted.begin(), accepted.end(), key) == accepted.end())
            throw PluginError(where, "config",
                              "unknown key '" + key + "' for " + name +
                                  (accepted.empty() ? " (it takes no keys)" : " (accepted: " + join(accepted) + ")"));

    std::vector<mt_config_entry> entries;
    entries.reserve(config.size());
    for (const auto& [key, value] : config)
        entries.push_back(mt_config_entry{sdk::str(std::string_view(key)), sdk::str(std::string_view(value))});
    const mt_config c{entries.data(), entries.size()};

    auto logger = instance_logger(name);
    auto host = std::make_unique<mt_host>(mt_host{sizeof(mt_host), logger.get(), &host_log});
    void* self = nullptr;
    ErrorText err;
    mt_status st = MT_ERROR;
    try {
        st = factory->create(&c, host.get(), &self, err.get());
    } catch (...) {
        throw PluginError(where, "create", name + ": create threw an exception across the C boundary");
    }
    if (st != MT_OK) {
        if (self) factory->destroy(self);
        if (st == MT_INVALID_CONFIG)
            throw PluginError(where, "config", name + ": " + err.message_or("configuration refused without a message"));
        throw PluginError(where, "create", name + ": " + err.message_or("create failed without a message"));
    }
    if (!self) throw PluginError(where, "create", name + ": create reported success but returned no object");
    try {
        return std::make_shared<PluginInstance>(lib, factory, name, self, std::move(host), std::move(logger));
    } catch (...) {
        factory->destroy(self);
        throw;
    }
}

}  // namespace mt
