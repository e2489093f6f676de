// The descriptor checks of the plugin loader (kernel/src/plugin_host/library.cpp: check_descriptor, describe)
// through mt::inspect_plugin on a real plugin file: a puppet plugin (descriptor_plugin.cpp) whose
// entry returns a descriptor built from the input, so the whole path runs as for any plugin —
// inspect, dlopen, the entry call, the ABI handshake, the copy into PluginInfo.
//
// Why built rather than raw: a descriptor is a C struct of sizes and pointers handed over by code
// already running in the process; arbitrary pointer values would only test the fuzzer. Every
// scalar (struct sizes, ABI versions, kinds, counts, string lengths, which pointers are null) comes
// from the input, and each struct is allocated with exactly the struct_size it declares, so ASan
// reports any read past what a plugin of an older ABI minor provides.
//
// Properties:
// - inspect_plugin accepts exactly the descriptors the ABI rules allow (an oracle written from
//   abi.h and SPEC §3.2): ABI major equal, required minor not newer, full size, built minor (when
//   declared) not below the required one, a name, factories that all declare one size of at
//   least the 1.0 struct (a multiple of 8; the array is stepped by it), a known kind, a name,
//   create/destroy/vtable, a config key array when keys are counted, no name twice.
// - A refusal is PluginError at stage "abi"; an accepted descriptor comes back unchanged in
//   PluginInfo (names, versions, kinds, config keys).
#include "fuzz_support.hpp"

#include <mt/base/errors.hpp>
#include <mt/plugin_host/plugins.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstring>
#include <dlfcn.h>
#include <memory>
#include <set>

namespace {

using SetDescriptor = void (*)(const mt_plugin_descriptor*);

mt_status fake_create(const mt_config*, const mt_host*, void**, mt_error*) { return MT_ERROR; }
void fake_destroy(void*) {}
const uint32_t fake_vtable = sizeof(uint32_t);

SetDescriptor setter() {
    // Kept loaded for the whole run: inspect_plugin's dlopen/dlclose then only count references.
    static SetDescriptor fn = [] {
        void* handle = ::dlopen(MT_FUZZ_DESCRIPTOR_PLUGIN, RTLD_NOW | RTLD_LOCAL);
        if (!handle) fuzz::violated("cannot load the descriptor plugin", ::dlerror());
        return reinterpret_cast<SetDescriptor>(::dlsym(handle, "mt_fuzz_set_descriptor"));
    }();
    return fn;
}

struct Strings {
    std::vector<std::unique_ptr<std::string>> owned;
    mt_str make(FuzzedDataProvider& in) {
        switch (in.ConsumeIntegralInRange<int>(0, 7)) {
            case 0: return mt_str{nullptr, 0};
            case 1: return mt_str{nullptr, in.ConsumeIntegralInRange<size_t>(1, 64)};  // size without data: empty
            default: {
                owned.push_back(std::make_unique<std::string>(in.ConsumeRandomLengthString(24)));
                return mt_str{owned.back()->data(), owned.back()->size()};
            }
        }
    }
};

std::string_view view(mt_str s) { return s.data ? std::string_view(s.data, s.size) : std::string_view(); }

uint32_t struct_size(FuzzedDataProvider& in, size_t full) {
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
        case 0: return in.ConsumeIntegralInRange<uint32_t>(4, static_cast<uint32_t>(full) + 16);
        case 1: return static_cast<uint32_t>(full - 1 - in.ConsumeIntegralInRange<uint32_t>(0, 7));
        default: return static_cast<uint32_t>(full);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    Strings strings;

    constexpr size_t full = sizeof(mt_plugin_descriptor);
    mt_plugin_descriptor d{};
    d.struct_size = struct_size(in, full);
    d.abi_major = in.ConsumeBool() ? MT_ABI_MAJOR : in.ConsumeIntegral<uint32_t>();
    d.abi_minor = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<uint32_t>(0, 3);
    d.abi_built_minor = in.ConsumeBool() ? MT_ABI_MINOR : in.ConsumeIntegralInRange<uint32_t>(0, 3);
    d.name = strings.make(in);
    d.version = strings.make(in);
    d.sdk_version = strings.make(in);
    d.toolchain = strings.make(in);
    d.nfactories = in.ConsumeIntegralInRange<size_t>(0, 4);
    const bool null_factories = in.ConsumeIntegralInRange<int>(0, 15) == 0;

    std::vector<std::vector<mt_str>> keys(d.nfactories);
    std::vector<mt_factory> factories(d.nfactories);
    std::vector<int32_t> kinds(d.nfactories);  // as a C plugin may write them: any int
    // The size the factories declare: this kernel's, or a newer plugin's larger one.
    const uint32_t stride = static_cast<uint32_t>(sizeof(mt_factory)) + 8 * in.ConsumeIntegralInRange<uint32_t>(0, 5);
    for (size_t i = 0; i < d.nfactories; ++i) {
        mt_factory& f = factories[i];
        f.struct_size = in.ConsumeIntegralInRange<int>(0, 7) != 0 ? stride : struct_size(in, sizeof(mt_factory));
        kinds[i] = in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(1, 5) : in.ConsumeIntegral<int32_t>();
        std::memcpy(&f.kind, &kinds[i], sizeof kinds[i]);
        f.name = strings.make(in);
        const size_t nkeys = in.ConsumeIntegralInRange<size_t>(0, 3);
        for (size_t k = 0; k < nkeys; ++k) keys[i].push_back(strings.make(in));
        f.nconfig_keys = nkeys;
        f.config_keys = nkeys > 0 && in.ConsumeIntegralInRange<int>(0, 7) != 0 ? keys[i].data() : nullptr;
        f.create = in.ConsumeIntegralInRange<int>(0, 7) != 0 ? &fake_create : nullptr;
        f.destroy = in.ConsumeIntegralInRange<int>(0, 7) != 0 ? &fake_destroy : nullptr;
        f.vtable = in.ConsumeIntegralInRange<int>(0, 7) != 0 ? &fake_vtable : nullptr;
    }
    // Laid out by what the first element declares, as a plugin's compiler lays out its array; a
    // declaration the kernel refuses before stepping leaves the 1.0 layout.
    const uint32_t first = d.nfactories > 0 ? factories[0].struct_size : 0;
    const size_t step = first >= sizeof(mt_factory) && first % 8 == 0 ? first : sizeof(mt_factory);
    std::vector<uint64_t> array((step * d.nfactories + 7) / 8 + 1);  // 8-byte aligned, zero-filled
    auto* raw = reinterpret_cast<unsigned char*>(array.data());
    for (size_t i = 0; i < d.nfactories; ++i) std::memcpy(raw + i * step, &factories[i], sizeof(mt_factory));
    d.factories = null_factories ? nullptr : reinterpret_cast<const mt_factory*>(raw);

    // Exactly as many bytes as the plugin says it provides (never less than struct_size itself).
    const size_t bytes = std::max<size_t>(d.struct_size, sizeof(uint32_t));
    auto block = std::make_unique<unsigned char[]>(bytes);
    std::memcpy(block.get(), &d, std::min(bytes, full));
    const auto* declared = reinterpret_cast<const mt_plugin_descriptor*>(block.get());
    const bool null_descriptor = in.ConsumeIntegralInRange<int>(0, 31) == 0;
    setter()(null_descriptor ? nullptr : declared);

    const bool declares_built = d.struct_size >= offsetof(mt_plugin_descriptor, abi_built_minor) + sizeof(uint32_t);
    const uint32_t built = declares_built ? d.abi_built_minor : d.abi_minor;
    bool valid = !null_descriptor && d.struct_size >= offsetof(mt_plugin_descriptor, nfactories) + sizeof(size_t) &&
                 d.abi_major == MT_ABI_MAJOR && d.abi_minor <= MT_ABI_MINOR && built >= d.abi_minor &&
                 !view(d.name).empty() && (d.nfactories == 0 || d.factories);
    valid = valid && (d.nfactories == 0 || (first >= sizeof(mt_factory) && first % 8 == 0));
    std::set<std::string_view> names;
    for (size_t i = 0; valid && i < d.nfactories; ++i) {
        const mt_factory& f = factories[i];
        valid = f.struct_size == first && kinds[i] >= MT_KIND_TRACKING_FORMAT &&
                kinds[i] <= MT_KIND_REQUEST_TENANT_EXTRACTOR && !view(f.name).empty() && f.create && f.destroy && f.vtable &&
                (f.nconfig_keys == 0 || f.config_keys) && names.insert(view(f.name)).second;
    }

    mt::PluginInfo info;
    try {
        info = mt::inspect_plugin(MT_FUZZ_DESCRIPTOR_PLUGIN);
    } catch (const mt::PluginError& e) {
        fuzz::check(e.stage == "abi", "a descriptor is refused at the abi stage", e.what());
        fuzz::check(!valid, "a descriptor the ABI allows is accepted", e.what());
        return 0;
    } catch (const std::exception& e) {
        fuzz::violated("descriptor checks refuse only with PluginError", e.what());
    }
    fuzz::check(valid, "a descriptor the ABI refuses is refused", info.name);
    fuzz::check(info.name == view(d.name) && info.version == view(d.version) && info.sdk_version == view(d.sdk_version) &&
                    info.toolchain == view(d.toolchain) && info.abi_major == d.abi_major && info.abi_minor == built && info.abi_required_minor == d.abi_minor,
                "PluginInfo is the descriptor's", info.name);
    fuzz::check(info.factories.size() == d.nfactories, "PluginInfo lists every factory");
    for (size_t i = 0; i < d.nfactories; ++i) {
        const auto& fi = info.factories[i];
        fuzz::check(static_cast<int32_t>(fi.kind) == kinds[i] && fi.name == view(factories[i].name) &&
                        fi.config_keys.size() == factories[i].nconfig_keys,
                    "PluginInfo's factory is the descriptor's", fi.name);
        for (size_t k = 0; k < fi.config_keys.size(); ++k)
            fuzz::check(fi.config_keys[k] == view(keys[i][k]), "config keys are the descriptor's", fi.config_keys[k]);
    }
    return 0;
}
