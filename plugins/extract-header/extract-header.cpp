// extract-header: the tenant id is the value of one request header (default X-Tenant-Id). The value
// is refused (ExtractError -> 400) when it is empty, longer than 1 KiB, carries a control character
// (CR/LF injection) or when the header is sent twice with different values: a proxy and the
// application could otherwise disagree on which tenant a request is for.
#include <mt/sdk/plugin.hpp>

namespace {

using namespace mt::sdk;

constexpr size_t max_value = 1024;

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// RFC 9110 token characters: what a header name may consist of.
bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (!(std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos))
            return false;
    return true;
}

class HeaderExtractor final : public RequestTenantExtractor {
public:
    HeaderExtractor(const Config& config, const Host&) : header_(config.get("header", "X-Tenant-Id")) {
        if (!is_token(header_))
            throw ConfigError("header", "expected a header name such as X-Tenant-Id, got '" + header_.substr(0, 64) + "'");
    }

    std::optional<std::string> extract(const RequestView& request) override {
        std::optional<std::string_view> found;
        for (const auto& [name, raw] : request.headers) {
            if (!iequals(name, header_)) continue;
            const std::string_view value = checked(raw);
            if (found && *found != value) throw ExtractError("header " + header_ + " is sent more than once with different values");
            found = value;
        }
        if (!found) return std::nullopt;
        return std::string(*found);
    }

private:
    std::string_view checked(std::string_view raw) const {
        if (raw.size() > max_value)
            throw ExtractError("header " + header_ + " is " + std::to_string(raw.size()) + " bytes long (at most " +
                               std::to_string(max_value) + ")");
        for (unsigned char c : raw)
            if (c < 0x20 ? c != '\t' : c == 0x7f) throw ExtractError("header " + header_ + " contains a control character");
        const std::string_view value = trim(raw);
        if (value.empty()) throw ExtractError("header " + header_ + " is empty");
        return value;
    }

    std::string header_;
};

}  // namespace

MT_PLUGIN("extract-header", MT_SDK_VERSION, MT_FACTORY(HeaderExtractor, "extract-header", "header"))
