// Shared by the fuzz targets: property checks that libFuzzer reports as crashes, input splitting,
// and a scratch folder per process.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

namespace fuzz {

// A broken property is a finding: say which one, then trap so libFuzzer keeps the input.
[[noreturn]] inline void violated(const char* property, std::string_view detail = {}) {
    std::fprintf(stderr, "\nPROPERTY VIOLATED: %s\n  %.*s\n", property, static_cast<int>(std::min<size_t>(detail.size(), 2000)),
                 detail.data());
    __builtin_trap();
}

inline void check(bool ok, const char* property, std::string_view detail = {}) {
    if (!ok) violated(property, detail);
}

// Splits on a separator line; the seeds are text files a reader can edit.
inline std::vector<std::string_view> split(std::string_view text, std::string_view separator) {
    std::vector<std::string_view> out;
    for (size_t pos = 0;;) {
        const size_t at = text.find(separator, pos);
        out.push_back(text.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
        if (at == std::string_view::npos) return out;
        pos = at + separator.size();
    }
}

// PostgreSQL's rule for a quoted identifier: "..." with each embedded quote doubled. Returns false
// when text is not exactly one such identifier.
inline bool unquote_ident(std::string_view text, std::string& out) {
    out.clear();
    if (text.size() < 2 || text.front() != '"' || text.back() != '"') return false;
    const std::string_view inner = text.substr(1, text.size() - 2);
    for (size_t i = 0; i < inner.size(); ++i) {
        if (inner[i] == '"') {
            if (i + 1 >= inner.size() || inner[i + 1] != '"') return false;
            ++i;
        }
        out += inner[i];
    }
    return true;
}

// A folder of this process's own under the temporary directory, emptied on request.
class Scratch {
public:
    explicit Scratch(const std::string& what)
        : dir_(std::filesystem::temp_directory_path() / ("mt-fuzz-" + what + "-" + std::to_string(::getpid()))) {
        std::filesystem::create_directories(dir_);
    }
    ~Scratch() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    const std::filesystem::path& dir() const { return dir_; }
    void clear() const {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        std::filesystem::create_directories(dir_);
    }
    static void write(const std::filesystem::path& file, std::string_view bytes) {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }

private:
    std::filesystem::path dir_;
};

}  // namespace fuzz
