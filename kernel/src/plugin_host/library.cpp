// The plugin host's loading side (SPEC §3.2, §3.3): inspect, dlopen and handshake, the registry of
// loaded plugins, and the instances their factories create. The typed views that call into
// instances are in bridges.cpp; the file reader of the inspect stage in inspect.cpp.
#include <mt/base/errors.hpp>
#include <mt/plugin_host/plugins.hpp>

#include "plugin_host/library.hpp"
#include "plugin_host/plugin_inspect.hpp"

#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <dlfcn.h>
#include <exception>
#include <set>

namespace mt {

namespace fs = std::filesystem;

std::string detail::join(const std::vector<std::string>& items, const char* separator) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

namespace {

using detail::join;
using detail::ErrorText;
using detail::Library;

using detail::abi_text;

// dlopen's own words are the useful part of Boost's message.
std::string dlopen_reason(const std::exception& e) {
    const std::string what = e.what();
    const std::string marker = "(dlerror system message: ";
    const auto start = what.find(marker);
    const auto end = what.rfind(')');
    if (start == std::string::npos || end == std::string::npos || end < start + marker.size()) return what;
    return what.substr(start + marker.size(), end - start - marker.size());
}


}  // namespace

void detail::check_descriptor(const std::string& where, const mt_plugin_descriptor* declared, Library& lib) {
    if (!declared)
        throw PluginError(where, "abi", MT_ENTRY_SYMBOL " returned no descriptor (the plugin failed to describe itself)");
    constexpr size_t version_end = offsetof(mt_plugin_descriptor, abi_minor) + sizeof(uint32_t);
    constexpr size_t full = offsetof(mt_plugin_descriptor, nfactories) + sizeof(size_t);  // the 1.0 size
    constexpr size_t with_built = offsetof(mt_plugin_descriptor, abi_built_minor) + sizeof(uint32_t);
    uint32_t size = 0;
    std::memcpy(&size, declared, sizeof size);
    if (size < version_end)
        throw PluginError(where, "abi", "descriptor is " + std::to_string(size) + " bytes, expected at least " +
                                            std::to_string(full));
    const mt_plugin_descriptor d = sdk::read_sized(declared);
    const uint32_t built = size >= with_built ? d.abi_built_minor : d.abi_minor;
    if (d.abi_major != MT_ABI_MAJOR) throw PluginError(where, "abi", detail::other_major_reason(d.abi_major, built));
    if (d.abi_minor > MT_ABI_MINOR)
        throw PluginError(where, "abi", detail::too_new_reason(d.abi_major, built, d.abi_minor));
    if (size < full)
        throw PluginError(where, "abi", "descriptor is " + std::to_string(size) + " bytes, expected at least " +
                                            std::to_string(full));
    if (built < d.abi_minor)
        throw PluginError(where, "abi",
                          "descriptor says it was built against ABI " + abi_text(d.abi_major, built) + " but requires " +
                              abi_text(d.abi_major, d.abi_minor) + ": a plugin cannot require what its headers lack");
    if (sdk::view(d.name).empty()) throw PluginError(where, "abi", "descriptor has no plugin name");
    if (d.nfactories > 0 && !d.factories) throw PluginError(where, "abi", "descriptor lists factories but has no array");

    // The array is stepped by the size its elements declare (all the same), never by this
    // kernel's sizeof: a newer plugin's factories may be larger, and the 1.0 size is the least.
    uint32_t stride = 0;
    if (d.nfactories > 0) std::memcpy(&stride, d.factories, sizeof stride);
    if (d.nfactories > 0 && (stride < sizeof(mt_factory) || stride % alignof(mt_factory) != 0))
        throw PluginError(where, "abi", "factory #0 is " + std::to_string(stride) + " bytes, expected at least " +
                                            std::to_string(sizeof(mt_factory)) + " and a multiple of " +
                                            std::to_string(alignof(mt_factory)));
    std::vector<mt_factory> factories;
    factories.reserve(d.nfactories);
    std::set<std::string_view> names;
    for (size_t i = 0; i < d.nfactories; ++i) {
        const auto* element = reinterpret_cast<const mt_factory*>(reinterpret_cast<const char*>(d.factories) + i * stride);
        const std::string which = "factory #" + std::to_string(i);
        uint32_t element_size = 0;
        std::memcpy(&element_size, element, sizeof element_size);
        if (element_size != stride)
            throw PluginError(where, "abi", which + " is " + std::to_string(element_size) + " bytes, factory #0 " +
                                                std::to_string(stride) + ": every factory of the array declares the same size");
        mt_factory f{};
        std::memcpy(static_cast<void*>(&f), element, sizeof f);
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
        factories.push_back(f);
    }
    lib.descriptor = d;
    lib.descriptor.factories = nullptr;  // the copies in lib.factories are what the kernel reads
    lib.factories = std::move(factories);
    lib.built_minor = built;
}

namespace {

// Inspect, load and handshake: the three stages before anything is created.
std::shared_ptr<Library> open_library(const fs::path& given) {
    std::error_code ec;
    fs::path file = fs::absolute(given, ec).lexically_normal();
    if (ec) file = given;
    const std::string where = file.string();
    const auto note = detail::inspect_file(file);

    auto lib = std::make_shared<Library>();
    lib->file = file;
    lib->note = note;
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
    const mt_plugin_descriptor* declared = nullptr;
    try {
        declared = entry();
    } catch (...) {
        throw PluginError(where, "abi", MT_ENTRY_SYMBOL " threw an exception across the C boundary");
    }
    detail::check_descriptor(where, declared, *lib);
    if (note && (note->abi_major != lib->descriptor.abi_major || note->abi_required_minor != lib->descriptor.abi_minor ||
                 note->abi_built_minor != lib->built_minor))
        throw PluginError(where, "abi",
                          "its .note.mtenant says ABI " + abi_text(note->abi_major, note->abi_built_minor) + " requiring " +
                              abi_text(note->abi_major, note->abi_required_minor) + ", its descriptor ABI " +
                              abi_text(lib->descriptor.abi_major, lib->built_minor) + " requiring " +
                              abi_text(lib->descriptor.abi_major, lib->descriptor.abi_minor) +
                              ": rebuild the plugin (the two are written by one MT_PLUGIN line)");
    return lib;
}

PluginInfo describe(const Library& lib) {
    const mt_plugin_descriptor& d = lib.descriptor;
    PluginInfo info;
    info.file = lib.file;
    info.name = sdk::view(d.name);
    info.version = sdk::view(d.version);
    info.sdk_version = sdk::view(d.sdk_version);
    info.toolchain = sdk::view(d.toolchain);
    info.abi_major = d.abi_major;
    info.abi_minor = lib.built_minor;
    info.abi_required_minor = d.abi_minor;
    info.has_note = lib.note.has_value();
    info.note_kinds = lib.note ? lib.note->kinds : 0;
    for (const mt_factory& f : lib.factories) {
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
const int kernel_anchor = 0;  // an address inside libmtenant_runtime.so, for dladdr
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
uint32_t PluginInstance::abi_minor() const { return library_->built_minor; }

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
                                  std::string(sdk::view(it->second.first->descriptor.name)) + " from " +
                                  it->second.first->file.string());
    }

    for (const mt_factory& f : lib->factories) factories_.emplace(std::string(sdk::view(f.name)), std::make_pair(lib, &f));
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
    auto host = std::make_unique<mt_host>(mt_host{sizeof(mt_host), logger.get(), &host_log, MT_ABI_MINOR, 0});
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
