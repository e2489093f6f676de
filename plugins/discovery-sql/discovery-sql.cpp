// discovery-sql: the tenant list is the result of a query on the shared schema. The first column is
// the tenant id; an optional second column names the tenant's server ([servers.NAME]).
#include <mt/sdk/plugin.hpp>

namespace {

using namespace mt::sdk;

class SqlDiscovery final : public TenantDiscovery {
public:
    SqlDiscovery(const Config& config, const Host&)
        : query_(config.get("query", "SELECT id FROM public.tenants ORDER BY id")) {
        if (query_.find_first_not_of(" \t\r\n") == std::string::npos) throw ConfigError("query", "must not be empty");
    }

    std::vector<DiscoveredTenant> discover(Sql& sql) override {
        std::vector<DiscoveredTenant> out;
        discover_each(sql, [&](DiscoveredTenant&& t) {
            out.push_back(std::move(t));
            return true;
        });
        return out;
    }

    // Row by row: a fleet of 100,000 tenants is never a list in the plugin.
    void discover_each(Sql& sql, const std::function<bool(DiscoveredTenant&&)>& emit) override {
        bool more = true;  // the host said stop: the remaining rows are read but not handed on
        sql.each(query_, {}, [&](Row&& row) {
            if (!more) return;
            if (row.empty()) throw Error("the discovery query returned no columns; it must return the tenant id first");
            if (!row[0]) throw Error("the discovery query returned a NULL tenant id");
            DiscoveredTenant t{std::move(*row[0]), std::nullopt};
            if (row.size() > 1 && row[1] && !row[1]->empty()) t.server = std::move(row[1]);
            more = emit(std::move(t));
        });
    }

private:
    std::string query_;
};

}  // namespace

MT_PLUGIN("discovery-sql", MT_SDK_VERSION, MT_FACTORY(SqlDiscovery, "discovery-sql", "query"))
