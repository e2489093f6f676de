#include "tenant_health.hpp"

#include <mt/errors.hpp>
#include <mt/ident.hpp>
#include <mt/migrate.hpp>
#include <mt/migration_folder.hpp>
#include <mt/sql_session.hpp>

#include <nlohmann/json.hpp>

#include <map>

namespace mt::detail {

namespace {

constexpr const char* missing_schemas_sql =
    "SELECT s.name FROM jsonb_array_elements_text($1::jsonb) AS s(name) "
    "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = s.name)";

}  // namespace

std::string server_label(const std::optional<std::string>& server) {
    return server ? "servers." + *server : std::string("database.url");
}

std::vector<std::string> missing_schemas(const Kernel& kernel, TenantLease& lease, const std::vector<std::string>& schemas) {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& s : schemas) names.push_back(s);
    const std::string list = names.dump();
    const auto rows = kernel.with_retry(lease.tenant_id(), [&] {
        pqxx::nontransaction tx(lease.connection());
        return exec_params(tx, missing_schemas_sql, {list});
    });
    std::vector<std::string> out;
    for (const auto& row : rows) out.emplace_back(row[0].c_str());
    return out;
}

std::string missing_schema_error(const std::string& tenant, const std::string& schema,
                                 const std::optional<std::string>& server) {
    return "schema " + quote_ident(schema) + " of tenant " + tenant + " does not exist on its server (" +
           server_label(server) + "): create it with `mtctl tenant create --id " + tenant +
           "`, or fix the tenant's server in discovery";
}

void probe_tenant(const Kernel& kernel, TenantLease& lease, const std::optional<std::string>& server) {
    if (!missing_schemas(kernel, lease, {lease.schema()}).empty())
        throw OperationError(missing_schema_error(lease.tenant_id(), lease.schema(), server), "3F000");
}

std::unordered_map<std::string, PendingCount> pending_migrations(const Kernel& kernel, const std::vector<Tenant>& tenants) {
    std::unordered_map<std::string, PendingCount> out;
    if (tenants.empty()) return out;
    auto fail_all = [&](const std::vector<Tenant>& group, const std::string& why) {
        for (const auto& t : group) out[t.id] = PendingCount{std::nullopt, "pending migrations unknown: " + why};
    };
    MigrationFolder folder;
    try {
        folder = read_migration_folder(kernel.manifest().migrations.tenant_dir);
    } catch (const std::exception& e) {
        fail_all(tenants, e.what());
        return out;
    }
    std::map<std::optional<std::string>, std::vector<Tenant>> by_server;
    for (const auto& t : tenants) by_server[t.server].push_back(t);
    const auto target = TrackingTarget::tenants(kernel.manifest());
    for (const auto& [server, group] : by_server) {
        FleetStatus fleet;
        try {
            fleet = fleet_status(kernel, group, folder, target);
        } catch (const std::exception& e) {
            fail_all(group, e.what());
            continue;
        }
        for (const auto& st : fleet.tenants) {
            auto& p = out[st.tenant.id];
            switch (st.state) {
                case TenantState::missing_schema: p.error = "schema missing"; break;
                case TenantState::unknown_format:
                    p.error = "pending migrations unknown: the tracking table " + target.table +
                              " has a layout no loaded tracking format recognises (see mtctl status)";
                    break;
                default: p.pending = st.pending.size(); break;
            }
        }
    }
    return out;
}

}  // namespace mt::detail
