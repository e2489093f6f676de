// discovery-static: the tenant ids are listed in the manifest (`tenants = a, b, c`), each optionally
// routed to a server as `id@server`.
#include <mt/sdk/plugin.hpp>

namespace {

using namespace mt::sdk;

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

class StaticDiscovery final : public TenantDiscovery {
public:
    StaticDiscovery(const Config& config, const Host&) {
        const std::string list = config.require("tenants");
        size_t pos = 0;
        while (pos <= list.size()) {
            size_t comma = list.find(',', pos);
            if (comma == std::string::npos) comma = list.size();
            const std::string item = trim(list.substr(pos, comma - pos));
            pos = comma + 1;
            if (item.empty()) continue;
            const auto at = item.find('@');
            if (at == std::string::npos) tenants_.push_back({item, std::nullopt});
            else tenants_.push_back({trim(item.substr(0, at)), trim(item.substr(at + 1))});
        }
        if (tenants_.empty()) throw ConfigError("tenants", "lists no tenant id");
    }

    std::vector<DiscoveredTenant> discover(Sql&) override { return tenants_; }

private:
    std::vector<DiscoveredTenant> tenants_;
};

}  // namespace

MT_PLUGIN("discovery-static", MT_SDK_VERSION, MT_FACTORY(StaticDiscovery, "discovery-static", "tenants"))
