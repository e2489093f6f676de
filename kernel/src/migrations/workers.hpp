// The migration engine's worker pool and report helpers, shared by migrate and convert-format
// (kernel-private).
#pragma once

#include <mt/migrations/migrate.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <vector>

namespace mt {

// Runs work(index, connection) for each listed tenant with `concurrency` workers per server, each
// reusing its connection across tenants; work returns false on failure (stops all with fail_fast:
// the rest go to skip).
void for_each_tenant(const TenantList& tenants, const std::vector<size_t>& todo, int concurrency,
                     bool fail_fast, const std::function<void(size_t, size_t)>& progress,
                     const std::function<bool(size_t, std::unique_ptr<pqxx::connection>&)>& work,
                     const std::function<void(size_t)>& skip);

// Rewrites a tenant's tracking table, read as `source` (columns as found), in the `to` layout inside
// tx, which holds the tenant's lock: convert-format's step, and migrate's with
// migrations.auto_convert. Every row keeps its id and, between two timestamptz layouts, its exact
// timestamp. Returns the records' names (else hashes) in table order; with dry_run changes nothing.
// Throws OperationError, changing nothing, when a record cannot be completed from the folder.
std::vector<std::string> convert_table(pqxx::transaction_base& tx, const Tenant& tenant, const std::string& table,
                                       const std::vector<sdk::Column>& columns, const TrackingFormat& source,
                                       const TrackingFormat& to, const MigrationFolder& folder, bool dry_run);

// Counts outcomes into the report's summary.
void summarise(MigrateReport& report, std::chrono::steady_clock::time_point start);

inline double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace mt
