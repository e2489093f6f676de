// The order in which migrate starts tenants under the rollout controls (kernel-private).
#pragma once

#include <mt/migrations/migrate.hpp>

#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <vector>

namespace mt {

// Runs work(index, connection) for the tenants in todo (ascending: discovery order): the canary
// first, one at a time, then each wave with options.concurrency workers, holding back (outcome
// skipped) every tenant not started once the canary failed, the budget is spent, a wave without a
// budget failed, or --fail-fast saw a failure. Fills report.rollout; calls options.tenant_finished
// as each started tenant finishes. work returns false when the tenant failed.
void run_rollout(const std::vector<Tenant>& tenants, const std::vector<size_t>& todo, const MigrateOptions& options,
                 MigrateReport& report,
                 const std::function<bool(size_t, std::unique_ptr<pqxx::connection>&)>& work);

}  // namespace mt
