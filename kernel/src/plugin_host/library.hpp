// What the plugin host's files share (kernel-private): a loaded library with this kernel's copies of
// its descriptor and factories, and the host-owned error buffer plugins write into.
#pragma once

#include <mt/plugin_host/plugins.hpp>
#include <mt/sdk/abi.h>

#include <boost/dll/shared_library.hpp>

#include <array>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace mt::detail {

struct Library {
    std::filesystem::path file;
    boost::dll::shared_library library;
    // Copies in this kernel's layout, read up to the size the plugin declared (abi.h, "How structs
    // grow"); the strings and vtables they point to are the plugin's, alive while library is loaded.
    mt_plugin_descriptor descriptor{};
    std::vector<mt_factory> factories;  // never resized after loading: instances point into it
    uint32_t built_minor = 0;           // the minor the plugin was built with
    std::optional<mt_plugin_note> note; // absent for a plugin built against 1.0 headers
};

// Checks a descriptor as the plugin declared it and fills lib's copies; throws PluginError(where,
// "abi", ...).
void check_descriptor(const std::string& where, const mt_plugin_descriptor* declared, Library& lib);

// A host-owned buffer (1.1 layout) for the messages a plugin writes back; lives on the caller's stack.
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
    // The SQLSTATE the plugin reported: from mt_error.sqlstate when it was built with minor >= 1,
    // else from the 1.0 message prefix (the one rule, abi.h mt_error).
    std::string sqlstate(uint32_t writer_minor) const {
        return writer_minor >= 1 ? sdk::detail::sqlstate_field(err_) : sdk::detail::legacy_sqlstate(message());
    }

private:
    std::array<char, 4096> data_{};
    mt_error err_{data_.data(), data_.size(), 0, {}};
};

std::string join(const std::vector<std::string>& items, const char* separator = ", ");

}  // namespace mt::detail
