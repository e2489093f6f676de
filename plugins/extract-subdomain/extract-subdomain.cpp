// extract-subdomain: the tenant id is the one DNS label in front of a configured base domain
// (acme.app.example.com with base_domain = app.example.com -> "acme"). Host names are
// case-insensitive, so the label is lower-cased. A host outside the base domain, the base domain
// itself, an IP literal or a label listed in `exclude` is "none"; a nested subdomain
// (a.b.app.example.com) is refused as malformed rather than guessed at: neither label is clearly
// the tenant, and a wildcard certificate for *.app.example.com does not cover it anyway.
#include <mt/sdk/plugin.hpp>

#include <set>

namespace {

using namespace mt::sdk;

constexpr size_t max_host = 1024;

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool is_hostname(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (!(std::isalnum(c) || c == '-' || c == '.' || c == '_')) return false;
    return s.front() != '.' && s.back() != '.' && s.find("..") == std::string_view::npos;
}

std::set<std::string> split_list(const std::string& text) {
    std::set<std::string> out;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t comma = text.find(',', pos);
        if (comma == std::string::npos) comma = text.size();
        const auto item = trim(std::string_view(text).substr(pos, comma - pos));
        if (!item.empty()) out.insert(lower(item));
        pos = comma + 1;
    }
    return out;
}

class SubdomainExtractor final : public RequestTenantExtractor {
public:
    SubdomainExtractor(const Config& config, const Host&) : exclude_(split_list(config.get("exclude"))) {
        const std::string configured = config.require("base_domain");
        std::string_view base = trim(configured);
        if (!base.empty() && base.front() == '.') base.remove_prefix(1);
        if (!base.empty() && base.back() == '.') base.remove_suffix(1);
        if (!is_hostname(base))
            throw ConfigError("base_domain", "expected a domain name such as app.example.com (no scheme, port or path)");
        base_ = lower(base);
    }

    std::optional<std::string> extract(const RequestView& request) override {
        std::string_view host = request.host;
        if (host.empty()) host = request.header("Host").value_or(std::string_view());
        if (host.size() > max_host)
            throw ExtractError("host is " + std::to_string(host.size()) + " bytes long (at most " + std::to_string(max_host) + ")");
        for (unsigned char c : host) {
            if (c < 0x20 || c == 0x7f) throw ExtractError("host contains a control character");
            if (c >= 0x80) throw ExtractError("host is not ASCII (internationalised names arrive as punycode, xn--…)");
        }
        host = trim(host);
        if (host.empty() || host.front() == '[') return std::nullopt;  // none, or an IPv6 literal
        if (const auto colon = host.find(':'); colon != std::string_view::npos) {
            for (char c : host.substr(colon + 1))
                if (c < '0' || c > '9') throw ExtractError("host has a malformed port");
            host = host.substr(0, colon);
        }
        if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // fully qualified form
        const std::string name = lower(host);
        if (name.size() <= base_.size() + 1) return std::nullopt;
        if (name.compare(name.size() - base_.size(), base_.size(), base_) != 0 || name[name.size() - base_.size() - 1] != '.')
            return std::nullopt;  // outside the base domain
        std::string label = name.substr(0, name.size() - base_.size() - 1);
        if (label.empty() || label.back() == '.' || label.front() == '.') throw ExtractError("host has an empty label");
        if (exclude_.count(label)) return std::nullopt;
        if (label.find('.') != std::string::npos)
            throw ExtractError("nested subdomain under " + base_ + ": expected one label, as in acme." + base_);
        return label;
    }

private:
    std::string base_;
    std::set<std::string> exclude_;
};

}  // namespace

MT_PLUGIN("extract-subdomain", MT_SDK_VERSION, MT_FACTORY(SubdomainExtractor, "extract-subdomain", "base_domain", "exclude"))
