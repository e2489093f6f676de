// Health (TenantManager::health_check lives in tenant_health.cpp) and what it and warmup ask the
// database about tenants, private to the kernel: whether a tenant's schema exists on the server its
// lease reached, and how many migrations it has pending. The probes use only a lease's public
// surface; the pool figures come from the accessors below, defined beside the pools.
#pragma once

#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace mt::detail {

class ManagerState;

struct PoolFigures {
    size_t total = 0, idle = 0, waiting = 0;
};
struct RoutedTenant {
    std::string schema;
    std::optional<std::string> server;
};

// Defined beside the pools (pool.cpp) and routes (tenant_routes.cpp).
bool per_tenant_mode(const ManagerState& state);
// Validates and routes the id as a lease would (throws the same errors).
RoutedTenant route_of(ManagerState& state, const std::string& id);
// Tenants with a live pool (per-tenant mode), most recently leased first.
std::vector<std::string> live_tenants(const ManagerState& state);
// Tenants leased since the manager started (its route cache), with their servers.
std::vector<std::pair<std::string, std::optional<std::string>>> leased_tenants(const ManagerState& state);
// The pool a tenant's leases use: its own (per-tenant mode) or its server's; zeros when none yet.
PoolFigures tenant_figures(const ManagerState& state, const std::string& id, const std::optional<std::string>& server);
// The pool shared() leases from.
PoolFigures shared_figures(const ManagerState& state);

// "database.url" or "servers.NAME": where a tenant was looked for, as the manifest names it.
std::string server_label(const std::optional<std::string>& server);

// Of `schemas`, those that do not exist on the lease's server, in one round trip (retried on a
// broken connection: the statement only reads the catalog).
std::vector<std::string> missing_schemas(const Kernel& kernel, TenantLease& lease, const std::vector<std::string>& schemas);

// The error for a tenant whose schema is missing on its server: says what to do.
std::string missing_schema_error(const std::string& tenant, const std::string& schema,
                                 const std::optional<std::string>& server);

// Checks the tenant's own schema through its lease; throws OperationError (missing_schema_error)
// when it does not exist there. Also leaves the connection on the tenant's search_path.
void probe_tenant(const Kernel& kernel, TenantLease& lease, const std::optional<std::string>& server);

struct PendingCount {
    std::optional<size_t> pending;  // unset: could not be read (see error)
    std::string error;
};

// Pending tenant migrations per tenant id (fleet_status, the reader behind `mtctl status`), one
// batched read per server. A server that cannot be read gives every tenant on it an error.
std::unordered_map<std::string, PendingCount> pending_migrations(const Kernel& kernel, const std::vector<Tenant>& tenants);

}  // namespace mt::detail
