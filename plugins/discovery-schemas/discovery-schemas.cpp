// discovery-schemas: every schema whose name matches the template is a tenant (the id being the
// part that stands for {id}). Useful for fleets with no tenants table.
#include <mt/sdk/plugin.hpp>

namespace {

using namespace mt::sdk;

class SchemaDiscovery final : public TenantDiscovery {
public:
    SchemaDiscovery(const Config& config, const Host&) : template_(config.get("schema_template", "tenant_{id}")) {
        const auto at = template_.find("{id}");
        if (at == std::string::npos) throw ConfigError("schema_template", "must contain {id}, got '" + template_ + "'");
        prefix_ = template_.substr(0, at);
        suffix_ = template_.substr(at + 4);
    }

    std::vector<DiscoveredTenant> discover(Sql& sql) override {
        std::vector<DiscoveredTenant> out;
        const auto rows = sql.exec(
            "SELECT nspname::text FROM pg_catalog.pg_namespace "
            "WHERE left(nspname, length($1)) = $1 AND right(nspname, length($2)) = $2 "
            "AND length(nspname) > length($1) + length($2) ORDER BY nspname",
            {prefix_, suffix_});
        for (const auto& row : rows) {
            const std::string& schema = *row.at(0);
            out.push_back({schema.substr(prefix_.size(), schema.size() - prefix_.size() - suffix_.size()), std::nullopt});
        }
        return out;
    }

private:
    std::string template_, prefix_, suffix_;
};

}  // namespace

MT_PLUGIN("discovery-schemas", MT_SDK_VERSION, MT_FACTORY(SchemaDiscovery, "discovery-schemas", "schema_template"))
