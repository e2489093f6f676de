// extract-path: the tenant id is one segment of the request path, chosen either by index
// (`segment = 0`: /acme/tasks -> acme) or by a pattern (`prefix = /t/{tenant}`: /t/acme/tasks ->
// acme). The segment is percent-decoded, and the decoded id is refused when it could change the
// meaning of a path or a log line: '/', '\', "..", control characters. A path with a dot segment
// anywhere (/t/acme/../globex) is refused outright: routers and proxies disagree on resolving it.
#include <mt/sdk/plugin.hpp>

namespace {

using namespace mt::sdk;

constexpr size_t max_path = 8192;
constexpr size_t max_id = 1024;

std::vector<std::string_view> split_segments(std::string_view path) {
    std::vector<std::string_view> out;
    if (!path.empty() && path.front() == '/') path.remove_prefix(1);
    if (path.empty()) return out;
    size_t pos = 0;
    for (;;) {
        const size_t slash = path.find('/', pos);
        out.push_back(path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos));
        if (slash == std::string_view::npos) break;
        pos = slash + 1;
    }
    return out;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) throw ExtractError("path has a malformed percent-encoding");
        const int hi = hex_value(s[i + 1]);
        const int lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0) throw ExtractError("path has a malformed percent-encoding");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

bool is_dot_segment(std::string_view raw) {
    if (raw == "." || raw == "..") return true;
    if (raw.find('%') == std::string_view::npos) return false;
    try {
        const std::string d = percent_decode(raw);
        return d == "." || d == "..";
    } catch (const ExtractError&) {
        return false;
    }
}

class PathExtractor final : public RequestTenantExtractor {
public:
    PathExtractor(const Config& config, const Host&) {
        if (config.has("segment") == config.has("prefix"))
            throw ConfigError("segment", "set exactly one of segment (an index, 0 = the first path segment) or prefix "
                                         "(a pattern such as /t/{tenant})");
        if (config.has("segment")) {
            const long long n = config.get_int("segment", 0);
            if (n < 0 || n > 64) throw ConfigError("segment", "expected an index from 0 to 64");
            index_ = static_cast<size_t>(n);
            return;
        }
        const std::string prefix = config.get("prefix");
        if (prefix.empty() || prefix.front() != '/')
            throw ConfigError("prefix", "expected a pattern starting with '/', such as /t/{tenant}");
        const auto segments = split_segments(prefix);
        bool placed = false;
        for (size_t i = 0; i < segments.size(); ++i) {
            if (segments[i] == "{tenant}") {
                if (placed) throw ConfigError("prefix", "{tenant} may appear only once");
                placed = true;
                index_ = i;
            } else if (segments[i].empty() || segments[i].find_first_of("{}%") != std::string_view::npos ||
                       is_dot_segment(segments[i])) {
                throw ConfigError("prefix", "'" + std::string(segments[i]) +
                                                "' is not a literal path segment (write the pattern as /t/{tenant})");
            } else {
                literals_.emplace_back(i, std::string(segments[i]));
            }
        }
        if (!placed) throw ConfigError("prefix", "expected {tenant} as one whole segment, as in /t/{tenant}");
        needed_ = segments.size();
    }

    std::optional<std::string> extract(const RequestView& request) override {
        std::string_view path = request.path;
        path = path.substr(0, path.find_first_of("?#"));  // an adapter may pass the raw target
        if (path.size() > max_path)
            throw ExtractError("path is " + std::to_string(path.size()) + " bytes long (at most " + std::to_string(max_path) + ")");
        for (unsigned char c : path)
            if (c < 0x20 || c == 0x7f) throw ExtractError("path contains a control character");
        const auto segments = split_segments(path);
        for (const auto& s : segments)
            if (is_dot_segment(s)) throw ExtractError("path contains a dot segment (. or ..)");
        // A path shorter than the pattern is another route; checking only the tenant's index let
        // /api/acme read the literal after it ("v1") past the end of the vector.
        if (index_ >= segments.size() || needed_ > segments.size()) return std::nullopt;
        for (const auto& [at, literal] : literals_)
            if (segments[at] != literal) return std::nullopt;  // another route: not a tenant path
        const std::string_view raw = segments[index_];
        if (raw.empty()) return std::nullopt;
        if (raw.size() > max_id)
            throw ExtractError("tenant path segment is " + std::to_string(raw.size()) + " bytes long (at most " +
                               std::to_string(max_id) + ")");
        std::string id = percent_decode(raw);
        for (unsigned char c : id)
            if (c < 0x20 || c == 0x7f) throw ExtractError("tenant path segment decodes to a control character");
        if (id.find_first_of("/\\") != std::string::npos) throw ExtractError("tenant path segment decodes to a path separator");
        if (id.find("..") != std::string::npos) throw ExtractError("tenant path segment contains '..'");
        if (id.empty()) return std::nullopt;
        return id;
    }

private:
    size_t index_ = 0;
    size_t needed_ = 0;  // segments a path needs to match the prefix pattern (0 with segment = N)
    std::vector<std::pair<size_t, std::string>> literals_;
};

}  // namespace

MT_PLUGIN("extract-path", MT_SDK_VERSION, MT_FACTORY(PathExtractor, "extract-path", "segment", "prefix"))
